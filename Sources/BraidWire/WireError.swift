/// Why a packet could not be parsed.
///
/// A struct with an opaque ``Code`` (rather than an enum) so that new reasons can be added without
/// breaking callers' exhaustive switches. Every parser in this module throws only this type, and
/// never traps on malformed input.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case truncated
            case badVersion
            case badLength
            case badPadding
            case badExtension
            case unsupportedType
            case badAttribute
            case integrityMismatch
            case fingerprintMismatch
            case trailingBytes
            case badValue
        }

        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// The input ends before the structure it announces.
        public static let truncated = Code(.truncated)
        /// A version field holds a value this protocol does not define.
        public static let badVersion = Code(.badVersion)
        /// A length field contradicts the bytes available or the protocol's rules.
        public static let badLength = Code(.badLength)
        /// The padding count is zero or larger than the payload.
        public static let badPadding = Code(.badPadding)
        /// A header extension block or element is malformed.
        public static let badExtension = Code(.badExtension)
        /// A packet or message type this parser does not handle.
        public static let unsupportedType = Code(.unsupportedType)
        /// An attribute or field has the wrong size or shape.
        public static let badAttribute = Code(.badAttribute)
        /// A MESSAGE-INTEGRITY check failed.
        public static let integrityMismatch = Code(.integrityMismatch)
        /// A FINGERPRINT check failed.
        public static let fingerprintMismatch = Code(.fingerprintMismatch)
        /// Bytes remain after a structure that must end the input.
        public static let trailingBytes = Code(.trailingBytes)
        /// A field holds a value outside its allowed range.
        public static let badValue = Code(.badValue)

        public var description: String { "\(self.backing)" }
    }

    /// What went wrong.
    public let code: Code
    /// A short human-readable explanation (what was expected, what was found).
    public let reason: String
    /// Where the error was raised, for debugging.
    public let location: String

    @inline(never)
    public init(_ code: Code, _ reason: String, file: StaticString = #fileID, line: UInt = #line) {
        self.code = code
        self.reason = reason
        self.location = "\(file):\(line)"
    }

    public var description: String { "WireError.\(self.code): \(self.reason) (\(self.location))" }
}
