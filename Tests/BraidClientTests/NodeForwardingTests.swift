import BraidNode
import BraidSFU
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import BraidClient

/// The session id at the end of a resource URL (`/whep/{room}/{id}`).
/// The dashboard's id of the session whose resource (`Location`) is `resource`: a one-way function of its
/// last path component.
func sessionID(_ resource: HTTPEndpoint?) -> String? {
    resource.flatMap { $0.path.split(separator: "/").last.map { WebRTCSessions.sessionID(ofResource: String($0)) } }
}

@Suite("Forwarding through an in-process node between BraidClient peers (real ICE, DTLS, SRTP)", .serialized)
struct NodeForwardingTests {
    @Test("One publisher, two subscribers: decodable media with small latency, and the dashboard shows the room")
    func publisherAndTwoSubscribers() async throws {
        let media = try forwardingMedia()
        try await withLoopbackNode { node, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let dashboard = NodeDashboard(port: port)
            let publisher = try await BraidPublisher.publish(
                to: "http://127.0.0.1:\(port)/whip/lobby", audio: .preEncoded(media), video: .preEncoded(media),
                options: forwardingOptions, group: group)
            var subscribers: [BraidSubscriber] = []
            for _ in 0..<2 {
                subscribers.append(
                    try await BraidSubscriber.subscribe(
                        to: "http://127.0.0.1:\(port)/whep/lobby", audioTracks: 1, videoTracks: 1,
                        options: forwardingOptions, group: group))
            }
            try await Task.sleep(for: .seconds(2))

            var received: [SubscriberStatistics] = []
            for subscriber in subscribers { received.append(try #require(await subscriber.statistics())) }
            let sent = await publisher.statistics()
            let status = try await dashboard.status()

            // Media: ~60 frames and ~100 audio packets in 2 s (less on a loaded machine), all decodable.
            for stats in received {
                let video = try #require(stats.video.first)
                let audio = try #require(stats.audio.first)
                #expect(video.framesDecodable >= 30)
                #expect(video.framesDecodable == video.framesComplete)
                #expect(video.framesLost == 0)
                #expect(video.keyframes >= 1)
                #expect(audio.packetsReceived >= 50)
                #expect(stats.unknownSSRCPackets == 0)
                #expect(stats.transport.unprotectFailures == 0)
                // Sender and receivers share this host's clock: capture-to-receive latency is end to end. Alone
                // on the machine p95 is a few tens of ms; 250 ms leaves room for parallel suites on two busy
                // cores while still catching a stall (a missed keyframe or a NACK round trip gone wrong).
                #expect(video.latency.count >= 30 && video.latency.negativeCount == 0)
                let p95 = try #require(video.latency.p95)
                #expect(p95 < .milliseconds(250), "video latency p95 \(p95)")
                let audioP95 = try #require(audio.latency.p95)
                #expect(audioP95 < .milliseconds(250), "audio latency p95 \(audioP95)")
                print("forwarded latency p50/p95: video \(video.latency.p50 as Any)/\(p95), audio \(audioP95)")
            }

            // The dashboard: one room, both directions, the tracks and their layers.
            let publisherID = try #require(sessionID(publisher.resourceEndpoint))
            let subscriberIDs = try subscribers.map { try #require(sessionID($0.resource)) }
            #expect(status.rooms.count == 1)
            let room = try #require(status.rooms.first)
            #expect(room.name == "lobby")
            #expect(room.publishers.map(\.id) == [publisherID])
            #expect(Set(room.subscribers.map(\.id)) == Set(subscriberIDs))
            let sessions = Dictionary(uniqueKeysWithValues: status.sessions.list.map { ($0.id, $0) })
            let upstream = try #require(room.publishers.first)
            #expect(upstream.direction == "publish")
            #expect(Set(upstream.codecs.map { $0.lowercased() }) == ["opus", "vp8"])
            #expect(upstream.bitrateInBps > 0)
            #expect(upstream.remoteAddress != nil && upstream.remoteAddress == sessions[publisherID]?.remoteAddress)
            #expect(upstream.remoteAddress?.contains("127.0.0.1") == true)
            for peer in room.subscribers {
                #expect(peer.direction == "subscribe")
                #expect(peer.bitrateOutBps > 0)
                #expect(peer.layers.count == 2 && peer.layers.values.allSatisfy { $0 == "0" })
                #expect(Set(peer.codecs.map { $0.lowercased() }) == ["opus", "vp8"])
                #expect(peer.remoteAddress != nil && peer.remoteAddress == sessions[peer.id]?.remoteAddress)
            }
            #expect(room.tracks.count == 2)
            let videoTrack = try #require(room.tracks.first { $0.kind == .video })
            let audioTrack = try #require(room.tracks.first { $0.kind == .audio })
            #expect(videoTrack.publisher == publisherID && audioTrack.publisher == publisherID)
            let layer = try #require(videoTrack.layers.first)
            #expect(videoTrack.layers.count == 1 && layer.rid == nil && layer.ssrc != nil)
            #expect(layer.packets >= sent.videoPacketsSent / 2 && layer.bitrateBps > 0)
            #expect(layer.width == 160 && layer.height == 96)
            #expect((audioTrack.layers.first?.packets ?? 0) > 0)

            // What the node sent: per session, and in total (ended sessions included).
            for (index, id) in subscriberIDs.enumerated() {
                let out = try #require(sessions[id]?.sent)
                #expect(out.rtpSent.packets >= UInt64(received[index].transport.rtpPacketsReceived))
                #expect(out.rtcpSent.packets >= 1)  // sender reports
            }
            let publisherOut = try #require(sessions[publisherID]?.sent)
            #expect(publisherOut.rtpSent.packets == 0 && publisherOut.rtcpSent.packets >= 1)  // feedback only
            let forwardedToSubscribers = subscriberIDs.reduce(UInt64(0)) {
                $0 + (sessions[$1]?.sent?.rtpSent.packets ?? 0)
            }
            #expect(status.forwarding.sent.rtpSent.packets == forwardedToSubscribers)
            #expect(status.forwarding.rooms == 1 && status.forwarding.publishers == 1)
            #expect(status.forwarding.subscribers == 2 && status.forwarding.tracks == 2)

            // The room endpoints and the text page.
            let rooms = try JSONDecoder().decode(
                [SFURoomStatus].self, from: Data(try await dashboard.get("/api/v1/rooms").body.utf8))
            #expect(rooms.map(\.name) == ["lobby"])
            let one = try await dashboard.get("/api/v1/rooms/lobby")
            #expect(one.status == 200)
            let lobby = try JSONDecoder().decode(SFURoomStatus.self, from: Data(one.body.utf8))
            #expect(lobby.subscribers.count == 2 && lobby.tracks.count == 2)
            #expect(try await dashboard.get("/api/v1/rooms/nowhere").status == 404)
            let text = try await dashboard.get("/").body
            #expect(text.contains("room lobby"))
            let lines = text.split(separator: "\n")
            #expect(lines.contains { $0.contains("publish") && $0.contains(publisherID) && $0.contains("127.0.0.1") })
            for id in subscriberIDs {
                #expect(lines.contains { $0.contains("subscribe") && $0.contains(id) && $0.contains("layers") })
            }
            #expect(lines.contains { $0.contains("track") && $0.contains("video") && $0.contains(publisherID) })
            #expect(lines.contains { $0.contains("layer") && $0.contains("160x96") })

            // Prometheus.
            #expect(try await dashboard.metric("braid_rooms") == 1)
            #expect(try await dashboard.metric("braid_publishers") == 1)
            #expect(try await dashboard.metric("braid_subscribers") == 2)
            #expect(try await dashboard.metric("braid_sessions") == 3)
            #expect((try await dashboard.metric("braid_forwarded_packets_total{kind=\"rtp\"}") ?? 0) > 0)
            #expect((try await dashboard.metric("braid_forwarded_bytes_total{kind=\"rtp\"}") ?? 0) > 0)

            for subscriber in subscribers { try await subscriber.close() }
            try await publisher.close()
            #expect(try await eventually(within: 2) { await node.media.sessions.rooms().isEmpty })
        }
    }

    @Test("A subscriber joining a running call gets a keyframe at once, not at the publisher's next one")
    func lateJoinerGetsKeyframe() async throws {
        // One keyframe every 10 s: only a keyframe request on join can make the late subscriber decode fast.
        let media = try forwardingMedia(videoFrames: 300)
        try await withLoopbackNode { _, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let publisher = try await BraidPublisher.publish(
                to: "http://127.0.0.1:\(port)/whip/late", audio: .preEncoded(media), video: .preEncoded(media),
                options: forwardingOptions, group: group)
            try await Task.sleep(for: .milliseconds(1500))
            let requestsBefore = await publisher.statistics().keyframeRequestsReceived

            let start = ContinuousClock.now
            let subscriber = try await BraidSubscriber.subscribe(
                to: "http://127.0.0.1:\(port)/whep/late", audioTracks: 1, videoTracks: 1,
                options: forwardingOptions, group: group)
            let decoded = try await eventually(within: 3) {
                (await subscriber.statistics()?.video.first?.framesDecodable ?? 0) > 0
            }
            let firstFrame = ContinuousClock.now - start
            try await Task.sleep(for: .milliseconds(500))
            let stats = try #require(await subscriber.statistics())
            let after = await publisher.statistics()
            try await subscriber.close()
            try await publisher.close()

            #expect(decoded)
            #expect(firstFrame < .seconds(1), "first decodable frame \(firstFrame) after the WHEP request")
            let video = try #require(stats.video.first)
            #expect(video.keyframes >= 1 && video.framesLost == 0)
            #expect(video.framesDecodable >= 10)
            #expect(after.keyframeRequestsReceived > requestsBefore)
            print("late joiner: first decodable frame \(firstFrame) after the request, join \(stats.joinTime as Any)")
        }
    }

    @Test("Twenty sessions in two rooms share the node's one UDP port, each subscriber gets its room's media")
    func twentySessionsOnePort() async throws {
        let media = try forwardingMedia()
        try await withLoopbackNode { node, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let dashboard = NodeDashboard(port: port)
            var publishers: [BraidPublisher] = []
            for room in ["red", "blue"] {
                publishers.append(
                    try await BraidPublisher.publish(
                        to: "http://127.0.0.1:\(port)/whip/\(room)", audio: .preEncoded(media),
                        video: .preEncoded(media), options: forwardingOptions, group: group))
            }
            let subscribers = try await withThrowingTaskGroup(of: (String, BraidSubscriber).self) { tasks in
                for index in 0..<18 {
                    let room = index % 2 == 0 ? "red" : "blue"
                    tasks.addTask {
                        (
                            room,
                            try await BraidSubscriber.subscribe(
                                to: "http://127.0.0.1:\(port)/whep/\(room)", audioTracks: 1, videoTracks: 1,
                                options: forwardingOptions, group: group)
                        )
                    }
                }
                var all: [(String, BraidSubscriber)] = []
                for try await joined in tasks { all.append(joined) }
                return all
            }
            try await Task.sleep(for: .seconds(2))

            let status = try await dashboard.status()
            let mediaPort = try #require(node.media.localAddress?.port)
            #expect(status.sessions.count == 20)
            #expect(status.sessions.list.allSatisfy { $0.dtlsState == "connected" && $0.srtpProfile != nil })
            #expect(status.forwarding.rooms == 2 && status.forwarding.publishers == 2)
            #expect(status.forwarding.subscribers == 18 && status.forwarding.tracks == 4)
            let publisherIDs = try publishers.map { try #require(sessionID($0.resourceEndpoint)) }
            for (room, subscriber) in subscribers {
                let stats = try #require(await subscriber.statistics())
                // Every peer talks to the same node port.
                #expect(stats.transport.remoteAddress?.hasSuffix(":\(mediaPort)") == true)
                let video = try #require(stats.video.first)
                #expect(video.framesDecodable >= 20 && video.keyframes >= 1)
                #expect((stats.audio.first?.packetsReceived ?? 0) >= 30)
                // The subscriber's slots show its own room's publisher.
                let id = try #require(sessionID(subscriber.resource))
                let roomStatus = try #require(status.rooms.first { $0.name == room })
                #expect(roomStatus.subscribers.contains { $0.id == id && $0.layers.count == 2 })
                let publisherID = publisherIDs[room == "red" ? 0 : 1]
                #expect(roomStatus.tracks.allSatisfy { $0.publisher == publisherID })
            }
            for (_, subscriber) in subscribers { try await subscriber.close() }
            for publisher in publishers { try await publisher.close() }
            #expect(try await eventually(within: 3) { await node.media.sessions.statuses().isEmpty })
        }
    }

    @Test("DELETE of the publisher frees the subscriber's slots; a new publisher refills them without a break")
    func publisherReplaced() async throws {
        let media = try forwardingMedia()
        try await withLoopbackNode { node, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let dashboard = NodeDashboard(port: port)
            let first = try await BraidPublisher.publish(
                to: "http://127.0.0.1:\(port)/whip/stage", audio: .preEncoded(media), video: .preEncoded(media),
                options: forwardingOptions, group: group)
            let subscriber = try await BraidSubscriber.subscribe(
                to: "http://127.0.0.1:\(port)/whep/stage", audioTracks: 1, videoTracks: 1,
                options: forwardingOptions, group: group)
            let subscriberID = try #require(sessionID(subscriber.resource))
            try await Task.sleep(for: .seconds(1))
            let before = try #require(await subscriber.statistics())

            try await first.close()  // DELETE /whip/stage/{id}
            #expect(
                try await eventually(within: 2) {
                    let room = await node.media.sessions.room(named: "stage")
                    return room?.tracks.isEmpty == true
                        && room?.subscribers.first { $0.id == subscriberID }?.layers.isEmpty == true
                })

            let second = try await BraidPublisher.publish(
                to: "http://127.0.0.1:\(port)/whip/stage", audio: .preEncoded(media), video: .preEncoded(media),
                options: forwardingOptions, group: group)
            let secondID = try #require(sessionID(second.resourceEndpoint))
            let rejoined = ContinuousClock.now
            let refilled = try await eventually(within: 2) {
                let video = await subscriber.statistics()?.video.first
                return (video?.keyframes ?? 0) > (before.video.first?.keyframes ?? 0)
            }
            let refillTime = ContinuousClock.now - rejoined
            try await Task.sleep(for: .seconds(1))
            let after = try #require(await subscriber.statistics())
            let room = try #require(await node.media.sessions.room(named: "stage"))
            let status = try await dashboard.status()
            try await subscriber.close()
            try await second.close()

            #expect(refilled)
            #expect(refillTime < .seconds(1), "new publisher's first keyframe after \(refillTime)")
            #expect(room.tracks.count == 2 && room.tracks.allSatisfy { $0.publisher == secondID })
            #expect(room.subscribers.first { $0.id == subscriberID }?.layers.count == 2)
            let oldVideo = try #require(before.video.first)
            let newVideo = try #require(after.video.first)
            // Continuous output: the same SSRC, sequence numbers continue (no loss counted across the switch),
            // and the new publisher's frames decode.
            #expect(newVideo.ssrc == oldVideo.ssrc && after.audio.first?.ssrc == before.audio.first?.ssrc)
            #expect(newVideo.packetsLost == 0 && newVideo.framesLost == 0)
            #expect(newVideo.framesDecodable >= oldVideo.framesDecodable + 20)
            #expect(newVideo.framesDecodable == newVideo.framesComplete)
            #expect((after.audio.first?.packetsReceived ?? 0) >= (before.audio.first?.packetsReceived ?? 0) + 40)
            #expect(after.unknownSSRCPackets == 0)
            #expect(status.sessions.count == 2)
            print("publisher replaced: first keyframe of the new publisher after \(refillTime)")
        }
    }
}
