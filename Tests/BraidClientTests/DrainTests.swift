import BraidCluster
import BraidNode
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

@testable import BraidClient

/// Two in-process nodes of one in-memory cluster, each run by its own task, so that a test sees when a
/// node's run ends on its own (after a drain started by `POST /api/v1/drain`).
private final class DrainPair: Sendable {
    struct Member: Sendable {
        let server: NodeServer
        let group: ServiceGroup
        let run: Task<Void, any Error>
        let httpPort: Int
        var base: String { "http://127.0.0.1:\(self.httpPort)" }
    }

    let cluster = InMemoryCluster()
    let a: Member
    let b: Member

    init(drainTimeoutSeconds: Int) async throws {
        func start(_ name: String, cluster: InMemoryCluster) async throws -> Member {
            let configuration = try NodeConfiguration.resolve(
                flags: NodeConfigurationLayer(
                    nodeID: name, httpPort: 0, mediaPort: 0, eventLoopThreads: 1,
                    clusterSecret: "drain test secret 0123", clusterMeshPort: 0, adminPort: 0,
                    drainTimeoutSeconds: drainTimeoutSeconds),
                environment: [:])
            var logger = Logger(label: "braid.drain.test.\(name)")
            logger.logLevel = .warning
            let server = try NodeServer(
                configuration: configuration, logger: logger, clusterStore: InMemoryClusterStore(cluster: cluster))
            let group = server.makeServiceGroup(gracefulShutdownSignals: [])
            let run = Task { try await group.run() }
            _ = try await server.media.waitUntilBound()
            _ = try await server.mesh!.waitUntilBound()
            var waited = 0
            while server.httpAddress == nil || server.operatorAddress == nil, waited < 1000 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            return Member(server: server, group: group, run: run, httpPort: try #require(server.httpAddress?.port))
        }
        self.a = try await start("a", cluster: self.cluster)
        self.b = try await start("b", cluster: self.cluster)
    }

    func stop() async {
        for member in [self.a, self.b] {
            await member.group.triggerGracefulShutdown()
            try? await member.run.value
            try? await member.server.shutdownEventLoops()
        }
    }
}

@Suite("Graceful drain", .serialized)
struct DrainTests {
    @Test(
        "POST /api/v1/drain on A: the call's publisher and subscriber hear BYE and move to B (playing again within 3 s), a new WHIP on A gets 503 or 307, and A's run ends within its drain time"
    )
    func drainMovesTheCallToAnotherNode() async throws {
        let drainSeconds = 5
        let nodes = try await DrainPair(drainTimeoutSeconds: drainSeconds)
        do {
            let a = nodes.a, b = nodes.b
            #expect(
                try await eventually(within: 6) {
                    for member in [a, b] {
                        guard let status = await member.server.mesh?.status(), status.links.count == 1,
                            status.links.allSatisfy({ $0.up })
                        else { return false }
                    }
                    return true
                })
            let group = MultiThreadedEventLoopGroup.singleton
            let media = try forwardingMedia(videoFrames: 60)
            var options = forwardingOptions
            // A long silence timeout: moving within 3 s can only come from the node's goodbye.
            options.failover = FailoverOptions(fallbacks: [b.base], lossTimeout: .seconds(10))
            let publisher = try await BraidPublisher.publish(
                to: "\(a.base)/whip/drain", audio: .preEncoded(media), video: .preEncoded(media),
                options: options, group: group)
            let subscriber = try await BraidSubscriber.subscribe(
                to: "\(a.base)/whep/drain", audioTracks: 1, videoTracks: 1, options: options, group: group)
            #expect(
                try await eventually(within: 10) {
                    guard let stats = await subscriber.statistics() else { return false }
                    return (stats.video.first?.framesDecodable ?? 0) >= 15 && (stats.audio.first?.packetsReceived ?? 0) >= 25
                })
            let before = try #require(await subscriber.statistics())
            #expect(before.reconnects == 0)
            #expect(a.server.monitor.media.drain.isDraining == false)

            // The operator drains A.
            let http = WHTTPClient(group: group)
            let operatorPort = try #require(a.server.operatorAddress?.port)
            let drainedAt = ContinuousClock.now
            let accepted = try await http.request(
                .post, HTTPEndpoint(host: "127.0.0.1", port: operatorPort, path: "/api/v1/drain"))
            #expect(accepted.status == 202, "\(accepted.body)")

