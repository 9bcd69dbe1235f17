import Foundation

/// Settings from one source (flags, environment or config file); `nil` means "not set here".
///
/// Values are kept as given (ports as any integer, levels as strings) so that validation of the merged
/// configuration can name the key and the source of a bad value.
public struct NodeConfigurationLayer: Sendable, Equatable {
    public var nodeID: String?
    public var httpAddress: String?
    public var httpPort: Int?
    public var mediaAddress: String?
    public var mediaPort: Int?
    public var mediaAdvertisedAddresses: [String]?
    public var mediaReceiveBatchSize: Int?
    public var mediaOffload: Bool?
    public var eventLoopThreads: Int?
    public var logLevel: String?
    public var logFormat: String?
    public var clusterEtcd: [String]?
    public var clusterSecret: String?
    public var clusterSecretFile: String?
    public var clusterRegion: String?
    public var clusterMeshAddress: String?
    public var clusterMeshPort: Int?
    public var clusterMeshAdvertisedAddress: String?
    public var clusterHTTPURL: String?
    public var clusterLinkEmulation: String?
    public var clusterLinkFEC: Bool?
    public var authTokenKey: String?
    public var authTokenKeyFile: String?
    public var insecureOpen: Bool?
    public var adminAddress: String?
    public var adminPort: Int?
    public var stateDirectory: String?
    public var drainTimeoutSeconds: Int?
    /// The `limits.*` values set here, by key (all integers).
    public var limits: [ConfigurationKey: Int] = [:]

    public init(
        nodeID: String? = nil,
        httpAddress: String? = nil,
        httpPort: Int? = nil,
        mediaAddress: String? = nil,
        mediaPort: Int? = nil,
        mediaAdvertisedAddresses: [String]? = nil,
        mediaReceiveBatchSize: Int? = nil,
        mediaOffload: Bool? = nil,
        eventLoopThreads: Int? = nil,
        logLevel: String? = nil,
        logFormat: String? = nil,
        clusterEtcd: [String]? = nil,
        clusterSecret: String? = nil,
        clusterSecretFile: String? = nil,
        clusterRegion: String? = nil,
        clusterMeshAddress: String? = nil,
        clusterMeshPort: Int? = nil,
        clusterMeshAdvertisedAddress: String? = nil,
        clusterHTTPURL: String? = nil,
        clusterLinkEmulation: String? = nil,
        clusterLinkFEC: Bool? = nil,
        authTokenKey: String? = nil,
        authTokenKeyFile: String? = nil,
        insecureOpen: Bool? = nil,
        adminAddress: String? = nil,
        adminPort: Int? = nil,
        stateDirectory: String? = nil,
        drainTimeoutSeconds: Int? = nil,
        limits: [ConfigurationKey: Int] = [:]
    ) {
        self.authTokenKey = authTokenKey
        self.authTokenKeyFile = authTokenKeyFile
        self.insecureOpen = insecureOpen
        self.adminAddress = adminAddress
        self.adminPort = adminPort
        self.stateDirectory = stateDirectory
        self.drainTimeoutSeconds = drainTimeoutSeconds
        self.limits = limits
        self.nodeID = nodeID
        self.httpAddress = httpAddress
        self.httpPort = httpPort
        self.mediaAddress = mediaAddress
        self.mediaPort = mediaPort
        self.mediaAdvertisedAddresses = mediaAdvertisedAddresses
        self.mediaReceiveBatchSize = mediaReceiveBatchSize
        self.mediaOffload = mediaOffload
        self.eventLoopThreads = eventLoopThreads
        self.logLevel = logLevel
        self.logFormat = logFormat
        self.clusterEtcd = clusterEtcd
        self.clusterSecret = clusterSecret
        self.clusterSecretFile = clusterSecretFile
        self.clusterRegion = clusterRegion
        self.clusterMeshAddress = clusterMeshAddress
        self.clusterMeshPort = clusterMeshPort
        self.clusterMeshAdvertisedAddress = clusterMeshAdvertisedAddress
        self.clusterHTTPURL = clusterHTTPURL
        self.clusterLinkEmulation = clusterLinkEmulation
        self.clusterLinkFEC = clusterLinkFEC
    }
}

