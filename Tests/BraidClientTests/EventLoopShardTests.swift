import BraidNode
import BraidSFU
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import BraidClient

@Suite("A node forwarding on two event loops", .serialized)
struct EventLoopShardTests {
    @Test("Sessions spread over both loops; every subscriber receives every publisher, whichever loop holds it")
    func roomSpansEventLoops() async throws {
        let media = try forwardingMedia()
        try await withLoopbackNode(eventLoops: 2) { node, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let base = "http://127.0.0.1:\(port)"
            var publishers: [BraidPublisher] = []
            for _ in 0..<2 {
                publishers.append(
                    try await BraidPublisher.publish(
                        to: "\(base)/whip/spread", audio: .preEncoded(media), video: .preEncoded(media),
                        options: forwardingOptions, group: group))
            }
            var subscribers: [BraidSubscriber] = []
            for _ in 0..<4 {
                subscribers.append(
                    try await BraidSubscriber.subscribe(
                        to: "\(base)/whep/spread", audioTracks: 2, videoTracks: 2, options: forwardingOptions,
                        group: group))
            }
            let all = subscribers
            let flowing = try await eventually(within: 8) {
                for subscriber in all {
                    guard let stats = await subscriber.statistics(), stats.video.count == 2, stats.audio.count == 2,
                        stats.video.allSatisfy({ $0.framesDecodable >= 10 }),
                        stats.audio.allSatisfy({ $0.packetsReceived >= 25 })
                    else { return false }
                }
                return true
            }
            #expect(flowing)

            // Both loops hold sessions, and the room is shown once with everything in it.
            let sessions = await node.media.sessions.statuses()
            #expect(sessions.count == 6)
            #expect(Set(sessions.compactMap(\.eventLoop)) == [0, 1], "\(sessions.map(\.eventLoop))")
            let room = try #require(await node.media.sessions.room(named: "spread"))
            #expect(room.publishers.count == 2 && room.subscribers.count == 4 && room.tracks.count == 4)
            let trackIDs = Set(room.tracks.compactMap(\.id))
            #expect(trackIDs.count == 4)
            // Every subscriber's four slots show the four tracks, by their network-wide ids, also where the
            // publisher's session is on the other loop.
            let loopOf = Dictionary(uniqueKeysWithValues: sessions.map { ($0.id, $0.eventLoop) })
            var crossLoop = 0
            for subscriber in room.subscribers {
                #expect(Set(subscriber.sources.values.compactMap(\.track)) == trackIDs, "\(subscriber.sources)")
                for source in subscriber.sources.values where loopOf[source.publisher] != loopOf[subscriber.id] {
                    crossLoop += 1
                }
            }
            #expect(crossLoop > 0)
            // What crossed between the loops, as the dashboard and /metrics show it.
            let loops = await node.media.sessions.snapshot().eventLoops
            #expect(loops.map(\.index) == [0, 1])
            #expect(loops.map(\.sessions).reduce(0, +) == 6)
            #expect(loops.allSatisfy { $0.mirroredTracks >= 1 }, "\(loops)")
            #expect(loops.map(\.relayedOut).reduce(0, +) > 0 && loops.map(\.relayedIn).reduce(0, +) > 0)
            let metrics = String(decoding: await node.monitor.metricsExposition(), as: UTF8.self)
            #expect(metrics.contains("braid_event_loop_sessions{loop=\"1\"}"))
            #expect(metrics.contains("braid_event_loop_relayed_packets_out_total{loop=\"0\"}"))

            for subscriber in subscribers { try await subscriber.close() }
            for publisher in publishers { try await publisher.close() }
        }
    }
}
