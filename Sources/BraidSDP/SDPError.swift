/// Why a session description could not be parsed, or why an offer could not be answered.
///
/// A struct with an opaque ``Code`` (rather than an enum) so that new reasons can be added without
/// breaking callers' exhaustive switches. Every API in this module throws only this type and never traps on
/// malformed input. When the problem sits on one line of the input, ``line`` holds its 1-based number and
/// ``description`` reads like `line 7: m= line needs 4+ fields`.
public struct SDPError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure; compare against the static members.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: Hashable, Sendable {
            case malformedLine
            case unknownLineType
            case misplacedLine
            case missingLine
            case badAttribute
            case limitExceeded
            case invalidEncoding
            case unsupportedOffer
            case noCommonCodec
            case conflictingOffer
            case badLocalParameters
        }

        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// A line is not of the form `<letter>=<value>`, or its fields do not match its type.
        public static let malformedLine = Code(.malformedLine)
        /// A line type letter that RFC 8866 does not define (RFC 8866 §5 says to reject these).
        public static let unknownLineType = Code(.unknownLineType)
        /// A line appears where its type is not allowed (e.g. `o=` after `m=`).
        public static let misplacedLine = Code(.misplacedLine)
        /// A mandatory line (`v=`, `o=`, `s=`, `t=`) is absent.
        public static let missingLine = Code(.missingLine)
        /// A known attribute (`a=rtpmap`, `a=candidate`, …) has a value that does not follow its grammar.
        public static let badAttribute = Code(.badAttribute)
        /// The input exceeds one of the ``SDPLimits``.
        public static let limitExceeded = Code(.limitExceeded)
        /// The input is not valid UTF-8 or holds a NUL or stray CR.
        public static let invalidEncoding = Code(.invalidEncoding)
        /// The offer asks for something this endpoint cannot do (no ICE credentials, `a=setup:passive`, …).
        public static let unsupportedOffer = Code(.unsupportedOffer)
        /// No media section of the offer carries a codec this endpoint supports.
        public static let noCommonCodec = Code(.noCommonCodec)
        /// The offer contradicts itself (one extension ID or payload type bound twice in a BUNDLE group).
        public static let conflictingOffer = Code(.conflictingOffer)
        /// The local parameters given to the answer builder are invalid (e.g. an ICE password too short).
        public static let badLocalParameters = Code(.badLocalParameters)

        public var description: String { "\(self.backing)" }
    }

    /// What went wrong.
    public let code: Code
    /// The 1-based line number of the offending line, when the error concerns one line.
    public internal(set) var line: Int?
    /// A short human-readable explanation (what was expected, what was found).
    public let reason: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: The kind of failure.
    ///   - reason: What was expected and what was found.
    ///   - line: The 1-based line number, if the error concerns one line.
    @inline(never)
    public init(_ code: Code, _ reason: String, line: Int? = nil) {
        self.code = code
        self.reason = reason
        self.line = line
    }

    public var description: String {
        if let line { return "line \(line): \(self.reason)" }
        return self.reason
    }

    /// Returns a copy that names `line`, unless a line is already set.
    func at(line: Int) -> SDPError {
        var copy = self
        if copy.line == nil { copy.line = line }
        return copy
    }
}

/// Caps that keep hostile input from costing unbounded memory or time.
///
/// The HTTP layer caps the body size too; these limits make the parser safe on its own.
public struct SDPLimits: Hashable, Sendable {
    /// The largest input accepted, in bytes.
    public var maxBytes: Int
    /// The longest line accepted, in bytes (without its line ending).
    public var maxLineLength: Int
    /// The most lines accepted in total.
    public var maxLines: Int
    /// The most `m=` sections accepted.
    public var maxMediaSections: Int
    /// The most `a=` lines accepted at session level or in one media section.
    public var maxAttributesPerSection: Int

    /// Creates limits; the defaults fit any browser offer with room to spare.
    public init(
        maxBytes: Int = 64 * 1024,
        maxLineLength: Int = 4096,
        maxLines: Int = 8192,
        maxMediaSections: Int = 64,
        maxAttributesPerSection: Int = 512
    ) {
        self.maxBytes = maxBytes
        self.maxLineLength = maxLineLength
        self.maxLines = maxLines
        self.maxMediaSections = maxMediaSections
        self.maxAttributesPerSection = maxAttributesPerSection
    }

    /// The default limits.
    public static let `default` = SDPLimits()
}
