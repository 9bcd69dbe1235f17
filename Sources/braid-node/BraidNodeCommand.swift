import BraidAccess
import ArgumentParser
import BraidNode
import Foundation
import Logging

/// `braid-node`: runs a node (the default subcommand, `serve`) or mints access tokens (`token`).
@main
struct BraidNodeMain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "braid-node",
        abstract: "Runs one Braid media node, or mints access tokens for it.",
        version: BraidNodeVersion.string,
        subcommands: [BraidNodeCommand.self, TokenCommand.self],
        defaultSubcommand: BraidNodeCommand.self
    )

    /// Makes the node's process-wide settings (``NodeProcess``) before anything runs, then parses and runs.
    static func main() async {
        NodeProcess.configureForServing()
        await Self.main(nil)
    }
}

/// `braid-node [serve]`: parses arguments, resolves the configuration and runs a ``NodeServer``.
struct BraidNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Runs one Braid media node: UDP media socket and ops dashboard (the default subcommand).",
        discussion: """
            Settings come from, highest precedence first: command-line flags, BRAID_* environment \
            variables, a JSON config file (--config or BRAID_CONFIG), embedded defaults. Each option below \
            names its environment variable; the config file uses the key path shown in brackets, e.g. \
            {"media": {"port": 40000}}. --print-config prints the effective configuration in that schema.

            Dashboard: GET / (text), GET /api/v1/node (JSON), GET /metrics (Prometheus), GET /healthz.
            The operator listener (admin.address:admin.port, loopback) shows session details and serves \
            operator routes. SIGINT or SIGTERM shuts the node down gracefully.

            Security: without auth.token_key the node serves WHIP and WHEP to anyone who reaches it, so it \
            refuses to start on a non-loopback HTTP address unless --insecure-open is given. With a key, \
            requests need JWT access tokens: mint them with `braid-node token`.
            """
    )

    @Option(
        name: .customLong("config"),
        help: ArgumentHelp("JSON config file. Env: \(configFileEnvironmentVariable).", valueName: "file")
    )
    var configFile: String?

    @Flag(help: "Print the effective configuration as JSON and exit.")
    var printConfig = false

    @Option(help: Self.help(.nodeID))
    var nodeId: String?

    @Option(help: Self.help(.httpAddress))
    var httpAddress: String?

    @Option(help: Self.help(.httpPort))
    var httpPort: Int?

    @Option(help: Self.help(.mediaAddress))
    var mediaAddress: String?

    @Option(help: Self.help(.mediaPort))
    var mediaPort: Int?

    @Option(help: Self.help(.mediaAdvertisedAddresses))
    var mediaAdvertisedAddresses: [String] = []

    @Option(help: Self.help(.mediaReceiveBatchSize))
    var mediaReceiveBatchSize: Int?

    @Flag(inversion: .prefixedNo, help: Self.help(.mediaOffload))
    var mediaOffload: Bool?

    @Option(help: Self.help(.eventLoopThreads))
    var eventLoopThreads: Int?

    @Option(help: Self.help(.logLevel))
    var logLevel: String?

    @Option(help: Self.help(.logFormat))
    var logFormat: String?

    @Option(help: Self.help(.clusterEtcd))
    var clusterEtcd: [String] = []

    @Option(help: Self.help(.clusterSecret))
    var clusterSecret: String?

    @Option(help: Self.help(.clusterSecretFile))
    var clusterSecretFile: String?

    @Option(help: Self.help(.clusterRegion))
    var clusterRegion: String?

    @Option(help: Self.help(.clusterMeshAddress))
    var clusterMeshAddress: String?

    @Option(help: Self.help(.clusterMeshPort))
    var clusterMeshPort: Int?

    @Option(help: Self.help(.clusterMeshAdvertisedAddress))
    var clusterMeshAdvertisedAddress: String?

    @Option(help: Self.help(.clusterHTTPURL))
    var clusterHttpUrl: String?

    @Option(help: Self.help(.clusterLinkEmulation))
    var clusterLinkEmulation: String?
    @Flag(inversion: .prefixedNo, help: Self.help(.clusterLinkFEC))
    var clusterLinkFEC: Bool?

    @Option(help: Self.help(.authTokenKey))
    var authTokenKey: String?

    @Option(help: Self.help(.authTokenKeyFile))
    var authTokenKeyFile: String?

    @Flag(help: Self.help(.insecureOpen))
    var insecureOpen = false

    @Option(help: Self.help(.adminAddress))
    var adminAddress: String?

    @Option(help: Self.help(.adminPort))
    var adminPort: Int?

    @Option(help: Self.help(.stateDirectory))
    var stateDirectory: String?

    @Option(help: Self.help(.drainTimeoutSeconds))
    var drainTimeoutSeconds: Int?

    @Option(help: Self.help(.limitsSessions))
    var limitsSessions: Int?

    @Option(help: Self.help(.limitsSessionsPerAddress))
    var limitsSessionsPerAddress: Int?

    @Option(help: Self.help(.limitsSessionsPerRoom))
    var limitsSessionsPerRoom: Int?

    @Option(help: Self.help(.limitsTransceiversPerOffer))
    var limitsTransceiversPerOffer: Int?

    @Option(help: Self.help(.limitsHandshakeTimeoutSeconds))
    var limitsHandshakeTimeoutSeconds: Int?

    @Option(help: Self.help(.limitsHTTPConnections))
    var limitsHttpConnections: Int?

    @Option(help: Self.help(.limitsHTTPIdleTimeoutSeconds))
    var limitsHttpIdleTimeoutSeconds: Int?

    @Option(help: Self.help(.limitsHTTPReadTimeoutSeconds))
    var limitsHttpReadTimeoutSeconds: Int?

    @Option(help: Self.help(.limitsUnverifiedPacketsPerSecond))
    var limitsUnverifiedPacketsPerSecond: Int?

    @Option(help: Self.help(.limitsOutboundQueuePackets))
    var limitsOutboundQueuePackets: Int?

    /// The help text of one option: summary, config key path and environment variable.
    static func help(_ key: ConfigurationKey) -> ArgumentHelp {
        ArgumentHelp("\(key.summary) [\(key.path)] Env: \(key.environmentVariable).")
    }

    /// The flags as a configuration layer (unset flags stay `nil`).
    var flagLayer: NodeConfigurationLayer {
        NodeConfigurationLayer(
            nodeID: self.nodeId,
            httpAddress: self.httpAddress,
            httpPort: self.httpPort,
            mediaAddress: self.mediaAddress,
            mediaPort: self.mediaPort,
            mediaAdvertisedAddresses: self.mediaAdvertisedAddresses.isEmpty
                ? nil
                : self.mediaAdvertisedAddresses.flatMap { $0.split(separator: ",").map(String.init) },
            mediaReceiveBatchSize: self.mediaReceiveBatchSize,
            mediaOffload: self.mediaOffload,
            eventLoopThreads: self.eventLoopThreads,
            logLevel: self.logLevel,
            logFormat: self.logFormat,
            clusterEtcd: self.clusterEtcd.isEmpty
                ? nil : self.clusterEtcd.flatMap { $0.split(separator: ",").map(String.init) },
            clusterSecret: self.clusterSecret,
            clusterSecretFile: self.clusterSecretFile,
            clusterRegion: self.clusterRegion,
            clusterMeshAddress: self.clusterMeshAddress,
            clusterMeshPort: self.clusterMeshPort,
            clusterMeshAdvertisedAddress: self.clusterMeshAdvertisedAddress,
            clusterHTTPURL: self.clusterHttpUrl,
            clusterLinkEmulation: self.clusterLinkEmulation,
            clusterLinkFEC: self.clusterLinkFEC,
            authTokenKey: self.authTokenKey,
            authTokenKeyFile: self.authTokenKeyFile,
            insecureOpen: self.insecureOpen ? true : nil,
            adminAddress: self.adminAddress,
            adminPort: self.adminPort,
            stateDirectory: self.stateDirectory,
            drainTimeoutSeconds: self.drainTimeoutSeconds,
            limits: [
                .limitsSessions: self.limitsSessions,
                .limitsSessionsPerAddress: self.limitsSessionsPerAddress,
                .limitsSessionsPerRoom: self.limitsSessionsPerRoom,
                .limitsTransceiversPerOffer: self.limitsTransceiversPerOffer,
                .limitsHandshakeTimeoutSeconds: self.limitsHandshakeTimeoutSeconds,
                .limitsHTTPConnections: self.limitsHttpConnections,
                .limitsHTTPIdleTimeoutSeconds: self.limitsHttpIdleTimeoutSeconds,
                .limitsHTTPReadTimeoutSeconds: self.limitsHttpReadTimeoutSeconds,
                .limitsUnverifiedPacketsPerSecond: self.limitsUnverifiedPacketsPerSecond,
                .limitsOutboundQueuePackets: self.limitsOutboundQueuePackets,
            ].compactMapValues { $0 }
        )
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let configuration: NodeConfiguration
        do {
            configuration = try NodeConfiguration.resolve(
                flags: self.flagLayer,
                environment: environment,
                configFile: self.configFile
            )
        } catch {
            FileHandle.standardError.write(Data("braid-node: configuration error: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if self.printConfig {
            print(configuration.jsonString())
            return
        }

        NodeLogging.bootstrap(configuration.log)
        let logger = Logger(label: "braid.node")
        for name in NodeConfigurationLayer.unrecognizedVariables(in: environment) {
            logger.warning("ignoring unknown environment variable", metadata: ["name": "\(name)"])
        }
        let node: NodeServer
        do {
            node = try NodeServer(configuration: configuration, logger: logger)
        } catch {
            FileHandle.standardError.write(Data("braid-node: refusing to start: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if configuration.insecureOpen {
            logger.warning(
                "insecure_open: serving without the protections a public node needs",
                metadata: ["http": "\(configuration.http.address)", "admin": "\(configuration.admin.address)"])
        }
        node.metrics.bootstrapMetricsSystem()
        try await node.run()
    }
}

/// `braid-node token`: mints a JWT access token signed with the node's token key.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Mints an access token (JWT, HS256) for a room and role, signed with the node's token key.",
        discussion: """
            The key comes from --key, --key-file, BRAID_AUTH_TOKEN_KEY or BRAID_AUTH_TOKEN_KEY_FILE, in that \
            order. Clients send the token as `Authorization: Bearer <token>`. Roles: subscribe (WHEP only), \
            publish (WHIP and WHEP), admin (everything, operator routes included; use room "*").
            """
    )

    @Option(help: "Room the token is for, or * for every room.")
    var room: String

    @Option(help: "subscribe, publish or admin.")
    var role: String = "publish"

    @Option(help: "Seconds until the token expires.")
    var ttl: Int = 3600

    @Option(help: "Who the token is for (the sub claim; logged only).")
    var subject: String?

    @Option(help: "The token key (at least 32 characters).")
    var key: String?

    @Option(help: "A file holding the token key.")
    var keyFile: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let auth = NodeConfiguration.Auth(
            tokenKey: self.key ?? (self.keyFile == nil ? environment[ConfigurationKey.authTokenKey.environmentVariable] : nil),
            tokenKeyFile: self.keyFile ?? environment[ConfigurationKey.authTokenKeyFile.environmentVariable])
        let key: String
        do {
            guard let found = try NodeAccess.tokenKey(auth) else {
                throw ValidationError("no token key: pass --key or --key-file, or set BRAID_AUTH_TOKEN_KEY")
            }
            key = found
        } catch let error as ConfigurationError {
            throw ValidationError("\(error)")
        }
        guard key.utf8.count >= NodeConfiguration.minimumTokenKeyLength else {
            throw ValidationError("the key is too short: use at least \(NodeConfiguration.minimumTokenKeyLength) characters")
        }
        guard let role = AccessRole(rawValue: self.role) else {
            throw ValidationError("--role must be one of \(AccessRole.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard self.room == TokenAuthority.anyRoom || WebRTCRoutes.isValidRoom(self.room) else {
            throw ValidationError("--room must be a room name (letters, digits, '-', '_', '.') or *")
        }
        guard self.ttl > 0 else { throw ValidationError("--ttl must be positive") }
        let token = TokenAuthority(key: key).mint(
            room: self.room, role: role, lifetime: TimeInterval(self.ttl), subject: self.subject)
        print(token)
    }
}
