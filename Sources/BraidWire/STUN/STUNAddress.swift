import NIOCore

/// A transport address (IP address and port) as STUN carries it, held as plain integers.
///
/// Parsing an address allocates nothing: no `String`, no `SocketAddress`. ``init(_:)`` and
/// ``socketAddress()`` convert to and from NIO's `SocketAddress` where a socket needs one.
public struct STUNAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address family field of MAPPED-ADDRESS and XOR-MAPPED-ADDRESS (RFC 8489 §14.1).
    public enum Family: UInt8, Hashable, Sendable {
        case ipv4 = 0x01
        case ipv6 = 0x02
    }

    /// IPv4 or IPv6.
    public let family: Family
    /// The port, host order.
    public let port: UInt16
    /// The first 8 bytes of an IPv6 address in network order as a big-endian integer; 0 for IPv4.
    public let high: UInt64
    /// The last 8 bytes of an IPv6 address, or the IPv4 address in the low 32 bits.
    public let low: UInt64

    /// An IPv4 address from its 32-bit big-endian value (192.0.2.1 is 0xC000_0201).
    @inlinable
    public init(ipv4: UInt32, port: UInt16) {
        self.family = .ipv4
        self.port = port
        self.high = 0
        self.low = UInt64(ipv4)
    }

    /// An IPv4 address from its four octets.
    @inlinable
    public init(ipv4 a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) {
        self.init(ipv4: UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d), port: port)
    }

    /// An IPv6 address from its two 64-bit big-endian halves.
    @inlinable
    public init(ipv6High high: UInt64, low: UInt64, port: UInt16) {
        self.family = .ipv6
        self.port = port
        self.high = high
        self.low = low
    }

    /// An address from 4 (IPv4) or 16 (IPv6) bytes in network order; nil for any other count.
    public init?(bytes: some Collection<UInt8>, port: UInt16) {
        switch bytes.count {
        case 4:
            self.init(ipv4: bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }, port: port)
        case 16:
            var high: UInt64 = 0
            var low: UInt64 = 0
            for (i, byte) in bytes.enumerated() {
                if i < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
            }
            self.init(ipv6High: high, low: low, port: port)
        default:
            return nil
        }
    }

    /// The IPv4 address as a big-endian 32-bit value, or nil for IPv6.
    @inlinable
    public var ipv4: UInt32? { self.family == .ipv4 ? UInt32(truncatingIfNeeded: self.low) : nil }

    /// The address bytes in network order: 4 for IPv4, 16 for IPv6.
    public var addressBytes: [UInt8] {
        switch self.family {
        case .ipv4:
            return (0..<4).map { UInt8(truncatingIfNeeded: self.low >> (24 - 8 * $0)) }
        case .ipv6:
            return (0..<8).map { UInt8(truncatingIfNeeded: self.high >> (56 - 8 * $0)) }
                + (0..<8).map { UInt8(truncatingIfNeeded: self.low >> (56 - 8 * $0)) }
        }
    }

    /// Converts a NIO IPv4 or IPv6 socket address; throws `.unsupportedType` for a Unix domain socket.
    public init(_ address: SocketAddress) throws(WireError) {
        guard let port = address.port, let port16 = UInt16(exactly: port) else {
            throw WireError(.unsupportedType, "socket address \(address) has no IP port")
        }
        // sockaddr_in keeps the address at byte 4, sockaddr_in6 at byte 8 (both in network order).
        let bytes: [UInt8]?
        switch address {
        case .v4:
            bytes = address.withSockAddr { pointer, size in
                size >= 8 ? Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(pointer) + 4, count: 4)) : nil
            }
        case .v6:
            bytes = address.withSockAddr { pointer, size in
                size >= 24 ? Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(pointer) + 8, count: 16)) : nil
            }
        case .unixDomainSocket:
            bytes = nil
        }
        guard let bytes, let converted = STUNAddress(bytes: bytes, port: port16) else {
            throw WireError(.unsupportedType, "socket address \(address) is not IPv4 or IPv6")
        }
        self = converted
    }

    /// The NIO socket address for this address and port.
    public func socketAddress() throws -> SocketAddress {
        var packed = ByteBuffer()
        packed.writeBytes(self.addressBytes)
        return try SocketAddress(packedIPAddress: packed, port: Int(self.port))
    }

    /// `192.0.2.1:32853` or `[2001:db8::1]:32853` (RFC 5952 text form).
    public var description: String {
        switch self.family {
        case .ipv4:
            let octets = self.addressBytes.map { String($0) }.joined(separator: ".")
            return "\(octets):\(self.port)"
        case .ipv6:
            return "[\(self.ipv6Text)]:\(self.port)"
        }
    }

    private var ipv6Text: String {
        let groups = (0..<8).map { i -> UInt16 in
            let half = i < 4 ? self.high : self.low
            return UInt16(truncatingIfNeeded: half >> (48 - 16 * (i % 4)))
        }
        // RFC 5952 §4.2: shorten the longest run (the first, on a tie) of two or more zero groups to "::".
        var bestStart = -1
        var bestLength = 1
        var i = 0
        while i < 8 {
            guard groups[i] == 0 else {
                i += 1
                continue
            }
            var j = i
            while j < 8, groups[j] == 0 { j += 1 }
            if j - i > bestLength {
                bestStart = i
                bestLength = j - i
            }
            i = j
        }
        let hex = groups.map { String($0, radix: 16) }
        guard bestStart >= 0 else { return hex.joined(separator: ":") }
        let head = hex[..<bestStart].joined(separator: ":")
        let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
        return head + "::" + tail
    }
}

