import BraidCluster
import BraidMesh
import BraidNode
import BraidSFU
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

@testable import BraidClient

/// Nodes of one cluster in this process: real relay sockets on loopback, real SRTP links, an in-memory
/// cluster store shared between them (the etcd-backed store is tested against a real etcd in
/// BraidClusterTests), and link impairments emulated in user space on the sending side.
final class InProcessMesh: Sendable {
    struct Member: Sendable {
        let name: String
        let server: NodeServer
        let group: ServiceGroup
        let httpPort: Int
        var base: String { "http://127.0.0.1:\(self.httpPort)" }
    }

    let cluster = InMemoryCluster()
    let members: [Member]
    private let tasks: [Task<Void, any Error>]

    /// Starts `names` with, for each node, the one-way impairments of what it sends to each peer.
    init(names: [String], emulation: [String: [String: LinkProfile]] = [:], regions: [String: String] = [:]) async throws {
        var members: [Member] = []
        var tasks: [Task<Void, any Error>] = []
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("braid-mesh-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for name in names {
            var emulationFile: String?
            if let profiles = emulation[name] {
                let url = directory.appendingPathComponent("\(name).json")
                try JSONEncoder().encode(profiles).write(to: url)
                emulationFile = url.path
            }
            let configuration = try NodeConfiguration.resolve(
                flags: NodeConfigurationLayer(
                    nodeID: name, httpPort: 0, mediaPort: 0, eventLoopThreads: 1, clusterSecret: "mesh test secret 0123",
                    clusterRegion: regions[name], clusterMeshPort: 0, clusterLinkEmulation: emulationFile, adminPort: 0,
                    drainTimeoutSeconds: 2),
                environment: [:])
            var logger = Logger(label: "braid.mesh.test.\(name)")
            logger.logLevel = .warning
            let server = try NodeServer(
                configuration: configuration, logger: logger, clusterStore: InMemoryClusterStore(cluster: self.cluster))
            let group = server.makeServiceGroup(gracefulShutdownSignals: [])
            tasks.append(Task { try await group.run() })
            _ = try await server.media.waitUntilBound()
            _ = try await server.mesh!.waitUntilBound()
            var waited = 0
            while server.httpAddress == nil, waited < 1000 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            members.append(Member(name: name, server: server, group: group, httpPort: try #require(server.httpAddress?.port)))
        }
        self.members = members
        self.tasks = tasks
    }

    subscript(name: String) -> Member { self.members.first { $0.name == name }! }

    /// Stops one node gracefully (it leaves the cluster) and waits for it.
    func stop(_ name: String) async throws {
        guard let index = self.members.firstIndex(where: { $0.name == name }) else { return }
        await self.members[index].group.triggerGracefulShutdown()
        try? await self.tasks[index].value
        try await self.members[index].server.shutdownEventLoops()
    }

    /// Cancels one node's run (no graceful phase: no drain, no leave) and reports whether it ended within
    /// `seconds`.
    func cancel(_ name: String, within seconds: Double) async throws -> Bool {
        guard let index = self.members.firstIndex(where: { $0.name == name }) else { return false }
        let task = self.tasks[index]
        task.cancel()
        let ended = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                _ = try? await task.value
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if ended { try await self.members[index].server.shutdownEventLoops() }
        return ended
    }

    func stopAll() async {
        for (index, member) in self.members.enumerated() {
            await member.group.triggerGracefulShutdown()
            try? await self.tasks[index].value
            try? await member.server.shutdownEventLoops()
        }
    }
}

@Suite("Nodes relaying tracks over the mesh", .serialized)
struct MeshRelayTests {
    /// A–C direct is slow (75 ms each way); A–B and B–C are 10 ms each way.
    static let triangle: [String: [String: LinkProfile]] = [
        "a": ["b": LinkProfile(latencyMs: 10), "c": LinkProfile(latencyMs: 75)],
        "b": ["a": LinkProfile(latencyMs: 10), "c": LinkProfile(latencyMs: 10)],
        "c": ["a": LinkProfile(latencyMs: 75), "b": LinkProfile(latencyMs: 10)],
    ]

    @Test("A track published on node A plays at node C via B, one copy per link, and keeps playing when B goes")
    func relayAlongTheFastestPathAndReroute() async throws {
        let mesh = try await InProcessMesh(
            names: ["a", "b", "c"], emulation: Self.triangle, regions: ["a": "us-east", "b": "eu-west", "c": "ap-east"])
        do {
            let a = mesh["a"], b = mesh["b"], c = mesh["c"]
            // Every node measures its links, and routes on all six, before media starts (other nodes'
            // links reach a scheduler through the store about a second after they are measured).
            let measured = try await eventually(within: 6) {
                for member in [a, b, c] {
                    guard let status = await member.server.mesh?.status(), status.links.count == 2,
                        status.links.allSatisfy({ $0.up && $0.rttMs != nil }), status.graph.count == 6
                    else { return false }
                }
                return true
            }
            #expect(measured)
            let media = try forwardingMedia(videoFrames: 60)
            let group = MultiThreadedEventLoopGroup.singleton
            let publisher = try await BraidPublisher.publish(
                to: "\(a.base)/whip/mesh", audio: .preEncoded(media), video: .preEncoded(media), options: forwardingOptions,
                group: group)
            var subscribers: [BraidSubscriber] = []
            for _ in 0..<3 {
                subscribers.append(
                    try await BraidSubscriber.subscribe(
                        to: "\(c.base)/whep/mesh", audioTracks: 1, videoTracks: 1, options: forwardingOptions, group: group))
            }
            let all = subscribers
            @Sendable func playing(frames: Int, packets: Int) async throws -> Bool {
                for subscriber in all {
                    guard let stats = await subscriber.statistics(), stats.video.count == 1, stats.audio.count == 1,
                        stats.video[0].framesDecodable >= frames, stats.audio[0].packetsReceived >= packets
                    else { return false }
                }
                return true
            }
            #expect(try await eventually(within: 10) { try await playing(frames: 10, packets: 25) })

            // C pulls both tracks from B, B from A; A sends C nothing directly.
            let statusC = try #require(await c.server.mesh?.status())
            #expect(statusC.remoteTracks.count == 2)
            #expect(statusC.remoteTracks.allSatisfy { $0.path == ["a", "b", "c"] && $0.pulledFrom == "b" }, "\(statusC.remoteTracks)")
            let statusA = try #require(await a.server.mesh?.status())
            let statusB = try #require(await b.server.mesh?.status())
            #expect(statusA.links.first { $0.peerName == "b" }?.relayed.count == 2)
            #expect(statusA.links.first { $0.peerName == "c" }?.relayed.isEmpty == true)
            // One copy per link although three subscribers watch on C.
            #expect(statusB.links.first { $0.peerName == "c" }?.relayed.count == 2)

            // Placement: a client that says it is in eu-west is sent to B.
            let dashboard = NodeDashboard(port: a.httpPort)
            let placed = try await dashboard.get("/api/v1/placement?region=eu-west")
            #expect(placed.status == 200 && placed.body.contains("\"name\" : \"b\""), "\(placed.body)")

            // A WHEP request that says where the client is goes to the better node with a 307 (RFC 9725
            // §4.5); one already at the right node is served there.
            let redirected = try await dashboard.post(
                "/whep/mesh?region=eu-west", contentType: "application/sdp", body: "v=0\r\n")
            #expect(redirected.status == 307)
            #expect(
                redirected.headers.first { $0.name.lowercased() == "location" }?.value
                    == "\(b.base)/whep/mesh?region=eu-west", "\(redirected.headers)")
            // BraidClient follows it: a subscriber that asks A from eu-west plays from B.
            let redirectedSubscriber = try await BraidSubscriber.subscribe(
                to: "\(a.base)/whep/mesh?region=eu-west", audioTracks: 1, videoTracks: 1, options: forwardingOptions,
                group: group)
            #expect(try await eventually(within: 8) {
                (await redirectedSubscriber.statistics()?.video.first?.framesDecodable ?? 0) >= 5
            })
            #expect(await b.server.media.sessions.statuses().contains { $0.direction == .subscribe })
            try await redirectedSubscriber.close()
            let served = try await NodeDashboard(port: b.httpPort).post(
                "/whep/mesh?region=eu-west", contentType: "application/sdp", body: "v=0\r\n")
            #expect(served.status == 400, "an unanswerable offer, served by B itself: \(served.status)")

            let metrics = String(decoding: await b.server.monitor.metricsExposition(), as: UTF8.self)
            #expect(metrics.contains("braid_mesh_link_up{peer=\"c\"} 1"), "\(metrics)")
            #expect(metrics.contains("braid_mesh_link_rtt_seconds{peer=\"a\"}"))
            #expect(metrics.contains("braid_mesh_link_relayed_tracks{peer=\"c\"} 2"))

            // B goes away: C reroutes over the direct link and its subscribers keep playing.
            let before = await all.asyncMap { await $0.statistics()?.video.first?.framesDecodable ?? 0 }
            let stoppedAt = ContinuousClock.now
            try await mesh.stop("b")
            let resumed = try await eventually(within: 6) {
                let now = await all.asyncMap { await $0.statistics()?.video.first?.framesDecodable ?? 0 }
                return zip(now, before).allSatisfy { $0 >= $1 + 15 }
            }
            let gap = ContinuousClock.now - stoppedAt
            #expect(resumed)
            #expect(gap < .seconds(4), "video resumed \(gap) after B stopped")
            let rerouted = try #require(await c.server.mesh?.status())
            #expect(rerouted.remoteTracks.allSatisfy { $0.pulledFrom == "a" }, "\(rerouted.remoteTracks)")

            for subscriber in subscribers { try await subscriber.close() }
            try await publisher.close()
        } catch {
            await mesh.stopAll()
            throw error
        }
        await mesh.stopAll()
    }
}

