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
                + "(default: \(NodeConfiguration.defaultReceiveBatchSize))."
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
        case .clusterLinkEmulation:
            "JSON file of emulated relay-link impairments per peer node name (latency_ms, jitter_ms, loss, bandwidth_kbps)."
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
