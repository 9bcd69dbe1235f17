import BraidNode
import BraidSFU
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// The rooms part of the dashboard without sockets: the documented JSON decodes, renders as text and feeds
/// the Prometheus gauges and counters. The end-to-end view with real peers is in BraidClientTests.
@Suite("Dashboard: rooms and forwarding")
struct ForwardingDashboardTests {
    /// The room of the example in NodeAPI.md.
    static let documentedRoom = """
        {
          "name": "lobby",
          "active_speakers": ["audio0"],
          "publishers": [
            {
              "id": "6c1f0e2a9b3d4c5e8f7a6b5c4d3e2f10", "participant": "6c1f0e2a9b3d4c5e8f7a6b5c4d3e2f10",
              "direction": "publish", "remote_address": "127.0.0.1:50312",
              "codecs": ["opus", "VP8"], "bitrate_in_bps": 412000, "bitrate_out_bps": 0,
              "packets_lost": 0, "loss_fraction": 0, "layers": { "0": "0", "1": "0" }, "sources": {},
              "nacks_received": 0, "nacks_sent": 0, "retransmissions": 0, "keyframe_requests": 1, "packets_dropped": 0
            }
          ],
          "subscribers": [
            {
              "id": "0a9b8c7d6e5f40312a3b4c5d6e7f8091", "participant": "5d2e1f0a9b8c47d6a5b4c3d2e1f0a9b8",
              "direction": "subscribe", "remote_address": "127.0.0.1:50314",
              "codecs": ["opus", "VP8"], "bitrate_in_bps": 0, "bitrate_out_bps": 410000,
              "packets_lost": 0, "loss_fraction": 0, "rtt_ms": 0.4, "estimate_bps": 2500000,
              "layers": { "0": "0", "1": "0" },
              "sources": {
                "0": { "publisher": "6c1f0e2a9b3d4c5e8f7a6b5c4d3e2f10", "mid": "0", "track": "3fa2c1d9e8b7a6f5/1" },
                "1": { "publisher": "6c1f0e2a9b3d4c5e8f7a6b5c4d3e2f10", "mid": "1", "track": "3fa2c1d9e8b7a6f5/2" }
              },
              "nacks_received": 0, "nacks_sent": 0, "retransmissions": 0, "keyframe_requests": 1, "packets_dropped": 0
            }
          ],
          "tracks": [
            {
              "track_id": "audio0", "mid": "0", "kind": "audio", "publisher": "6c1f0e2a9b3d4c5e8f7a6b5c4d3e2f10",
              "id": "3fa2c1d9e8b7a6f5/1", "consumers": 1, "stored_bytes": 99328, "audio_level": 38.5,
              "layers": [ { "ssrc": 2864434397, "bitrate_bps": 33000, "packets": 2500 } ]
            },
            {
              "track_id": "video0", "mid": "1", "kind": "video", "publisher": "6c1f0e2a9b3d4c5e8f7a6b5c4d3e2f10",
              "id": "3fa2c1d9e8b7a6f5/2", "consumers": 1, "stored_bytes": 198656,
              "layers": [ { "ssrc": 305419896, "bitrate_bps": 380000, "packets": 2620, "width": 320, "height": 180 } ]
            }
          ]
        }
        """

    let node: NodeServer

    init() throws {
        var logger = Logger(label: "braid.node.test")
        logger.logLevel = .warning
        self.node = try NodeServer(configuration: try testConfiguration(), logger: logger)
    }

    func statusWithRoom() async throws -> NodeStatus {
        let room = try JSONDecoder().decode(SFURoomStatus.self, from: Data(Self.documentedRoom.utf8))
        var sent = WebRTCSendCounters()
        sent.rtpSent = PacketCount(packets: 5120, bytes: 2_516_480)
        sent.rtcpSent = PacketCount(packets: 96, bytes: 7040)
        var (status, _) = await self.node.monitor.status()
        status.rooms = [room]
        status.forwarding = NodeStatus.ForwardingSection(rooms: [room], sent: sent)
        return status
    }

    @Test("The documented room decodes, counts, and survives a JSON round trip inside the node status")
    func documentedJSON() async throws {
        let status = try await self.statusWithRoom()
        let room = try #require(status.rooms.first)
        #expect(room.publishers.first?.remoteAddress == "127.0.0.1:50312")
        #expect(room.subscribers.first?.estimateBps == 2_500_000)
        #expect(room.subscribers.first?.participant == "5d2e1f0a9b8c47d6a5b4c3d2e1f0a9b8")
        #expect(room.subscribers.first?.sources["1"]?.publisher == "6c1f0e2a9b3d4c5e8f7a6b5c4d3e2f10")
        #expect(room.tracks.map(\.kind) == [.audio, .video])
        #expect(room.tracks.last?.layers.first?.width == 320)
        #expect(status.forwarding.rooms == 1 && status.forwarding.publishers == 1)
        #expect(status.forwarding.subscribers == 1 && status.forwarding.tracks == 2)

        let data = try JSONEncoder().encode(status)
        #expect(try JSONDecoder().decode(NodeStatus.self, from: data) == status)
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let forwarding = try #require(root["forwarding"] as? [String: Any])
        #expect(Set(forwarding.keys) == ["rooms", "publishers", "subscribers", "tracks", "sent"])
        let rooms = try #require(root["rooms"] as? [[String: Any]])
        let peer = try #require((rooms.first?["subscribers"] as? [[String: Any]])?.first)
        #expect(peer["remote_address"] as? String == "127.0.0.1:50314")
        #expect(peer["bitrate_out_bps"] as? Int == 410_000)
    }