// MARK: - Environment

extension NodeConfigurationLayer {
    /// Reads the `BRAID_*` variables of ``ConfigurationKey``.
    ///
    /// Lists are comma-separated; booleans accept `true/false`, `1/0`, `yes/no`, `on/off`. A value that
    /// does not parse is an error naming the variable and the key.
    public init(environment: [String: String]) throws(ConfigurationError) {
        self.init()
        func value(_ key: ConfigurationKey) -> String? { environment[key.environmentVariable] }
        func integer(_ key: ConfigurationKey) throws(ConfigurationError) -> Int? {
            guard let text = value(key) else { return nil }
            guard let number = Int(text.trimmingCharacters(in: .whitespaces)) else {
                throw ConfigurationError(
                    key: key,
                    "\(NodeConfiguration.quoted(text)) is not an integer",
                    source: key.environmentVariable
                )
            }
            return number
        }
        self.nodeID = value(.nodeID)
        self.httpAddress = value(.httpAddress)
        self.httpPort = try integer(.httpPort)
        self.mediaAddress = value(.mediaAddress)
        self.mediaPort = try integer(.mediaPort)
        self.mediaAdvertisedAddresses = value(.mediaAdvertisedAddresses).map { list in
            list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        self.mediaReceiveBatchSize = try integer(.mediaReceiveBatchSize)
        func boolean(_ key: ConfigurationKey) throws(ConfigurationError) -> Bool? {
            guard let text = value(key) else { return nil }
            switch text.trimmingCharacters(in: .whitespaces).lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default:
                throw ConfigurationError(
                    key: key,
                    "\(NodeConfiguration.quoted(text)) is not a boolean (true/false, 1/0, yes/no, on/off)",
                    source: key.environmentVariable
                )
            }
        }
        self.mediaOffload = try boolean(.mediaOffload)
        self.authTokenKey = value(.authTokenKey)
        self.authTokenKeyFile = value(.authTokenKeyFile)
        self.insecureOpen = try boolean(.insecureOpen)
        self.adminAddress = value(.adminAddress)
        self.adminPort = try integer(.adminPort)
        self.stateDirectory = value(.stateDirectory)
        self.drainTimeoutSeconds = try integer(.drainTimeoutSeconds)
        for key in NodeConfiguration.Limits.keyPaths.keys {
            if let number = try integer(key) { self.limits[key] = number }
        }
        self.eventLoopThreads = try integer(.eventLoopThreads)
        self.logLevel = value(.logLevel)
        self.logFormat = value(.logFormat)
        self.clusterEtcd = value(.clusterEtcd).map { list in
            list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        self.clusterSecret = value(.clusterSecret)
        self.clusterSecretFile = value(.clusterSecretFile)
        self.clusterRegion = value(.clusterRegion)
        self.clusterMeshAddress = value(.clusterMeshAddress)
        self.clusterMeshPort = try integer(.clusterMeshPort)
        self.clusterMeshAdvertisedAddress = value(.clusterMeshAdvertisedAddress)
        self.clusterHTTPURL = value(.clusterHTTPURL)
        self.clusterLinkEmulation = value(.clusterLinkEmulation)
        self.clusterLinkFEC = try boolean(.clusterLinkFEC)
    }

    /// `BRAID_*` variables in `environment` that configure nothing (most likely typos).
    public static func unrecognizedVariables(in environment: [String: String]) -> [String] {
        let known = Set(ConfigurationKey.allCases.map(\.environmentVariable) + [configFileEnvironmentVariable])
        return environment.keys.filter { $0.hasPrefix("BRAID_") && !known.contains($0) }.sorted()
    }
}

// MARK: - Config file

extension NodeConfigurationLayer {
    /// Decodes a JSON config file. Unknown keys, wrong types and malformed JSON are errors naming the key.
    ///
    /// - Parameters:
    ///   - data: the file's contents.
    ///   - sourceName: how errors refer to the file, e.g. `config file /etc/braid/node.json`.
    public init(json data: Data, sourceName: String) throws(ConfigurationError) {
        do {
            self = try JSONDecoder().decode(FileLayer.self, from: data).layer
        } catch let error as ConfigurationError {
            var error = error
            error.source = sourceName
            throw error
        } catch let error as DecodingError {
            throw Self.translate(error, sourceName: sourceName)
        } catch {
            throw ConfigurationError(keyPath: sourceName, "unreadable: \(error)")
        }
    }

