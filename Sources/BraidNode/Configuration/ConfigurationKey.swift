/// Every configuration setting, with the names it has in each source.
///
/// One table drives the config-file schema, the environment variables, the command-line flags and the
/// error messages, so the four can never disagree.
public enum ConfigurationKey: String, Sendable, CaseIterable, CustomStringConvertible {
    case nodeID = "node_id"
    case httpAddress = "http.address"
    case httpPort = "http.port"
    case mediaAddress = "media.address"
    case mediaPort = "media.port"
    case mediaAdvertisedAddresses = "media.advertised_addresses"
    case mediaReceiveBatchSize = "media.receive_batch_size"
    case mediaOffload = "media.offload"
    case eventLoopThreads = "event_loop_threads"
    case logLevel = "log.level"
    case logFormat = "log.format"
    case clusterEtcd = "cluster.etcd"
    case clusterSecret = "cluster.secret"
    case clusterSecretFile = "cluster.secret_file"
    case clusterRegion = "cluster.region"
    case clusterMeshAddress = "cluster.mesh_address"
    case clusterMeshPort = "cluster.mesh_port"
    case clusterMeshAdvertisedAddress = "cluster.mesh_advertised_address"
    case clusterHTTPURL = "cluster.http_url"
    case clusterLinkEmulation = "cluster.link_emulation"
    case clusterLinkFEC = "cluster.link_fec"
    case authTokenKey = "auth.token_key"
    case authTokenKeyFile = "auth.token_key_file"
    case insecureOpen = "insecure_open"
    case adminAddress = "admin.address"
    case adminPort = "admin.port"
    case stateDirectory = "state_directory"
    case drainTimeoutSeconds = "drain_timeout_seconds"
    case limitsSessions = "limits.sessions"
    case limitsSessionsPerAddress = "limits.sessions_per_address"
    case limitsSessionsPerRoom = "limits.sessions_per_room"
    case limitsTransceiversPerOffer = "limits.transceivers_per_offer"
    case limitsHandshakeTimeoutSeconds = "limits.handshake_timeout_seconds"
    case limitsHTTPConnections = "limits.http_connections"
    case limitsHTTPIdleTimeoutSeconds = "limits.http_idle_timeout_seconds"
    case limitsHTTPReadTimeoutSeconds = "limits.http_read_timeout_seconds"
    case limitsUnverifiedPacketsPerSecond = "limits.unverified_packets_per_second"
    case limitsOutboundQueuePackets = "limits.outbound_queue_packets"

    /// The dotted key path in the config file, e.g. `media.port`.
    public var path: String { self.rawValue }

    public var description: String { self.rawValue }

    /// The environment variable, e.g. `BRAID_MEDIA_PORT`.
    public var environmentVariable: String {
        "BRAID_" + self.rawValue.uppercased().replacing(".", with: "_")
    }

    /// The long command-line flag without dashes, e.g. `media-port`.
    public var flagName: String {
        self.rawValue.replacing(".", with: "-").replacing("_", with: "-")
    }

