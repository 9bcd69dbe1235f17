import BraidSFU
import BraidSecurity
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

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
/// Reads use `recvmmsg` (``NodeConfiguration/Media/receiveBatchSize`` datagrams per call) into a fixed
/// receive buffer of one slot per datagram: 2 KiB per slot, or 64 KiB with GRO because a coalesced read
/// can carry up to 64 KiB. Every datagram goes through a ``MediaChannelHandler``.
public final class MediaService: Service, Sendable {
    /// The largest UDP payload a slot holds without GRO. Media datagrams stay under the path MTU (~1200 B);
    /// anything larger than this is truncated by the kernel and then dropped by the parsers.
    public static let slotSize = 2048
    /// The slot size with GRO: the kernel coalesces up to 64 KiB per read.
    public static let groSlotSize = 65536

    /// The socket receive buffer requested (SO_RCVBUF); the kernel grants at most `net.core.rmem_max`.
    public static let receiveBufferBytes = 4 << 20

    /// The settings the socket was created with.
    public let configuration: NodeConfiguration.Media
    /// Offloads in use.
    public let offload: MediaOffloadStatus
    /// The WebRTC sessions behind this socket (its ``WebRTCRouter`` routes into them).
    public let sessions: WebRTCSessions

    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger
    private let state = NIOLockedValueBox(State())

    private struct State {
        enum Phase {
            case idle
            case bound(any Channel, SocketAddress)
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
    public init(
        configuration: NodeConfiguration.Media, eventLoopGroup: any EventLoopGroup, logger: Logger,
        node: NodeID = .local
    ) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
        self.sessions = WebRTCSessions(advertisedAddresses: configuration.advertisedAddresses, node: node)
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
        let (channel, final): ((any Channel)?, MediaTrafficSnapshot) = self.state.withLockedValue { state in
            if case .bound(let channel, _) = state.phase { return (channel, state.finalSnapshot) }
            return (nil, state.finalSnapshot)
        }
        guard let channel else { return final }
        let live = try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: MediaChannelHandler<WebRTCRouter>.self).snapshot
        }.get()
        // The channel closed between the two reads: its handler published the final counters.
        return live ?? self.state.withLockedValue { $0.finalSnapshot }
    }

    public func run() async throws {
        let slot = self.offload.receiveOffload ? Self.groSlotSize : Self.slotSize
        let batch = self.configuration.receiveBatchSize
        var bootstrap = DatagramBootstrap(group: self.eventLoopGroup)
            .channelOption(.datagramVectorReadMessageCount, value: batch)
            // A deep kernel queue absorbs bursts while the loop is busy; Linux caps it at net.core.rmem_max.
            .channelOption(.socketOption(.so_rcvbuf), value: Self.receiveBufferBytes)
            // NIO splits one receive buffer across the batch; the default allocator would truncate.
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: batch * slot))
        if self.offload.receiveOffload {
            bootstrap = bootstrap
                .channelOption(.datagramReceiveOffload, value: true)
                .channelOption(.datagramReceiveSegmentSize, value: true)
        }
        // The node's one DTLS certificate (RFC 8827 §6.5: a fresh key per start is fine, its fingerprint
        // travels in every answer).
        let certificate: DTLSCertificate
        do {
            certificate = try DTLSCertificate(commonName: "braid-node")
        } catch {
            self.finish(error: error)
            throw error
        }
        let state = self.state
        let sessions = self.sessions
        bootstrap = bootstrap.channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                let store = sessions.attach(channel: channel, certificate: certificate)
                let handler = MediaChannelHandler(router: WebRTCRouter(store: store)) { final in
                    state.withLockedValue { $0.finalSnapshot = final }
                }
                try channel.pipeline.syncOperations.addHandler(handler)
            }
        }

        let channel: any Channel
        let address: SocketAddress
        do {
            channel = try await bootstrap.bind(host: self.configuration.address, port: self.configuration.port).get()
            guard let local = channel.localAddress else { throw ChannelError.inappropriateOperationForState }
            address = local
        } catch {
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
        let waiters = self.state.withLockedValue { state in
            state.phase = .bound(channel, address)
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        self.sessions.mediaBound(port: address.port)
        for waiter in waiters { waiter.resume(returning: address) }
        self.logger.info(
            "media socket listening",
            metadata: [
                "address": "\(address)", "receive_batch_size": "\(batch)",
                "gro": "\(self.offload.receiveOffload)", "gso": "\(self.offload.segmentationOffload)",
            ]
        )

        try await withTaskCancellationOrGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
        self.finish(error: nil)
        self.logger.info("media socket closed", metadata: ["address": "\(address)"])
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