    /// Reads and decodes the config file at `path`.
    public init(contentsOfFile path: String) throws(ConfigurationError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError(keyPath: path, "cannot read config file: \(error.localizedDescription)")
        }
        try self.init(json: data, sourceName: "config file \(path)")
    }

    private static func translate(_ error: DecodingError, sourceName: String) -> ConfigurationError {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
                .joined(separator: ".").replacing(".[", with: "[")
        }
        switch error {
        case .typeMismatch(let type, let context):
            return ConfigurationError(
                keyPath: path(context.codingPath),
                "expected \(Self.typeName(type))",
                source: sourceName
            )
        case .valueNotFound(let type, let context):
            return ConfigurationError(
                keyPath: path(context.codingPath),
                "expected \(Self.typeName(type)), found null",
                source: sourceName
            )
        case .keyNotFound(let key, let context):
            return ConfigurationError(
                keyPath: path(context.codingPath + [key]),
                "missing",
                source: sourceName
            )
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return ConfigurationError(keyPath: sourceName, "not valid JSON")
            }
            // JSONDecoder reports a number that does not fit the type (3.5 or 1e30 for an Int) this way.
            return ConfigurationError(
                keyPath: path(context.codingPath),
                "value does not fit: \(context.debugDescription)",
                source: sourceName
            )
        @unknown default:
            return ConfigurationError(keyPath: sourceName, "\(error)")
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is [String].Type: "an array of strings"
        default: "an object"
        }
    }
}

