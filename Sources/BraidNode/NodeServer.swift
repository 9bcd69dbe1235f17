import BraidAccess
import BraidCluster
import BraidSFU
import BraidSecurity
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// One Braid node: the UDP media service and the HTTP dashboard, run as services of one `ServiceGroup`.
///
/// `braid-node` resolves a ``NodeConfiguration``, creates a `NodeServer` and calls ``run()``; tests do the
/// same in-process with ephemeral ports and stop it with ``makeServiceGroup(gracefulShutdownSignals:)``'s
/// `triggerGracefulShutdown()` or by cancelling the task.
public final class NodeServer: Sendable {
    /// The effective configuration.
    public let configuration: NodeConfiguration
    /// The UDP media socket service.
    public let media: MediaService
    /// The status model behind the dashboard.
    public let monitor: NodeMonitor
    /// The Prometheus metrics.
    public let metrics: NodeMetrics
    /// The node's membership of a cluster (nil: a single node).
    public let mesh: MeshService?
    /// The public HTTP application (WHIP, WHEP, demo page, public dashboard); a `Service`.
    public let application: Application<RouterResponder<NodeRequestContext>>
    /// The operator HTTP application (full dashboard, operator routes), unless `admin.port` is -1.
    public let operatorApplication: Application<RouterResponder<NodeRequestContext>>?

    private let eventLoopGroup: MultiThreadedEventLoopGroup
    private let logger: Logger

