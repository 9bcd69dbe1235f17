import BraidNode
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

/// A whole node on loopback: real UDP datagrams in, real HTTP out.
@Suite("Live node on loopback", .serialized)
struct LiveNodeTests {
    /// Polls `/api/v1/node` until `done` holds or 10 s pass; returns the last status.
    static func poll(
        _ running: RunningNode,
        until done: @escaping @Sendable (NodeStatus) -> Bool
    ) async throws -> NodeStatus {
        try await withTimeout(10, "counters to settle") {
            while true {
                let status = try await running.status()
                if done(status) { return status }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test("each kind of datagram is counted by kind and dropped for the right reason")
    func classifiesAndCounts() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            // The ports are the real, ephemeral ones.
            let status0 = try await running.status()
            #expect(status0.http.bound && status0.http.port == running.httpPort && status0.http.port != 0)
            #expect(status0.media.listener.bound && status0.media.listener.port == running.mediaAddress.port)
            #expect(status0.media.listener.port != 0)

            let sender = try await UDPSender()
            let rtp = Datagrams.rtp(payload: 100)
            let datagrams: [[UInt8]] = [
                Datagrams.stunBindingRequest, Datagrams.dtlsClientHello, rtp, rtp,
                Datagrams.rtcpSenderReport, Datagrams.garbage, Datagrams.zrtp, Datagrams.turnChannelData, [],
            ]
            for datagram in datagrams { try await sender.send(datagram, to: running.mediaAddress) }
            try await sender.close()

            let status = try await Self.poll(running) { status in
                status.media.received.values.reduce(0) { $0 + $1.packets } >= UInt64(datagrams.count)
            }
            let received = status.media.received
            #expect(received["stun"] == PacketCount(packets: 1, bytes: 20))
            #expect(received["dtls"] == PacketCount(packets: 1, bytes: UInt64(Datagrams.dtlsClientHello.count)))
            #expect(received["rtp"] == PacketCount(packets: 2, bytes: UInt64(2 * rtp.count)))
            #expect(received["rtcp"] == PacketCount(packets: 1, bytes: 28))
            #expect(received["zrtp"] == PacketCount(packets: 1, bytes: UInt64(Datagrams.zrtp.count)))
            #expect(received["turn_channel"] == PacketCount(packets: 1, bytes: 8))
            #expect(received["unknown"] == PacketCount(packets: 2, bytes: 4))  // garbage + the empty datagram
            #expect(
                status.media.drops == [
                    "no_session": 5, "unknown_protocol": 1, "zrtp_unsupported": 1,
                    "turn_channel_unsupported": 1, "empty": 1, "unverified_rate_limit": 0,
                ]
            )
            #expect(status.media.sent.values.allSatisfy { $0 == PacketCount() })
            #expect(status.media.receiveErrors == 0)

            // The same counts on /metrics, over real HTTP.
            let metrics = try await running.get("/metrics")
            let parsed = try PrometheusTextParser(String(buffer: try #require(metrics.body)))
            #expect(parsed.value("braid_media_packets_received_total", ["kind": "rtp"]) == 2)
            #expect(parsed.value("braid_media_bytes_received_total", ["kind": "rtp"]) == Double(2 * rtp.count))
            #expect(parsed.value("braid_media_drops_total", ["reason": "no_session"]) == 5)
            #expect(parsed.value("braid_media_drops_total", ["reason": "empty"]) == 1)
            // A second scrape adds nothing that did not arrive (counters are exported by difference).
            let again = try PrometheusTextParser(String(buffer: try #require(try await running.get("/metrics").body)))
            #expect(again.value("braid_media_packets_received_total", ["kind": "rtp"]) == 2)

            // And on the text page.
            let page = String(buffer: try #require(try await running.get("/").body))
            #expect(page.contains("127.0.0.1:\(running.mediaAddress.port ?? -1)"))
            #expect(page.split(separator: "\n").contains { $0.hasPrefix("no_session ") && $0.hasSuffix(" 5") })
        }
    }

    @Test("a burst of RTP, sent as GSO writes and read with GRO where supported, is counted in full")
    func burst() async throws {
        try await withRunningNode(try testConfiguration(batch: 32)) { running in
            let sender = try await UDPSender()
            let datagram = Datagrams.rtp(payload: 1188)  // 1200 bytes
            let rounds = 20
            let perWrite = 25
            var expected = 0
            var expectedBytes = 0
            if System.supportsUDPSegmentationOffload {
                for round in 0..<rounds {
                    // Let the node catch up every 5 writes (~130 datagrams) so the kernel queue never overflows.
                    if round % 5 == 0 {
                        let sent = UInt64(expected)
                        _ = try await Self.poll(running) { ($0.media.received["rtp"]?.packets ?? 0) >= sent }
                    }
                    // 25 full segments and one short one: the split must handle a short last segment.
                    let tail = Datagrams.rtp(payload: 300)
                    let write = [UInt8]((0..<perWrite).flatMap { _ in datagram }) + tail
                    try await sender.sendSegmented(write, segmentSize: datagram.count, to: running.mediaAddress)
                    expected += perWrite + 1
                    expectedBytes += write.count
                }
            } else {
                for index in 0..<(rounds * perWrite) {
                    if index % 100 == 0 {
                        let sent = UInt64(expected)
                        _ = try await Self.poll(running) { ($0.media.received["rtp"]?.packets ?? 0) >= sent }
                    }
                    try await sender.send(datagram, to: running.mediaAddress)
                    expected += 1
                    expectedBytes += datagram.count
                }
            }
            try await sender.close()
            let target = UInt64(expected)
            let status: NodeStatus
            do {
                status = try await Self.poll(running) { ($0.media.received["rtp"]?.packets ?? 0) >= target }
            } catch {
                let last = try await running.status()
                Issue.record("expected \(target) RTP datagrams, counted \(last.media.received["rtp"]?.packets ?? 0)")
                throw error
            }
            #expect(status.media.received["rtp"] == PacketCount(packets: target, bytes: UInt64(expectedBytes)))
            // Beyond limits.unverified_packets_per_second from the one source, drops count as unverified_rate_limit.
            let dropped = (status.media.drops["no_session"] ?? 0) + (status.media.drops["unverified_rate_limit"] ?? 0)
            #expect(dropped == target)
            #expect(status.media.received["unknown"]?.packets == 0)
            if status.media.groEnabled && System.supportsUDPSegmentationOffload {
                // Loopback delivers a GSO write to a GRO socket as one coalesced read.
                #expect(status.media.coalescedReads > 0)
            }
        }
    }

    @Test("over real HTTP: an oversized body is 413, a wrong method 405, and the server keeps serving")
    func httpErrorsLive() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let large = try await TestClient.withClient(host: "127.0.0.1", port: running.httpPort) { client in
                try await client.execute(
                    .init(
                        "/api/v1/node",
                        method: .get,
                        body: ByteBuffer(repeating: 0x61, count: 4 * DashboardRoutes.maximumRequestBodyBytes)
                    )
                )
            }
            #expect(large.status == .contentTooLarge)
            let post = try await TestClient.withClient(host: "127.0.0.1", port: running.httpPort) { client in
                try await client.post("/healthz", body: ByteBuffer(string: "x"))
            }
            #expect(post.status == .methodNotAllowed)
            #expect(post.headers[.allow] == "GET, HEAD")
            let health = try await running.get("/healthz")
            #expect(health.status == .ok)
        }
    }

    @Test("graceful shutdown stops the service group and releases both ports")
    func gracefulShutdownReleasesPorts() async throws {
        let (httpPort, mediaPort) = try await withRunningNode(try testConfiguration()) { running in
            (running.httpPort, running.mediaAddress.port ?? 0)
        }
        // withRunningNode returned only after the group finished; both ports can be bound again.
        try await Self.expectPortsFree(httpPort: httpPort, mediaPort: mediaPort)
    }

    @Test("cancelling the task that runs the node also releases both ports")
    func cancellationReleasesPorts() async throws {
        let node = try NodeServer(configuration: try testConfiguration())
        let group = node.makeServiceGroup(gracefulShutdownSignals: [])
        let task = Task { try await group.run() }
        let media = try await withTimeout(10, "bind") { try await node.media.waitUntilBound() }
        while node.httpAddress == nil { try await Task.sleep(for: .milliseconds(10)) }
        let httpPort = try #require(node.httpAddress?.port)
        task.cancel()
        _ = try? await withTimeout(10, "service group to end after cancellation") { try await task.value }
        #expect(node.media.localAddress == nil)
        try await Self.expectPortsFree(httpPort: httpPort, mediaPort: try #require(media.port))
        try await node.shutdownEventLoops()
    }

    @Test("a port already in use makes the node fail to start, with the bind error")
    func portInUse() async throws {
        let blocker = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(blocker.localAddress?.port)
        let configuration = try NodeConfiguration.resolve(
            flags: NodeConfigurationLayer(httpPort: 0, mediaPort: port, eventLoopThreads: 1, adminPort: 0),
            environment: [:]
        )
        let node = try NodeServer(configuration: configuration)
        await #expect(throws: (any Error).self) {
            try await withTimeout(10, "failing start") {
                try await node.makeServiceGroup(gracefulShutdownSignals: []).run()
            }
        }
        await #expect(throws: MediaServiceError.notRunning) { try await node.media.waitUntilBound() }
        try await blocker.close()
        try await node.shutdownEventLoops()
    }

    static func expectPortsFree(httpPort: Int, mediaPort: Int) async throws {
        let udp = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: mediaPort).get()
        #expect(udp.localAddress?.port == mediaPort)
        try await udp.close()
        let tcp = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: httpPort).get()
        #expect(tcp.localAddress?.port == httpPort)
        try await tcp.close()
    }
}
