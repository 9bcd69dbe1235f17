import BraidWire
import NIOCore

extension STUNAddress {
    /// The transport address of a NIO IPv4 or IPv6 socket address, read in place without allocating
    /// (`STUNAddress.init(_:)` of BraidWire builds temporary arrays); nil for a Unix domain socket.
    ///
    /// Used once per datagram as the key of a candidate pair and of the session table, and as the
    /// XOR-MAPPED-ADDRESS of a Binding response.
    @inlinable
    public init?(transport address: SocketAddress) {
        // sockaddr_in: family (2), port (2, network order), address (4) at byte 4.
        // sockaddr_in6: family (2), port (2), flow info (4), address (16) at byte 8.
        switch address {
        case .v4:
            let value: (UInt16, UInt32)? = address.withSockAddr { pointer, size in
                guard size >= 8 else { return nil }
                let raw = UnsafeRawPointer(pointer)
                return (
                    UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self)),
                    UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
                )
            }
            guard let (port, ip) = value else { return nil }
            self.init(ipv4: ip, port: port)
        case .v6:
            let value: (UInt16, UInt64, UInt64)? = address.withSockAddr { pointer, size in
                guard size >= 24 else { return nil }
                let raw = UnsafeRawPointer(pointer)
                return (
                    UInt16(bigEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self)),
                    UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                    UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
                )
            }
            guard let (port, high, low) = value else { return nil }
            self.init(ipv6High: high, low: low, port: port)
        case .unixDomainSocket:
            return nil
        }
    }
}
