import CBraidShims
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// UDP sockets that many simulated peers share, so that one process can run thousands of peers on a few
/// sockets per event loop.
///
/// A WebRTC node tells its sessions apart by their 5-tuple, so every peer still needs an address of its
/// own. On Linux the whole loopback network 127.0.0.0/8 is local (every address of it reaches this host),
/// so each peer gets its own loopback address on a shared socket: the socket is bound to the wildcard
/// address, sends each datagram *from* its peer's address and tells received datagrams apart by the
/// address they were sent *to* — both through the `IP_PKTINFO` control message (ip(7)). A socket then
/// reads the datagrams of hundreds of peers in one `recvmmsg(2)` batch instead of one wake-up per peer.
///
/// Peers get addresses from 127.64.0.1 on (the block 127.64.0.0/10, about four million addresses), each
/// used once per pool. Only a node reachable over loopback can be tested this way; a peer of a pool
/// offers its own loopback address as its host candidate.
public final class PeerSocketPool: Sendable {
    /// The first address handed out, and how many there are (127.64.0.0/10 without its first address).
    static let firstAddress: UInt32 = 0x7F40_0001
    static let addressCount: UInt32 = (1 << 22) - 2

    private let sockets: [SharedPeerSocket]
    private let state = NIOLockedValueBox(State())

    private struct State {
        var nextAddress: UInt32 = 0
        var nextSocket: [ObjectIdentifier: Int] = [:]
    }

    private init(sockets: [SharedPeerSocket]) {
        self.sockets = sockets
    }

    /// Opens `socketsPerLoop` sockets on each event loop of `loops`.
    /// - Throws: ``BraidClientError/connectionFailed(_:)`` when a socket cannot be made or bound.
    public static func make(loops: [any EventLoop], socketsPerLoop: Int) async throws(BraidClientError) -> PeerSocketPool {
        guard socketsPerLoop >= 1, !loops.isEmpty else {
            throw .badArgument("a socket pool needs at least one event loop and one socket per loop")
        }
        var sockets: [SharedPeerSocket] = []
        do {
            for loop in loops {
                for _ in 0..<socketsPerLoop { sockets.append(try await SharedPeerSocket.open(on: loop)) }
            }
        } catch {
            for socket in sockets { try? await socket.close() }
            throw error
        }
        return PeerSocketPool(sockets: sockets)
    }

    /// How many sockets the pool has.
    public var socketCount: Int { self.sockets.count }

    /// A socket of `loop` (round-robin among that loop's sockets) and a fresh local address for one peer.
    func lease(on loop: any EventLoop) throws(BraidClientError) -> (socket: SharedPeerSocket, address: UInt32) {
        let mine = self.sockets.filter { $0.eventLoop === loop }
        guard !mine.isEmpty else { throw .badArgument("the socket pool has no socket on this event loop") }
        let (index, offset) = self.state.withLockedValue { state -> (Int, UInt32) in
            let key = ObjectIdentifier(loop)
            let index = state.nextSocket[key, default: 0]
            state.nextSocket[key] = index &+ 1
            let offset = state.nextAddress
            state.nextAddress = (state.nextAddress &+ 1) % Self.addressCount
            return (index, offset)
        }
        return (mine[index % mine.count], Self.firstAddress &+ offset)
    }

    /// Datagrams that arrived for an address no peer holds (a peer that has left, or stray traffic).
    public func unroutedDatagrams() async -> Int {
        var total = 0
        for socket in self.sockets {
            total += (try? await socket.eventLoop.submit { socket.unrouted }.get()) ?? 0
        }
        return total
    }

    /// Closes every socket. Peers still using them stop receiving.
    public func close() async {
        for socket in self.sockets { try? await socket.close() }
    }
}

/// One socket of a ``PeerSocketPool``: its peers by local address. Confined to its event loop.
final class SharedPeerSocket: @unchecked Sendable {
    let eventLoop: any EventLoop
    let channel: any Channel
    let port: UInt16
    /// Our own duplicate of the socket for `sendmsg` with a source address (NIO's writes cannot set one);
    /// closed with the channel, so a reused descriptor number never receives our writes.
    private let descriptor: CInt
    private var peers: [UInt32: PeerTransport] = [:]
    private var closed = false
    /// Datagrams for an address no peer holds.
    private(set) var unrouted = 0
    /// Datagrams the kernel refused (`EAGAIN` when the send queue is full, or another error).
    private(set) var sendFailures = 0

    private init(eventLoop: any EventLoop, channel: any Channel, port: UInt16, descriptor: CInt) {
        self.eventLoop = eventLoop
        self.channel = channel
        self.port = port
        self.descriptor = descriptor
    }

    /// Datagrams read per `recvmmsg(2)`.
    static let readBatch = 32
    static let slotSize = 2048

