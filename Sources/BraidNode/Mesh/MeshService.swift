import BraidCluster
import BraidMesh
import BraidSFU
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Why the mesh could not start.
public enum MeshServiceError: Error, Sendable, CustomStringConvertible {
    /// The cluster store (etcd) could not be reached to join.
    case clusterUnreachable(String)
    /// The cluster secret file could not be read, or the secret is too short.
    case badSecret(String)
    /// The link emulation file could not be read or parsed.
    case badLinkEmulation(String)
    /// The media service stopped before the mesh could attach to it.
    case mediaNotRunning

    public var description: String {
        switch self {
        case .clusterUnreachable(let reason): "cannot join the cluster: \(reason)"
        case .badSecret(let reason): "cluster secret: \(reason)"
        case .badLinkEmulation(let reason): "link emulation: \(reason)"
        case .mediaNotRunning: "the media service is not running"
        }
    }
}

/// The node as a member of a cluster: joins the cluster store (etcd, or an in-memory store in tests),
/// binds the relay socket on media shard 0's event loop, runs the ``MeshForwarder`` there, and keeps the
/// store informed (this node's tracks, links and load) while feeding it the store's changes.
///
/// If the store cannot be reached at start, ``run()`` throws and the node does not start. If it is lost
/// later, media keeps flowing on the routes already known; the dashboard shows the store as degraded
/// until it is back.
public final class MeshService: Service, Sendable {
    /// How often this node's tracks are compared with what the directory holds.
    static let directoryInterval = TimeAmount.milliseconds(200)
    /// How often measured links and load are written to the store.
    static let linkReportInterval = TimeAmount.seconds(1)
    static let tickInterval = TimeAmount.milliseconds(10)

    public let node: NodeID
    let configuration: NodeConfiguration
    /// The cluster state this node joined (its lease, for tests that end it).
    public let store: any ClusterStore
    let media: MediaService
    let logger: Logger
    private let httpURL: @Sendable () -> String
    let state = NIOLockedValueBox(State())

    struct State {
        var forwarder: NIOLoopBound<MeshForwarder>?
        var channel: (any Channel)?
        var boundAddress: SocketAddress?
        var waiters: [CheckedContinuation<SocketAddress, any Error>] = []
        /// The mesh's edge functions, from the store (see MeshFunctions.swift).
        var functions: [FunctionKey: FunctionRecord] = [:]
        /// Functions a request is starting on this node right now: reconciliation leaves them alone.
        var startingFunctions: Set<String> = []
        /// Why a function assigned to this node could not start, by id (logged once, retried).
        var functionFailures: [String: String] = [:]
        /// Functions of lost nodes the leader found no node for (logged once each; tried again).
        var unplaceableFunctions: Set<String> = []
    }

    init(
        configuration: NodeConfiguration, media: MediaService, store: any ClusterStore, logger: Logger,
        httpURL: @escaping @Sendable () -> String
    ) {
        self.configuration = configuration
        self.node = NodeID(name: configuration.nodeID)
        self.media = media
        self.store = store
        self.logger = logger
        self.httpURL = httpURL
    }

    /// The relay socket's bound address, once bound.
    public func waitUntilBound() async throws -> SocketAddress {
        try await withCheckedThrowingContinuation { continuation in
            let address: SocketAddress? = self.state.withLockedValue { state in
                if let address = state.boundAddress { return address }
                state.waiters.append(continuation)
                return nil
            }
            if let address { continuation.resume(returning: address) }
        }
    }

    public func run() async throws {
        do {
            try await self.runMesh()
        } catch {
            // The store's HTTP client must be shut down before it is released, on every path.
            await self.store.shutdown()
            let waiters = self.state.withLockedValue { state in
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(throwing: error) }
            throw error
        }
    }

