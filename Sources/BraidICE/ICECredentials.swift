import BraidWire

/// An ICE username fragment and password, as exchanged in SDP (`a=ice-ufrag`, `a=ice-pwd`).
///
/// [RFC 8839 §5.4](https://www.rfc-editor.org/rfc/rfc8839#section-5.4):
///
/// ```
/// ice-pwd-att           = "ice-pwd:" password
/// ice-ufrag-att         = "ice-ufrag:" ufrag
/// password              = 22*256ice-char
/// ufrag                 = 4*256ice-char
/// ice-char              = ALPHA / DIGIT / "+" / "/"
/// ```
///
/// The MESSAGE-INTEGRITY key of the password (RFC 8489 §9.1.1) is computed once here and reused for
/// every check, so answering a check allocates nothing.
public struct ICECredentials: Hashable, Sendable, CustomStringConvertible {
    /// Length of a generated ufrag: 16 characters of 6 bits each (96 bits, as mediasoup uses).
    public static let generatedUfragLength = 16
    /// Length of a generated password: 32 characters (192 bits; RFC 8445 §5.3 asks for at least 128).
    public static let generatedPasswordLength = 32
    /// Allowed ufrag lengths (RFC 8839 §5.4).
    public static let ufragLengths = 4...256
    /// Allowed password lengths (RFC 8839 §5.4).
    public static let passwordLengths = 22...256

    /// The 64 `ice-char`s; a 6-bit random value indexes one.
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The username fragment.
    public let ufrag: String
    /// The password.
    public let password: String
    /// The short-term MESSAGE-INTEGRITY key: the password's bytes.
    public let integrityKey: STUNIntegrityKey
    /// The ufrag as a fixed-size key for allocation-free comparisons and lookups; nil when the ufrag is
    /// longer than ``ICEUfragKey/maxByteCount`` (possible only for a remote peer's ufrag).
    public let ufragKey: ICEUfragKey?

    /// Credentials from SDP, checked against RFC 8839 §5.4.
    ///
    /// - Throws: ``ICEError`` `.badCredentials` for a length out of range or a character outside
    ///   ALPHA / DIGIT / "+" / "/".
    public init(ufrag: String, password: String) throws(ICEError) {
        let ufragBytes = Array(ufrag.utf8)
        let passwordBytes = Array(password.utf8)
        guard Self.ufragLengths.contains(ufragBytes.count) else {
            throw ICEError(.badCredentials, "ice-ufrag has \(ufragBytes.count) characters, needs 4 to 256")
        }
        guard Self.passwordLengths.contains(passwordBytes.count) else {
            throw ICEError(.badCredentials, "ice-pwd has \(passwordBytes.count) characters, needs 22 to 256")
        }
        guard ufragBytes.allSatisfy(Self.isICEChar), passwordBytes.allSatisfy(Self.isICEChar) else {
            throw ICEError(.badCredentials, "ice-ufrag and ice-pwd may hold only ALPHA / DIGIT / \"+\" / \"/\"")
        }
        self.ufrag = ufrag
        self.password = password
        self.integrityKey = STUNIntegrityKey(shortTermPassword: password)
        self.ufragKey = ufragBytes.withUnsafeBytes { ICEUfragKey($0) }
    }

    /// Fresh random credentials from `generator`: a 16-character ufrag and a 32-character password.
    ///
    /// - Warning: outside tests use ``random()``: the password authenticates every check, so it must come
    ///   from a cryptographically secure generator (RFC 8445 §5.3).
    public static func random(using generator: inout some RandomNumberGenerator) -> ICECredentials {
        let ufrag = randomICEString(length: generatedUfragLength, using: &generator)
        let password = randomICEString(length: generatedPasswordLength, using: &generator)
        // Drawn from the alphabet with valid lengths: the init cannot throw.
        return try! ICECredentials(ufrag: ufrag, password: password)
    }

    /// Fresh random credentials from the system's cryptographically secure generator.
    public static func random() -> ICECredentials {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    static func randomICEString(length: Int, using generator: inout some RandomNumberGenerator) -> String {
        // `next(upperBound:)` is unbiased (and 64 is a power of two anyway).
        let bytes = (0..<length).map { _ in alphabet[Int(generator.next(upperBound: UInt8(64)))] }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func isICEChar(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
            true
        default:
            false
        }
    }

    /// The ufrag only: the password is a secret and stays out of logs.
    public var description: String { "ICECredentials(ufrag: \(self.ufrag))" }
}

/// A ufrag of at most 32 bytes held inline, for hashing and comparing without allocating.
///
/// Our local ufrags are 16 characters, so every ufrag a session of ours owns fits; a longer ufrag in a
/// request simply matches no session.
public struct ICEUfragKey: Hashable, Sendable {
    /// The longest ufrag a key can hold.
    public static let maxByteCount = 32

    // Four words of bytes, zero past `count`, so that == and hash see exactly the ufrag.
    private var w0: UInt64 = 0
    private var w1: UInt64 = 0
    private var w2: UInt64 = 0
    private var w3: UInt64 = 0
    private var count: UInt8 = 0

    /// The key of `bytes`, or nil when they are empty or longer than ``maxByteCount``.
    public init?(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty, bytes.count <= Self.maxByteCount else { return nil }
        self.count = UInt8(truncatingIfNeeded: bytes.count)
        for index in 0..<bytes.count {
            let value = UInt64(bytes[index]) << UInt64((index & 7) * 8)
            switch index >> 3 {
            case 0: self.w0 |= value
            case 1: self.w1 |= value
            case 2: self.w2 |= value
            default: self.w3 |= value
            }
        }
    }

    /// The key of a string's UTF-8 bytes, or nil when it is empty or too long.
    public init?(_ string: String) {
        var string = string
        guard let key = string.withUTF8({ ICEUfragKey(UnsafeRawBufferPointer($0)) }) else { return nil }
        self = key
    }
}
