import BraidSFU
import BraidSecurity
import CBraidShims
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// Which UDP offloads the media socket uses.
public struct MediaOffloadStatus: Sendable, Equatable {
    /// GRO is on for the receive path: configured on and supported by the kernel.
    public var receiveOffload: Bool
    /// GSO is usable for the (future) send path: configured on and supported by the kernel.
    public var segmentationOffload: Bool

    public init(receiveOffload: Bool, segmentationOffload: Bool) {
        self.receiveOffload = receiveOffload
        self.segmentationOffload = segmentationOffload
    }
}

/// Errors of the media service's lifecycle.
public enum MediaServiceError: Error, Sendable, Equatable {
    /// The service stopped (or failed to bind) before it was bound.
    case notRunning
}

/// The node's UDP media socket as a `Service`: binds on `run()`, closes on graceful shutdown or cancellation.
///
/// Reads use `recvmmsg` (``readsPerCall(configured:receiveOffload:)`` reads per call) into a fixed
/// receive buffer of one slot per read: 2 KiB per slot, or 64 KiB with GRO because a coalesced read
/// can carry up to 64 KiB. Every datagram goes through a ``MediaChannelHandler``.
public final class MediaService: Service, Sendable {
    /// The largest UDP payload a slot holds without GRO. Media datagrams stay under the path MTU (~1200 B);
    /// anything larger than this is truncated by the kernel and then dropped by the parsers.
    public static let slotSize = 2048
    /// The slot size with GRO: the kernel coalesces up to 64 KiB per read.
    public static let groSlotSize = 65536
    /// The receive buffer's size with GRO, which caps the reads per call: 8 slots of 64 KiB, each able to
    /// carry dozens of one flow's datagrams. 32 slots (2 MiB) cost no less CPU per packet on a webinar,
    /// and NIO's receive pool keeps up to four buffers per socket (one per read of a wake-up whose
    /// slices are still held) for as long as the socket is open (Benchmarks/README.md, "Memory after the
    /// sessions close").
    public static let groReceiveBufferBytes = 8 * groSlotSize

    /// Reads per `recvmmsg` call: the configured ``NodeConfiguration/Media/receiveBatchSize``, at most
    /// ``groReceiveBufferBytes`` / ``groSlotSize`` with GRO.
    public static func readsPerCall(configured: Int, receiveOffload: Bool) -> Int {
        receiveOffload ? max(1, min(configured, Self.groReceiveBufferBytes / Self.groSlotSize)) : configured
    }

    /// This socket's reads per `recvmmsg` call.
    private var readsPerCall: Int {
        Self.readsPerCall(configured: self.configuration.receiveBatchSize, receiveOffload: self.offload.receiveOffload)
    }

