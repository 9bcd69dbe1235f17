/// Why a DTLS or certificate operation failed.
///
/// A struct with an opaque ``Code`` so that new reasons can be added without breaking callers'
/// exhaustive switches. DTLS runs once per connection, off the packet path, so the reason is a `String`
/// that may carry OpenSSL's own error text.
public struct DTLSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case malformedDatagram
            case handshakeFailed
            case fingerprintMismatch
            case noSRTPProfile
            case timedOut
            case notConnected
            case notUsable
            case badFingerprint
            case badCertificate
            case badParameter
            case srtp
            case library
        }

        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// The datagram is not a sequence of whole DTLS 1.0/1.2 records; it was dropped without reaching
        /// OpenSSL and the endpoint's state is unchanged.
        public static let malformedDatagram = Code(.malformedDatagram)
        /// OpenSSL aborted the handshake (bad message, alert from the peer, no shared cipher...).
        public static let handshakeFailed = Code(.handshakeFailed)
        /// The peer's certificate does not match the fingerprint announced in its SDP.
        public static let fingerprintMismatch = Code(.fingerprintMismatch)
        /// The handshake finished without agreeing on an SRTP protection profile (RFC 5764 `use_srtp`).
        public static let noSRTPProfile = Code(.noSRTPProfile)
        /// A flight was retransmitted the maximum number of times without an answer.
        public static let timedOut = Code(.timedOut)
        /// The operation needs a connected endpoint.
        public static let notConnected = Code(.notConnected)
        /// The endpoint has failed or closed and accepts no more input.
        public static let notUsable = Code(.notUsable)
        /// A fingerprint string is not `hash-func SP 2UHEX *(":" 2UHEX)` (RFC 8122 §5) for a known hash.
        public static let badFingerprint = Code(.badFingerprint)
        /// A certificate or key could not be created, encoded, decoded, or does not match its key.
        public static let badCertificate = Code(.badCertificate)
        /// A configuration value is out of range.
        public static let badParameter = Code(.badParameter)
        /// Creating the SRTP sessions from the exported keys failed.
        public static let srtp = Code(.srtp)
        /// Any other OpenSSL failure.
        public static let library = Code(.library)

        public var description: String { "\(self.backing)" }
    }

    /// What went wrong.
    public let code: Code
    /// A human-readable explanation, including OpenSSL's error text when there is one.
    public let reason: String
    /// Where the error was raised, for debugging.
    public let location: String

    @inline(never)
    public init(_ code: Code, _ reason: String, file: StaticString = #fileID, line: UInt = #line) {
        self.code = code
        self.reason = reason
        self.location = "\(file):\(line)"
    }

    /// Errors compare by kind only; the reason and location are diagnostics.
    public static func == (lhs: DTLSError, rhs: DTLSError) -> Bool { lhs.code == rhs.code }

    public func hash(into hasher: inout Hasher) { hasher.combine(self.code) }

    public var description: String { "DTLSError.\(self.code): \(self.reason) (\(self.location))" }
}
