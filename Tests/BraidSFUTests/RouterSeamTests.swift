@testable import BraidSFU
import BraidWire
import NIOCore
import Testing

/// A sink that copies what it is given (the router's buffers are reused after each call).
final class RecordingSink: TrackSink {
    struct Received: Equatable {
        var track: TrackID
        var layer: Int
        var sourceSSRC: UInt32
        var sequenceNumber: UInt16
        var timestamp: UInt32
        var isKeyframe: Bool
        var isRetransmission: Bool
        var payload: [UInt8]
    }
    var received: [Received] = []
    var ended: [TrackID] = []
    /// Answer `.backPressure` while true.
    var refusing = false

    func deliver(_ packet: MediaPacket, from consumer: TrackConsumer, now: NIODeadline) -> Delivery {
        if self.refusing { return .backPressure }
        self.received.append(
            Received(
                track: packet.track, layer: packet.layer, sourceSSRC: packet.sourceSSRC,
                sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp, isKeyframe: packet.isKeyframe,
                isRetransmission: packet.isRetransmission, payload: bytes(packet.mediaPayload)))
        return .accepted
    }

    func consumerEnded(_ consumer: TrackConsumer, now: NIODeadline) {
        self.ended.append(consumer.track)
    }
}

/// A source that is neither a WebRTC peer nor a socket (what a mesh link or an edge function is to the
/// router): it records what consumers ask of it.
final class RecordingSource: TrackSource {
    var keyframeRequests: [Int] = []
    var wantedLayers: [LayerSet] = []
    var repairs: [[UInt16]] = []

    func requestKeyframe(_ producer: TrackProducer, layer: Int, now: NIODeadline) {
        self.keyframeRequests.append(layer)
    }

    func wantedLayersChanged(_ producer: TrackProducer, layers: LayerSet, now: NIODeadline) {
        self.wantedLayers.append(layers)
    }

    func repairRequested(_ producer: TrackProducer, layer: Int, sequenceNumbers: [UInt16], now: NIODeadline) {
        self.repairs.append(sequenceNumbers)
    }
}

@Suite struct RouterSeamTests {
    static let node = NodeID(name: "node-a")

    struct Setup {
        let router = SFURouter(wallClock: testWallClock, node: RouterSeamTests.node)
        let publisherTransport = RecordingTransport()
        let publisher: SFUPublisher
        var source = SimulcastSource()

