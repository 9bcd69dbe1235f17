@testable import BraidSFU
import BraidWire
import NIOCore
import Testing

/// Two routers of one node (two event loops) joined by a link, without sockets or threads: messages wait
/// in a queue until `pump()` delivers them, as `EventLoop.execute` would.
final class LinkedRouters {
    let node = NodeID(name: "node-a")
    let a: SFURouter
    let b: SFURouter
    var linkA: RouterLink!
    var linkB: RouterLink!
    var toA: [RouterLinkMessage] = []
    var toB: [RouterLinkMessage] = []
    /// Media batches handed from A to B.
    var batchesToB = 0

    init() {
        self.a = SFURouter(wallClock: testWallClock, node: self.node, shard: 0, shards: 2)
        self.b = SFURouter(wallClock: testWallClock, node: self.node, shard: 1, shards: 2)
        self.linkA = self.a.link(name: "loop-1") { [unowned self] in self.toB.append($0) }
        self.linkB = self.b.link(name: "loop-0") { [unowned self] in self.toA.append($0) }
    }

    /// Flushes both links' batches and delivers every queued message, until none is left.
    func pump(now: NIODeadline) {
        self.a.flushLinks()
        self.b.flushLinks()
        while !self.toA.isEmpty || !self.toB.isEmpty {
            let forB = self.toB
            self.toB.removeAll()
            for message in forB {
                if case .media = message { self.batchesToB += 1 }
                self.linkB.receive(message, now: now)
            }
            let forA = self.toA
            self.toA.removeAll()
            for message in forA { self.linkA.receive(message, now: now) }
            self.a.flushLinks()
            self.b.flushLinks()
        }
    }
}

