import ArgumentParser
import BraidNode
import Foundation
import Logging

/// `braid-node`: parses arguments, resolves the configuration and runs a ``NodeServer``.
@main
struct BraidNodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "braid-node",
        abstract: "Runs one Braid media node: UDP media socket and ops dashboard.",
        discussion: """
            Settings come from, highest precedence first: command-line flags, BRAID_* environment \
            variables, a JSON config file (--config or BRAID_CONFIG), embedded defaults. Each option below \
            names its environment variable; the config file uses the key path shown in brackets, e.g. \
            {"media": {"port": 40000}}. --print-config prints the effective configuration in that schema.

            Dashboard: GET / (text), GET /api/v1/node (JSON), GET /metrics (Prometheus), GET /healthz.
            SIGINT or SIGTERM shuts the node down gracefully.
            """,
        version: BraidNodeVersion.string
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
            clusterLinkEmulation: self.clusterLinkEmulation
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
        let node = try NodeServer(configuration: configuration, logger: logger)
        node.metrics.bootstrapMetricsSystem()
        try await node.run()
    }
}
