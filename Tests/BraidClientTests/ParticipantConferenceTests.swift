import BraidNode
import BraidSFU
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import BraidClient

@Suite("A conference of linked WHIP and WHEP sessions through an in-process node", .serialized)
struct ParticipantConferenceTests {
    /// One conference participant: its publisher and its player, linked by the publisher's resource id.
    struct Participant {
        var publisher: BraidPublisher
        var subscriber: BraidSubscriber
        var publisherID: String
        var subscriberID: String
    }

    @Test("Four participants, each WHEP linked to its WHIP: each receives exactly the other three's audio and video")
    func fourParticipants() async throws {
        let media = try forwardingMedia()
        try await withLoopbackNode { node, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let base = "http://127.0.0.1:\(port)"

            // Publish, then play linked to the publisher, one participant after the other. Slots fill in
            // publication order, so without the link the first participant would get its own tracks back
            // (they are the first of the room) and the last one would miss someone.
            var joined: [Participant] = []
            for _ in 0..<4 {
                let publisher = try await BraidPublisher.publish(
                    to: "\(base)/whip/meeting", audio: .preEncoded(media), video: .preEncoded(media),
                    options: forwardingOptions, group: group)
                // The WHEP request names the WHIP resource (its capability); the dashboard shows the
                // session id derived from it.
                let publisherResource = try #require(publisher.resourceID)
                let publisherID = try #require(sessionID(publisher.resourceEndpoint))
                #expect(publisherID == WebRTCSessions.sessionID(ofResource: publisherResource))
                let subscriber = try await BraidSubscriber.subscribe(
                    to: "\(base)/whep/meeting", audioTracks: 3, videoTracks: 3, participant: publisherResource,
                    options: forwardingOptions, group: group)
                let subscriberID = try #require(sessionID(subscriber.resource))
                joined.append(
                    Participant(
                        publisher: publisher, subscriber: subscriber, publisherID: publisherID,
                        subscriberID: subscriberID))
            }

            let participants = joined

            // A link the node cannot verify is refused before any media: the client sees the 400 and why.
            do {
                let stray = try await BraidSubscriber.subscribe(
                    to: "\(base)/whep/meeting", audioTracks: 1, videoTracks: 0,
                    participant: String(repeating: "ab", count: 16), options: forwardingOptions, group: group)
                try await stray.close()
                Issue.record("a WHEP request naming an unknown WHIP session was accepted")
            } catch BraidClientError.httpStatus(let code, let body) {
                #expect(code == 400 && body.contains("not a live WHIP session in room meeting"), "\(body)")
            }

            // Every slot of every player gets media: decodable video and audio on all six.
            let flowing = try await eventually(within: 5) {
                for participant in participants {
                    guard let stats = await participant.subscriber.statistics(),
                        stats.video.count == 3, stats.audio.count == 3,
                        stats.video.allSatisfy({ $0.framesDecodable >= 10 }),
                        stats.audio.allSatisfy({ $0.packetsReceived >= 25 })
                    else { return false }
                }
                return true
            }
            #expect(flowing)

            let room = try #require(await node.media.sessions.room(named: "meeting"))
            let sessions = await node.media.sessions.statuses()
            var received: [SubscriberStatistics] = []
            for participant in participants {
                received.append(try #require(await participant.subscriber.statistics()))
            }

            #expect(room.publishers.count == 4 && room.subscribers.count == 4 && room.tracks.count == 8)
            let publisherIDs = participants.map(\.publisherID)
            for (index, participant) in participants.enumerated() {
                // Both sessions of the participant are one participant to the forwarding core.
                let publisher = try #require(room.publishers.first { $0.id == participant.publisherID })
                #expect(publisher.participant == participant.publisherID)
                let player = try #require(room.subscribers.first { $0.id == participant.subscriberID })
                #expect(player.participant == participant.publisherID)

                // What each slot forwards, from the node: the track's publisher and kind. Every slot is
                // filled, with a track of the slot's kind, and the six are the other three participants'
                // audio and video: never the participant's own, nobody missing, nobody twice.
                let section = try #require(sessions.first { $0.id == participant.subscriberID }).sections
                #expect(section.count == 6)
                #expect(player.sources.count == 6, "\(player.sources)")
                var shown: [(publisher: String, kind: MediaKind)] = []
                for slot in section {
                    let source = try #require(player.sources[slot.mid], "slot \(slot.mid) is free")
                    let track = try #require(
                        room.tracks.first { $0.publisher == source.publisher && $0.mid == source.mid })
                    #expect(track.kind.rawValue == slot.kind)
                    shown.append((source.publisher, track.kind))
                }
                let others = Set(publisherIDs.filter { $0 != participant.publisherID })
                #expect(
                    !shown.contains { $0.publisher == participant.publisherID }, "participant \(index) sees itself")
                #expect(Set(shown.filter { $0.kind == .audio }.map(\.publisher)) == others)
                #expect(Set(shown.filter { $0.kind == .video }.map(\.publisher)) == others)
                #expect(shown.filter { $0.kind == .audio }.count == 3 && shown.filter { $0.kind == .video }.count == 3)

                // And from the client: media arrived on each of those six slots (the node's SSRC of the slot),
                // nothing on an SSRC it did not announce.
                let stats = received[index]
                let ssrcs = Dictionary(
                    uniqueKeysWithValues: section.compactMap { slot in slot.ssrc.map { (slot.mid, $0) } })
                for video in stats.video {
                    let mid = try #require(video.mid)
                    #expect(video.ssrc == ssrcs[mid])
                    #expect(video.framesDecodable >= 10 && video.framesLost == 0, "participant \(index) mid \(mid)")
                }
                for audio in stats.audio {
                    let mid = try #require(audio.mid)
                    #expect(audio.ssrc == ssrcs[mid])
                    #expect(audio.packetsReceived >= 25, "participant \(index) mid \(mid)")
                }
                #expect(stats.unknownSSRCPackets == 0)
            }

            // Counts of media: each publisher's track is forwarded to exactly three players.
            for publisherID in publisherIDs {
                let viewers = room.subscribers.filter { $0.sources.values.contains { $0.publisher == publisherID } }
                #expect(viewers.count == 3)
                #expect(!viewers.contains { $0.participant == publisherID })
            }

            for participant in participants {
                try await participant.subscriber.close()
                try await participant.publisher.close()
            }
            #expect(try await eventually(within: 3) { await node.media.sessions.rooms().isEmpty })
        }
    }
}
