import BraidNode
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import BraidClient

@Suite("BraidClient failover between nodes", .serialized)
struct ClientFailoverTests {
    @Test("A subscriber whose node stops moves to a fallback node and plays again within 3 s")
    func subscriberMovesToFallback() async throws {
        let mesh = try await InProcessMesh(names: ["a", "b", "c"])
        do {
            let a = mesh["a"], b = mesh["b"], c = mesh["c"]
            let linked = try await eventually(within: 6) {
                for member in [a, b, c] {
                    guard let status = await member.server.mesh?.status(), status.links.count == 2,
                        status.links.allSatisfy({ $0.up })
                    else { return false }
                }
                return true
            }
            #expect(linked)
            let group = MultiThreadedEventLoopGroup.singleton
            let media = try forwardingMedia(videoFrames: 60)
            let publisher = try await BraidPublisher.publish(
                to: "\(a.base)/whip/failover", audio: .preEncoded(media), video: .preEncoded(media),
                options: forwardingOptions, group: group)
            var options = forwardingOptions
            options.failover = FailoverOptions(fallbacks: [b.base])
            let subscriber = try await BraidSubscriber.subscribe(
                to: "\(c.base)/whep/failover", audioTracks: 1, videoTracks: 1, options: options, group: group)
            #expect(await subscriber.failoverEndpoints() == ["\(c.base)/whep/failover", "\(b.base)/whep/failover"])
            #expect(
                try await eventually(within: 10) {
                    guard let stats = await subscriber.statistics() else { return false }
                    return (stats.video.first?.framesDecodable ?? 0) >= 15 && (stats.audio.first?.packetsReceived ?? 0) >= 25
                })
            let before = try #require(await subscriber.statistics())
            #expect(before.reconnects == 0)
            #expect(before.endpoint == "\(c.base)/whep/failover")

            // C stops: the subscriber notices the silence and re-runs WHEP at B.
            let stoppedAt = ContinuousClock.now
            try await mesh.stop("c")
            let frames = before.video[0].framesDecodable
            let packets = before.audio[0].packetsReceived
            let playing = try await eventually(within: 6) {
                guard let stats = await subscriber.statistics(), stats.reconnects == 1 else { return false }
                return stats.video[0].framesDecodable >= frames + 15
            }
            let resumed = ContinuousClock.now - stoppedAt
            #expect(playing)
            #expect(resumed < .seconds(3), "playing again at B \(resumed) after C stopped")
            let after = try #require(await subscriber.statistics())
            #expect(after.reconnects == 1)
            #expect(after.endpoint == "\(b.base)/whep/failover")
            #expect(after.lastReconnect != nil)
            #expect(after.reconnecting == false)
            let outage = try #require(after.lastOutage)
            #expect(outage < .seconds(3), "outage \(outage)")
            // Counters went on across the move: nothing restarted from zero.
            #expect(after.audio[0].packetsReceived > packets)
            #expect(after.transport.rtpPacketsReceived > before.transport.rtpPacketsReceived)
            #expect(after.transport.state == "connected")
            print(
                "failover: playing again \(resumed) after C stopped; outage \(outage); "
                    + "frames \(frames) → \(after.video[0].framesDecodable); attempts failed \(after.failedReconnectAttempts)")

            // And it keeps playing at B.
            let settled = after.video[0].framesDecodable
            #expect(
                try await eventually(within: 5) {
                    (await subscriber.statistics()?.video[0].framesDecodable ?? 0) >= settled + 30
                })
            #expect(await subscriber.statistics()?.reconnects == 1)