    /// The socket receive buffer requested (SO_RCVBUF); the kernel grants at most `net.core.rmem_max`.
    public static let receiveBufferBytes = 4 << 20
    /// The socket send buffer requested (SO_SNDBUF); the kernel grants at most `net.core.wmem_max`.
    public static let sendBufferBytes = 4 << 20
    /// Pending outbound bytes above which the socket counts as not writable (and below which it is again).
    public static let writeBufferWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 2 << 20, high: 8 << 20)

    /// The settings the socket was created with.
    public let configuration: NodeConfiguration.Media
    /// Offloads in use.
    public let offload: MediaOffloadStatus
    /// The WebRTC sessions behind this socket (its ``WebRTCRouter`` routes into them).
    public let sessions: WebRTCSessions
    /// Sockets bound on the media port, one per event loop.
    public let shards: Int
    /// The node's graceful drain (refuses new sessions, says goodbye to every peer; see ``NodeDrain``).
    public let drain: NodeDrain
    /// The certificate given at creation (from the state directory); nil: a new one at every start.
    private let persistentCertificate: DTLSCertificate?

    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        enum Phase {
            case idle
            /// One channel per shard (event loop), all on the same address and port.
            case bound([any Channel], SocketAddress)
            case stopped
        }
        var phase = Phase.idle
        var waiters: [CheckedContinuation<SocketAddress, any Error>] = []
        /// The counters at close, served once the channel is gone.
        var finalSnapshot = MediaTrafficSnapshot()
    }

    /// - Parameters:
    ///   - configuration: bind address, port, batch size and offload switch.
    ///   - eventLoopGroup: the group the socket's event loop comes from.
    ///   - logger: lifecycle logging (bind, close); nothing is logged per datagram.
    ///   - node: the node's id in the network: the origin of every track published here.
    ///   - shards: how many sockets to bind on the same port (SO_REUSEPORT), each on its own event loop of
    ///     the group with its own sessions and forwarding state: every core forwards. 1 binds one socket.
    ///   - certificate: the DTLS certificate to use (``NodeCertificateStore`` loads it from the state
    ///     directory); nil: a fresh one is generated when the service runs.
    ///   - drain: the node's drain; by default one with the default timeout.
    ///   - limits: the limits against exhaustion the sessions enforce (``NodeConfiguration/limits``).
    public init(
        configuration: NodeConfiguration.Media, eventLoopGroup: any EventLoopGroup, logger: Logger,
        node: NodeID = .local, shards: Int = 1, certificate: DTLSCertificate? = nil,
        drain: NodeDrain = NodeDrain(timeoutSeconds: NodeDrain.defaultTimeoutSeconds),
        limits: NodeConfiguration.Limits = .defaults
    ) {
        self.persistentCertificate = certificate
        self.drain = drain
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.shards = max(1, shards)
        self.sessions = WebRTCSessions(
            advertisedAddresses: configuration.advertisedAddresses, node: node, shards: max(1, shards),
            limits: limits)
        self.offload = MediaOffloadStatus(
            receiveOffload: configuration.offload && System.supportsUDPReceiveOffload,
            segmentationOffload: configuration.offload && System.supportsUDPSegmentationOffload
        )
    }

    /// The bound local address, or `nil` before binding and after closing.
    public var localAddress: SocketAddress? {
        self.state.withLockedValue { state in
            if case .bound(_, let address) = state.phase { return address }
            return nil
        }
    }

    /// Waits until `run()` has bound the socket and returns the bound address (the real port when 0 was
    /// configured). Throws ``MediaServiceError/notRunning`` if the service stopped or failed first.
    public func waitUntilBound() async throws -> SocketAddress {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<SocketAddress, any Error>? = self.state.withLockedValue { state in
                switch state.phase {
                case .bound(_, let address): return .success(address)
                case .stopped: return .failure(MediaServiceError.notRunning)
                case .idle:
                    state.waiters.append(continuation)
                    return nil
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// The counters as of now: read on the socket's event loop, so they are exact and consistent.
    /// Before binding they are zero; after closing they are the counts at close.
    public func snapshot() async -> MediaTrafficSnapshot {
        let channels: [any Channel] = self.state.withLockedValue { state in
            if case .bound(let channels, _) = state.phase { return channels }
            return []
        }
        guard !channels.isEmpty else { return self.state.withLockedValue { $0.finalSnapshot } }
        var total = MediaTrafficSnapshot()
        for channel in channels {
            let live = try? await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.handler(type: MediaChannelHandler<WebRTCRouter>.self).snapshot
            }.get()
            // A channel that closed between the two reads published its final counters.
            guard let live else { return self.state.withLockedValue { $0.finalSnapshot } }
            total = total + live
        }
        return total
    }

    public func run() async throws {
        // The node's one DTLS certificate: the state directory's, or (RFC 8827 §6.5: a fresh key per start
        // is fine, its fingerprint travels in every answer) a new one.
        let certificate: DTLSCertificate
        do {
            certificate = try self.persistentCertificate ?? DTLSCertificate(commonName: "braid-node")
        } catch {
            self.finish(error: error)
            throw error
        }
        // One socket per shard, each on its own event loop; all but the first bind the port the first got.
        let loops = Array(self.eventLoopGroup.makeIterator())
        var channels: [any Channel] = []
        var address: SocketAddress?
        do {
            for index in 0..<self.shards {
                let loop = loops.isEmpty ? self.eventLoopGroup.next() : loops[index % loops.count]
                let port = address?.port ?? self.configuration.port
                // The socket is made here, not by NIO, so that the send batch knows its descriptor.
                let socket = try Self.bindSocket(
                    host: self.configuration.address, port: port, reusePort: self.shards > 1)
                let channel: any Channel
                do {
                    channel = try await self.bootstrap(shard: index, on: loop, socket: socket, certificate: certificate)
                        .withBoundSocket(socket).get()
                } catch {
                    close(socket)
                    throw error
                }
                channels.append(channel)
                if address == nil {
                    guard let local = channel.localAddress else { throw ChannelError.inappropriateOperationForState }
                    address = local
                }
            }
        } catch {
            for channel in channels { channel.close(promise: nil) }
            self.finish(error: error)
            self.logger.error(
                "media socket failed to bind",
                metadata: [
                    "address": "\(self.configuration.address)", "port": "\(self.configuration.port)",
                    "error": "\(error)",
                ]
            )
            throw error
        }
        guard let address else { throw MediaServiceError.notRunning }
        let waiters = self.state.withLockedValue { state in
            state.phase = .bound(channels, address)
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        self.sessions.mediaBound(port: address.port)
        for waiter in waiters { waiter.resume(returning: address) }
        self.logger.info(
            "media socket listening",
            metadata: [
                "address": "\(address)", "reads_per_call": "\(self.readsPerCall)",
                "gro": "\(self.offload.receiveOffload)", "gso": "\(self.offload.segmentationOffload)",
                "event_loops": "\(self.shards)",
            ]
        )

        let bound = channels
        try await withTaskCancellationOrGracefulShutdownHandler {
            for channel in bound { try await channel.closeFuture.get() }
        } onCancelOrGracefulShutdown: {
            for channel in bound { channel.close(promise: nil) }
        }
        self.finish(error: nil)
        self.logger.info("media socket closed", metadata: ["address": "\(address)"])
    }

    /// The bootstrap of shard `index`'s socket: batched reads (GRO when on), a deep receive buffer and,
    /// with several shards, SO_REUSEPORT so that every shard binds the same port and the kernel spreads
    /// the clients' flows over them.
    private func bootstrap(
        shard index: Int, on loop: any EventLoop, socket: CInt, certificate: DTLSCertificate
    ) -> DatagramBootstrap {
        let slot = self.offload.receiveOffload ? Self.groSlotSize : Self.slotSize
        let batch = self.readsPerCall
        var bootstrap = DatagramBootstrap(group: loop)
            .channelOption(.datagramVectorReadMessageCount, value: batch)
            // A deep kernel queue absorbs bursts while the loop is busy; Linux caps it at net.core.rmem_max.
            .channelOption(.socketOption(.so_rcvbuf), value: Self.receiveBufferBytes)
            // NIO splits one receive buffer across the batch; the default allocator would truncate.
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: batch * slot))
            // Writability is the forwarding core's back-pressure signal (a subscriber drops and counts
            // while the socket is not writable). NIO's default high mark (64 KiB) would trip on one
            // keyframe fanned out to fifty subscribers; this one trips only when the kernel stops taking.
            .channelOption(.writeBufferWaterMark, value: Self.writeBufferWaterMark)
            // Media leaves through the send batch straight into the kernel's queue: let it absorb a
            // keyframe fanned out to every subscriber (Linux caps it at net.core.wmem_max).
            .channelOption(.socketOption(.so_sndbuf), value: Self.sendBufferBytes)
        if self.offload.receiveOffload {
            bootstrap = bootstrap
                .channelOption(.datagramReceiveOffload, value: true)
                .channelOption(.datagramReceiveSegmentSize, value: true)
        }
        let state = self.state
        let sessions = self.sessions
        return bootstrap.channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let store = sessions.attach(channel: channel, socket: socket, certificate: certificate, shard: index)
                let handler = MediaChannelHandler(router: WebRTCRouter(store: store)) { final in
                    state.withLockedValue { $0.finalSnapshot = $0.finalSnapshot + final }
                }
                try channel.pipeline.syncOperations.addHandler(handler)
            }
        }
    }

    /// A non-blocking UDP socket bound to `host:port` (SO_REUSEPORT first when several shards share the
    /// port), for `DatagramBootstrap.withBoundSocket`.
    static func bindSocket(host: String, port: Int, reusePort: Bool) throws -> CInt {
        let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let domain = address.protocol.rawValue
        let socket = Glibc.socket(domain, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        var one: CInt = 1
        if reusePort, setsockopt(socket, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<CInt>.size)) != 0 {
            let code = errno
            close(socket)
            throw IOError(errnoCode: code, reason: "setsockopt(SO_REUSEPORT)")
        }
        if address.protocol == .inet {
            let result = braid_udp_set_dont_fragment(socket)
            if result != 0 {
                close(socket)
                throw IOError(errnoCode: -result, reason: "setsockopt(IP_MTU_DISCOVER)")
            }
        }
        let bound = address.withSockAddr { pointer, length in bind(socket, pointer, socklen_t(length)) }
        guard bound == 0 else {
            let code = errno
            close(socket)
            throw IOError(errnoCode: code, reason: "bind(\(address))")
        }
        return socket
    }

    private func finish(error: (any Error)?) {
        let waiters = self.state.withLockedValue { state in
            state.phase = .stopped
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: error ?? MediaServiceError.notRunning) }
    }
}
