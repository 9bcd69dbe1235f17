import Foundation
import NIOCore
import NIOPosix

/// The effective configuration of one `braid-node` process.
///
/// Build it with ``NodeConfiguration/resolve(flags:environment:configFile:hostName:)``, which layers
/// command-line flags over `BRAID_*` environment variables over a JSON config file over the embedded
/// defaults, and validates the result. The JSON form (``NodeConfiguration/jsonString()``) uses the same
/// snake_case keys as the config file, so `braid-node --print-config > node.json` gives a file that
/// reproduces the effective configuration.
public struct NodeConfiguration: Codable, Sendable, Equatable {
    /// The name of this node in logs, metrics and (later) the mesh. Generated once at start when unset:
    /// host name plus a random suffix, so two nodes on one host never share it.
    public var nodeID: String
    /// The ops dashboard and (later) WHIP/WHEP HTTP endpoint.
    public var http: HTTP
    /// The UDP socket that carries STUN, DTLS and SRTP for every session.
    public var media: Media
    /// Threads in the event loop group shared by HTTP and media.
    public var eventLoopThreads: Int
    /// Logging.
    public var log: Log
    /// Membership of a cluster (the mesh); off unless etcd URLs are given.
    public var cluster: Cluster
    /// Access tokens.
    public var auth: Auth
    /// Serve WHIP/WHEP without tokens on a non-loopback address (an explicit, logged choice).
    public var insecureOpen: Bool
    /// The operator listener.
    public var admin: Admin
    /// Where the node keeps state across restarts (its DTLS certificate); nil: nothing is kept.
    public var stateDirectory: String?
    /// How long a drain waits for sessions to leave before the node exits.
    public var drainTimeoutSeconds: Int
    /// Limits against exhaustion.
    public var limits: Limits

    /// Access-token settings: JWTs (RFC 7519) signed with HMAC-SHA256 (RFC 7518 §3.2).
    public struct Auth: Codable, Sendable, Equatable {
        /// The signing key (never printed).
        public var tokenKey: String?
        /// A file holding the key (read at start, surrounding whitespace trimmed).
        public var tokenKeyFile: String?

        public init(tokenKey: String? = nil, tokenKeyFile: String? = nil) {
            self.tokenKey = tokenKey
            self.tokenKeyFile = tokenKeyFile
        }

        /// Whether tokens are checked.
        public var isEnabled: Bool { self.tokenKey != nil || self.tokenKeyFile != nil }