extension STUNAttribute {
    /// Decodes MAPPED-ADDRESS (`xorWith: nil`) or XOR-MAPPED-ADDRESS (`xorWith:` the message's
    /// transaction ID).
    ///
    /// [RFC 8489 §14.2](https://www.rfc-editor.org/rfc/rfc8489#section-14.2), Figure 6:
    ///
    /// ```
    ///  0                   1                   2                   3
    ///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |0 0 0 0 0 0 0 0|    Family     |         X-Port                |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |                X-Address (Variable)
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// ```
    ///
    /// X-Port is the port XOR the top 16 bits of the magic cookie; an IPv4 X-Address is the address XOR
    /// the magic cookie; an IPv6 X-Address is the address XOR the magic cookie followed by the
    /// transaction ID. MAPPED-ADDRESS (§14.1) has the same layout without the XOR. The first byte is
    /// ignored on receipt.
    ///
    /// - Throws: `.badValue` for an unknown family, `.badAttribute` when the length does not match the
    ///   family (8 bytes for IPv4, 20 for IPv6).
    public func address(xorWith transactionID: STUNTransactionID?) throws(WireError) -> STUNAddress {
        guard self.length >= 4 else {
            throw WireError(.badAttribute, "\(self.type) needs at least 4 bytes, has \(self.length)")
        }
        let rawFamily = self.byte(1)
        guard let family = STUNAddress.Family(rawValue: rawFamily) else {
            throw WireError(.badValue, "\(self.type) has unknown address family \(rawFamily)")
        }
        let xor = transactionID != nil
        let cookie = STUNMessage.magicCookie
        let port: UInt16 = self.integer(at: 2) ^ (xor ? UInt16(truncatingIfNeeded: cookie >> 16) : 0)
        switch family {
        case .ipv4:
            try self.requireLength(8)
            let address: UInt32 = self.integer(at: 4) ^ (xor ? cookie : 0)
            return STUNAddress(ipv4: address, port: port)
        case .ipv6:
            try self.requireLength(20)
            var high: UInt64 = self.integer(at: 4)
            var low: UInt64 = self.integer(at: 12)
            if let transactionID {
                high ^= UInt64(cookie) << 32 | UInt64(transactionID.high)
                low ^= transactionID.low
            }
            return STUNAddress(ipv6High: high, low: low, port: port)
        }
    }
}