/// A coding key for any string, so unknown keys can be found and named.
private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { self.stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// The config-file schema: strict about unknown keys at every level.
private struct FileLayer: Decodable {
    var layer = NodeConfigurationLayer()

    init(from decoder: any Decoder) throws {
        let root = try decoder.container(keyedBy: AnyKey.self)
        try Self.rejectUnknown(
            root,
            allowed: [
                "node_id", "http", "media", "event_loop_threads", "log", "cluster", "auth", "insecure_open", "admin",
                "state_directory", "drain_timeout_seconds", "limits",
            ],
            prefix: "")
        self.layer.nodeID = try Self.string(root, "node_id", path: "")
        self.layer.eventLoopThreads = try Self.integer(root, "event_loop_threads", path: "")
        self.layer.insecureOpen = try Self.boolean(root, "insecure_open", path: "")
        self.layer.stateDirectory = try Self.string(root, "state_directory", path: "")
        self.layer.drainTimeoutSeconds = try Self.integer(root, "drain_timeout_seconds", path: "")
        if try root.contains(AnyKey("auth")) && !root.decodeNil(forKey: AnyKey("auth")) {
            let auth = try root.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("auth"))
            try Self.rejectUnknown(auth, allowed: ["token_key", "token_key_file"], prefix: "auth.")
            self.layer.authTokenKey = try Self.string(auth, "token_key", path: "auth.")
            self.layer.authTokenKeyFile = try Self.string(auth, "token_key_file", path: "auth.")
        }
        if try root.contains(AnyKey("admin")) && !root.decodeNil(forKey: AnyKey("admin")) {
            let admin = try root.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("admin"))
            try Self.rejectUnknown(admin, allowed: ["address", "port"], prefix: "admin.")
            self.layer.adminAddress = try Self.string(admin, "address", path: "admin.")
            self.layer.adminPort = try Self.integer(admin, "port", path: "admin.")
        }
        if try root.contains(AnyKey("limits")) && !root.decodeNil(forKey: AnyKey("limits")) {
            let limits = try root.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("limits"))
            let names = Dictionary(
                uniqueKeysWithValues: NodeConfiguration.Limits.keyPaths.keys.map {
                    (String($0.path.dropFirst("limits.".count)), $0)
                })
            try Self.rejectUnknown(limits, allowed: Set(names.keys), prefix: "limits.")
            for (name, key) in names {
                if let number = try Self.integer(limits, name, path: "limits.") { self.layer.limits[key] = number }
            }
        }

        if try root.contains(AnyKey("http")) && !root.decodeNil(forKey: AnyKey("http")) {
            let http = try root.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("http"))
            try Self.rejectUnknown(http, allowed: ["address", "port"], prefix: "http.")
            self.layer.httpAddress = try Self.string(http, "address", path: "http.")
            self.layer.httpPort = try Self.integer(http, "port", path: "http.")
        }
        if try root.contains(AnyKey("media")) && !root.decodeNil(forKey: AnyKey("media")) {
            let media = try root.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("media"))
            try Self.rejectUnknown(
                media,
                allowed: ["address", "port", "advertised_addresses", "receive_batch_size", "offload"],
                prefix: "media."
            )
            self.layer.mediaAddress = try Self.string(media, "address", path: "media.")
            self.layer.mediaPort = try Self.integer(media, "port", path: "media.")
            self.layer.mediaAdvertisedAddresses = try Self.strings(media, "advertised_addresses", path: "media.")
            self.layer.mediaReceiveBatchSize = try Self.integer(media, "receive_batch_size", path: "media.")
            self.layer.mediaOffload = try Self.boolean(media, "offload", path: "media.")
        }
        if try root.contains(AnyKey("cluster")) && !root.decodeNil(forKey: AnyKey("cluster")) {
            let cluster = try root.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("cluster"))
            try Self.rejectUnknown(
                cluster,
                allowed: [
                    "etcd", "secret", "secret_file", "region", "mesh_address", "mesh_port", "mesh_advertised_address",
                    "http_url", "link_emulation", "link_fec",
                ],
                prefix: "cluster.")
            self.layer.clusterEtcd = try Self.strings(cluster, "etcd", path: "cluster.")
            self.layer.clusterSecret = try Self.string(cluster, "secret", path: "cluster.")
            self.layer.clusterSecretFile = try Self.string(cluster, "secret_file", path: "cluster.")
            self.layer.clusterRegion = try Self.string(cluster, "region", path: "cluster.")
            self.layer.clusterMeshAddress = try Self.string(cluster, "mesh_address", path: "cluster.")
            self.layer.clusterMeshPort = try Self.integer(cluster, "mesh_port", path: "cluster.")
            self.layer.clusterMeshAdvertisedAddress = try Self.string(cluster, "mesh_advertised_address", path: "cluster.")
            self.layer.clusterHTTPURL = try Self.string(cluster, "http_url", path: "cluster.")
            self.layer.clusterLinkEmulation = try Self.string(cluster, "link_emulation", path: "cluster.")
            self.layer.clusterLinkFEC = try Self.boolean(cluster, "link_fec", path: "cluster.")
        }
        if try root.contains(AnyKey("log")) && !root.decodeNil(forKey: AnyKey("log")) {
            let log = try root.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("log"))
            try Self.rejectUnknown(log, allowed: ["level", "format"], prefix: "log.")
            self.layer.logLevel = try Self.string(log, "level", path: "log.")
            self.layer.logFormat = try Self.string(log, "format", path: "log.")
        }
    }

    /// Decodes an optional value of one type; any other JSON type is an error naming the key path.
    /// JSONDecoder's own errors would say too little for some cases (4.5 for an integer has no key path).
    private static func value<Value: Decodable>(
        _ container: KeyedDecodingContainer<AnyKey>,
        _ key: String,
        path: String,
        expected: String
    ) throws -> Value? {
        let codingKey = AnyKey(key)
        guard container.contains(codingKey), try !container.decodeNil(forKey: codingKey) else { return nil }
        guard let value = try? container.decode(Value.self, forKey: codingKey) else {
            throw ConfigurationError(keyPath: path + key, "expected \(expected)")
        }
        return value
    }

    private static func integer(_ c: KeyedDecodingContainer<AnyKey>, _ key: String, path: String) throws -> Int? {
        try Self.value(c, key, path: path, expected: "an integer")
    }

    private static func string(_ c: KeyedDecodingContainer<AnyKey>, _ key: String, path: String) throws -> String? {
        try Self.value(c, key, path: path, expected: "a string")
    }

    private static func boolean(_ c: KeyedDecodingContainer<AnyKey>, _ key: String, path: String) throws -> Bool? {
        try Self.value(c, key, path: path, expected: "a boolean")
    }

    private static func strings(_ c: KeyedDecodingContainer<AnyKey>, _ key: String, path: String) throws -> [String]? {
        try Self.value(c, key, path: path, expected: "an array of strings")
    }

    private static func rejectUnknown(
        _ container: KeyedDecodingContainer<AnyKey>,
        allowed: Set<String>,
        prefix: String
    ) throws {
        // Sorted so the error is the same on every run when several keys are unknown.
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { !allowed.contains($0) }) {
            throw ConfigurationError(
                keyPath: prefix + unknown,
                "unknown key (allowed here: \(allowed.sorted().joined(separator: ", ")))"
            )
        }
    }
}

