import BraidNode
import Foundation
import NIOCore
import NIOPosix
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    /// Writes `json` to a temporary file and returns its path.
    static func writeConfigFile(_ json: String) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("braid-node-test-\(UInt64.random(in: 0...UInt64.max)).json").path
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("defaults: loopback, documented ports, generated node id")
    func defaults() throws {
        let configuration = try NodeConfiguration.resolve(hostName: "media-host.example")
        #expect(configuration.http == .init(address: "127.0.0.1", port: 8080))
        #expect(configuration.media.address == "127.0.0.1")
        #expect(configuration.media.port == 40000)
        #expect(configuration.media.advertisedAddresses == ["127.0.0.1"])
        #expect(configuration.media.receiveBatchSize == 32)
        #expect(configuration.media.offload == true)
        #expect(configuration.eventLoopThreads == System.coreCount)
        #expect(configuration.log == .init(level: .info, format: .text))
        // host name, "-", 6 hex digits
        #expect(configuration.nodeID.hasPrefix("media-host.example-"))
        let suffix = configuration.nodeID.dropFirst("media-host.example-".count)
        #expect(suffix.count == 6 && suffix.allSatisfy(\.isHexDigit))
    }

    @Test("with GRO a read call takes at most 8 reads of 64 KiB; without, the configured batch")
    func readsPerCall() {
        #expect(MediaService.readsPerCall(configured: 32, receiveOffload: true) == 8)
        #expect(MediaService.readsPerCall(configured: 4, receiveOffload: true) == 4)
        #expect(MediaService.readsPerCall(configured: 32, receiveOffload: false) == 32)
        #expect(MediaService.readsPerCall(configured: 1024, receiveOffload: false) == 1024)
        #expect(MediaService.groReceiveBufferBytes / MediaService.groSlotSize == 8)
    }

    @Test("flags > environment > config file > defaults, key by key")
    func precedence() throws {
        let file = try Self.writeConfigFile(
            """
            {
              "node_id": "from-file",
              "http": {"port": 1001, "address": "127.0.0.2"},
              "media": {"port": 2001, "receive_batch_size": 8, "offload": false},
              "event_loop_threads": 3,
              "log": {"level": "debug", "format": "json"}
            }
            """
        )
        defer { try? FileManager.default.removeItem(atPath: file) }
        let environment = [
            "BRAID_MEDIA_PORT": "3001",
            "BRAID_LOG_LEVEL": "warning",
            "BRAID_MEDIA_RECEIVE_BATCH_SIZE": "16",
            "BRAID_MEDIA_ADVERTISED_ADDRESSES": "192.0.2.1, 2001:db8::1",
            "PATH": "/usr/bin",
        ]
        let flags = NodeConfigurationLayer(mediaReceiveBatchSize: 64, logLevel: "error")
        let configuration = try NodeConfiguration.resolve(flags: flags, environment: environment, configFile: file)

        #expect(configuration.nodeID == "from-file")  // file only
        #expect(configuration.http == .init(address: "127.0.0.2", port: 1001))  // file only
        #expect(configuration.media.port == 3001)  // env over file
        #expect(configuration.media.receiveBatchSize == 64)  // flag over env over file
        #expect(configuration.log.level == .error)  // flag over env over file
        #expect(configuration.log.format == .json)  // file only
        #expect(configuration.media.offload == false)  // file only
        #expect(configuration.eventLoopThreads == 3)  // file only
        #expect(configuration.media.advertisedAddresses == ["192.0.2.1", "2001:db8::1"])  // env only
        #expect(configuration.media.address == "127.0.0.1")  // default
    }

    @Test("BRAID_CONFIG names the file when --config is absent; --config wins over it")
    func configFileFromEnvironment() throws {
        let first = try Self.writeConfigFile(#"{"http": {"port": 1111}}"#)
        let second = try Self.writeConfigFile(#"{"http": {"port": 2222}}"#)
        defer {
            try? FileManager.default.removeItem(atPath: first)
            try? FileManager.default.removeItem(atPath: second)
        }
        let viaEnvironment = try NodeConfiguration.resolve(environment: ["BRAID_CONFIG": first])
        #expect(viaEnvironment.http.port == 1111)
        let viaFlag = try NodeConfiguration.resolve(environment: ["BRAID_CONFIG": first], configFile: second)
        #expect(viaFlag.http.port == 2222)
    }

    struct InvalidCase: Sendable, CustomTestStringConvertible {
        var flags = NodeConfigurationLayer()
        var environment: [String: String] = [:]
        var file: String?
        var expected: String
        var testDescription: String { self.expected }
    }

    static let invalidCases: [InvalidCase] = [
        InvalidCase(
            environment: ["BRAID_CLUSTER_ETCD": "http://127.0.0.1:2379"],
            expected: "cluster.secret: required with cluster.etcd: relay links are keyed from it "
                + "(set it, or cluster.secret_file)"
        ),
        InvalidCase(
            flags: NodeConfigurationLayer(clusterEtcd: ["127.0.0.1:2379"], clusterSecret: "0123456789abcdef"),
            expected: "cluster.etcd: \"127.0.0.1:2379\" is not an http:// or https:// URL (from --cluster-etcd)"
        ),
        InvalidCase(
            environment: ["BRAID_CLUSTER_SECRET": "short"],
            expected: "cluster.secret: too short: use at least 16 characters (from BRAID_CLUSTER_SECRET)"
        ),
        InvalidCase(
            file: #"{"cluster": {"mesh_port": 70000}}"#,
            expected: "cluster.mesh_port: 70000 is not a port (0-65535) (from config file FILE)"
        ),
        InvalidCase(
            flags: NodeConfigurationLayer(mediaPort: 70000),
            expected: "media.port: 70000 is not a port (0-65535) (from --media-port)"
        ),
        InvalidCase(
            environment: ["BRAID_HTTP_PORT": "-1"],
            expected: "http.port: -1 is not a port (0-65535) (from BRAID_HTTP_PORT)"
        ),
        InvalidCase(
            environment: ["BRAID_HTTP_PORT": "eighty"],
            expected: "http.port: \"eighty\" is not an integer (from BRAID_HTTP_PORT)"
        ),
        InvalidCase(
            environment: ["BRAID_MEDIA_OFFLOAD": "maybe"],
            expected: "media.offload: \"maybe\" is not a boolean (true/false, 1/0, yes/no, on/off) "
                + "(from BRAID_MEDIA_OFFLOAD)"
        ),
        InvalidCase(
            flags: NodeConfigurationLayer(httpAddress: "localhost"),
            expected: "http.address: \"localhost\" is not an IPv4 or IPv6 address (from --http-address)"
        ),
        InvalidCase(
            file: #"{"media": {"address": "10.0.0.300"}}"#,
            expected: "media.address: \"10.0.0.300\" is not an IPv4 or IPv6 address (from config file FILE)"
        ),
        InvalidCase(
            file: #"{"media": {"address": "0.0.0.0"}}"#,
            expected: "media.advertised_addresses: required when media.address is a wildcard (0.0.0.0)"
        ),
        InvalidCase(
            environment: ["BRAID_MEDIA_ADVERTISED_ADDRESSES": "::"],
            expected: "media.advertised_addresses: \"::\" is a wildcard address; peers need a reachable one "
                + "(from BRAID_MEDIA_ADVERTISED_ADDRESSES)"
        ),
        InvalidCase(
            file: #"{"media": {"receive_batch_size": 0}}"#,
            expected: "media.receive_batch_size: 0 is out of range (1-1024) (from config file FILE)"
        ),
        InvalidCase(
            flags: NodeConfigurationLayer(eventLoopThreads: 0),
            expected: "event_loop_threads: 0 is out of range (1-256) (from --event-loop-threads)"
        ),
        InvalidCase(
            flags: NodeConfigurationLayer(nodeID: "no spaces!"),
            expected: "node_id: \"no spaces!\" is not a node id (1-64 of A-Z a-z 0-9 . _ -) (from --node-id)"
        ),
        InvalidCase(
            environment: ["BRAID_LOG_LEVEL": "loud"],
            expected: "log.level: \"loud\" is not a log level (trace, debug, info, notice, warning, error, critical) "
                + "(from BRAID_LOG_LEVEL)"
        ),
        InvalidCase(
            file: #"{"log": {"format": "xml"}}"#,
            expected: "log.format: \"xml\" is not a log format (text, json) (from config file FILE)"
        ),
        InvalidCase(
            file: #"{"media": {"port": "40000"}}"#,
            expected: "media.port: expected an integer (from config file FILE)"
        ),
        InvalidCase(
            file: #"{"media": {"port": 4.5}}"#,
            expected: "media.port: expected an integer (from config file FILE)"
        ),
        InvalidCase(
            file: #"{"media": {"advertised_addresses": "127.0.0.1"}}"#,
            expected: "media.advertised_addresses: expected an array of strings (from config file FILE)"
        ),
        InvalidCase(
            file: #"{"media": {"offload": "yes"}}"#,
            expected: "media.offload: expected a boolean (from config file FILE)"
        ),
        InvalidCase(
            file: #"{"limits": {"sessions": 0}}"#,
            expected: "limits.sessions: 0 is out of range (1-1000000) (from config file FILE)"
        ),
        InvalidCase(
            file: #"{"admin": {"port": 70000}}"#,
            expected: "admin.port: 70000 is not a port (0-65535, or -1 for none) (from config file FILE)"
        ),
        InvalidCase(
            file: #"{"http": 8080}"#,
            expected: "http: expected an object (from config file FILE)"
        ),
        InvalidCase(
            file: #"{"media": {"prot": 40000}}"#,
            expected: "media.prot: unknown key (allowed here: address, advertised_addresses, offload, port, "
                + "receive_batch_size) (from config file FILE)"
        ),
        InvalidCase(
            file: #"{"loglevel": "debug"}"#,
            expected: "loglevel: unknown key (allowed here: admin, auth, cluster, drain_timeout_seconds, event_loop_threads, "
                + "http, insecure_open, limits, log, media, node_id, state_directory) "
                + "(from config file FILE)"
        ),
        InvalidCase(
            file: #"{"media": {"port": 1"#,
            expected: "config file FILE: not valid JSON"
        ),
    ]

    @Test("every invalid value names its key path, the problem and its source", arguments: Self.invalidCases)
    func invalid(_ testCase: InvalidCase) throws {
        var path: String?
        if let file = testCase.file { path = try Self.writeConfigFile(file) }
        defer { if let path { try? FileManager.default.removeItem(atPath: path) } }

        let error = #expect(throws: ConfigurationError.self) {
            try NodeConfiguration.resolve(
                flags: testCase.flags,
                environment: testCase.environment,
                configFile: path,
                hostName: "host"
            )
        }
        let expected = testCase.expected.replacing("FILE", with: path ?? "")
        #expect(try #require(error).description == expected)
    }

    @Test("a missing config file is an error naming the file")
    func missingFile() {
        let error = #expect(throws: ConfigurationError.self) {
            try NodeConfiguration.resolve(configFile: "/nonexistent/braid.json")
        }
        #expect(error?.keyPath == "/nonexistent/braid.json")
    }

    @Test("--print-config output parses back, as JSON and as a config file giving the same configuration")
    func printConfigRoundTrip() throws {
        let flags = NodeConfigurationLayer(
            nodeID: "node-a",
            httpPort: 0,
            mediaPort: 0,
            mediaAdvertisedAddresses: ["192.0.2.7"],
            logFormat: "json"
        )
        let configuration = try NodeConfiguration.resolve(flags: flags, environment: [:])
        let json = configuration.jsonString()

        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(
            Set(object.keys) == [
                "node_id", "http", "media", "event_loop_threads", "log", "cluster", "auth", "insecure_open", "admin",
                "drain_timeout_seconds", "limits",
            ])
        let media = try #require(object["media"] as? [String: Any])
        #expect(
            Set(media.keys) == ["address", "port", "advertised_addresses", "receive_batch_size", "offload"]
        )
        #expect(media["advertised_addresses"] as? [String] == ["192.0.2.7"])
        #expect((object["log"] as? [String: Any])?["format"] as? String == "json")

        let file = try Self.writeConfigFile(json)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let reread = try NodeConfiguration.resolve(environment: [:], configFile: file)
        #expect(reread == configuration)
    }

    @Test("unknown BRAID_ variables are reported, known ones and others are not")
    func unrecognizedEnvironment() {
        let environment = ["BRAID_MEDIA_PORT": "1", "BRAID_MEDIA_PROT": "1", "BRAID_CONFIG": "x", "HOME": "/"]
        #expect(NodeConfigurationLayer.unrecognizedVariables(in: environment) == ["BRAID_MEDIA_PROT"])
    }

    @Test("the key table gives consistent names in every source")
    func keyNames() {
        #expect(ConfigurationKey.mediaPort.environmentVariable == "BRAID_MEDIA_PORT")
        #expect(ConfigurationKey.mediaPort.flagName == "media-port")
        #expect(ConfigurationKey.mediaAdvertisedAddresses.environmentVariable == "BRAID_MEDIA_ADVERTISED_ADDRESSES")
        #expect(ConfigurationKey.mediaAdvertisedAddresses.flagName == "media-advertised-addresses")
        #expect(ConfigurationKey.nodeID.environmentVariable == "BRAID_NODE_ID")
        #expect(ConfigurationKey.httpPort.environmentVariable == "BRAID_HTTP_PORT")
    }
}