    @Test("The text page has a rooms section: one line per peer, per track and per layer")
    func textRooms() async throws {
        let text = try await self.statusWithRoom().renderText()
        let lines = text.split(separator: "\n").map(String.init)
        let summary = try #require(lines.first { $0.hasPrefix("rooms ") })
        #expect(summary.contains("publishers 1") && summary.contains("subscribers 1") && summary.contains("tracks 2"))
        #expect(summary.contains("sent rtp 5120"))
        let header = try #require(lines.first { $0.hasPrefix("room lobby") })
        #expect(header.contains("1 publishers, 1 subscribers, 2 tracks") && header.contains("speakers audio0"))
        let publisher = try #require(lines.first { $0.contains("6c1f0e2a9b3d4c5e8f7a6b5c4d3e2f10  127.0.0.1") })
        #expect(publisher.contains("publish") && publisher.contains("opus,VP8") && publisher.contains("in 412.0 kbps"))
        let subscriber = try #require(lines.first { $0.contains("0a9b8c7d6e5f40312a3b4c5d6e7f8091") })
        #expect(subscriber.contains("subscribe") && subscriber.contains("127.0.0.1:50314"))
        #expect(subscriber.contains("out 410.0 kbps") && subscriber.contains("rtt 0.4 ms"))
        #expect(subscriber.contains("est 2.5 Mbps"))
        #expect(subscriber.contains("layers 0:0 1:0"))
        #expect(subscriber.contains("participant 5d2e1f0a9b8c47d6a5b4c3d2e1f0a9b8"))
        #expect(!publisher.contains("participant"))
        #expect(lines.contains { $0.contains("track video0 mid 1 video from 6c1f0e2a9b3d4c5e8f7a6b5c4d3e2f10") })
        #expect(lines.contains { $0.contains("track audio0") && $0.contains("level -38.5 dBov") })
        #expect(lines.contains { $0.contains("layer -  ssrc 305419896  380.0 kbps  2620 packets  320x180") })
    }

    @Test("The forwarding gauges and counters follow the status; counters never go down")
    func metrics() async throws {
        var status = try await self.statusWithRoom()
        let metrics = NodeMetrics(nodeID: "test-node")
        metrics.publish(status: status, traffic: MediaTrafficSnapshot())
        var parsed = try PrometheusTextParser(String(decoding: metrics.exposition(), as: UTF8.self))
        #expect(parsed.types["braid_rooms"] == "gauge" && parsed.types["braid_forwarded_packets_total"] == "counter")
        #expect(parsed.value("braid_rooms") == 1)
        #expect(parsed.value("braid_publishers") == 1 && parsed.value("braid_subscribers") == 1)
        #expect(parsed.value("braid_forwarded_packets_total", ["kind": "rtp"]) == 5120)
        #expect(parsed.value("braid_forwarded_bytes_total", ["kind": "rtcp"]) == 7040)
        #expect(parsed.value("braid_forwarding_drops_total") == 0)

        // The room empties and the media socket reopens (totals start again from a smaller value).
        status.rooms = []
        var sent = WebRTCSendCounters()
        sent.rtpSent = PacketCount(packets: 10, bytes: 1000)
        status.forwarding = NodeStatus.ForwardingSection(rooms: [], sent: sent)
        metrics.publish(status: status, traffic: MediaTrafficSnapshot())
        parsed = try PrometheusTextParser(String(decoding: metrics.exposition(), as: UTF8.self))
        #expect(parsed.value("braid_rooms") == 0 && parsed.value("braid_subscribers") == 0)
        #expect(parsed.value("braid_forwarded_packets_total", ["kind": "rtp"]) == 5120)
    }

    @Test("GET /api/v1/rooms is an empty array and an unknown room is 404 on an idle node; other methods 405")
    func roomRoutes() async throws {
        try await self.node.application.test(.router) { client in
            let all = try await client.execute(uri: "/api/v1/rooms", method: .get)
            #expect(all.status == .ok && all.headers[.contentType] == "application/json")
            #expect(try JSONDecoder().decode([SFURoomStatus].self, from: Data(all.body.readableBytesView)).isEmpty)
            #expect(try await client.execute(uri: "/api/v1/rooms/lobby", method: .get).status == .notFound)
            #expect(try await client.execute(uri: "/api/v1/rooms", method: .post).status == .methodNotAllowed)
        }
    }
}