// MARK: - Resolution

extension NodeConfiguration {
    /// Builds the effective configuration: flags > environment > config file > defaults, then validates it.
    ///
    /// - Parameters:
    ///   - flags: values given on the command line.
    ///   - environment: the process environment (only `BRAID_*` variables are read).
    ///   - configFile: the `--config` path; when `nil`, `BRAID_CONFIG` names the file, if set.
    ///   - hostName: the host name used to generate a node id when no source sets one.
    /// - Throws: ``ConfigurationError`` naming the key path, the problem and the source of the value.
    public static func resolve(
        flags: NodeConfigurationLayer = NodeConfigurationLayer(),
        environment: [String: String] = [:],
        configFile: String? = nil,
        hostName: String = ProcessInfo.processInfo.hostName
    ) throws(ConfigurationError) -> NodeConfiguration {
        let environmentLayer = try NodeConfigurationLayer(environment: environment)
        var layers: [(NodeConfigurationLayer, (ConfigurationKey) -> String)] = []
        if let path = configFile ?? environment[configFileEnvironmentVariable] {
            layers.append((try NodeConfigurationLayer(contentsOfFile: path), { _ in "config file \(path)" }))
        }
        layers.append((environmentLayer, { $0.environmentVariable }))
        layers.append((flags, { "--\($0.flagName)" }))

        var configuration = NodeConfiguration.defaults(nodeID: "")
        var nodeIDSet = false
        var sources: [ConfigurationKey: String] = [:]
        for (layer, sourceName) in layers {
            func take<Value>(_ value: Value?, _ key: ConfigurationKey, into target: inout Value) {
                guard let value else { return }
                target = value
                sources[key] = sourceName(key)
            }
            if layer.nodeID != nil { nodeIDSet = true }
            take(layer.nodeID, .nodeID, into: &configuration.nodeID)
            take(layer.httpAddress, .httpAddress, into: &configuration.http.address)
            take(layer.httpPort, .httpPort, into: &configuration.http.port)
            take(layer.mediaAddress, .mediaAddress, into: &configuration.media.address)
            take(layer.mediaPort, .mediaPort, into: &configuration.media.port)
            take(
                layer.mediaAdvertisedAddresses,
                .mediaAdvertisedAddresses,
                into: &configuration.media.advertisedAddresses
            )
            take(layer.mediaReceiveBatchSize, .mediaReceiveBatchSize, into: &configuration.media.receiveBatchSize)
            take(layer.mediaOffload, .mediaOffload, into: &configuration.media.offload)
            take(layer.eventLoopThreads, .eventLoopThreads, into: &configuration.eventLoopThreads)
            take(layer.clusterEtcd, .clusterEtcd, into: &configuration.cluster.etcd)
            take(layer.clusterSecret.map(Optional.some), .clusterSecret, into: &configuration.cluster.secret)
            take(layer.clusterSecretFile.map(Optional.some), .clusterSecretFile, into: &configuration.cluster.secretFile)
            take(layer.clusterRegion, .clusterRegion, into: &configuration.cluster.region)
            take(layer.clusterMeshAddress.map(Optional.some), .clusterMeshAddress, into: &configuration.cluster.meshAddress)
            take(layer.clusterMeshPort, .clusterMeshPort, into: &configuration.cluster.meshPort)
            take(
                layer.clusterMeshAdvertisedAddress.map(Optional.some), .clusterMeshAdvertisedAddress,
                into: &configuration.cluster.meshAdvertisedAddress)
            take(layer.clusterHTTPURL.map(Optional.some), .clusterHTTPURL, into: &configuration.cluster.httpURL)
            take(
                layer.clusterLinkEmulation.map(Optional.some), .clusterLinkEmulation,
                into: &configuration.cluster.linkEmulation)
            take(layer.clusterLinkFEC, .clusterLinkFEC, into: &configuration.cluster.linkFEC)
            take(layer.authTokenKey.map(Optional.some), .authTokenKey, into: &configuration.auth.tokenKey)
            take(layer.authTokenKeyFile.map(Optional.some), .authTokenKeyFile, into: &configuration.auth.tokenKeyFile)
            take(layer.insecureOpen, .insecureOpen, into: &configuration.insecureOpen)
            take(layer.adminAddress, .adminAddress, into: &configuration.admin.address)
            take(layer.adminPort, .adminPort, into: &configuration.admin.port)
            take(layer.stateDirectory.map(Optional.some), .stateDirectory, into: &configuration.stateDirectory)
            take(layer.drainTimeoutSeconds, .drainTimeoutSeconds, into: &configuration.drainTimeoutSeconds)
            for (key, keyPath) in NodeConfiguration.Limits.keyPaths {
                take(layer.limits[key], key, into: &configuration.limits[keyPath: keyPath])
            }
            if let level = layer.logLevel {
                guard let parsed = LogLevel(rawValue: level.lowercased()) else {
                    let levels = LogLevel.allCases.map(\.rawValue).joined(separator: ", ")
                    throw ConfigurationError(
                        key: .logLevel,
                        "\(Self.quoted(level)) is not a log level (\(levels))",
                        source: sourceName(.logLevel)
                    )
                }
                take(parsed, .logLevel, into: &configuration.log.level)
            }
            if let format = layer.logFormat {
                guard let parsed = LogFormat(rawValue: format.lowercased()) else {
                    throw ConfigurationError(
                        key: .logFormat,
                        "\(Self.quoted(format)) is not a log format (text, json)",
                        source: sourceName(.logFormat)
                    )
                }
                take(parsed, .logFormat, into: &configuration.log.format)
            }
        }
        if !nodeIDSet {
            configuration.nodeID = Self.generatedNodeID(hostName: hostName)
        }
        do {
            try configuration.validate()
        } catch {
            var error = error
            if let key = ConfigurationKey(rawValue: error.keyPath) { error.source = sources[key] }
            throw error
        }
        // The default advertised address is the bind address; validate() has ruled out a wildcard here.
        if configuration.media.advertisedAddresses.isEmpty {
            configuration.media.advertisedAddresses = [configuration.media.address]
        }
        return configuration
    }
}