        enum CodingKeys: String, CodingKey {
            case tokenKey = "token_key"
            case tokenKeyFile = "token_key_file"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                tokenKey: try c.decodeIfPresent(String.self, forKey: .tokenKey),
                tokenKeyFile: try c.decodeIfPresent(String.self, forKey: .tokenKeyFile))
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            // Like the cluster secret, the key never reaches --print-config output.
            if self.tokenKey != nil { try c.encode("(set)", forKey: .tokenKey) }
            try c.encodeIfPresent(self.tokenKeyFile, forKey: .tokenKeyFile)
        }
    }

    /// The operator listener: the full dashboard (session ids, client addresses) and operator routes
    /// (max-bitrate, drain) without a token. Loopback by default, so only the host's own operator reaches it.
    public struct Admin: Codable, Sendable, Equatable {
        /// IP address to bind.
        public var address: String
        /// TCP port; 0: ephemeral; -1: no operator listener (operator routes then need an admin token).
        public var port: Int

        public init(address: String = "127.0.0.1", port: Int = NodeConfiguration.defaultAdminPort) {
            self.address = address
            self.port = port
        }

        /// Whether the operator listener runs.
        public var isEnabled: Bool { self.port >= 0 }
    }

    /// Limits against exhaustion; every one is shown on the dashboard.
    public struct Limits: Codable, Sendable, Equatable {
        /// Most sessions on the node.
        public var sessions: Int
        /// Most sessions from one client IP address (0: no limit).
        public var sessionsPerAddress: Int
        /// Most sessions in one room.
        public var sessionsPerRoom: Int
        /// Most media sections in one SDP offer.
        public var transceiversPerOffer: Int
        /// Seconds a session may take to complete ICE and DTLS.
        public var handshakeTimeoutSeconds: Int
        /// Most open HTTP connections per listener.
        public var httpConnections: Int
        /// Seconds an HTTP connection may stay idle between requests.
        public var httpIdleTimeoutSeconds: Int
        /// Seconds a client may take to send one whole request.
        public var httpReadTimeoutSeconds: Int
        /// UDP packets per second accepted from one source before its DTLS handshake completes.
        public var unverifiedPacketsPerSecond: Int
        /// Packets queued for one session while the socket is not writable.
        public var outboundQueuePackets: Int

        /// Safe defaults for a public node on a small machine.
        public static let defaults = Limits(
            sessions: 4096, sessionsPerAddress: 256, sessionsPerRoom: 2048, transceiversPerOffer: 64,
            handshakeTimeoutSeconds: 10, httpConnections: 1024, httpIdleTimeoutSeconds: 60,
            httpReadTimeoutSeconds: 10, unverifiedPacketsPerSecond: 200, outboundQueuePackets: 2048)

        public init(
            sessions: Int, sessionsPerAddress: Int, sessionsPerRoom: Int, transceiversPerOffer: Int,
            handshakeTimeoutSeconds: Int, httpConnections: Int, httpIdleTimeoutSeconds: Int,
            httpReadTimeoutSeconds: Int, unverifiedPacketsPerSecond: Int, outboundQueuePackets: Int
        ) {
            self.sessions = sessions
            self.sessionsPerAddress = sessionsPerAddress
            self.sessionsPerRoom = sessionsPerRoom
            self.transceiversPerOffer = transceiversPerOffer
            self.handshakeTimeoutSeconds = handshakeTimeoutSeconds
            self.httpConnections = httpConnections
            self.httpIdleTimeoutSeconds = httpIdleTimeoutSeconds
            self.httpReadTimeoutSeconds = httpReadTimeoutSeconds
            self.unverifiedPacketsPerSecond = unverifiedPacketsPerSecond
            self.outboundQueuePackets = outboundQueuePackets
        }

        enum CodingKeys: String, CodingKey {
            case sessions
            case sessionsPerAddress = "sessions_per_address"
            case sessionsPerRoom = "sessions_per_room"
            case transceiversPerOffer = "transceivers_per_offer"
            case handshakeTimeoutSeconds = "handshake_timeout_seconds"
            case httpConnections = "http_connections"
            case httpIdleTimeoutSeconds = "http_idle_timeout_seconds"
            case httpReadTimeoutSeconds = "http_read_timeout_seconds"
            case unverifiedPacketsPerSecond = "unverified_packets_per_second"
            case outboundQueuePackets = "outbound_queue_packets"
        }
    }

    /// HTTP listener settings.
    public struct HTTP: Codable, Sendable, Equatable {
        /// IP address to bind (an IPv4 or IPv6 literal).
        public var address: String
        /// TCP port; 0 asks the kernel for an ephemeral port (tests).
        public var port: Int

        public init(address: String, port: Int) {
            self.address = address
            self.port = port
        }
    }

    /// Media (UDP) socket settings.
    public struct Media: Codable, Sendable, Equatable {
        /// IP address to bind (an IPv4 or IPv6 literal).
        public var address: String
        /// UDP port; 0 asks the kernel for an ephemeral port (tests).
        public var port: Int
        /// Addresses to announce to peers as ICE host candidates. Empty in a layer means "the bind
        /// address"; the resolved configuration always lists at least one.
        public var advertisedAddresses: [String]
        /// Datagrams read per `recvmmsg` call (vector read count).
        public var receiveBatchSize: Int
        /// Use UDP GRO on receive and GSO on send where the kernel supports them.
        public var offload: Bool

        public init(address: String, port: Int, advertisedAddresses: [String], receiveBatchSize: Int, offload: Bool) {
            self.address = address
            self.port = port
            self.advertisedAddresses = advertisedAddresses
            self.receiveBatchSize = receiveBatchSize
            self.offload = offload
        }

        enum CodingKeys: String, CodingKey {
            case address
            case port
            case advertisedAddresses = "advertised_addresses"
            case receiveBatchSize = "receive_batch_size"
            case offload
        }
    }

    /// Logging settings.
    public struct Log: Codable, Sendable, Equatable {
        /// Lowest level written.
        public var level: LogLevel
        /// Line format.
        public var format: LogFormat

        public init(level: LogLevel, format: LogFormat) {
            self.level = level
            self.format = format
        }
    }

    /// Cluster (mesh) settings. With no etcd URL the node is alone, as it always was.
    public struct Cluster: Codable, Sendable, Equatable {
        /// etcd client URLs (`http://host:2379`); empty: no cluster.
        public var etcd: [String]
        /// The shared secret relay links are keyed from (never printed).
        public var secret: String?
        /// A file holding the secret (read at start, surrounding whitespace trimmed).
        public var secretFile: String?
        /// Region label for placement.
        public var region: String
        /// IP address of the relay socket (nil: the media address).
        public var meshAddress: String?
        /// UDP port of the relay socket; 0: ephemeral.
        public var meshPort: Int
        /// Address other nodes reach the relay socket at (nil: the first media advertised address).
        public var meshAdvertisedAddress: String?
        /// Base URL of this node's HTTP API as others reach it (nil: from the HTTP listener).
        public var httpURL: String?
        /// A JSON file `{"peer-node-name": {"latency_ms": 20, "loss": 0.01}}` of emulated impairments
        /// applied to what this node sends to each peer (tests and local meshes; no `tc netem` needed).
        public var linkEmulation: String?
        /// Whether relay links send FEC repairs (sized from the loss each peer reports; see ``BraidMesh/MeshLink``).
        public var linkFEC: Bool

        public init(
            etcd: [String] = [], secret: String? = nil, secretFile: String? = nil, region: String = "default",
            meshAddress: String? = nil, meshPort: Int = NodeConfiguration.defaultMeshPort,
            meshAdvertisedAddress: String? = nil, httpURL: String? = nil, linkEmulation: String? = nil,
            linkFEC: Bool = true
        ) {
            self.etcd = etcd
            self.secret = secret
            self.secretFile = secretFile
            self.region = region
            self.meshAddress = meshAddress
            self.meshPort = meshPort
            self.meshAdvertisedAddress = meshAdvertisedAddress
            self.httpURL = httpURL
            self.linkEmulation = linkEmulation
            self.linkFEC = linkFEC
        }

        /// Whether the node joins a cluster.
        public var isEnabled: Bool { !self.etcd.isEmpty }

        enum CodingKeys: String, CodingKey {
            case etcd, secret, region
            case secretFile = "secret_file"
            case meshAddress = "mesh_address"
            case meshPort = "mesh_port"
            case meshAdvertisedAddress = "mesh_advertised_address"
            case httpURL = "http_url"
            case linkEmulation = "link_emulation"
            case linkFEC = "link_fec"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                etcd: try c.decodeIfPresent([String].self, forKey: .etcd) ?? [],
                secret: try c.decodeIfPresent(String.self, forKey: .secret),
                secretFile: try c.decodeIfPresent(String.self, forKey: .secretFile),
                region: try c.decodeIfPresent(String.self, forKey: .region) ?? "default",
                meshAddress: try c.decodeIfPresent(String.self, forKey: .meshAddress),
                meshPort: try c.decodeIfPresent(Int.self, forKey: .meshPort) ?? NodeConfiguration.defaultMeshPort,
                meshAdvertisedAddress: try c.decodeIfPresent(String.self, forKey: .meshAdvertisedAddress),
                httpURL: try c.decodeIfPresent(String.self, forKey: .httpURL),
                linkEmulation: try c.decodeIfPresent(String.self, forKey: .linkEmulation),
                linkFEC: try c.decodeIfPresent(Bool.self, forKey: .linkFEC) ?? true)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.etcd, forKey: .etcd)
            // --print-config output lands in files and tickets: the secret stays out of it.
            if self.secret != nil { try c.encode("(set)", forKey: .secret) }
            try c.encodeIfPresent(self.secretFile, forKey: .secretFile)
            try c.encode(self.region, forKey: .region)
            try c.encodeIfPresent(self.meshAddress, forKey: .meshAddress)
            try c.encode(self.meshPort, forKey: .meshPort)
            try c.encodeIfPresent(self.meshAdvertisedAddress, forKey: .meshAdvertisedAddress)
            try c.encodeIfPresent(self.httpURL, forKey: .httpURL)
            try c.encodeIfPresent(self.linkEmulation, forKey: .linkEmulation)
            try c.encode(self.linkFEC, forKey: .linkFEC)
        }
    }

    /// Log levels, as swift-log names them.
    public enum LogLevel: String, Codable, Sendable, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

    /// How log lines are written to standard error.
    public enum LogFormat: String, Codable, Sendable, CaseIterable {
        /// `2026-01-01T00:00:00Z info braid.node : message key=value`, for people.
        case text
        /// One JSON object per line, for log collectors.
        case json
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id"
        case http
        case media
        case eventLoopThreads = "event_loop_threads"
        case log
        case cluster
        case auth
        case insecureOpen = "insecure_open"
        case admin
        case stateDirectory = "state_directory"
        case drainTimeoutSeconds = "drain_timeout_seconds"
        case limits
    }

    public init(
        nodeID: String, http: HTTP, media: Media, eventLoopThreads: Int, log: Log, cluster: Cluster = .init(),
        auth: Auth = .init(), insecureOpen: Bool = false, admin: Admin = .init(), stateDirectory: String? = nil,
        drainTimeoutSeconds: Int = NodeConfiguration.defaultDrainTimeoutSeconds, limits: Limits = .defaults
    ) {
        self.nodeID = nodeID
        self.http = http
        self.media = media
        self.eventLoopThreads = eventLoopThreads
        self.log = log
        self.cluster = cluster
        self.auth = auth
        self.insecureOpen = insecureOpen
        self.admin = admin
        self.stateDirectory = stateDirectory
        self.drainTimeoutSeconds = drainTimeoutSeconds
        self.limits = limits
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            nodeID: try c.decode(String.self, forKey: .nodeID), http: try c.decode(HTTP.self, forKey: .http),
            media: try c.decode(Media.self, forKey: .media),
            eventLoopThreads: try c.decode(Int.self, forKey: .eventLoopThreads), log: try c.decode(Log.self, forKey: .log),
            cluster: try c.decodeIfPresent(Cluster.self, forKey: .cluster) ?? .init(),
            auth: try c.decodeIfPresent(Auth.self, forKey: .auth) ?? .init(),
            insecureOpen: try c.decodeIfPresent(Bool.self, forKey: .insecureOpen) ?? false,
            admin: try c.decodeIfPresent(Admin.self, forKey: .admin) ?? .init(),
            stateDirectory: try c.decodeIfPresent(String.self, forKey: .stateDirectory),
            drainTimeoutSeconds: try c.decodeIfPresent(Int.self, forKey: .drainTimeoutSeconds)
                ?? NodeConfiguration.defaultDrainTimeoutSeconds,
            limits: try c.decodeIfPresent(Limits.self, forKey: .limits) ?? .defaults)
    }
}

