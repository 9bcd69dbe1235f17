/// Why an ICE operation was refused.
///
/// A struct with an opaque ``Code`` (like `WireError`) so that new reasons can be added without breaking
/// callers' exhaustive switches.
public struct ICEError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case badCredentials
            case badConfiguration
            case tableFull
            case duplicateUfrag
            case unknownSession
            case badCandidate
        }

        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// A ufrag or password breaks RFC 8839 §5.4 (length or character set), or is too long to own.
        public static let badCredentials = Code(.badCredentials)
        /// A timeout or bound is out of range.
        public static let badConfiguration = Code(.badConfiguration)
        /// The session table holds its maximum number of sessions.
        public static let tableFull = Code(.tableFull)
        /// Another session of the table already uses this local ufrag.
        public static let duplicateUfrag = Code(.duplicateUfrag)
        /// No session has this identifier.
        public static let unknownSession = Code(.unknownSession)
        /// A candidate field is out of range.
        public static let badCandidate = Code(.badCandidate)

        public var description: String { "\(self.backing)" }
    }

    /// What went wrong.
    public let code: Code
    /// A short human-readable explanation.
    public let reason: String

    @inline(never)
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "ICEError.\(self.code): \(self.reason)" }
}
