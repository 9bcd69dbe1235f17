import NIOCore

/// A STUN attribute type.
///
/// [RFC 8489 §14](https://www.rfc-editor.org/rfc/rfc8489#section-14) and §18.3: types 0x0000–0x7FFF are
/// comprehension-required (an agent that does not know one must reject the message with 420), types
/// 0x8000–0xFFFF comprehension-optional (ignored when unknown).
public struct STUNAttributeType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    @inlinable
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// True for 0x0000–0x7FFF: a receiver that does not understand it must answer 420 Unknown Attribute.
    @inlinable
    public var isComprehensionRequired: Bool { self.rawValue < 0x8000 }

    // Comprehension-required (RFC 8489 §18.3.1, RFC 8445 §16.1).
    public static let mappedAddress = STUNAttributeType(rawValue: 0x0001)
    public static let username = STUNAttributeType(rawValue: 0x0006)
    public static let messageIntegrity = STUNAttributeType(rawValue: 0x0008)
    public static let errorCode = STUNAttributeType(rawValue: 0x0009)
    public static let unknownAttributes = STUNAttributeType(rawValue: 0x000A)
    public static let realm = STUNAttributeType(rawValue: 0x0014)
    public static let nonce = STUNAttributeType(rawValue: 0x0015)
    public static let messageIntegritySHA256 = STUNAttributeType(rawValue: 0x001C)
    public static let passwordAlgorithm = STUNAttributeType(rawValue: 0x001D)
    public static let userhash = STUNAttributeType(rawValue: 0x001E)
    public static let xorMappedAddress = STUNAttributeType(rawValue: 0x0020)
    public static let priority = STUNAttributeType(rawValue: 0x0024)
    public static let useCandidate = STUNAttributeType(rawValue: 0x0025)

    // Comprehension-optional (RFC 8489 §18.3.2, RFC 8445 §16.1).
    public static let passwordAlgorithms = STUNAttributeType(rawValue: 0x8002)
    public static let alternateDomain = STUNAttributeType(rawValue: 0x8003)
    public static let software = STUNAttributeType(rawValue: 0x8022)
    public static let alternateServer = STUNAttributeType(rawValue: 0x8023)
    public static let fingerprint = STUNAttributeType(rawValue: 0x8028)
    public static let iceControlled = STUNAttributeType(rawValue: 0x8029)
    public static let iceControlling = STUNAttributeType(rawValue: 0x802A)

    public var description: String {
        switch self {
        case .mappedAddress: "MAPPED-ADDRESS"
        case .username: "USERNAME"
        case .messageIntegrity: "MESSAGE-INTEGRITY"
        case .errorCode: "ERROR-CODE"
        case .unknownAttributes: "UNKNOWN-ATTRIBUTES"
        case .realm: "REALM"
        case .nonce: "NONCE"
        case .messageIntegritySHA256: "MESSAGE-INTEGRITY-SHA256"
        case .passwordAlgorithm: "PASSWORD-ALGORITHM"
        case .userhash: "USERHASH"
        case .xorMappedAddress: "XOR-MAPPED-ADDRESS"
        case .priority: "PRIORITY"
        case .useCandidate: "USE-CANDIDATE"
        case .passwordAlgorithms: "PASSWORD-ALGORITHMS"
        case .alternateDomain: "ALTERNATE-DOMAIN"
        case .software: "SOFTWARE"
        case .alternateServer: "ALTERNATE-SERVER"
        case .fingerprint: "FINGERPRINT"
        case .iceControlled: "ICE-CONTROLLED"
        case .iceControlling: "ICE-CONTROLLING"
        default: "0x\(String(self.rawValue, radix: 16))"
        }
    }
}

/// One attribute of a parsed ``STUNMessage``: a zero-copy view of its type and value.
///
/// [RFC 8489 §14](https://www.rfc-editor.org/rfc/rfc8489#section-14), Figure 4:
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Type                  |            Length             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         Value (variable)                ....
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Length counts the value without its padding to a multiple of 4 bytes; padding bytes may hold any
/// value and are ignored. The typed decoders (``text(maxByteCount:)``, ``uInt32()``, ``address(xorWith:)``
/// and so on) check the value's size and shape and throw ``WireError`` when it is wrong; they read the
/// bytes in place.
public struct STUNAttribute: Sendable {
    /// The attribute type.
    public let type: STUNAttributeType
    /// Byte offset of this attribute's type field from the start of the message.
    public let offset: Int
    /// Length of the value in bytes, without padding.
    public let length: Int
    /// The whole message: a reference to the receive buffer, not a copy.
    @usableFromInline let message: ByteBuffer