@Suite struct RouterLinkTests {
    @Test func aTrackPublishedOnOneLoopIsForwardedToConsumersOnAnother() throws {
        let linked = LinkedRouters()
        let publisherTransport = RecordingTransport()
        let publisher = linked.a.addPublisher(
            room: "r", peerID: "pub",
            description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack()]),
            transport: publisherTransport, now: at(0))
        let id = publisher.producers[0].id
        // Two WebRTC subscribers and a plain sink on loop B.
        let transports = [RecordingTransport(), RecordingTransport()]
        let subscribers = transports.enumerated().map { index, transport in
            linked.b.addSubscriber(
                room: "r", peerID: "sub\(index)",
                description: SubscriberDescription(extensions: subscriberIDs, slots: [videoSlot()]),
                transport: transport, now: at(0))
        }
        linked.pump(now: at(0))
        // The mirror on B has the origin's id, and fills B's slots; B asked A for the lowest layer.
        let mirror = try #require(linked.b.track(id))
        #expect(mirror.isMirror)
        #expect(subscribers.allSatisfy { $0.slots[0].producer === mirror })
        let sink = RecordingSink()
        _ = try linked.b.consume(id, into: sink, layers: .layer(0), now: at(1))
        linked.pump(now: at(1))

        var source = SimulcastSource()
        for step in 0..<4 {
            for layer in 0..<3 {
                publisher.receiveRTP(source.frame(layer: layer, keyframe: step == 0), now: at(Int64(step) * 33))
            }
            linked.pump(now: at(Int64(step) * 33))
        }
        // One copy per step crossed the loops (layer 0 only: the other layers are not wanted on B).
        #expect(linked.linkA.counters.packetsSent == 4)
        #expect(linked.batchesToB == 4)
        #expect(publisher.producers[0].consumers.count == 1)
        // Fanned out on B: each subscriber got every packet, rewritten to its slot; the sink the origin form.
        for transport in transports {
            let sent = transport.rtpPackets
            #expect(sent.count == 4)
            #expect(sent.allSatisfy { $0.ssrc == 0xAAAA_0001 })
        }
        #expect(sink.received.map(\.sourceSSRC) == [1000, 1000, 1000, 1000])
        #expect(sink.received.map(\.sequenceNumber) == [100, 101, 102, 103])
        #expect(sink.received.allSatisfy { $0.track == id })
        // B's slots asked for a keyframe of the lowest layer, sent upstream once its SSRC was known.
        #expect(publisherTransport.plis.map(\.mediaSSRC) == [1000])

        // A NACK on B is answered from B's own copy: nothing crosses the loops.
        let sentBefore = linked.linkA.counters.packetsSent
        let first = transports[1].rtpPackets[1].sequenceNumber
        var nack = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPGenericNACK.write(
            senderSSRC: 1, mediaSSRC: 0xAAAA_0001, lostSequenceNumbers: [first], into: &nack)
        subscribers[1].receiveRTCP(nack, now: at(140))
        #expect(subscribers[1].counters.retransmissions == 1)
        // RTX (RFC 4588): the repair stream's SSRC, the lost packet's number as OSN.
        let repair = try #require(transports[1].rtpPackets.last)
        #expect(repair.ssrc == 0xAAAA_0002)
        #expect(repair.payload.getInteger(at: repair.payload.readerIndex, as: UInt16.self) == first)
        #expect(linked.linkA.counters.packetsSent == sentBefore)

        // A keyframe request on B reaches the publisher on A as a PLI of the layer.
        publisherTransport.reset()
        var rtcp = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPPictureLossIndication.write(senderSSRC: 1, mediaSSRC: 0xAAAA_0001, into: &rtcp)
        subscribers[0].receiveRTCP(rtcp, now: at(2000))
        linked.pump(now: at(2000))
        #expect(publisherTransport.plis.map(\.mediaSSRC) == [1000])

        // The publisher leaves: the mirror ends on B and its slots are freed.
        linked.a.removePeer("pub", now: at(3000))
        linked.pump(now: at(3000))
        #expect(linked.b.track(id) == nil)
        #expect(subscribers.allSatisfy { $0.slots[0].producer == nil })
        #expect(sink.ended == [id])
    }

    @Test func layerRatesCrossSoTheOtherLoopCanMoveUp() throws {
        let linked = LinkedRouters()
        let publisher = linked.a.addPublisher(
            room: "r", peerID: "pub",
            description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack()]),
            transport: RecordingTransport(), now: at(0))
        let subscriber = linked.b.addSubscriber(
            room: "r", peerID: "sub",
            description: SubscriberDescription(extensions: subscriberIDs, slots: [videoSlot()]),
            transport: RecordingTransport(), now: at(0))
        linked.pump(now: at(0))
        var source = SimulcastSource()
        for step in 0..<40 {
            let now = at(Int64(step) * 33)
            for layer in 0..<3 { publisher.receiveRTP(source.frame(layer: layer, keyframe: step % 10 == 0), now: now) }
            linked.a.tick(now: now)
            linked.b.tick(now: now)
            linked.pump(now: now)
        }
        let mirror = try #require(linked.b.track(publisher.producers[0].id))
        // B sees all three layers' rates although it pulls only what its slot forwards.
        #expect(mirror.qualityOrder() == [0, 1, 2])
        #expect((0..<3).allSatisfy { mirror.isFlowing($0, now: at(40 * 33)) })
        #expect(subscriber.slots[0].currentLayer != nil)
    }

    @Test func participantsAndTrackNumbersHoldAcrossLoops() throws {
        let linked = LinkedRouters()
        let alice = linked.a.addPublisher(
            room: "r", peerID: "alice-whip",
            description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack(trackID: "alice")]),
            transport: RecordingTransport(), now: at(0))
        let bob = linked.b.addPublisher(
            room: "r", peerID: "bob-whip",
            description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack(trackID: "bob")]),
            transport: RecordingTransport(), now: at(0))
        // Interleaved numbering: no two loops mint the same id.
        #expect(alice.producers[0].id != bob.producers[0].id)
        let aliceView = linked.b.addSubscriber(
            room: "r", peerID: "alice-whep", participant: "alice-whip",
            description: SubscriberDescription(
                extensions: subscriberIDs, slots: [videoSlot(mid: "v0", ssrc: 1), videoSlot(mid: "v1", ssrc: 3)]),
            transport: RecordingTransport(), now: at(0))
        linked.pump(now: at(0))
        #expect(aliceView.slots.map { $0.producer?.track.trackID } == ["bob", nil])
        // Each loop lists only its own tracks; mirrors are not shown twice.
        #expect(linked.a.roomStatuses(now: at(1)).flatMap(\.tracks).map(\.trackID) == ["alice"])
        #expect(linked.b.roomStatuses(now: at(1)).flatMap(\.tracks).map(\.trackID) == ["bob"])
    }

    @Test func malformedBatchesAreCountedNotTrusted() throws {
        let linked = LinkedRouters()
        var garbage = ByteBuffer(bytes: Array(repeating: 0xEE, count: 40))
        linked.linkB.receive(.media(garbage), now: at(0))
        garbage = ByteBuffer(bytes: [1, 2, 3])
        linked.linkB.receive(.media(garbage), now: at(0))
        #expect(linked.linkB.counters.malformedRecords >= 1)
        #expect(linked.linkB.counters.packetsReceived == 0)
    }
}
