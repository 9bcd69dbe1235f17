/// Why an SRTP operation failed.
///
/// A struct with an opaque ``Code`` (rather than an enum) so that new reasons can be added without
/// breaking callers' exhaustive switches. On the packet path these are expected, counted drops (a
/// replayed or forged packet), so the factories are `@inline(never)` to keep the cold path out of the
/// protect/unprotect loops.
///
/// Creating one does not allocate (the reason is a literal and the location a `StaticString`), so a
/// flood of forged packets costs no heap traffic.
public struct SRTPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case authenticationFailed
            case replayed
            case replayTooOld
            case badKeyLength
            case badParameter
            case bufferTooSmall
            case wrongDirection
            case library
        }

        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// The authentication tag did not verify: the packet was forged, corrupted or keyed differently
        /// (`srtp_err_status_auth_fail`).
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The packet index was already seen inside the replay window (`srtp_err_status_replay_fail`).
        public static let replayed = Code(.replayed)
        /// The packet index is older than the replay window (`srtp_err_status_replay_old`).
        public static let replayTooOld = Code(.replayTooOld)
        /// A master key or salt does not have the length the profile requires.
        public static let badKeyLength = Code(.badKeyLength)
        /// A parameter or the packet itself is unacceptable (`srtp_err_status_bad_param`, e.g. a
        /// packet shorter than an RTP/RTCP header, CSRCs or a header extension running past the end, a
        /// packet too short for its tag or SRTCP trailer, or a replay window out of range).
        public static let badParameter = Code(.badParameter)
        /// The destination buffer cannot hold the result.
        public static let bufferTooSmall = Code(.bufferTooSmall)
        /// The operation does not exist on this session's direction (unprotect on an outbound
        /// session or the reverse).
        public static let wrongDirection = Code(.wrongDirection)
        /// Any other failure of the SRTP implementation (an OpenSSL cipher failure, an exhausted SRTCP
        /// index, an AES-CM SRTCP packet without the E flag); ``SRTPError/libraryStatus`` holds the
        /// `srtp_err_status_t` value.
        public static let library = Code(.library)

        public var description: String { "\(self.backing)" }
    }

    /// What went wrong.
    public let code: Code
    /// The `srtp_err_status_t` number of the failure: what libsrtp returned, or, for the OpenSSL
    /// implementation, the number libsrtp uses for the same failure (2 bad parameter, 7 authentication,
    /// 8 cipher, 9 replayed, 10 too old, 14 cannot check, 15 key expired), so errors from both compare
    /// equal. 0 when the error was detected before any SRTP processing (lengths, buffers, keys).
    public let libraryStatus: Int32
    /// A short human-readable explanation.
    public let reason: StaticString
    /// The file that raised the error, for debugging.
    public let file: StaticString
    /// The line that raised the error, for debugging.
    public let line: UInt

    @inline(never)
    public init(
        _ code: Code,
        _ reason: StaticString,
        libraryStatus: Int32 = 0,
        file: StaticString = #fileID,
        line: UInt = #line
    ) {
        self.code = code
        self.reason = reason
        self.libraryStatus = libraryStatus
        self.file = file
        self.line = line
    }

    /// Errors compare by kind and library status; the reason and location are diagnostics only.
    public static func == (lhs: SRTPError, rhs: SRTPError) -> Bool {
        lhs.code == rhs.code && lhs.libraryStatus == rhs.libraryStatus
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.code)
        hasher.combine(self.libraryStatus)
    }

    public var description: String {
        let status = self.libraryStatus == 0 ? "" : " [srtp_err_status \(self.libraryStatus)]"
        return "SRTPError.\(self.code): \(self.reason)\(status) (\(self.file):\(self.line))"
    }
}