extension NodeConfiguration {
    /// The documented default HTTP port.
    public static let defaultHTTPPort = 8080
    /// The documented default media port: fixed (not ephemeral) so firewalls and ICE candidates can
    /// name it; 40000 sits above the registered range and below Linux's ephemeral range (32768–60999
    /// overlaps it, but the kernel never hands out a port that is already bound).
    public static let defaultMediaPort = 40000
    /// The documented default UDP port of relay links between nodes.
    public static let defaultMeshPort = 40100
    /// The documented default port of the operator listener.
    public static let defaultAdminPort = 8081
    /// The documented default drain time.
    public static let defaultDrainTimeoutSeconds = 30
    /// The shortest token key accepted: HS256 keys should have at least 256 bits (RFC 7518 §3.2).
    public static let minimumTokenKeyLength = 32
    /// The documented default vector read count.
    public static let defaultReceiveBatchSize = 32
    /// Upper bound on the vector read count: each slot reserves 2 KiB (64 KiB with GRO) of receive buffer.
    public static let maximumReceiveBatchSize = 1024

    /// The embedded defaults: a single node on loopback.
    ///
    /// - Parameter nodeID: the node id to use; ``generatedNodeID(hostName:)`` when the layers name none.
    public static func defaults(nodeID: String) -> NodeConfiguration {
        NodeConfiguration(
            nodeID: nodeID,
            http: HTTP(address: "127.0.0.1", port: Self.defaultHTTPPort),
            media: Media(
                address: "127.0.0.1",
                port: Self.defaultMediaPort,
                advertisedAddresses: [],
                receiveBatchSize: Self.defaultReceiveBatchSize,
                offload: true
            ),
            eventLoopThreads: System.coreCount,
            log: Log(level: .info, format: .text)
        )
    }