    private func runMesh() async throws {
        let secret = try Self.loadSecret(self.configuration.cluster)
        let emulation = try Self.loadEmulation(self.configuration.cluster.linkEmulation)
        _ = try await self.media.waitUntilBound()
        guard let shard = self.media.sessions.primaryShard() else { throw MeshServiceError.mediaNotRunning }
        let loop = shard.eventLoop
        let cluster = self.configuration.cluster
        let bindAddress = cluster.meshAddress ?? self.configuration.media.address
        let epoch = UInt64(Date().timeIntervalSince1970 * 1000)
        let node = self.node
        let linkConfiguration = {
            var configuration = MeshLink.Configuration()
            if !cluster.linkFEC { configuration.repairMargin = 0 }
            return configuration
        }()

        let channel = try await DatagramBootstrap(group: loop)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(.datagramVectorReadMessageCount, value: 32)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 32 * 2048))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let store = shard.store.value
                    let forwarder = MeshForwarder(
                        node: node, router: store.forwarding, secret: Array(secret.utf8), epoch: epoch,
                        channel: channel, emulation: emulation, linkConfiguration: linkConfiguration,
                        flushMedia: { store.flush() })
                    try channel.pipeline.syncOperations.addHandler(MeshChannelHandler(forwarder: forwarder))
                }
            }
            .bind(host: bindAddress, port: cluster.meshPort).get()
        let forwarder = try await loop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: MeshChannelHandler.self).forwarder, eventLoop: loop)
        }.get()
        guard let bound = channel.localAddress, let port = bound.port else { throw MeshServiceError.mediaNotRunning }
        let waiters = self.state.withLockedValue { state in
            state.forwarder = forwarder
            state.channel = channel
            state.boundAddress = bound
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: bound) }

        let advertised = cluster.meshAdvertisedAddress ?? self.configuration.media.advertisedAddresses.first ?? bindAddress
        let meshAddress = advertised.contains(":") ? "[\(advertised)]:\(port)" : "\(advertised):\(port)"
        // With an ephemeral HTTP port (0: tests) the URL is known only once the HTTP server, which starts
        // beside this service, has bound: wait for it (briefly) rather than announce port 0, which other nodes
        // would redirect clients to.
        var httpURL = cluster.httpURL ?? self.httpURL()
        for _ in 0..<250 where cluster.httpURL == nil && httpURL.hasSuffix(":0") && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
            httpURL = self.httpURL()
        }
        // Repairs are understood whether or not this node sends them (cluster.link_fec).
        let record = NodeRecord(
            id: node.rawValue, name: self.configuration.nodeID, region: cluster.region,
            httpURL: httpURL, meshAddress: meshAddress, linkFeatures: [NodeRecord.LinkFeature.repairs])
        do {
            try await self.store.join(node: record)
        } catch {
            channel.close(promise: nil)
            throw MeshServiceError.clusterUnreachable("\(error)")
        }
        self.logger.info(
            "joined the cluster",
            metadata: ["mesh": "\(meshAddress)", "region": "\(cluster.region)", "etcd": "\(cluster.etcd.joined(separator: ","))"])
        try? await self.store.campaign()

        let (snapshot, events) = try await self.store.subscribe()
        try await loop.submit { forwarder.value.apply(snapshot, now: .now()) }.get()
        self.state.withLockedValue { $0.functions = snapshot.functions }
        let tick = loop.scheduleRepeatedTask(initialDelay: Self.tickInterval, delay: Self.tickInterval) { _ in
            forwarder.value.tick(now: .now())
        }

        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await event in events {
                        loop.execute { forwarder.value.apply(event, now: .now()) }
                        self.observeFunctions(event)
                    }
                }
                group.addTask { await self.reportLoop(forwarder: forwarder, loop: loop) }
                group.addTask { await self.functionLoop(forwarder: forwarder, loop: loop) }
                group.addTask {
                    // Ends the group when the relay socket closes (shutdown, or an error).
                    try? await channel.closeFuture.get()
                }
                await group.next()
                // The close waiter cannot see cancellation (an EventLoopFuture): closing the socket ends it,
                // so a cancelled run (no graceful phase) ends too.
                channel.close(promise: nil)
                group.cancelAll()
            }
        } onGracefulShutdown: {
            channel.close(promise: nil)
        }
        tick.cancel()
        channel.close(promise: nil)
        // Every key of this node goes at once (its tracks, links and record): the others reroute now
        // rather than when the lease runs out.
        try? await self.store.leave()
        await self.store.shutdown()
        self.logger.info("left the cluster")
    }

    /// Keeps the store in step with this node: its tracks (every 200 ms), its links and load (every s).
    private func reportLoop(forwarder: NIOLoopBound<MeshForwarder>, loop: any EventLoop) async {
        var published: [TrackKey: TrackRecord] = [:]
        var lastLinks: ContinuousClock.Instant?
        let cpuSampler = ProcessStatsSampler()
        while !Task.isCancelled {
            if let tracks = try? await loop.submit({ forwarder.value.ownTracks() }).get() {
                let current = Dictionary(tracks.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
                for (key, record) in current where published[key] != record {
                    do {
                        try await self.store.publishTrack(record)
                        published[key] = record
                    } catch {
                        break
                    }
                }
                for key in published.keys where current[key] == nil {
                    do {
                        try await self.store.withdrawTrack(room: key.room, id: key.id)
                        published[key] = nil
                    } catch {
                        break
                    }
                }
            }
            if lastLinks.map({ ContinuousClock.now - $0 >= .seconds(1) }) ?? true {
                lastLinks = ContinuousClock.now
                if let links = try? await loop.submit({ forwarder.value.linkRecords() }).get() {
                    try? await self.store.publishLinks(links)
                }
                let sessions = await self.media.sessions.snapshot().sessions
                // Subscribers per room: function placement runs a room's functions near its listeners.
                var subscribers: [String: Int] = [:]
                for session in sessions where session.direction == .subscribe { subscribers[session.room, default: 0] += 1 }
                // The process's CPU over the last second, as a share of every core: routes and function
                // placement weigh it against the session count (whichever is higher).
                let cpu = (try? cpuSampler.sample()).map { $0.cpuPercent / 100 / Double(System.coreCount) } ?? 0
                try? await self.store.updateNode(
                    load: NodeLoad(sessions: sessions.count, cpu: min(1, cpu), subscribers: subscribers), draining: nil)
            }
            try? await Task.sleep(for: .milliseconds(Self.directoryInterval.nanoseconds / 1_000_000))
        }
    }

    /// Marks this node draining in the cluster: placement stops choosing it for new clients and routes
    /// avoid it where another path exists. It stays a member, forwarding, until it leaves.
    public func markDraining() async {
        do {
            try await self.store.updateNode(load: nil, draining: true)
        } catch {
            self.logger.warning("could not mark the node draining in the cluster", metadata: ["error": "\(error)"])
        }
    }

    /// What the mesh looks like from here, for the dashboard (nil before the relay socket is bound).
    public func status() async -> MeshStatus? {
        guard let forwarder = self.state.withLockedValue({ $0.forwarder }) else { return nil }
        let health = await self.store.health
        let isLeader = await self.store.isLeader
        guard var status = try? await forwarder.eventLoop.submit({ forwarder.value.status(now: .now()) }).get() else {
            return nil
        }
        status.store = health.isHealthy ? "healthy" : "degraded: \(Self.reason(health))"
        status.isLeader = isLeader
        return status
    }

    /// Where a client at `region` (or at `latitude`/`longitude`) should connect: the node's name and HTTP
    /// URL (nil before the mesh runs or when no node is known).
    public func placement(region: String?, latitude: Double?, longitude: Double?) async -> MeshStatus.Node? {
        guard let forwarder = self.state.withLockedValue({ $0.forwarder }) else { return nil }
        let record = try? await forwarder.eventLoop.submit {
            forwarder.value.placement(region: region, latitude: latitude, longitude: longitude)
        }.get()
        guard let record = record ?? nil else { return nil }
        return MeshStatus.Node(
            id: NodeID(rawValue: record.id).description, name: record.name, region: record.region,
            meshAddress: record.meshAddress, httpURL: record.httpURL, sessions: record.load.sessions,
            draining: record.draining)
    }

    private static func reason(_ health: ClusterHealth) -> String {
        if case .degraded(let reason) = health { return reason }
        return ""
    }

    static func loadSecret(_ cluster: NodeConfiguration.Cluster) throws -> String {
        if let secret = cluster.secret { return secret }
        guard let path = cluster.secretFile else { throw MeshServiceError.badSecret("none configured") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MeshServiceError.badSecret("cannot read \(path)")
        }
        let secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard secret.utf8.count >= 16 else { throw MeshServiceError.badSecret("\(path) holds fewer than 16 characters") }
        return secret
    }

    static func loadEmulation(_ path: String?) throws -> [String: LinkProfile] {
        guard let path else { return [:] }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MeshServiceError.badLinkEmulation("cannot read \(path)")
        }
        do {
            return try JSONDecoder().decode([String: LinkProfile].self, from: data)
        } catch {
            throw MeshServiceError.badLinkEmulation("\(path): \(error)")
        }
    }
}

/// Reads the relay socket into the forwarder; sends what a read batch produced once it ends.
final class MeshChannelHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let forwarder: MeshForwarder

    init(forwarder: MeshForwarder) {
        self.forwarder = forwarder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        self.forwarder.receive(envelope.data, from: envelope.remoteAddress, now: .now())
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        self.forwarder.flush(now: .now())
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable from a peer that went away, and the like: the link's liveness handles it.
    }
}