    /// One line for `--help`, stating the default.
    public var summary: String {
        switch self {
        case .nodeID: "Node id (default: host name plus a random suffix, generated at start)."
        case .httpAddress: "IP address the HTTP dashboard binds to (default: 127.0.0.1)."
        case .httpPort: "HTTP port, 0 for an ephemeral port (default: \(NodeConfiguration.defaultHTTPPort))."
        case .mediaAddress: "IP address the UDP media socket binds to (default: 127.0.0.1)."
        case .mediaPort: "UDP media port, 0 for an ephemeral port (default: \(NodeConfiguration.defaultMediaPort))."
        case .mediaAdvertisedAddresses:
            "Address announced to peers for media; repeat or comma-separate (default: the media bind address)."
        case .mediaReceiveBatchSize:
            "Datagrams read per system call, 1-\(NodeConfiguration.maximumReceiveBatchSize) "
                + "(default: \(NodeConfiguration.defaultReceiveBatchSize); at most "
                + "\(MediaService.groReceiveBufferBytes / MediaService.groSlotSize) with GRO, each up to 64 KiB)."
        case .mediaOffload: "Use UDP GRO/GSO where the kernel supports them (default: on)."
        case .eventLoopThreads: "Event loop threads, 1-256 (default: number of CPU cores); each forwards media on its own socket."
        case .logLevel:
            "Log level: \(NodeConfiguration.LogLevel.allCases.map(\.rawValue).joined(separator: ", ")) (default: info)."
        case .logFormat: "Log format: text or json (default: text)."
        case .clusterEtcd:
            "etcd client URLs of the cluster, repeat or comma-separate; unset: a single node with in-memory state."
        case .clusterSecret: "Shared secret every node of the cluster keys its relay links from (required with etcd)."
        case .clusterSecretFile: "File holding the cluster secret (instead of cluster.secret)."
        case .clusterRegion: "Region label used for client placement (default: default)."
        case .clusterMeshAddress: "IP address the UDP relay-link socket binds to (default: the media address)."
        case .clusterMeshPort:
            "UDP relay-link port, 0 for an ephemeral port (default: \(NodeConfiguration.defaultMeshPort))."
        case .clusterMeshAdvertisedAddress:
            "Address other nodes reach the relay socket at (default: the first media advertised address)."
        case .clusterHTTPURL: "Base URL other nodes and clients reach this node's HTTP API at (default: from http.*)."
        case .clusterLinkFEC:
            "Send FEC repairs on relay links, sized from the loss each peer reports (default: on)."
        case .clusterLinkEmulation:
            "JSON file of emulated relay-link impairments per peer node name (latency_ms, jitter_ms, loss, bandwidth_kbps)."
        case .authTokenKey:
            "HMAC-SHA256 key (at least 32 characters) that signs and checks JWT access tokens; unset: no tokens, "
                + "and the node serves only on loopback unless insecure_open is set."
        case .authTokenKeyFile: "File holding the token key (instead of auth.token_key)."
        case .insecureOpen:
            "Serve WHIP/WHEP without tokens on a non-loopback HTTP address (default: off; the node refuses to start so)."
        case .adminAddress:
            "IP address of the operator listener (dashboard with session details, operator routes; default: 127.0.0.1)."
        case .adminPort:
            "Port of the operator listener, 0 for an ephemeral port, -1 for none (default: \(NodeConfiguration.defaultAdminPort))."
        case .stateDirectory:
            "Directory the node keeps its state in (its DTLS certificate survives restarts); unset: none, a new certificate at every start."
        case .drainTimeoutSeconds:
            "On SIGTERM or POST /api/v1/drain, seconds to wait for sessions to leave before exiting (default: \(NodeConfiguration.defaultDrainTimeoutSeconds))."
        case .limitsSessions: "Most sessions on the node (default: \(NodeConfiguration.Limits.defaults.sessions))."
        case .limitsSessionsPerAddress:
            "Most sessions from one client IP address, 0 for no limit (default: \(NodeConfiguration.Limits.defaults.sessionsPerAddress))."
        case .limitsSessionsPerRoom:
            "Most sessions in one room (default: \(NodeConfiguration.Limits.defaults.sessionsPerRoom))."
        case .limitsTransceiversPerOffer:
            "Most media sections in one SDP offer (default: \(NodeConfiguration.Limits.defaults.transceiversPerOffer))."
        case .limitsHandshakeTimeoutSeconds:
            "Seconds a session may take to complete ICE and DTLS before it is dropped (default: \(NodeConfiguration.Limits.defaults.handshakeTimeoutSeconds))."
        case .limitsHTTPConnections:
            "Most open HTTP connections per listener (default: \(NodeConfiguration.Limits.defaults.httpConnections))."
        case .limitsHTTPIdleTimeoutSeconds:
            "Seconds an HTTP connection may stay idle (default: \(NodeConfiguration.Limits.defaults.httpIdleTimeoutSeconds))."
        case .limitsHTTPReadTimeoutSeconds:
            "Seconds a client may take to send a whole request (default: \(NodeConfiguration.Limits.defaults.httpReadTimeoutSeconds))."
        case .limitsUnverifiedPacketsPerSecond:
            "UDP packets per second accepted from one source address before its DTLS handshake completes (default: \(NodeConfiguration.Limits.defaults.unverifiedPacketsPerSecond))."
        case .limitsOutboundQueuePackets:
            "Packets queued for one session while the socket is full before further ones are dropped and counted (default: \(NodeConfiguration.Limits.defaults.outboundQueuePackets))."
        }
    }
}

/// The environment variable that names a config file, below the `--config` flag in precedence.
public let configFileEnvironmentVariable = "BRAID_CONFIG"

/// A configuration value that is missing its mark, named by the key path it belongs to.
///
/// The description reads like `media.port: 70000 is not a port (0-65535) (from BRAID_MEDIA_PORT)`.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The dotted key path (`media.port`), or the config file's path when the file itself is unusable.
    public var keyPath: String
    /// What is wrong with the value.
    public var message: String
    /// Where the value came from (`--media-port`, `BRAID_MEDIA_PORT`, `config file node.json`), if known.
    public var source: String?

    public init(keyPath: String, _ message: String, source: String? = nil) {
        self.keyPath = keyPath
        self.message = message
        self.source = source
    }

    public init(key: ConfigurationKey, _ message: String, source: String? = nil) {
        self.init(keyPath: key.path, message, source: source)
    }

    public var description: String {
        var text = "\(self.keyPath): \(self.message)"
        if let source { text += " (from \(source))" }
        return text
    }
}