            // While A drains: new sessions are sent elsewhere or refused, and A says it is draining.
            let refused = try await http.request(
                .post, HTTPEndpoint(host: "127.0.0.1", port: a.httpPort, path: "/whip/drain"),
                headers: [("Content-Type", "application/sdp")], body: "v=0\r\n")
            #expect(refused.status == 503 || refused.status == 307, "\(refused.status) \(refused.body)")
            if refused.status == 503 {
                #expect(refused.header("Retry-After") == "\(drainSeconds)")
            } else {
                #expect(refused.header("Location") == "\(b.base)/whip/drain")
            }
            let health = try await http.request(.get, HTTPEndpoint(host: "127.0.0.1", port: a.httpPort, path: "/healthz"))
            #expect(health.status == 503)
            #expect(health.body == "draining\n")
            let node = try await http.request(
                .get, HTTPEndpoint(host: "127.0.0.1", port: operatorPort, path: "/api/v1/node"))
            let document = try JSONSerialization.jsonObject(with: Data(node.body.utf8)) as? [String: Any]
            let draining = document?["draining"] as? [String: Any]
            #expect(draining?["trigger"] as? String == "request")
            #expect(draining?["timeout_seconds"] as? Int == drainSeconds)

            // The subscriber heard the goodbye and plays again, from B.
            let frames = before.video[0].framesDecodable
            let playing = try await eventually(within: 6) {
                guard let stats = await subscriber.statistics(), stats.reconnects == 1 else { return false }
                return stats.video[0].framesDecodable >= frames + 15
            }
            let resumed = ContinuousClock.now - drainedAt
            #expect(playing)
            #expect(resumed < .seconds(3), "playing again at B \(resumed) after the drain started")
            let after = try #require(await subscriber.statistics())
            #expect(after.endpoint == "\(b.base)/whep/drain")
            let reason = after.lastLossReason ?? "none"
            #expect(reason.contains("BYE") || reason.contains("close_notify"), "lost because: \(reason)")
            let published = await publisher.statistics()
            #expect(published.reconnects == 1)
            #expect(published.endpoint == "\(b.base)/whip/drain")

            // Both left A, so A's drain ends early, and with it A's run: no shutdown was triggered here.
            let ended = try await eventually(within: Double(drainSeconds) + 3) { a.server.media.localAddress == nil }
            let exited = ContinuousClock.now - drainedAt
            #expect(ended, "A still runs \(exited) after the drain started")
            #expect(exited < .seconds(drainSeconds), "A stopped \(exited) after the drain started")
            try await a.run.value
            print(
                "drain: subscriber playing again at B \(resumed) after POST /api/v1/drain (\(reason)); "
                    + "A's run ended after \(exited); a new WHIP on A got \(refused.status)")

            // And the call goes on at B.
            let settled = after.video[0].framesDecodable
            #expect(
                try await eventually(within: 5) {
                    (await subscriber.statistics()?.video[0].framesDecodable ?? 0) >= settled + 30
                })
            try await subscriber.close()
            try await publisher.close()
        } catch {
            await nodes.stop()
            throw error
        }
        await nodes.stop()
    }

    @Test("A graceful shutdown drains: a connected peer without failover is told the session ended, and the run ends within the drain time")
    func shutdownTellsPeersWithoutFailover() async throws {
        let drainSeconds = 2
        let nodes = try await DrainPair(drainTimeoutSeconds: drainSeconds)
        do {
            let a = nodes.a
            let group = MultiThreadedEventLoopGroup.singleton
            let media = try forwardingMedia(videoFrames: 60)
            let publisher = try await BraidPublisher.publish(
                to: "\(a.base)/whip/shutdown", audio: .preEncoded(media), video: .preEncoded(media),
                options: forwardingOptions, group: group)
            #expect(
                try await eventually(within: 5) { await publisher.statistics().transport.state == "connected" })
            let stoppedAt = ContinuousClock.now
            await a.group.triggerGracefulShutdown()
            #expect(
                try await eventually(within: 2) { await publisher.statistics().transport.endedByNode != nil },
                "the publisher was not told")
            let told = await publisher.statistics().transport
            #expect(told.state.hasPrefix("ended: "), "\(told.state)")
            // The publisher stays (it has nowhere to go): the node waits out its drain time, then stops.
            try await a.run.value
            let stopped = ContinuousClock.now - stoppedAt
            #expect(stopped >= .seconds(drainSeconds) - .milliseconds(200), "stopped after \(stopped)")
            #expect(stopped < .seconds(drainSeconds + 2), "stopped after \(stopped)")
            try? await publisher.close()
        } catch {
            await nodes.stop()
            throw error
        }
        await nodes.stop()
    }
}
