@testable import BraidSFU
import BraidWire
import Foundation
import NIOCore
import Testing

/// A participant's publishers and subscribers are separate peers (a WHIP and a WHEP session); naming the
/// same participant on both keeps the participant's own tracks out of its slots.
@Suite("Participants: a subscriber never receives its own participant's tracks")
struct ParticipantTests {
    /// Adds a publisher of one audio track (SSRC `ssrc`) and one video track (SSRC `ssrc + 1`), tracks
    /// named `<name>-mic` and `<name>-cam`.
    @discardableResult
    func publish(
        _ router: SFURouter, _ peerID: String, name: String, participant: String? = nil, ssrc: UInt32,
        at ms: Int64
    ) -> SFUPublisher {
        var mic = audioTrack(mid: "0", trackID: "\(name)-mic")
        mic.ssrcs = [ssrc]
        var cam = videoTrack(mid: "1", trackID: "\(name)-cam", rids: [])
        cam.ssrcs = [ssrc + 1]
        return router.addPublisher(
            room: "r", peerID: peerID, participant: participant,
            description: PublisherDescription(extensions: publisherIDs, tracks: [mic, cam]),
            transport: RecordingTransport(), now: at(ms))
    }

    /// Two audio and two video slots.
    func subscriberDescription() -> SubscriberDescription {
        SubscriberDescription(
            extensions: subscriberIDs,
            slots: [
                audioSlot(mid: "a0", ssrc: 11), audioSlot(mid: "a1", ssrc: 12),
                videoSlot(mid: "v0", ssrc: 21, rtxSSRC: nil), videoSlot(mid: "v1", ssrc: 22, rtxSSRC: nil),
            ])
    }

    func shown(_ subscriber: SFUSubscriber) -> [String?] {
        subscriber.slots.map { $0.producer?.track.trackID }
    }

    func audioPacket(ssrc: UInt32, sequence: UInt16) -> ByteBuffer {
        rtpPacket(
            payloadType: 111, sequenceNumber: sequence, timestamp: UInt32(sequence) * 960, ssrc: ssrc,
            payload: [0xF8, 0x01, 0x02, 0x03])
    }

    @Test func linkedSubscriberNeverGetsItsOwnTracksWhileAnUnlinkedOneDoes() throws {
        let router = SFURouter(wallClock: testWallClock)
        let alice = self.publish(router, "alice-whip", name: "alice", ssrc: 100, at: 0)

        // Alice's player, linked to her WHIP session: nothing else in the room, so its slots stay empty.
        let linkedTransport = RecordingTransport()
        let linked = router.addSubscriber(
            room: "r", peerID: "alice-whep", participant: "alice-whip", description: self.subscriberDescription(),
            transport: linkedTransport, now: at(10))
        #expect(linked.participant == "alice-whip")
        #expect(self.shown(linked) == [nil, nil, nil, nil])

        // The same player without the link is its own participant, and gets Alice's tracks back.
        let unlinkedTransport = RecordingTransport()
        let unlinked = router.addSubscriber(
            room: "r", peerID: "alice-whep-2", description: self.subscriberDescription(),
            transport: unlinkedTransport, now: at(10))
        #expect(unlinked.participant == "alice-whep-2")
        #expect(self.shown(unlinked) == ["alice-mic", nil, "alice-cam", nil])

        // Bob's tracks go to both.
        let bob = self.publish(router, "bob-whip", name: "bob", ssrc: 200, at: 20)
        #expect(self.shown(linked) == ["bob-mic", nil, "bob-cam", nil])
        #expect(self.shown(unlinked) == ["alice-mic", "bob-mic", "alice-cam", "bob-cam"])

        // A second publisher of Alice's (a screen share naming her participant) stays out of her slots too.
        self.publish(router, "alice-screen", name: "screen", participant: "alice-whip", ssrc: 300, at: 30)
        #expect(self.shown(linked) == ["bob-mic", nil, "bob-cam", nil])

        // What is forwarded follows the slots: Alice's audio reaches only the unlinked player, Bob's both.
        alice.receiveRTP(self.audioPacket(ssrc: 100, sequence: 1), now: at(40))
        #expect(linkedTransport.rtp.isEmpty)
        #expect(unlinkedTransport.rtpPackets.map(\.ssrc) == [11])
        bob.receiveRTP(self.audioPacket(ssrc: 200, sequence: 1), now: at(41))
        #expect(linkedTransport.rtpPackets.map(\.ssrc) == [11])
        #expect(unlinkedTransport.rtpPackets.map(\.ssrc) == [11, 12])

        // Bob leaves: the freed slots are not refilled with Alice's own tracks, only with Carol's later.
        router.removePeer("bob-whip", now: at(50))
        #expect(self.shown(linked) == [nil, nil, nil, nil])
        self.publish(router, "carol-whip", name: "carol", ssrc: 400, at: 60)
        #expect(self.shown(linked) == ["carol-mic", nil, "carol-cam", nil])

        // The status names each peer's participant (JSON key `participant`).
        let status = try #require(router.roomStatuses(now: at(70)).first)
        let participants = Dictionary(
            uniqueKeysWithValues: (status.publishers + status.subscribers).map { ($0.id, $0.participant) })
        #expect(
            participants == [
                "alice-whip": "alice-whip", "alice-screen": "alice-whip", "carol-whip": "carol-whip",
                "alice-whep": "alice-whip", "alice-whep-2": "alice-whep-2",
            ])
        // And what each slot forwards: Carol's mic and camera in Alice's linked player.
        let player = try #require(status.subscribers.first { $0.id == "alice-whep" })
        #expect(
            player.sources.mapValues { "\($0.publisher)/\($0.mid)" } == [
                "a0": "carol-whip/0", "v0": "carol-whip/1",
            ])
        #expect(player.sources.values.allSatisfy { $0.track != nil })
        #expect(status.publishers.allSatisfy { $0.sources.isEmpty })
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(status)) as? [String: Any]
        let subscribers = try #require(json?["subscribers"] as? [[String: Any]])
        #expect(
            subscribers.contains { $0["id"] as? String == "alice-whep" && $0["participant"] as? String == "alice-whip" })
    }

    @Test func aSubscriberThatJoinsBeforeItsPublisherNeverGetsItsTracks() {
        // Not the supported order for WHEP (the node checks the WHIP session exists), but the core holds
        // the rule whichever side arrives first.
        let router = SFURouter(wallClock: testWallClock)
        let linked = router.addSubscriber(
            room: "r", peerID: "dave-whep", participant: "dave", description: self.subscriberDescription(),
            transport: RecordingTransport(), now: at(0))
        self.publish(router, "dave-whip", name: "dave", participant: "dave", ssrc: 500, at: 10)
        #expect(self.shown(linked) == [nil, nil, nil, nil])
        self.publish(router, "erin-whip", name: "erin", ssrc: 600, at: 20)
        #expect(self.shown(linked) == ["erin-mic", nil, "erin-cam", nil])
    }
}