    static func open(on loop: any EventLoop) async throws(BraidClientError) -> SharedPeerSocket {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw .connectionFailed("socket(): errno \(errno)") }
        // The wildcard address: datagrams to any of the peers' loopback addresses arrive here.
        let wildcard: SocketAddress
        do {
            wildcard = try SocketAddress(ipAddress: "0.0.0.0", port: 0)
        } catch {
            Glibc.close(socket)
            throw .connectionFailed("\(error)")
        }
        // A hint for the kernel's send path, as on the node's media socket: sending works without it.
        _ = braid_udp_set_dont_fragment(socket)
        let bound = wildcard.withSockAddr { pointer, length in bind(socket, pointer, socklen_t(length)) }
        guard bound == 0 else {
            let code = errno
            Glibc.close(socket)
            throw .connectionFailed("binding a shared UDP socket: errno \(code)")
        }
        let duplicate = dup(socket)
        guard duplicate >= 0 else {
            Glibc.close(socket)
            throw .connectionFailed("dup(): errno \(errno)")
        }
        let holder = NIOLockedValueBox<SharedPeerSocket?>(nil)
        let channel: any Channel
        do {
            channel = try await DatagramBootstrap(group: loop)
                .channelOption(.receivePacketInfo, value: true)
                .channelOption(.datagramVectorReadMessageCount, value: Self.readBatch)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: Self.readBatch * Self.slotSize))
                // Hundreds of peers' media arrive here: a deep queue rides out a busy loop (capped by rmem_max).
                .channelOption(.socketOption(.so_rcvbuf), value: 8 << 20)
                .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(SharedDatagramReceiver(owner: holder))
                    }
                }
                .withBoundSocket(socket).get()
        } catch {
            Glibc.close(duplicate)
            throw .connectionFailed("registering a shared UDP socket: \(error)")
        }
        guard let port = channel.localAddress?.port, let portValue = UInt16(exactly: port) else {
            Glibc.close(duplicate)
            try? await channel.close()
            throw .connectionFailed("a shared UDP socket without a local port")
        }
        let shared = SharedPeerSocket(eventLoop: loop, channel: channel, port: portValue, descriptor: duplicate)
        holder.withLockedValue { $0 = shared }
        return shared
    }

    /// The local address `address` (host byte order) as a socket address on this socket's port.
    func socketAddress(_ address: UInt32) -> SocketAddress? {
        let text = "\(address >> 24).\((address >> 16) & 0xFF).\((address >> 8) & 0xFF).\(address & 0xFF)"
        return try? SocketAddress(ipAddress: text, port: Int(self.port))
    }

    /// The IPv4 address of `address` in host byte order (nil for IPv6).
    static func ipv4(_ address: SocketAddress) -> UInt32? {
        guard case .v4 = address else { return nil }
        // struct sockaddr_in: family (2 bytes), port (2), address (4, network byte order).
        return address.withSockAddr { pointer, _ in
            UInt32(bigEndian: UnsafeRawPointer(pointer).loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        }
    }

    /// Routes what arrives for `address` to `transport`. On the event loop.
    func attach(_ transport: PeerTransport, address: UInt32) {
        self.eventLoop.assertInEventLoop()
        self.peers[address] = transport
    }

    /// Stops routing to `address`. On the event loop.
    func detach(address: UInt32) {
        self.eventLoop.assertInEventLoop()
        self.peers[address] = nil
    }

    /// Sends `datagram` to `remote` from the local `address`. On the event loop.
    func send(_ datagram: ByteBuffer, to remote: SocketAddress, from address: UInt32) {
        guard !self.closed else { return }
        let result = datagram.withUnsafeReadableBytes { bytes in
            remote.withSockAddr { pointer, length in
                braid_sendmsg_from_ipv4(
                    self.descriptor, bytes.baseAddress, bytes.count, pointer, UInt32(length), address.bigEndian)
            }
        }
        if result < 0 { self.sendFailures += 1 }
    }

    func receive(_ envelope: AddressedEnvelope<ByteBuffer>) {
        guard let local = envelope.metadata?.packetInfo?.destinationAddress, let address = Self.ipv4(local),
            let transport = self.peers[address]
        else {
            self.unrouted += 1
            return
        }
        transport.receive(envelope.data, from: envelope.remoteAddress)
    }

    func close() async throws {
        try await self.eventLoop.submit {
            guard !self.closed else { return }
            self.closed = true
            self.peers.removeAll()
            Glibc.close(self.descriptor)
        }.get()
        try await self.channel.close()
    }
}

/// Hands each datagram of a shared socket to the socket's router.
private final class SharedDatagramReceiver: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let owner: NIOLockedValueBox<SharedPeerSocket?>
    /// Read once the socket is set up; the channel is active only after that.
    private var socket: SharedPeerSocket?

    init(owner: NIOLockedValueBox<SharedPeerSocket?>) {
        self.owner = owner
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.socket == nil { self.socket = self.owner.withLockedValue { $0 } }
        self.socket?.receive(self.unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP errors of an unconnected UDP socket (a node that went away): nothing to do here.
    }
}