    /// A node id made of the host name (reduced to the characters a node id allows) and 6 random hex digits.
    public static func generatedNodeID(hostName: String) -> String {
        var base = String(hostName.unicodeScalars.filter { Self.isNodeIDCharacter($0) }.prefix(40))
        if base.isEmpty { base = "node" }
        let suffix = UInt32.random(in: 0..<0x100_0000)
        let hex = String(suffix, radix: 16)
        return base + "-" + String(repeating: "0", count: 6 - hex.count) + hex
    }

    static func isNodeIDCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".": true
        default: false
        }
    }

    /// The configuration as pretty-printed JSON with sorted keys, in the config-file schema.
    public func jsonString() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings, integers and booleans cannot fail.
        let data = (try? encoder.encode(self)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Checks every value; the error names the key path of the first bad one.
    ///
    /// ``resolve(flags:environment:configFile:hostName:)`` calls this and adds where the value came from.
    public func validate() throws(ConfigurationError) {
        let nodeIDLimit = 64
        if self.nodeID.isEmpty || self.nodeID.count > nodeIDLimit
            || !self.nodeID.unicodeScalars.allSatisfy(Self.isNodeIDCharacter)
        {
            throw ConfigurationError(
                key: .nodeID,
                "\(Self.quoted(self.nodeID)) is not a node id (1-\(nodeIDLimit) of A-Z a-z 0-9 . _ -)"
            )
        }
        try Self.validateAddress(self.http.address, key: .httpAddress)
        try Self.validatePort(self.http.port, key: .httpPort)
        try Self.validateAddress(self.media.address, key: .mediaAddress)
        try Self.validatePort(self.media.port, key: .mediaPort)
        for address in self.media.advertisedAddresses {
            try Self.validateAddress(address, key: .mediaAdvertisedAddresses)
            if Self.isWildcard(address) {
                throw ConfigurationError(
                    key: .mediaAdvertisedAddresses,
                    "\(Self.quoted(address)) is a wildcard address; peers need a reachable one"
                )
            }
        }
        if self.media.advertisedAddresses.isEmpty && Self.isWildcard(self.media.address) {
            throw ConfigurationError(
                key: .mediaAdvertisedAddresses,
                "required when media.address is a wildcard (\(self.media.address))"
            )
        }
        if !(1...Self.maximumReceiveBatchSize).contains(self.media.receiveBatchSize) {
            throw ConfigurationError(
                key: .mediaReceiveBatchSize,
                "\(self.media.receiveBatchSize) is out of range (1-\(Self.maximumReceiveBatchSize))"
            )
        }
        if !(1...256).contains(self.eventLoopThreads) {
            throw ConfigurationError(key: .eventLoopThreads, "\(self.eventLoopThreads) is out of range (1-256)")
        }
        for url in self.cluster.etcd where !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            throw ConfigurationError(key: .clusterEtcd, "\(Self.quoted(url)) is not an http:// or https:// URL")
        }
        if let address = self.cluster.meshAddress { try Self.validateAddress(address, key: .clusterMeshAddress) }
        if let address = self.cluster.meshAdvertisedAddress {
            try Self.validateAddress(address, key: .clusterMeshAdvertisedAddress)
        }
        try Self.validatePort(self.cluster.meshPort, key: .clusterMeshPort)
        if self.cluster.region.isEmpty || self.cluster.region.count > 64 {
            throw ConfigurationError(key: .clusterRegion, "must be 1-64 characters")
        }
        if self.cluster.isEnabled && self.cluster.secret == nil && self.cluster.secretFile == nil {
            throw ConfigurationError(
                key: .clusterSecret,
                "required with cluster.etcd: relay links are keyed from it (set it, or cluster.secret_file)")
        }
        if let secret = self.cluster.secret, secret.utf8.count < 16 {
            throw ConfigurationError(key: .clusterSecret, "too short: use at least 16 characters")
        }
        if let key = self.auth.tokenKey, key.utf8.count < Self.minimumTokenKeyLength {
            throw ConfigurationError(
                key: .authTokenKey, "too short: use at least \(Self.minimumTokenKeyLength) characters")
        }
        try Self.validateAddress(self.admin.address, key: .adminAddress)
        if !(-1...65535).contains(self.admin.port) {
            throw ConfigurationError(key: .adminPort, "\(self.admin.port) is not a port (0-65535, or -1 for none)")
        }
        if !(0...3600).contains(self.drainTimeoutSeconds) {
            throw ConfigurationError(key: .drainTimeoutSeconds, "\(self.drainTimeoutSeconds) is out of range (0-3600)")
        }
        try self.limits.validate()
    }

    /// Whether `address` is a loopback address (127.0.0.0/8 or ::1): only this host reaches it.
    public static func isLoopback(_ address: String) -> Bool {
        guard let parsed = try? SocketAddress(ipAddress: address, port: 0) else { return false }
        switch parsed {
        case .v4(let v4): return UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127
        case .v6: return address == "::1" || address == "0:0:0:0:0:0:0:1"
        default: return false
        }
    }

    static func validatePort(_ port: Int, key: ConfigurationKey) throws(ConfigurationError) {
        guard (0...65535).contains(port) else {
            throw ConfigurationError(key: key, "\(port) is not a port (0-65535)")
        }
    }

    static func validateAddress(_ address: String, key: ConfigurationKey) throws(ConfigurationError) {
        do {
            _ = try SocketAddress(ipAddress: address, port: 0)
        } catch {
            throw ConfigurationError(key: key, "\(Self.quoted(address)) is not an IPv4 or IPv6 address")
        }
    }

    static func isWildcard(_ address: String) -> Bool {
        address == "0.0.0.0" || address == "::" || address == "0:0:0:0:0:0:0:0"
    }

    static func quoted(_ value: String) -> String {
        "\"" + value.prefix(80) + (value.count > 80 ? "…" : "") + "\""
    }
}