    /// Creates the node's parts; nothing is bound until ``run()``.
    ///
    /// - Parameters:
    ///   - configuration: the node's configuration, usually from
    ///     ``NodeConfiguration/resolve(flags:environment:configFile:hostName:)``.
    ///   - logger: the node's logger; its level is set from the configuration.
    ///   - whipAuthorizer: decides who may publish, play and use operator routes on the public listener.
    ///     nil: ``NodeAccess/policy(_:authority:)``: access tokens checked with `auth.token_key` when it is
    ///     set, else open (which the configuration allows only on loopback or with `insecure_open`).
    ///   - clusterStore: the cluster state to join instead of the etcd of `configuration.cluster` (tests
    ///     share an in-memory cluster between in-process nodes). With neither, the node is alone.
    /// - Throws: ``ConfigurationError`` if `configuration` does not validate.
    public init(
        configuration: NodeConfiguration,
        logger: Logger = Logger(label: "braid.node"),
        whipAuthorizer: WebRTCAuthorizer? = nil,
        clusterStore: (any ClusterStore)? = nil
    ) throws(ConfigurationError) {
        try configuration.validate()
        if let refusal = NodeAccess.startRefusal(configuration) {
            throw ConfigurationError(key: .insecureOpen, refusal)
        }
        let tokenKey = try NodeAccess.tokenKey(configuration.auth)
        let authorizer =
            whipAuthorizer ?? NodeAccess.policy(configuration, authority: tokenKey.map { TokenAuthority(key: $0) })
        var logger = logger
        logger.logLevel = Logger.Level(configuration.log.level)
        logger[metadataKey: "node_id"] = "\(configuration.nodeID)"
        self.configuration = configuration
        self.logger = logger
        let serverLogger = logger
        // With a state directory the DTLS certificate (and so the fingerprint in every answer) survives
        // restarts; an unusable file there stops the node rather than being replaced.
        var certificate: DTLSCertificate?
        if let directory = configuration.stateDirectory {
            do throws(NodeCertificateStore.Failure) {
                let loaded = try NodeCertificateStore.loadOrCreate(in: directory)
                certificate = loaded.certificate
                logger.info(
                    loaded.created ? "DTLS certificate created" : "DTLS certificate loaded",
                    metadata: [
                        "path": "\(NodeCertificateStore.path(in: directory))",
                        "fingerprint": "\(loaded.certificate.fingerprint)",
                    ])
            } catch {
                throw ConfigurationError(key: .stateDirectory, error.description)
            }
        }
        self.eventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoopThreads)
        let media = MediaService(
            configuration: configuration.media,
            eventLoopGroup: self.eventLoopGroup,
            logger: logger,
            node: NodeID(name: configuration.nodeID),
            shards: configuration.eventLoopThreads,
            certificate: certificate,
            drain: NodeDrain(timeoutSeconds: configuration.drainTimeoutSeconds),
            limits: configuration.limits
        )
        let metrics = NodeMetrics(nodeID: configuration.nodeID)
        let store: (any ClusterStore)? =
            clusterStore
            ?? (configuration.cluster.isEnabled
                ? EtcdClusterStore(endpoints: configuration.cluster.etcd, logger: logger) : nil)
        let httpAddress = NIOLockedValueBox<SocketAddress?>(nil)
        let mesh = store.map { store in
            MeshService(
                configuration: configuration, media: media, store: store, logger: logger,
                httpURL: {
                    let port = httpAddress.withLockedValue { $0?.port } ?? configuration.http.port
                    let host = configuration.http.address
                    return host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
                })
        }
        self.mesh = mesh
        let monitor = NodeMonitor(configuration: configuration, media: media, metrics: metrics, logger: logger, mesh: mesh)
        self.media = media
        self.metrics = metrics
        self.monitor = monitor
        // The dashboard, WHIP, WHEP and session routes, then the browser demo page.
        let router = DashboardRoutes.makeRouter(monitor: monitor, whipAuthorizer: authorizer)
        DemoRoutes.register(on: router)
        let httpGuard = monitor.httpGuard
        if configuration.admin.isEnabled {
            self.operatorApplication = Application(
                router: DashboardRoutes.makeRouter(monitor: monitor, whipAuthorizer: authorizer, listener: .operator),
                server: httpGuard.serverBuilder(),
                configuration: ApplicationConfiguration(
                    address: .hostname(configuration.admin.address, port: configuration.admin.port),
                    serverName: "braid-node", reuseAddress: true,
                    availableConnectionsDelegate: httpGuard.connectionLimit(logger: logger)),
                onServerRunning: { channel in
                    monitor.operatorServerBound(channel.localAddress)
                    let address = channel.localAddress.map { "\($0)" } ?? "?"
                    serverLogger.info("operator listener", metadata: ["address": "\(address)"])
                },
                eventLoopGroupProvider: .shared(self.eventLoopGroup),
                logger: logger
            )
        } else {
            self.operatorApplication = nil
        }
        self.application = Application(
            router: router,
            server: httpGuard.serverBuilder(),
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.http.address, port: configuration.http.port),
                serverName: "braid-node",
                // SO_REUSEADDR: a node restarted after a crash binds its port again at once, while the
                // old connections sit in TIME_WAIT. On Linux it never lets a second listener share the port
                // (that would take SO_REUSEPORT), so a second node on the same port still fails to start.
                reuseAddress: true,
                // At the cap, new connections wait in the accept backlog until one closes.
                availableConnectionsDelegate: httpGuard.connectionLimit(logger: logger)
            ),
            onServerRunning: { channel in
                httpAddress.withLockedValue { $0 = channel.localAddress }
                monitor.httpServerBound(channel.localAddress)
                let address = channel.localAddress.map { "\($0)" } ?? "?"
                serverLogger.info("dashboard listening", metadata: ["address": "\(address)"])
            },
            eventLoopGroupProvider: .shared(self.eventLoopGroup),
            logger: logger
        )
    }

    /// Stops the node's event loop threads. Call after the service group has finished; ``run()`` does.
    public func shutdownEventLoops() async throws {
        try await self.eventLoopGroup.shutdownGracefully()
    }

    /// The HTTP server's bound address once it listens.
    public var httpAddress: SocketAddress? { self.monitor.boundHTTPAddress }

    /// The operator listener's bound address once it listens.
    public var operatorAddress: SocketAddress? { self.monitor.boundOperatorAddress }

    /// A service group of the HTTP application and the media service.
    ///
    /// - Parameter gracefulShutdownSignals: signals that start a graceful shutdown (none for tests).
    public func makeServiceGroup(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint]) -> ServiceGroup {
        ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(service: self.application),
                    .init(service: self.media),
                ] + (self.operatorApplication.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? [])
                    + (self.mesh.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? []) + [
                    // After the listeners, media and mesh, so that a graceful shutdown drains first while they
                    // still run; when a drain started by POST /api/v1/drain ends, the group shuts down.
                    .init(
                        service: DrainService(
                            drain: self.media.drain, media: self.media, mesh: self.mesh, logger: self.logger),
                        successTerminationBehavior: .gracefullyShutdownGroup),
                    // Last in the list, so the first to hear of a shutdown: it logs the start.
                    .init(service: ShutdownAnnouncer(logger: self.logger)),
                ],
                gracefulShutdownSignals: gracefulShutdownSignals,
                logger: self.logger
            )
        )
    }

    /// Runs the node until SIGTERM or SIGINT (graceful) or task cancellation, then releases both ports.
    public func run() async throws {
        self.logger.info(
            "node starting",
            metadata: [
                "version": "\(BraidNodeVersion.string)",
                "http": "\(self.configuration.http.address):\(self.configuration.http.port)",
                "media": "\(self.configuration.media.address):\(self.configuration.media.port)",
                "event_loop_threads": "\(self.configuration.eventLoopThreads)",
            ]
        )
        let group = self.makeServiceGroup()
        do {
            try await group.run()
        } catch {
            self.monitor.httpServerBound(nil)
            try? await self.shutdownEventLoops()
            throw error
        }
        self.monitor.httpServerBound(nil)
        try await self.shutdownEventLoops()
        self.logger.info("node stopped")
    }
}

extension Logger.Level {
    init(_ level: NodeConfiguration.LogLevel) {
        switch level {
        case .trace: self = .trace
        case .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        case .critical: self = .critical
        }
    }
}

/// Logs when a graceful shutdown begins (a signal or a programmatic trigger), then ends.
private struct ShutdownAnnouncer: Service {
    let logger: Logger

    func run() async throws {
        do {
            try await gracefulShutdown()
            self.logger.info("graceful shutdown started")
        } catch {
            // Cancelled: the group is being torn down without a graceful phase.
            self.logger.info("node cancelled")
        }
    }
}
