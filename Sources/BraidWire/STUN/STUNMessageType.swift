/// The class of a STUN message: request, indication, success or error response.
///
/// [RFC 8489 §5](https://www.rfc-editor.org/rfc/rfc8489#section-5): two bits, C1 and C0, that the
/// message type field interleaves with the method bits (see ``STUNMessageType``).
public enum STUNClass: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case request = 0b00
    case indication = 0b01
    case successResponse = 0b10
    case errorResponse = 0b11

    public var description: String {
        switch self {
        case .request: "request"
        case .indication: "indication"
        case .successResponse: "success response"
        case .errorResponse: "error response"
        }
    }
}

/// A STUN method: a 12-bit number registered with IANA.
///
/// [RFC 8489 §18.2](https://www.rfc-editor.org/rfc/rfc8489#section-18.2) defines Binding (0x001), the
/// only method ICE uses. A struct rather than an enum so that TURN's methods (0x003–0x009, RFC 8656) can
/// pass through unchanged.
public struct STUNMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The method number, 0x000–0xFFF.
    public let rawValue: UInt16

    /// Fails when `rawValue` needs more than 12 bits.
    @inlinable
    public init?(rawValue: UInt16) {
        guard rawValue <= 0x0FFF else { return nil }
        self.rawValue = rawValue
    }

    @inlinable
    init(uncheckedRawValue: UInt16) { self.rawValue = uncheckedRawValue }

    /// Binding (0x001): the method of ICE connectivity checks and consent freshness.
    public static let binding = STUNMethod(uncheckedRawValue: 0x001)

    public var description: String {
        self == .binding ? "Binding" : "method 0x\(String(self.rawValue, radix: 16))"
    }
}

/// The 14-bit STUN message type: a method and a class, interleaved.
///
/// [RFC 8489 §5](https://www.rfc-editor.org/rfc/rfc8489#section-5), Figure 3 (M = method bits,
/// C = class bits; the two leading zero bits of the header are not part of the type):
///
/// ```
///                   0                 1
///                   2  3  4 5 6 7 8 9 0 1 2 3 4 5
///                  +--+--+-+-+-+-+-+-+-+-+-+-+-+-+
///                  |M |M |M|M|M|C|M|M|M|C|M|M|M|M|
///                  |11|10|9|8|7|1|6|5|4|0|3|2|1|0|
///                  +--+--+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
public struct STUNMessageType: Hashable, Sendable, CustomStringConvertible {
    public var method: STUNMethod
    public var messageClass: STUNClass

    @inlinable
    public init(method: STUNMethod, messageClass: STUNClass) {
        self.method = method
        self.messageClass = messageClass
    }

    /// Decodes the type field. Fails when either of the two leading bits is set, which no STUN message has.
    @inlinable
    public init?(rawValue: UInt16) {
        guard rawValue & 0xC000 == 0 else { return nil }
        let method = (rawValue & 0x000F) | ((rawValue >> 1) & 0x0070) | ((rawValue >> 2) & 0x0F80)
        let classBits = UInt8(truncatingIfNeeded: ((rawValue >> 4) & 0b01) | ((rawValue >> 7) & 0b10))
        self.method = STUNMethod(uncheckedRawValue: method)
        // Two bits always name one of the four classes.
        self.messageClass = STUNClass(rawValue: classBits) ?? .request
    }

    /// The encoded 16-bit field, leading bits zero.
    @inlinable
    public var rawValue: UInt16 {
        let m = self.method.rawValue
        let c = UInt16(self.messageClass.rawValue)
        return (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
    }

    /// Binding request, 0x0001.
    public static let bindingRequest = STUNMessageType(method: .binding, messageClass: .request)
    /// Binding indication, 0x0011 (ICE keepalives, RFC 8445 §11).
    public static let bindingIndication = STUNMessageType(method: .binding, messageClass: .indication)
    /// Binding success response, 0x0101.
    public static let bindingSuccessResponse = STUNMessageType(method: .binding, messageClass: .successResponse)
    /// Binding error response, 0x0111.
    public static let bindingErrorResponse = STUNMessageType(method: .binding, messageClass: .errorResponse)

    public var description: String { "\(self.method) \(self.messageClass)" }
}

/// The 96-bit transaction ID of a STUN message.
///
/// [RFC 8489 §5](https://www.rfc-editor.org/rfc/rfc8489#section-5): chosen uniformly at random by the
/// client for every new transaction, echoed by the server. Also the IPv6 part of the XOR mask of
/// XOR-MAPPED-ADDRESS (§14.2). Held as two integers so that it is a plain value with no storage.
public struct STUNTransactionID: Hashable, Sendable, CustomStringConvertible {
    /// Bytes 8–11 of the header, big-endian.
    public var high: UInt32
    /// Bytes 12–19 of the header, big-endian.
    public var low: UInt64

    @inlinable
    public init(high: UInt32, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From 12 bytes in wire order; fails on any other count.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 12 else { return nil }
        var high: UInt32 = 0
        var low: UInt64 = 0
        for (i, byte) in bytes.enumerated() {
            if i < 4 { high = high << 8 | UInt32(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.init(high: high, low: low)
    }

    /// A fresh ID from `generator` (RFC 8489 §5 asks for a cryptographically random one: use the
    /// system generator outside tests).
    @inlinable
    public static func random(using generator: inout some RandomNumberGenerator) -> STUNTransactionID {
        STUNTransactionID(high: generator.next(), low: generator.next())
    }

    /// A fresh ID from the system's cryptographically secure generator.
    @inlinable
    public static func random() -> STUNTransactionID {
        var generator = SystemRandomNumberGenerator()
        return .random(using: &generator)
    }

    /// The 12 bytes in wire order.
    public var bytes: [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: self.high >> (24 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: self.low >> (56 - 8 * $0)) }
    }

    /// 24 lowercase hex digits.
    public var description: String {
        self.bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
