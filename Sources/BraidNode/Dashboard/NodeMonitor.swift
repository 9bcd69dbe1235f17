import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Assembles ``NodeStatus`` from the node's parts; the single source the HTTP routes read.
///
/// It holds references only: the counters stay with the media socket, process figures are sampled from
/// procfs on request. Rooms, sessions and mesh links will report here too.
public final class NodeMonitor: Sendable {
    /// The effective configuration.
    public let configuration: NodeConfiguration
    /// The media socket.
    public let media: MediaService
    /// The Prometheus metrics.
    public let metrics: NodeMetrics
    /// The node's part in a cluster, if it is in one.
    public let mesh: MeshService?

    private let startedAt: Date
    private let startInstant: ContinuousClock.Instant
    private let sampler = ProcessStatsSampler()
    private let httpAddress = NIOLockedValueBox<SocketAddress?>(nil)
    private let operatorAddress = NIOLockedValueBox<SocketAddress?>(nil)
    /// The HTTP listeners' connection cap, idle timeout and read deadline, with their counters.
    public let httpGuard: HTTPGuard
    private let logger: Logger

    init(
        configuration: NodeConfiguration, media: MediaService, metrics: NodeMetrics, logger: Logger,
        mesh: MeshService? = nil
    ) {
        self.mesh = mesh
        self.httpGuard = HTTPGuard(limits: configuration.limits)
        self.configuration = configuration
        self.media = media
        self.metrics = metrics
        self.logger = logger
        self.startedAt = Date()
        self.startInstant = ContinuousClock.now
    }

    /// Records the HTTP server's bound address (called when the server starts listening).
    func httpServerBound(_ address: SocketAddress?) {
        self.httpAddress.withLockedValue { $0 = address }
    }

    /// Records the operator listener's bound address.
    func operatorServerBound(_ address: SocketAddress?) {
        self.operatorAddress.withLockedValue { $0 = address }
    }

    /// The operator listener's bound address, or `nil` when it is not listening.
    public var boundOperatorAddress: SocketAddress? {
        self.operatorAddress.withLockedValue { $0 }
    }

    /// The HTTP server's bound address, or `nil` when it is not listening.
    public var boundHTTPAddress: SocketAddress? {
        self.httpAddress.withLockedValue { $0 }
    }

    /// How long the public dashboard reuses one status: anyone may ask for it, and each build visits every
    /// media event loop, so a flood of requests costs the loops at most one visit per interval.
    public static let publicStatusMaximumAge: Duration = .seconds(1)

    private let publicCache = NIOLockedValueBox<(built: ContinuousClock.Instant, task: Task<NodeStatus, Never>)?>(nil)

    /// The public view of the status (``NodeStatus/publicView()``), built at most once per
    /// ``publicStatusMaximumAge``; concurrent callers share one build. Operators get ``status()``, always fresh.
    public func publicStatus() async -> NodeStatus {
        let now = ContinuousClock.now
        let task = self.publicCache.withLockedValue { cache -> Task<NodeStatus, Never> in
            if let cache, now - cache.built < Self.publicStatusMaximumAge { return cache.task }
            let task = Task { await self.status().status.publicView() }
            cache = (now, task)
            return task
        }
        return await task.value
    }

    /// The status right now, with the traffic snapshot it was built from (for metrics).
    public func status() async -> (status: NodeStatus, traffic: MediaTrafficSnapshot) {
        let traffic = await self.media.snapshot()
        let usage: ProcessUsage
        do {
            usage = try self.sampler.sample()
        } catch {
            // procfs is always there on Linux; if it is not, show zeros rather than fail the page.
            self.logger.warning("process statistics unavailable", metadata: ["error": "\(error)"])
            usage = ProcessUsage(cpuSecondsTotal: 0, cpuPercent: 0, residentMemoryBytes: 0)
        }
        let elapsed = ContinuousClock.now - self.startInstant
        let uptime = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18

        let http = Self.listener(
            bound: self.boundHTTPAddress,
            address: self.configuration.http.address,
            port: self.configuration.http.port
        )
        let mediaListener = Self.listener(
            bound: self.media.localAddress,
            address: self.configuration.media.address,
            port: self.configuration.media.port
        )
        let webRTC = await self.media.sessions.snapshot()
        var status = NodeStatus(
            nodeID: self.configuration.nodeID,
            version: BraidNodeVersion.string,
            startedAt: self.startedAt.ISO8601Format(),
            uptimeSeconds: uptime,
            process: NodeStatus.ProcessSection(
                cpuPercent: usage.cpuPercent,
                cpuSecondsTotal: usage.cpuSecondsTotal,
                residentMemoryBytes: usage.residentMemoryBytes,
                eventLoopThreads: self.configuration.eventLoopThreads
            ),
            http: http,
            media: NodeStatus.MediaSection(
                listener: mediaListener,
                configuration: self.configuration.media,
                offload: self.media.offload,
                traffic: traffic
            )
        )
        status.sessions = NodeStatus.SessionsSection(list: webRTC.sessions)
        status.forwarding = NodeStatus.ForwardingSection(
            rooms: webRTC.rooms, sent: webRTC.sent, eventLoops: webRTC.eventLoops)
        status.rooms = webRTC.rooms
        status.limits = NodeStatus.LimitsSection(
            configured: self.configuration.limits, counters: webRTC.limits, http: self.httpGuard.snapshot)
        status.draining = self.media.drain.status
        return (status, traffic)
    }

    /// The Prometheus exposition, brought up to date first.
    public func metricsExposition() async -> [UInt8] {
        let (status, traffic) = await self.status()
        self.metrics.publish(status: status, traffic: traffic)
        if let mesh = await self.mesh?.status() { self.metrics.publish(mesh: mesh) }
        return self.metrics.exposition()
    }

    private static func listener(bound: SocketAddress?, address: String, port: Int) -> NodeStatus.Listener {
        if let bound, let ip = bound.ipAddress, let boundPort = bound.port {
            return NodeStatus.Listener(address: ip, port: boundPort, bound: true)
        }
        return NodeStatus.Listener(address: address, port: port, bound: false)
    }
}
