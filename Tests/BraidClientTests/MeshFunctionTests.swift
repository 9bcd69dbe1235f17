import BraidCluster
import BraidNode
import Foundation
import NIOPosix
import Testing

@testable import BraidClient

@Suite("Edge functions placed across a mesh", .serialized)
struct MeshFunctionTests {
    /// The function's entry in a `GET /api/v1/rooms/{room}/functions` answer.
    static func entry(_ body: String, id: String) -> [String: Any]? {
        guard let list = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]] else { return nil }
        return list.first { $0["id"] as? String == id }
    }

    @Test("Asked of A, an audio-mix runs on B where the room's subscriber is; every node lists it; it moves when B is lost, and again when the leader is; DELETE")
    func placedNearSubscribersMovedOnLoss() async throws {
        let mesh = try await InProcessMesh(names: ["a", "b", "c"])
        do {
            let a = mesh["a"], b = mesh["b"], c = mesh["c"]
            #expect(try await eventually(within: 6) {
                for member in [a, b, c] {
                    guard let status = await member.server.mesh?.status(), status.links.count == 2,
                        status.links.allSatisfy({ $0.up && $0.rttMs != nil }), status.graph.count == 6
                    else { return false }
                }
                return true
            })
            let group = MultiThreadedEventLoopGroup.singleton
            let media = try forwardingMedia(videoFrames: 60)
            let publisher = try await BraidPublisher.publish(
                to: "\(a.base)/whip/fn", audio: .preEncoded(media), video: .preEncoded(media), options: forwardingOptions,
                group: group)
            let subscriber = try await BraidSubscriber.subscribe(
                to: "\(b.base)/whep/fn", audioTracks: 1, videoTracks: 1, options: forwardingOptions, group: group)
            // B pulls A's tracks for its subscriber (what placement needs: a subscriber session on B, and
            // the inputs mirrored there; playback itself is MeshRelayTests' subject).
            #expect(try await eventually(within: 15) {
                let tracks = await b.server.mesh?.status()?.remoteTracks.filter { $0.room == "fn" } ?? []
                return tracks.count == 2 && tracks.allSatisfy { $0.consumers > 0 }
            })
            // B reports its subscribers per room with its load, once a second.
            try await Task.sleep(for: .milliseconds(1500))

            let created = try await NodeDashboard(port: a.httpPort).post(
                "/api/v1/rooms/fn/functions", contentType: "application/json", body: #"{"kind": "audio-mix", "inputs": "all-audio"}"#)
            #expect(created.status == 201, "\(created.body)")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: Any])
            let id = try #require(body["id"] as? String)
            #expect(body["node"] as? String == "b", "\(created.body)")
            #expect(id.contains("-fn-"))
            #expect((body["inputs"] as? [Any])?.count == 1, "B mixes A's audio track (a mirror on B)")
            for member in [a, b, c] {
                let listed = try await NodeDashboard(port: member.httpPort).get("/api/v1/rooms/fn/functions")
                let entry = Self.entry(listed.body, id: id)
                #expect(entry?["node"] as? String == "b" && entry?["state"] as? String == "running", "\(member.name): \(listed.body)")
            }

            // B is lost (no graceful leave); its lease ends: the leader moves the function. The subscriber
            // was on B, so the inputs decide: A.
            let lease = await b.server.mesh?.store.leaseID
            let lostAt = ContinuousClock.now
            _ = try await mesh.cancel("b", within: 5)
            if let lease { mesh.cluster.expire(lease: lease) }
            let moved = try await eventually(within: 6) {
                let listed = try await NodeDashboard(port: c.httpPort).get("/api/v1/rooms/fn/functions")
                let entry = Self.entry(listed.body, id: id)
                return entry?["node"] as? String == "a" && entry?["state"] as? String == "running" && entry?["moves"] as? Int == 1
            }
            #expect(moved)
            print("mesh functions: running on A \(ContinuousClock.now - lostAt) after B was lost")

            // A, the leader (the first to join) and now the function's node, is lost too: C takes the
            // leadership and the function (an all-audio mix with no input left waits for tracks).
            #expect(await a.server.mesh?.store.isLeader == true)
            try await publisher.close()
            let leaderLease = await a.server.mesh?.store.leaseID
            _ = try await mesh.cancel("a", within: 5)
            if let leaderLease { mesh.cluster.expire(lease: leaderLease) }
            #expect(try await eventually(within: 6) {
                let entry = Self.entry(try await NodeDashboard(port: c.httpPort).get("/api/v1/rooms/fn/functions").body, id: id)
                return entry?["node"] as? String == "c" && entry?["state"] as? String == "running" && entry?["moves"] as? Int == 2
            })

            let deleted = try await NodeDashboard(port: c.httpPort).delete("/api/v1/rooms/fn/functions/\(id)")
            #expect(deleted.status == 200, "\(deleted.body)")
            let local = try await NodeDashboard(port: c.httpPort).get("/api/v1/rooms/fn/functions/\(id)")
            #expect(local.status == 404)
            let again = try await NodeDashboard(port: c.httpPort).delete("/api/v1/rooms/fn/functions/\(id)")
            #expect(again.status == 404)
            // Neither recorded nor running on C any more (a function running unrecorded would be listed).
            #expect(try await eventually(within: 3) {
                Self.entry(try await NodeDashboard(port: c.httpPort).get("/api/v1/rooms/fn/functions").body, id: id) == nil
            })

            try? await subscriber.close()  // its node is gone
        } catch {
            await mesh.stopAll()
            throw error
        }
        await mesh.stopAll()
    }
}