            try await subscriber.close()
            try await publisher.close()
        } catch {
            await mesh.stopAll()
            throw error
        }
        await mesh.stopAll()
    }

    @Test("A publisher whose node stops moves to a fallback node; a subscriber elsewhere plays again within 3 s")
    func publisherMovesToFallback() async throws {
        let mesh = try await InProcessMesh(names: ["a", "b", "c"])
        do {
            let a = mesh["a"], b = mesh["b"], c = mesh["c"]
            let linked = try await eventually(within: 6) {
                for member in [a, b, c] {
                    guard let status = await member.server.mesh?.status(), status.links.count == 2,
                        status.links.allSatisfy({ $0.up })
                    else { return false }
                }
                return true
            }
            #expect(linked)
            let group = MultiThreadedEventLoopGroup.singleton
            let media = try forwardingMedia(videoFrames: 60)
            var options = forwardingOptions
            options.failover = FailoverOptions(fallbacks: [b.base])
            let publisher = try await BraidPublisher.publish(
                to: "\(c.base)/whip/pubfailover", audio: .preEncoded(media), video: .preEncoded(media),
                options: options, group: group)
            #expect(await publisher.failoverEndpoints() == ["\(c.base)/whip/pubfailover", "\(b.base)/whip/pubfailover"])
            let firstResource = publisher.resourceID
            let subscriber = try await BraidSubscriber.subscribe(
                to: "\(a.base)/whep/pubfailover", audioTracks: 1, videoTracks: 1, options: forwardingOptions, group: group)
            #expect(
                try await eventually(within: 10) {
                    guard let stats = await subscriber.statistics() else { return false }
                    return (stats.video.first?.framesDecodable ?? 0) >= 15 && (stats.audio.first?.packetsReceived ?? 0) >= 25
                })
            let before = await publisher.statistics()
            #expect(before.reconnects == 0)
            #expect(before.endpoint == "\(c.base)/whip/pubfailover")

            // C stops: the publisher notices, re-runs WHIP at B; A gets the new tracks from B.
            let stoppedAt = ContinuousClock.now
            try await mesh.stop("c")
            let frames = try #require(await subscriber.statistics()?.video.first?.framesDecodable)
            let playing = try await eventually(within: 6) {
                (await subscriber.statistics()?.video.first?.framesDecodable ?? 0) >= frames + 15
            }
            let resumed = ContinuousClock.now - stoppedAt
            #expect(playing)
            #expect(resumed < .seconds(3), "subscriber on A playing again \(resumed) after C stopped")
            let after = await publisher.statistics()
            #expect(after.reconnects == 1)
            #expect(after.endpoint == "\(b.base)/whip/pubfailover")
            #expect(after.lastReconnect != nil)
            #expect(after.reconnecting == false)
            #expect(after.sourceError == nil)
            #expect(publisher.resourceID != nil && publisher.resourceID != firstResource)
            let outage = try #require(after.lastOutage)
            #expect(outage < .seconds(3), "publisher outage \(outage)")
            // Counters went on across the move.
            #expect(after.videoFramesSent > before.videoFramesSent)
            #expect(after.keyframesSent > before.keyframesSent)
            #expect(after.transport.rtpPacketsSent > before.transport.rtpPacketsSent)
            #expect(after.transport.state == "connected")
            let received = try #require(await subscriber.statistics())
            print(
                "publisher failover: subscriber on A playing again \(resumed) after C stopped; publisher outage "
                    + "\(outage); frames \(frames) → \(received.video[0].framesDecodable); "
                    + "attempts failed \(after.failedReconnectAttempts)")

            // And it keeps publishing from B.
            let settled = received.video[0].framesDecodable
            #expect(
                try await eventually(within: 5) {
                    (await subscriber.statistics()?.video.first?.framesDecodable ?? 0) >= settled + 30
                })
            #expect(await publisher.statistics().reconnects == 1)

            try await subscriber.close()
            try await publisher.close()
        } catch {
            await mesh.stopAll()
            throw error
        }
        await mesh.stopAll()
    }

    @Test("Without failover options a subscriber does not watch its node (existing behaviour)")
    func failoverOffByDefault() throws {
        let options = ConnectionOptions()
        #expect(!options.failover.isEnabled)
        #expect(FailoverOptions(fallbacks: ["http://127.0.0.1:1"]).isEnabled)
        #expect(FailoverOptions(discoverNodes: true).isEnabled)
    }

    @Test("Candidates: base URLs get the room's path, duplicates are dropped, the lost node is tried last")
    func candidateOrder() throws {
        let origin = try HTTPEndpoint(url: "http://127.0.0.1:8001/whep/room?participant=x")
        var candidates = try FailoverCandidates(
            origin: origin, roomPath: "/whep/room",
            fallbacks: ["http://127.0.0.1:8002", "http://localhost:8001", "http://127.0.0.1:8003/whep/other"])
        #expect(candidates.endpoints.map(\.description) == [
            "http://127.0.0.1:8001/whep/room?participant=x", "http://127.0.0.1:8002/whep/room",
            "http://127.0.0.1:8003/whep/other",
        ])
        #expect(candidates.attemptOrder == [1, 2, 0])
        candidates.current = 1
        #expect(candidates.attemptOrder == [2, 0, 1])
        candidates.add(try HTTPEndpoint(url: "http://0.0.0.0:8002"))
        candidates.add(try HTTPEndpoint(url: "http://10.0.0.9:8002/"))
        #expect(candidates.endpoints.count == 4)
        #expect(candidates.endpoints[3].description == "http://10.0.0.9:8002/whep/room")
    }
}