    @inlinable
    init(type: STUNAttributeType, offset: Int, length: Int, message: ByteBuffer) {
        self.type = type
        self.offset = offset
        self.length = length
        self.message = message
    }

    /// Offset of the value from the start of the message.
    @inlinable
    public var valueOffset: Int { self.offset + 4 }

    /// The value bytes (without padding), sharing the message's storage.
    @inlinable
    public var value: ByteBuffer {
        // The message view checked in its init that every attribute lies inside the message.
        self.message.getSlice(at: self.message.readerIndex + self.valueOffset, length: self.length)!
    }

    @inlinable
    func byte(_ index: Int) -> UInt8 {
        self.message.getInteger(at: self.message.readerIndex + self.valueOffset + index, as: UInt8.self)!
    }

    @inlinable
    func integer<T: FixedWidthInteger>(at index: Int, as: T.Type = T.self) -> T {
        self.message.getInteger(at: self.message.readerIndex + self.valueOffset + index, as: T.self)!
    }

    /// Calls `body` with the value bytes (without padding), valid only during the call.
    @inlinable
    public func withUnsafeValueBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try self.message.withUnsafeReadableBytes { bytes in
            try body(UnsafeRawBufferPointer(rebasing: bytes[self.valueOffset..<(self.valueOffset + self.length)]))
        }
    }

    // MARK: Typed decoders

    /// Checks that the value has exactly `count` bytes.
    @inlinable
    func requireLength(_ count: Int) throws(WireError) {
        guard self.length == count else {
            throw WireError(.badAttribute, "\(self.type) must have \(count) bytes of value, has \(self.length)")
        }
    }

    /// A 4-byte value as an integer: PRIORITY ([RFC 8445 §16.1](https://www.rfc-editor.org/rfc/rfc8445#section-16.1)).
    @inlinable
    public func uInt32() throws(WireError) -> UInt32 {
        try self.requireLength(4)
        return self.integer(at: 0)
    }

    /// An 8-byte value as an integer: the tie-breaker of ICE-CONTROLLED and ICE-CONTROLLING
    /// ([RFC 8445 §16.1](https://www.rfc-editor.org/rfc/rfc8445#section-16.1)).
    @inlinable
    public func uInt64() throws(WireError) -> UInt64 {
        try self.requireLength(8)
        return self.integer(at: 0)
    }

    /// Checks that the value is empty, as for USE-CANDIDATE
    /// ([RFC 8445 §16.1](https://www.rfc-editor.org/rfc/rfc8445#section-16.1)).
    @inlinable
    public func requireEmpty() throws(WireError) {
        try self.requireLength(0)
    }

    /// A UTF-8 text value: USERNAME (at most 513 bytes, RFC 8489 §14.3), SOFTWARE (at most 763, §14.14),
    /// REALM and NONCE (at most 763, §14.9–14.10).
    ///
    /// Validates the encoding without allocating; ``STUNText/string`` makes the `String` when wanted.
    public func text(maxByteCount: Int) throws(WireError) -> STUNText {
        guard self.length <= maxByteCount else {
            throw WireError(.badAttribute, "\(self.type) has \(self.length) bytes, at most \(maxByteCount) allowed")
        }
        let valid = self.withUnsafeValueBytes { isValidUTF8($0) }
        guard valid else { throw WireError(.badValue, "\(self.type) is not valid UTF-8") }
        return STUNText(bytes: self.value)
    }
}

/// UTF-8 text held in a STUN attribute, checked to be valid UTF-8, still in the receive buffer.
public struct STUNText: Sendable, Hashable, CustomStringConvertible {
    /// The encoded bytes, sharing the message's storage.
    public let bytes: ByteBuffer

    @inlinable
    init(bytes: ByteBuffer) { self.bytes = bytes }

    /// The text as a `String` (allocates for text longer than 15 bytes).
    public var string: String { String(decoding: self.bytes.readableBytesView, as: UTF8.self) }

    /// Compares with `other` byte for byte, without allocating.
    public func equals(_ other: String) -> Bool {
        var other = other
        return other.withUTF8 { utf8 in
            self.bytes.withUnsafeReadableBytes { mine in mine.elementsEqual(UnsafeRawBufferPointer(utf8)) }
        }
    }

    public var description: String { self.string }
}

/// Whether `bytes` is well-formed UTF-8 (no overlong forms, surrogates or values above U+10FFFF).
@usableFromInline
func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
    var iterator = bytes.makeIterator()
    var decoder = Unicode.UTF8()
    while true {
        switch decoder.decode(&iterator) {
        case .scalarValue: continue
        case .emptyInput: return true
        case .error: return false
        }
    }
}