extension NodeConfiguration.Limits {
    /// Each `limits.*` key and the value it sets.
    public static let keyPaths: [ConfigurationKey: any WritableKeyPath<Self, Int> & Sendable] = [
        .limitsSessions: \.sessions,
        .limitsSessionsPerAddress: \.sessionsPerAddress,
        .limitsSessionsPerRoom: \.sessionsPerRoom,
        .limitsTransceiversPerOffer: \.transceiversPerOffer,
        .limitsHandshakeTimeoutSeconds: \.handshakeTimeoutSeconds,
        .limitsHTTPConnections: \.httpConnections,
        .limitsHTTPIdleTimeoutSeconds: \.httpIdleTimeoutSeconds,
        .limitsHTTPReadTimeoutSeconds: \.httpReadTimeoutSeconds,
        .limitsUnverifiedPacketsPerSecond: \.unverifiedPacketsPerSecond,
        .limitsOutboundQueuePackets: \.outboundQueuePackets,
    ]

    /// Checks every limit against its range.
    func validate() throws(ConfigurationError) {
        let ranges: [ConfigurationKey: ClosedRange<Int>] = [
            .limitsSessions: 1...1_000_000,
            .limitsSessionsPerAddress: 0...1_000_000,
            .limitsSessionsPerRoom: 1...1_000_000,
            .limitsTransceiversPerOffer: 1...1024,
            .limitsHandshakeTimeoutSeconds: 1...600,
            .limitsHTTPConnections: 1...1_000_000,
            .limitsHTTPIdleTimeoutSeconds: 1...86_400,
            .limitsHTTPReadTimeoutSeconds: 1...3600,
            .limitsUnverifiedPacketsPerSecond: 1...1_000_000,
            .limitsOutboundQueuePackets: 16...1_000_000,
        ]
        for (key, range) in ranges.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let value = self[keyPath: Self.keyPaths[key]!]
            guard range.contains(value) else {
                throw ConfigurationError(key: key, "\(value) is out of range (\(range.lowerBound)-\(range.upperBound))")
            }
        }
    }
}
