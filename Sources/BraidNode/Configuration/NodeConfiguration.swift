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
    }

    public init(nodeID: String, http: HTTP, media: Media, eventLoopThreads: Int, log: Log) {
        self.nodeID = nodeID
        self.http = http
        self.media = media
        self.eventLoopThreads = eventLoopThreads
        self.log = log
    }
}

extension NodeConfiguration {
    /// The documented default HTTP port.
    public static let defaultHTTPPort = 8080
    /// The documented default media port: fixed (not ephemeral) so firewalls and ICE candidates can
    /// name it; 40000 sits above the registered range and below Linux's ephemeral range (32768–60999
    /// overlaps it, but the kernel never hands out a port that is already bound).
    public static let defaultMediaPort = 40000
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
