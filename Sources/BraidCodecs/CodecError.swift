/// Why a codec call failed.
///
/// A struct with an opaque ``Code`` (rather than an enum) so that new reasons can be added without
/// breaking callers' exhaustive switches. Every API of this module throws only this type; bad input
/// (garbage packets, short buffers, out-of-range settings) never traps.
public struct CodecError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case badArgument
            case bufferTooSmall
            case invalidPacket
            case internalError
            case unimplemented
            case invalidState
            case allocationFailed
            case unsupportedBitstream
            case corruptFrame
            case incapable
        }

        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// A setting or argument is out of range (`OPUS_BAD_ARG`, `VPX_CODEC_INVALID_PARAM`), or the
        /// input does not have the shape the codec was configured for.
        public static let badArgument = Code(.badArgument)
        /// The caller's output buffer cannot hold the result (`OPUS_BUFFER_TOO_SMALL`).
        public static let bufferTooSmall = Code(.bufferTooSmall)
        /// The compressed data is malformed (`OPUS_INVALID_PACKET`).
        public static let invalidPacket = Code(.invalidPacket)
        /// The library reported an internal failure (`OPUS_INTERNAL_ERROR`, `VPX_CODEC_ERROR`).
        public static let internalError = Code(.internalError)
        /// The request is not implemented by the library (`OPUS_UNIMPLEMENTED`).
        public static let unimplemented = Code(.unimplemented)
        /// The codec state is invalid or was already freed (`OPUS_INVALID_STATE`).
        public static let invalidState = Code(.invalidState)
        /// The library could not allocate memory (`OPUS_ALLOC_FAIL`, `VPX_CODEC_MEM_ERROR`).
        public static let allocationFailed = Code(.allocationFailed)
        /// The bitstream uses a feature or format this decoder does not support
        /// (`VPX_CODEC_UNSUP_BITSTREAM`, `VPX_CODEC_UNSUP_FEATURE`).
        public static let unsupportedBitstream = Code(.unsupportedBitstream)
        /// The compressed frame is corrupt or references data the decoder never received
        /// (`VPX_CODEC_CORRUPT_FRAME`).
        public static let corruptFrame = Code(.corruptFrame)
        /// The codec lacks a capability the call needs (`VPX_CODEC_INCAPABLE`, `VPX_CODEC_ABI_MISMATCH`).
        public static let incapable = Code(.incapable)

        public var description: String { "\(self.backing)" }
    }

    /// What went wrong.
    public let code: Code
    /// The raw status of the C library (an `OPUS_*` or `vpx_codec_err_t` value), or 0 when the error
    /// was detected in Swift before calling the library.
    public let libraryStatus: Int32
    /// A short human-readable explanation.
    public let reason: String
    /// Where the error was raised, for debugging.
    public let location: String

    @inline(never)
    public init(
        _ code: Code,
        _ reason: String,
        libraryStatus: Int32 = 0,
        file: StaticString = #fileID,
        line: UInt = #line
    ) {
        self.code = code
        self.reason = reason
        self.libraryStatus = libraryStatus
        self.location = "\(file):\(line)"
    }

    public var description: String {
        "CodecError.\(self.code): \(self.reason) (status \(self.libraryStatus), \(self.location))"
    }
}