        init() {
            self.publisher = router.addPublisher(
                room: "r", peerID: "pub",
                description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack()]),
                transport: publisherTransport, now: at(0))
        }

        var track: TrackID { self.publisher.producers[0].id }

        mutating func sendAllLayers(keyframe: Bool, at ms: Int64) {
            for layer in 0..<3 {
                self.publisher.receiveRTP(self.source.frame(layer: layer, keyframe: keyframe), now: at(ms))
            }
        }
    }

    @Test func trackIDsNameTheOriginNodeAndRoundTripAsText() throws {
        let setup = Setup()
        #expect(setup.track.origin == Self.node)
        #expect(setup.router.track(setup.track) === setup.publisher.producers[0])
        #expect(setup.router.tracks(inRoom: "r").map(\.id) == [setup.track])
        #expect(TrackID(setup.track.description) == setup.track)
        #expect(TrackID("not/a/track") == nil)
        #expect(NodeID(name: "node-a") == NodeID(name: "node-a"))
        #expect(NodeID(name: "node-a") != NodeID(name: "node-b"))
    }

    @Test func aSinkConsumesEveryLayerUnderTheOriginsIdentity() throws {
        var setup = Setup()
        let sink = RecordingSink()
        let consumer = try setup.router.consume(setup.track, into: sink, layers: .all, now: at(0))
        setup.sendAllLayers(keyframe: true, at: 0)
        setup.sendAllLayers(keyframe: false, at: 33)

        #expect(sink.received.count == 6)
        #expect(sink.received.allSatisfy { $0.track == setup.track })
        // Every layer, with the publisher's SSRCs, sequence numbers and timestamps untouched.
        #expect(sink.received.map(\.layer) == [0, 1, 2, 0, 1, 2])
        #expect(sink.received.map(\.sourceSSRC) == [1000, 1001, 1002, 1000, 1001, 1002])
        #expect(sink.received.map(\.sequenceNumber) == [100, 2000, 30000, 101, 2001, 30001])
        #expect(sink.received.map(\.timestamp) == [1000, 50000, 900_000, 4000, 53000, 903_000])
        #expect(sink.received.map(\.isKeyframe) == [true, true, true, false, false, false])
        // The VP8 payload as published (picture ids not rewritten).
        let descriptor = try VP8PayloadDescriptor(ByteBuffer(bytes: sink.received[0].payload))
        #expect(descriptor.pictureID?.value == 10)
        #expect(consumer.packetsDelivered == 6)

        // Fewer layers: only layer 1 from now on.
        consumer.setLayers(.layer(1), now: at(50))
        setup.sendAllLayers(keyframe: false, at: 66)
        #expect(sink.received.suffix(1).map(\.layer) == [1])
        #expect(sink.received.count == 7)
    }

    @Test func aSinkAsksForAKeyframeAndGetsIt() throws {
        var setup = Setup()
        setup.sendAllLayers(keyframe: true, at: 0)
        let sink = RecordingSink()
        let consumer = try setup.router.consume(setup.track, into: sink, layers: .layer(2), now: at(10))
        setup.sendAllLayers(keyframe: false, at: 33)
        #expect(sink.received.map(\.isKeyframe) == [false])
        setup.publisherTransport.reset()

        consumer.requestKeyframe(layer: 2, now: at(40))
        // Upstream: a PLI for the top layer's SSRC.
        #expect(setup.publisherTransport.plis.map(\.mediaSSRC) == [1002])
        setup.publisher.receiveRTP(setup.source.frame(layer: 2, keyframe: true), now: at(66))
        #expect(sink.received.last?.isKeyframe == true)
        #expect(sink.received.last?.layer == 2)
    }

    @Test func repairsComeFromTheOneStoredCopy() throws {
        var setup = Setup()
        let first = RecordingSink()
        let second = RecordingSink()
        let a = try setup.router.consume(setup.track, into: first, layers: .layer(0), now: at(0))
        _ = try setup.router.consume(setup.track, into: second, layers: .layer(0), now: at(0))
        for step in 0..<5 { setup.sendAllLayers(keyframe: step == 0, at: Int64(step) * 33) }
        let stored = setup.publisher.producers[0].storedBytes

        // Origin sequence numbers 101 and 103 again, as retransmissions; 99 was never sent.
        #expect(a.nack(layer: 0, sequenceNumbers: [101, 103, 99], now: at(200)) == 2)
        let resent = first.received.suffix(2)
        #expect(resent.map(\.sequenceNumber) == [101, 103])
        #expect(resent.allSatisfy { $0.isRetransmission && $0.sourceSSRC == 1000 })
        #expect(resent.map(\.payload) == [first.received[1].payload, first.received[3].payload])
        #expect(second.received.count == 5)
        #expect(a.packetsResent == 2 && a.resendMisses == 1)
        // A second consumer costs no packet memory: the store is the producer's.
        #expect(setup.publisher.producers[0].storedBytes == stored)
        // Past the store's age nothing is served.
        #expect(a.nack(layer: 0, sequenceNumbers: [101], now: at(5000)) == 0)
    }

    @Test func anyKindOfSourceFeedsTheOneIngressAndRoomPoliciesServeIt() throws {
        let router = SFURouter(wallClock: testWallClock, node: Self.node)
        let source = RecordingSource()
        let subscriberTransport = RecordingTransport()
        let subscriber = router.addSubscriber(
            room: "r", peerID: "sub", description: SubscriberDescription(extensions: subscriberIDs, slots: [videoSlot()]),
            transport: subscriberTransport, now: at(0))
        var map = RTPHeaderExtensionMap()
        map.mid = 1
        let producer = router.publish(
            videoTrack(rids: []), room: "r", peerID: "link-1", extensions: map, source: source, now: at(0))
        producer.bind(layer: 0, ssrc: 7777)
        // The WHEP slot took the track and asked its source for a keyframe.
        #expect(subscriber.slots[0].producer === producer)
        #expect(source.keyframeRequests == [0])
        #expect(source.wantedLayers.last == .layer(0))

        for index in 0..<3 {
            let packet = rtpPacket(
                payloadType: 96, sequenceNumber: 500 + UInt16(index), timestamp: 9000 + UInt32(index) * 3000,
                ssrc: 7777, payload: vp8Payload(pictureID: 40 + UInt16(index), tl0: 1, keyframe: index == 0))
            let rtp = try RTPPacket(packet)
            let outcome = producer.ingest(
                IngressPacket(
                    rtp: rtp, extensions: map, layer: 0, sequenceNumber: rtp.sequenceNumber, payload: rtp.payload,
                    isRetransmission: false),
                now: at(Int64(index) * 33))
            #expect(outcome == .forwarded(keyframe: index == 0))
        }
        let sent = subscriberTransport.rtpPackets
        #expect(sent.count == 3)
        #expect(sent.allSatisfy { $0.ssrc == 0xAAAA_0001 && $0.payloadType == 100 })

        // The subscriber's PLI reaches the source; a NACK of an unstored packet is asked of it.
        var rtcp = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPPictureLossIndication.write(senderSSRC: 1, mediaSSRC: 0xAAAA_0001, into: &rtcp)
        subscriber.receiveRTCP(rtcp, now: at(2000))
        #expect(source.keyframeRequests.count == 2)

        router.unpublish(producer.id, now: at(3000))
        #expect(subscriber.slots[0].producer == nil)
        #expect(router.track(producer.id) == nil)
    }

    @Test func backPressureIsCountedAndAVideoSinkGetsAKeyframeAfterwards() throws {
        var setup = Setup()
        let sink = RecordingSink()
        let consumer = try setup.router.consume(setup.track, into: sink, layers: .layer(0), now: at(0))
        setup.sendAllLayers(keyframe: true, at: 0)
        sink.refusing = true
        setup.sendAllLayers(keyframe: false, at: 33)
        setup.sendAllLayers(keyframe: false, at: 66)
        #expect(consumer.backPressureDrops == 2)
        setup.publisherTransport.reset()
        sink.refusing = false
        setup.sendAllLayers(keyframe: false, at: 1200)
        #expect(setup.publisherTransport.plis.map(\.mediaSSRC) == [1000])
    }

    @Test func theTrackEndingTellsEveryConsumer() throws {
        let setup = Setup()
        let sink = RecordingSink()
        let consumer = try setup.router.consume(setup.track, into: sink, layers: .all, now: at(0))
        setup.router.removePeer("pub", now: at(10))
        #expect(sink.ended == [setup.track])
        #expect(!consumer.isAttached)
        #expect(throws: SFURouterError.unknownTrack(setup.track)) {
            try setup.router.consume(setup.track, into: sink, now: at(20))
        }
    }

    @Test func aParticipantsSubscriberIsNeverGivenItsOwnTracks() throws {
        let router = SFURouter(wallClock: testWallClock)
        let own = router.addPublisher(
            room: "r", peerID: "alice-whip",
            description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack(trackID: "alice")]),
            transport: RecordingTransport(), now: at(0))
        _ = router.addPublisher(
            room: "r", peerID: "bob-whip",
            description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack(trackID: "bob")]),
            transport: RecordingTransport(), now: at(0))
        let linked = router.addSubscriber(
            room: "r", peerID: "alice-whep", participant: own.participant,
            description: SubscriberDescription(
                extensions: subscriberIDs, slots: [videoSlot(mid: "v0", ssrc: 1), videoSlot(mid: "v1", ssrc: 3)]),
            transport: RecordingTransport(), now: at(0))
        #expect(linked.slots.map { $0.producer?.track.trackID } == ["bob", nil])
        let stranger = router.addSubscriber(
            room: "r", peerID: "carol-whep",
            description: SubscriberDescription(
                extensions: subscriberIDs, slots: [videoSlot(mid: "v0", ssrc: 1), videoSlot(mid: "v1", ssrc: 3)]),
            transport: RecordingTransport(), now: at(0))
        #expect(stranger.slots.map { $0.producer?.track.trackID } == ["alice", "bob"])
    }
}