@Suite("A mesh node's run cancelled", .serialized)
struct MeshCancellationTests {
    @Test("Cancelling a mesh node's run (no graceful shutdown) ends it promptly; the other node carries on")
    func cancelledRunEnds() async throws {
        let mesh = try await InProcessMesh(names: ["a", "b"])
        let started = ContinuousClock.now
        let ended = try await mesh.cancel("a", within: 5)
        #expect(ended, "node a's run did not end within 5 s of cancellation")
        print("mesh cancel: node a's run ended \(ContinuousClock.now - started) after cancellation")
        // b still answers.
        let health = try await NodeDashboard(port: mesh["b"].httpPort).get("/healthz")
        #expect(health.status == 200)
        await mesh.stopAll()
    }
}

@Suite("A mesh without its cluster store", .serialized)
struct MeshDegradedStoreTests {
    @Test("When the store is lost, relayed media keeps flowing and the dashboard says degraded; it recovers")
    func storeLostWhileRunning() async throws {
        let mesh = try await InProcessMesh(names: ["a", "b"])
        do {
            let a = mesh["a"], b = mesh["b"]
            let media = try forwardingMedia(videoFrames: 60)
            let group = MultiThreadedEventLoopGroup.singleton
            let publisher = try await BraidPublisher.publish(
                to: "\(a.base)/whip/store", audio: .preEncoded(media), video: .preEncoded(media),
                options: forwardingOptions, group: group)
            let subscriber = try await BraidSubscriber.subscribe(
                to: "\(b.base)/whep/store", audioTracks: 1, videoTracks: 1, options: forwardingOptions, group: group)
            @Sendable func frames() async -> Int { await subscriber.statistics()?.video.first?.framesDecodable ?? 0 }
            #expect(try await eventually(within: 10) { await frames() >= 10 })

            mesh.cluster.setReachable(false)
            let degraded = try await eventually(within: 5) {
                await b.server.mesh?.status()?.store.hasPrefix("degraded") == true
            }
            #expect(degraded)
            let before = await frames()
            #expect(try await eventually(within: 3) { await frames() >= before + 20 }, "media stopped with the store")

            mesh.cluster.setReachable(true)
            #expect(try await eventually(within: 5) { await b.server.mesh?.status()?.store == "healthy" })
            try await subscriber.close()
            try await publisher.close()
        } catch {
            await mesh.stopAll()
            throw error
        }
        await mesh.stopAll()
    }
}

extension Array where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
