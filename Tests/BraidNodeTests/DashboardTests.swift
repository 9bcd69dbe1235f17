import BraidNode
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// The dashboard routes through Hummingbird's router test framework (no sockets; the node is not running).
@Suite("Dashboard routes")
struct DashboardTests {
    let node: NodeServer

    init() throws {
        var logger = Logger(label: "braid.node.test")
        logger.logLevel = .warning
        self.node = try NodeServer(configuration: try testConfiguration(), logger: logger)
    }

    @Test("GET /healthz is 200 ok")
    func healthz() async throws {
        try await self.node.application.test(.router) { client in
            let response = try await client.execute(uri: "/healthz", method: .get)
            #expect(response.status == .ok)
            #expect(String(buffer: response.body) == "ok\n")
            #expect(response.headers[.contentType] == "text/plain; charset=utf-8")
        }
    }

    @Test("GET /api/v1/node has every documented field with the documented JSON type")
    func nodeJSON() async throws {
        try await self.node.application.test(.router) { client in
            let response = try await client.execute(uri: "/api/v1/node", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            let data = Data(response.body.readableBytesView)

            let status = try JSONDecoder().decode(NodeStatus.self, from: data)
            #expect(status.nodeID == "test-node")
            #expect(status.version == BraidNodeVersion.string)
            #expect(status.process.residentMemoryBytes > 0)
            #expect(status.process.eventLoopThreads == 1)
            // Nothing is bound in router tests, and the page says so.
            #expect(status.http.bound == false)
            #expect(status.media.listener.bound == false)

            let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(
                Set(root.keys)
                    == [
                        "node_id", "version", "started_at", "uptime_seconds", "process", "http", "media", "sessions",
                        "forwarding", "rooms", "limits",
                    ]
            )
            let limits = try #require(root["limits"] as? [String: Any])
            #expect(Set(limits.keys).isSuperset(of: ["configured", "counters"]))
            let sessions = try #require(root["sessions"] as? [String: Any])
            #expect(Set(sessions.keys) == ["count", "list"])
            #expect(sessions["count"] as? Int == 0)
            #expect(root["uptime_seconds"] is NSNumber)
            let process = try #require(root["process"] as? [String: Any])
            #expect(
                Set(process.keys)
                    == ["cpu_percent", "cpu_seconds_total", "resident_memory_bytes", "event_loop_threads"]
            )
            #expect(process.values.allSatisfy { $0 is NSNumber })
            let http = try #require(root["http"] as? [String: Any])
            #expect(Set(http.keys) == ["address", "port", "bound"])
            let media = try #require(root["media"] as? [String: Any])
            #expect(
                Set(media.keys) == [
                    "listener", "advertised_addresses", "receive_batch_size", "gro_enabled", "gso_enabled",
                    "received", "sent", "drops", "receive_errors", "coalesced_reads",
                ]
            )
            let kinds: Set<String> = ["stun", "zrtp", "dtls", "turn_channel", "rtp", "rtcp", "unknown"]
            let received = try #require(media["received"] as? [String: [String: Any]])
            #expect(Set(received.keys) == kinds)
            #expect(received.values.allSatisfy { Set($0.keys) == ["packets", "bytes"] })
            let sent = try #require(media["sent"] as? [String: Any])
            #expect(Set(sent.keys) == kinds)
            let drops = try #require(media["drops"] as? [String: Any])
            #expect(
                Set(drops.keys)
                    == [
                        "empty", "unknown_protocol", "zrtp_unsupported", "turn_channel_unsupported", "no_session",
                        "unverified_rate_limit",
                    ]
            )
            // started_at is RFC 3339 UTC
            let startedAt = try #require(root["started_at"] as? String)
            #expect(try Date(startedAt, strategy: .iso8601) <= Date())
        }
    }

    @Test("GET / is an aligned plain-text page with the node's figures")
    func textPage() async throws {
        try await self.node.application.test(.router) { client in
            let response = try await client.execute(uri: "/", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/plain; charset=utf-8")
            let text = String(buffer: response.body)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.first?.hasPrefix("node            test-node") == true)
            for label in ["started", "cpu", "memory", "event loops", "http", "media", "advertised", "udp"] {
                #expect(lines.contains { $0.hasPrefix(label + " ") }, "missing \(label)")
            }
            // The traffic table: header and one row per kind, right-aligned to the same width.
            let table = lines.filter { line in
                ["kind ", "stun ", "rtp ", "total "].contains { line.hasPrefix($0) }
            }
            #expect(table.count == 4)
            #expect(Set(table.map(\.count)).count == 1, "columns are not aligned: \(table)")
            #expect(text.contains("no_session"))
            #expect(text.contains("(not listening)"))
        }
    }

    @Test("GET /metrics is valid Prometheus text with the node's metrics")
    func metrics() async throws {
        try await self.node.application.test(.router) { client in
            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == DashboardRoutes.prometheusContentType)
            let parsed = try PrometheusTextParser(String(buffer: response.body))
            #expect(parsed.types["braid_media_packets_received_total"] == "counter")
            #expect(parsed.types["braid_media_drops_total"] == "counter")
            #expect(parsed.types["braid_process_resident_memory_bytes"] == "gauge")
            #expect(parsed.types["braid_uptime_seconds"] == "gauge")
            #expect(parsed.value("braid_media_packets_received_total", ["kind": "rtp"]) == 0)
            #expect(parsed.value("braid_media_bytes_sent_total", ["kind": "turn_channel"]) == 0)
            #expect(parsed.value("braid_media_drops_total", ["reason": "no_session"]) == 0)
            #expect((parsed.value("braid_process_resident_memory_bytes") ?? 0) > 1_000_000)
            #expect((parsed.value("braid_uptime_seconds") ?? -1) >= 0)
            #expect(parsed.value("braid_node_info", ["node_id": "test-node", "version": BraidNodeVersion.string]) == 1)
        }
    }

    @Test("a known path with another method is 405 with Allow", arguments: [
        ("/healthz", HTTPRequest.Method.post), ("/metrics", .delete), ("/", .put), ("/api/v1/node", .patch),
    ])
    func methodNotAllowed(path: String, method: HTTPRequest.Method) async throws {
        try await self.node.application.test(.router) { client in
            let response = try await client.execute(uri: path, method: method)
            #expect(response.status == .methodNotAllowed)
            #expect(response.headers[.allow] == "GET, HEAD")
        }
    }

    @Test("HEAD is served for every GET route")
    func head() async throws {
        try await self.node.application.test(.router) { client in
            for path in ["/", "/api/v1/node", "/metrics", "/healthz"] {
                let response = try await client.execute(uri: path, method: .head)
                #expect(response.status == .ok, "\(path)")
            }
        }
    }

    @Test("unknown paths are 404")
    func notFound() async throws {
        try await self.node.application.test(.router) { client in
            for path in ["/nope", "/api/v1", "/api/v1/node/extra", "/metrics2"] {
                let response = try await client.execute(uri: path, method: .get)
                #expect(response.status == .notFound, "\(path)")
            }
        }
    }

    @Test("a small request body is ignored; an oversized one is 413")
    func bodies() async throws {
        try await self.node.application.test(.router) { client in
            let small = try await client.execute(
                uri: "/healthz",
                method: .get,
                body: ByteBuffer(repeating: 0x61, count: 100)
            )
            #expect(small.status == .ok)
            let large = try await client.execute(
                uri: "/healthz",
                method: .get,
                body: ByteBuffer(repeating: 0x61, count: DashboardRoutes.maximumRequestBodyBytes + 1)
            )
            #expect(large.status == .contentTooLarge)
        }
    }
}
