@testable import BraidSFU
import BraidWire
import NIOCore
import Testing

@Suite struct ForwardingTests {
    /// One simulcast publisher, one subscriber with a video slot.
    struct Simulcast {
        let router = SFURouter(wallClock: testWallClock)
        let publisherTransport = RecordingTransport()
        let subscriberTransport = RecordingTransport()
        let publisher: SFUPublisher
        let subscriber: SFUSubscriber
        var source = SimulcastSource()

        init(subscriberFeedback: Bool = true) {
            self.publisher = router.addPublisher(
                room: "r", peerID: "pub",
                description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack()]),
                transport: publisherTransport, now: at(0))
            var slot = videoSlot()
            if !subscriberFeedback { slot.feedback = RTCPFeedbackSupport(nack: true, pli: true) }
            self.subscriber = router.addSubscriber(
                room: "r", peerID: "sub", description: SubscriberDescription(extensions: subscriberIDs, slots: [slot]),
                transport: subscriberTransport, now: at(0))
        }

        var consumer: SubscriberSlot { self.subscriber.slots[0] }

        /// Sends one frame on every layer (keyframes or not) at `ms`.
        mutating func sendAllLayers(keyframe: Bool, at ms: Int64, withRID: Bool = true) {
            for layer in 0..<3 {
                self.publisher.receiveRTP(
                    self.source.frame(layer: layer, keyframe: keyframe, withRID: withRID), now: at(ms))
            }
        }
    }

    @Test func simulcastLayersAreLearntFromRIDAndOnlyOneIsForwarded() throws {
        var setup = Simulcast()
        setup.sendAllLayers(keyframe: true, at: 10)
        // Bound from the rid extension, in rid order.
        let producer = setup.publisher.producers[0]
        #expect(producer.layers.map(\.ssrc) == [1000, 1001, 1002])
        // Chromium stops sending mid/rid: the binding holds.
        for step in 1...5 { setup.sendAllLayers(keyframe: false, at: 10 + Int64(step) * 33, withRID: false) }
        #expect(setup.publisher.counters.unknownSSRC == 0)

        let sent = setup.subscriberTransport.rtpPackets
        // Starts on the first (lowest) layer: 6 of 18 packets.
        #expect(sent.count == 6)
        #expect(sent.allSatisfy { $0.ssrc == 0xAAAA_0001 && $0.payloadType == 100 })
        #expect(setup.consumer.currentLayer == 0)
        let sequences = sent.map(\.sequenceNumber)
        #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
    }

    @Test func layerSwitchWaitsForKeyframeAndKeepsOutputContinuous() throws {
        var setup = Simulcast()
        setup.sendAllLayers(keyframe: true, at: 0)
        for step in 1...3 { setup.sendAllLayers(keyframe: false, at: Int64(step) * 33) }
        setup.publisherTransport.reset()

        setup.consumer.setTargetLayer(2, now: at(120))
        // The target layer is asked for a keyframe at once.
        #expect(setup.publisherTransport.plis.map(\.mediaSSRC) == [1002])
        // Until it comes, layer 0 keeps flowing.
        setup.sendAllLayers(keyframe: false, at: 132)
        #expect(setup.consumer.currentLayer == 0)
        // A keyframe on layer 0 or 1 does not switch to 2.
        setup.publisher.receiveRTP(setup.source.frame(layer: 1, keyframe: true), now: at(165))
        #expect(setup.consumer.currentLayer == 0)
        setup.publisher.receiveRTP(setup.source.frame(layer: 0, keyframe: false), now: at(165))
        setup.publisher.receiveRTP(setup.source.frame(layer: 2, keyframe: true), now: at(198))
        #expect(setup.consumer.currentLayer == 2)
        setup.sendAllLayers(keyframe: false, at: 231)
        setup.sendAllLayers(keyframe: false, at: 264)

        let sent = setup.subscriberTransport.rtpPackets
        #expect(sent.count == 4 + 2 + 1 + 2)
        let sequences = sent.map(\.sequenceNumber)
        #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
        let timestamps = sent.map(\.timestamp)
        #expect(zip(timestamps, timestamps.dropFirst()).allSatisfy { Int32(bitPattern: $1 &- $0) > 0 })
        let pictureIDs = try sent.map { try #require(VP8PayloadDescriptor($0.payload).pictureID?.value) }
        #expect(zip(pictureIDs, pictureIDs.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
        let tl0 = try sent.map { try #require(VP8PayloadDescriptor($0.payload).tl0PicIndex) }
        #expect(zip(tl0, tl0.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
        // The switched-to layer's payload (its extra 1000 bytes) is what is sent now.
        #expect(sent.last!.payloadLength > 1000)
        #expect(setup.consumer.layerSwitches == 1)
    }

    @Test func headerExtensionsAreRebuiltWithTheSubscribersIDs() throws {
        var setup = Simulcast()
        setup.sendAllLayers(keyframe: true, at: 0)
        setup.sendAllLayers(keyframe: false, at: 33)
        let sent = setup.subscriberTransport.rtpPackets
        try #require(sent.count == 2)
        for packet in sent {
            let ids = packet.headerExtension.map { Array($0.elements.map(\.id)) } ?? []
            // mid, abs-send-time, transport-wide seq; no rid/repaired-rid; nothing under publisher ids.
            #expect(Set(ids) == [9, 10, 11])
            let mid = try #require(packet.extension(id: 9))
            #expect(bytes(mid.value) == ascii("v0"))
        }
        var map = RTPHeaderExtensionMap()
        map.transportSequenceNumber = 11
        map.absSendTime = 10
        let tw = try sent.map { try #require(try $0.transportSequenceNumber(map)).value }
        #expect(tw == [1, 2])
        // abs-send-time is the node's send time (t = 33 ms after the wall-clock reference).
        let sendTime = try #require(try sent[1].absSendTime(map))
        #expect(sendTime == AbsSendTime(ntpTimestamp: testWallClock.ntpTimestamp(at: at(33))))
    }

    @Test func transportWideSequenceIsOnePerSubscriberAcrossSlots() throws {
        let router = SFURouter(wallClock: testWallClock)
        let publisherTransport = RecordingTransport()
        let subscriberTransport = RecordingTransport()
        let publisher = router.addPublisher(
            room: "r", peerID: "pub",
            description: PublisherDescription(
                extensions: publisherIDs, tracks: [videoTrack(rids: []), audioTrack()]),
            transport: publisherTransport, now: at(0))
        router.addSubscriber(
            room: "r", peerID: "sub",
            description: SubscriberDescription(extensions: subscriberIDs, slots: [videoSlot(), audioSlot()]),
            transport: subscriberTransport, now: at(0))
        for step in 0..<4 {
            publisher.receiveRTP(
                rtpPacket(
                    payloadType: 96, sequenceNumber: UInt16(step), timestamp: UInt32(step) * 3000, ssrc: 7,
                    extensions: [(1, ascii("0"))],
                    payload: vp8Payload(pictureID: UInt16(step), tl0: 0, keyframe: step == 0)),
                now: at(Int64(step) * 20))
            publisher.receiveRTP(
                rtpPacket(
                    payloadType: 111, sequenceNumber: UInt16(50 + step), timestamp: UInt32(step) * 960, ssrc: 8,
                    extensions: [(1, ascii("1")), (6, [0x80 | 30])], payload: [0xF8, 0x01, 0x02]),
                now: at(Int64(step) * 20 + 10))
        }
        let sent = subscriberTransport.rtpPackets
        #expect(sent.count == 8)
        var map = RTPHeaderExtensionMap()
        map.transportSequenceNumber = 11
        #expect(try sent.map { try #require(try $0.transportSequenceNumber(map)).value } == Array(1...8))
        // Audio: subscriber PT, the audio level copied under the subscriber's ID.
        let audio = sent.filter { $0.ssrc == 0xBBBB_0001 }
        #expect(audio.count == 4)
        #expect(audio.allSatisfy { $0.payloadType == 109 })
        #expect(audio.allSatisfy { $0.extension(id: 12).map { bytes($0.value) } == [0x80 | 30] })
    }

    @Test func redIsReducedToItsPrimaryBlockForASubscriberWithoutRED() throws {
        let router = SFURouter(wallClock: testWallClock)
        let publisher = router.addPublisher(
            room: "r", peerID: "pub",
            description: PublisherDescription(extensions: publisherIDs, tracks: [audioTrack(red: 63)]),
            transport: RecordingTransport(), now: at(0))
        let plain = RecordingTransport()
        let withRED = RecordingTransport()
        router.addSubscriber(
            room: "r", peerID: "plain",
            description: SubscriberDescription(extensions: subscriberIDs, slots: [audioSlot()]), transport: plain,
            now: at(0))
        router.addSubscriber(
            room: "r", peerID: "red",
            description: SubscriberDescription(extensions: subscriberIDs, slots: [audioSlot(red: 120)]),
            transport: withRED, now: at(0))
        // RFC 2198: one redundant block (PT 111, offset 960, 3 bytes) and the primary (PT 111, 4 bytes).
        let red: [UInt8] = [0x80 | 111, 0x0F, 0x00, 0x03, 111, 0xA1, 0xA2, 0xA3, 0xB1, 0xB2, 0xB3, 0xB4]
        publisher.receiveRTP(
            rtpPacket(
                payloadType: 63, sequenceNumber: 1, timestamp: 960, ssrc: 5, extensions: [(1, ascii("1"))], payload: red
            ),
            now: at(10))
        let primary = try #require(plain.rtpPackets.first)
        #expect(primary.payloadType == 109)
        #expect(bytes(primary.payload) == [0xB1, 0xB2, 0xB3, 0xB4])
        let kept = try #require(withRED.rtpPackets.first)
        #expect(kept.payloadType == 120)
        // Block PTs renamed to the subscriber's Opus PT.
        #expect(bytes(kept.payload) == [0x80 | 109, 0x0F, 0x00, 0x03, 109, 0xA1, 0xA2, 0xA3, 0xB1, 0xB2, 0xB3, 0xB4])
    }

    @Test func slotsAreFilledFreedAndRefilled() throws {
        let router = SFURouter(wallClock: testWallClock)
        let subscriberTransport = RecordingTransport()
        let subscriber = router.addSubscriber(
            room: "r", peerID: "sub",
            description: SubscriberDescription(
                extensions: subscriberIDs,
                slots: [audioSlot(mid: "a0", ssrc: 11), videoSlot(mid: "v0", ssrc: 21, rtxSSRC: nil)]),
            transport: subscriberTransport, now: at(0))
        #expect(subscriber.slots.allSatisfy { $0.producer == nil })
        // The room exists while someone is in it.
        #expect(router.roomNames == ["r"])

        let alice = router.addPublisher(
            room: "r", peerID: "alice",
            description: PublisherDescription(
                extensions: publisherIDs,
                tracks: [audioTrack(mid: "0", trackID: "alice-mic"), videoTrack(mid: "1", rids: [])]),
            transport: RecordingTransport(), now: at(10))
        #expect(subscriber.slots.map { $0.producer?.track.trackID } == ["alice-mic", "cam"])

        // Bob's audio arrives when the audio slot is taken: it waits.
        router.addPublisher(
            room: "r", peerID: "bob",
            description: PublisherDescription(
                extensions: publisherIDs, tracks: [audioTrack(mid: "0", trackID: "bob-mic")]),
            transport: RecordingTransport(), now: at(20))
        #expect(subscriber.slots[0].producer?.track.trackID == "alice-mic")

        // Alice leaves: her slots are freed; bob's audio takes the audio slot, the video slot stays free.
        router.removePeer("alice", now: at(30))
        #expect(subscriber.slots[0].producer?.track.trackID == "bob-mic")
        #expect(subscriber.slots[1].producer == nil)
        #expect(alice.producers.allSatisfy { $0.consumers.isEmpty })

        // A video publisher arriving later fills the free video slot.
        router.addPublisher(
            room: "r", peerID: "carol",
            description: PublisherDescription(
                extensions: publisherIDs, tracks: [videoTrack(mid: "0", trackID: "carol-cam", rids: [])]),
            transport: RecordingTransport(), now: at(40))
        #expect(subscriber.slots[1].producer?.track.trackID == "carol-cam")

        router.removePeer("bob", now: at(50))
        router.removePeer("carol", now: at(50))
        router.removePeer("sub", now: at(50))
        #expect(router.roomNames.isEmpty)
    }

    @Test func newSubscriberAsksForAKeyframeAtOnceAndWaitsForIt() throws {
        let router = SFURouter(wallClock: testWallClock)
        let publisherTransport = RecordingTransport()
        var track = videoTrack(rids: [])
        track.ssrcs = [4242]
        let publisher = router.addPublisher(
            room: "r", peerID: "pub", description: PublisherDescription(extensions: publisherIDs, tracks: [track]),
            transport: publisherTransport, now: at(0))
        publisher.receiveRTP(
            rtpPacket(
                payloadType: 96, sequenceNumber: 1, timestamp: 0, ssrc: 4242,
                payload: vp8Payload(pictureID: 1, tl0: 0, keyframe: false)),
            now: at(5))
        let subscriberTransport = RecordingTransport()
        router.addSubscriber(
            room: "r", peerID: "sub",
            description: SubscriberDescription(extensions: subscriberIDs, slots: [videoSlot()]),
            transport: subscriberTransport, now: at(10))
        #expect(publisherTransport.plis.map(\.mediaSSRC) == [4242])
        publisher.receiveRTP(
            rtpPacket(
                payloadType: 96, sequenceNumber: 2, timestamp: 3000, ssrc: 4242,
                payload: vp8Payload(pictureID: 2, tl0: 0, keyframe: false)),
            now: at(40))
        #expect(subscriberTransport.rtp.isEmpty)
        publisher.receiveRTP(
            rtpPacket(
                payloadType: 96, sequenceNumber: 3, timestamp: 6000, ssrc: 4242,
                payload: vp8Payload(pictureID: 3, tl0: 1, keyframe: true)),
            now: at(70))
        #expect(subscriberTransport.rtp.count == 1)
        let status = try #require(router.roomStatuses(now: at(80)).first)
        #expect(status.tracks[0].layers[0].width == 640)
        #expect(status.tracks[0].layers[0].height == 360)
    }

    @Test("A keyframe whose first packet comes repaired still starts a waiting subscriber, which gets the rest replayed")
    func aRepairedLiveKeyframeStartsAWaitingSubscriber() throws {
        let setup = SingleStream()  // the subscriber is there from the start, waiting for a keyframe
        let publisher = setup.publisher
        let subscriberTransport = setup.subscriberTransport
        func packet(_ sequenceNumber: UInt16, timestamp: UInt32, picture: UInt16, keyframe: Bool, start: Bool = true)
            -> ByteBuffer
        {
            rtpPacket(
                payloadType: 96, sequenceNumber: sequenceNumber, timestamp: timestamp, ssrc: 4242,
                payload: vp8Payload(pictureID: picture, tl0: 0, keyframe: keyframe, startOfFrame: start))
        }
        publisher.receiveRTP(packet(1, timestamp: 0, picture: 1, keyframe: false), now: at(5))
        // The keyframe's first packet (2) is lost on the uplink; its second and the next frame arrive.
        publisher.receiveRTP(packet(3, timestamp: 3000, picture: 2, keyframe: false, start: false), now: at(40))
        publisher.receiveRTP(packet(4, timestamp: 6000, picture: 3, keyframe: false), now: at(70))
        #expect(subscriberTransport.rtp.isEmpty)

        // 2 comes repaired (as FEC or RTX rebuilds it): the subscriber starts on it and gets 3 and 4 after it.
        let producer = publisher.producers[0]
        func repaired(_ buffer: ByteBuffer) throws -> IngressPacket {
            let rtp = try RTPPacket(buffer)
            return IngressPacket(
                rtp: rtp, extensions: .init(), layer: 0, sequenceNumber: rtp.sequenceNumber, payload: rtp.payload,
                isRetransmission: true)
        }
        let keyframe = packet(2, timestamp: 3000, picture: 2, keyframe: true)
        #expect(producer.ingest(try repaired(keyframe), now: at(100)) == .forwarded(keyframe: true))
        let sent = subscriberTransport.rtpPackets
        #expect(sent.map(\.timestamp) == [3000, 3000, 6000])
        #expect(zip(sent, sent.dropFirst()).allSatisfy { $1.sequenceNumber == $0.sequenceNumber &+ 1 })
        #expect(try VP8Payload(sent[0].payload).isKeyFrame)

        // A repaired keyframe behind a newer one is old: it starts nothing.
        publisher.receiveRTP(packet(5, timestamp: 9000, picture: 4, keyframe: true), now: at(130))
        #expect(producer.ingest(try repaired(keyframe), now: at(140)) == .forwarded(keyframe: false))
    }

    @Test func subscriberPLIsAreThrottledUpstream() throws {
        var setup = Simulcast()
        setup.sendAllLayers(keyframe: false, at: 0)
        // The join request could not go out before the SSRC was known; it does once layer 0 is bound.
        #expect(setup.publisherTransport.plis.map(\.mediaSSRC) == [1000])
        setup.sendAllLayers(keyframe: true, at: 30)
        setup.publisherTransport.reset()

        var pli = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPPictureLossIndication.write(senderSSRC: 77, mediaSSRC: 0xAAAA_0001, into: &pli)
        setup.subscriber.receiveRTCP(pli, now: at(100))
        setup.subscriber.receiveRTCP(pli, now: at(600))
        #expect(setup.publisherTransport.plis.count == 1)
        #expect(setup.publisherTransport.plis.first?.mediaSSRC == 1000)
        // No keyframe came: the throttle retries from the tick after its interval.
        setup.router.tick(now: at(1150))
        #expect(setup.publisherTransport.plis.count == 2)
        #expect(setup.subscriber.counters.keyframeRequestsReceived == 2)
    }

    @Test func firIsUsedWhenThePublisherHasNoPLI() throws {
        let router = SFURouter(wallClock: testWallClock)
        let publisherTransport = RecordingTransport()
        var track = videoTrack(rids: [])
        track.feedback = RTCPFeedbackSupport(nack: true, fir: true)
        track.ssrcs = [9]
        router.addPublisher(
            room: "r", peerID: "pub", description: PublisherDescription(extensions: publisherIDs, tracks: [track]),
            transport: publisherTransport, now: at(0))
        router.addSubscriber(
            room: "r", peerID: "sub",
            description: SubscriberDescription(extensions: subscriberIDs, slots: [videoSlot()]),
            transport: RecordingTransport(), now: at(0))
        #expect(publisherTransport.plis.isEmpty)
        let fir = try #require(publisherTransport.firs.first)
        #expect(fir.entries.map(\.ssrc) == [9])
        #expect(fir.entries.map(\.sequenceNumber) == [1])
    }

    @Test func badInputIsCountedAndDropped() throws {
        var setup = Simulcast()
        setup.publisher.receiveRTP(ByteBuffer(bytes: [0x80, 0x60]), now: at(1))
        setup.publisher.receiveRTP(ByteBuffer(bytes: Array(repeating: 0xFF, count: 40)), now: at(1))
        setup.publisher.receiveRTP(ByteBuffer(), now: at(1))
        #expect(setup.publisher.counters.malformedRTP == 3)
        // Unknown SSRC without mid/rid, and a mid that names no track.
        setup.publisher.receiveRTP(
            rtpPacket(payloadType: 96, sequenceNumber: 1, timestamp: 0, ssrc: 0xDEAD, payload: [1, 2, 3]), now: at(2))
        setup.publisher.receiveRTP(
            rtpPacket(
                payloadType: 96, sequenceNumber: 1, timestamp: 0, ssrc: 0xBEEF, extensions: [(1, ascii("9"))],
                payload: [1]),
            now: at(2))
        #expect(setup.publisher.counters.unknownSSRC == 2)
        // A bound stream whose payload is not VP8.
        setup.sendAllLayers(keyframe: true, at: 3)
        setup.publisher.receiveRTP(
            rtpPacket(payloadType: 96, sequenceNumber: 5000, timestamp: 0, ssrc: 1000, payload: [0x80]), now: at(4))
        #expect(setup.publisher.producers[0].malformedPayloads == 1)
        // Garbage RTCP both ways.
        setup.publisher.receiveRTCP(ByteBuffer(bytes: [0x81, 0xC9, 0x00, 0x09, 0x01]), now: at(5))
        setup.subscriber.receiveRTCP(ByteBuffer(bytes: [0x00, 0x01]), now: at(5))
        #expect(setup.publisher.counters.malformedRTCP == 1)
        #expect(setup.subscriber.counters.malformedRTCP == 1)
        // A random byte soup through every entry point never traps.
        var generator = SystemRandomNumberGenerator()
        for length in 0..<300 {
            let soup = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var buffer = ByteBuffer(bytes: soup)
            setup.publisher.receiveRTP(buffer, now: at(6))
            setup.publisher.receiveRTCP(buffer, now: at(6))
            setup.subscriber.receiveRTCP(buffer, now: at(6))
            // Valid RTP framing around random payloads and extensions.
            if length >= 1 {
                buffer = rtpPacket(
                    payloadType: 96, sequenceNumber: UInt16(length), timestamp: 0, ssrc: 1000 + UInt32(length % 4),
                    payload: soup)
                setup.publisher.receiveRTP(buffer, now: at(7))
            }
        }
        setup.router.tick(now: at(1000))
        _ = setup.router.roomStatuses(now: at(1000))
    }

    @Test func steadyStateForwardingReusesItsScratchStorage() throws {
        var setup = Simulcast()
        setup.sendAllLayers(keyframe: true, at: 0)
        setup.publisherTransport.reset()
        var address: UnsafeRawPointer?
        var capacity: Int?
        for step in 1...2000 {
            setup.publisher.receiveRTP(
                setup.source.frame(layer: 0, keyframe: false, withRID: false), now: at(Int64(step)))
            let scratch = try #require(setup.subscriber.scratchForTesting)
            let current = scratch.withUnsafeReadableBytes { UnsafeRawPointer($0.baseAddress) }
            if address == nil {
                address = current
                capacity = scratch.capacity
            }
            #expect(current == address)
            #expect(scratch.capacity == capacity)
            if current != address { break }
        }
        #expect(setup.consumer.packetsSent == 2001)
        setup.subscriberTransport.reset()
    }
}

@Suite struct SlotContinuityTests {
    @Test func aRefilledSlotContinuesItsOutputStream() throws {
        let router = SFURouter(wallClock: testWallClock)
        let subscriberTransport = RecordingTransport()
        router.addSubscriber(
            room: "r", peerID: "sub",
            description: SubscriberDescription(extensions: subscriberIDs, slots: [audioSlot()]),
            transport: subscriberTransport, now: at(0))
        var publishers: [SFUPublisher] = []
        for (index, name) in ["alice", "bob"].enumerated() {
            publishers.append(
                router.addPublisher(
                    room: "r", peerID: name,
                    description: PublisherDescription(
                        extensions: publisherIDs, tracks: [audioTrack(mid: "0", trackID: name)]),
                    transport: RecordingTransport(), now: at(Int64(index))))
        }
        func speak(_ publisher: Int, sequence: UInt16, timestamp: UInt32, at ms: Int64) {
            publishers[publisher].receiveRTP(
                rtpPacket(
                    payloadType: 111, sequenceNumber: sequence, timestamp: timestamp, ssrc: 500 + UInt32(publisher),
                    extensions: [(1, ascii("0"))], payload: [0xF8, UInt8(publisher)]),
                now: at(ms))
        }
        for step in 0..<3 {
            speak(0, sequence: 100 + UInt16(step), timestamp: 1000 + UInt32(step) * 960, at: Int64(step) * 20)
            speak(1, sequence: 60000 + UInt16(step), timestamp: 7_000_000 + UInt32(step) * 960, at: Int64(step) * 20)
        }
        router.removePeer("alice", now: at(70))
        for step in 3..<6 {
            speak(1, sequence: 60000 + UInt16(step), timestamp: 7_000_000 + UInt32(step) * 960, at: Int64(step) * 20)
        }
        let sent = subscriberTransport.rtpPackets
        // Alice's three packets, then bob's three on the same SSRC with continuous numbering.
        #expect(sent.map { bytes($0.payload)[1] } == [0, 0, 0, 1, 1, 1])
        #expect(Set(sent.map(\.ssrc)) == [0xBBBB_0001])
        let sequences = sent.map(\.sequenceNumber)
        #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
        let timestamps = sent.map(\.timestamp)
        #expect(zip(timestamps, timestamps.dropFirst()).allSatisfy { Int32(bitPattern: $1 &- $0) > 0 })
    }
}

@Suite struct RTXLearningTests {
    @Test func simulcastRTXIsLearntFromRepairedRIDAndFillsTheGap() throws {
        let router = SFURouter(wallClock: testWallClock)
        let publisher = router.addPublisher(
            room: "r", peerID: "pub",
            description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack()]),
            transport: RecordingTransport(), now: at(0))
        let subscriberTransport = RecordingTransport()
        router.addSubscriber(
            room: "r", peerID: "sub",
            description: SubscriberDescription(extensions: subscriberIDs, slots: [videoSlot()]),
            transport: subscriberTransport, now: at(0))
        var source = SimulcastSource()
        for layer in 0..<3 { publisher.receiveRTP(source.frame(layer: layer, keyframe: true), now: at(0)) }
        let lost = source.frame(layer: 0, keyframe: false)
        publisher.receiveRTP(source.frame(layer: 0, keyframe: false), now: at(40))
        let lostPacket = try RTPPacket(lost)

        // RTX (PT 97) on an unsignalled SSRC, bound through mid + repaired-rid.
        var payload: [UInt8] = [UInt8(lostPacket.sequenceNumber >> 8), UInt8(lostPacket.sequenceNumber & 0xFF)]
        payload += bytes(lostPacket.payload)
        publisher.receiveRTP(
            rtpPacket(
                payloadType: 97, sequenceNumber: 1, timestamp: lostPacket.timestamp, ssrc: 2001,
                extensions: [(1, ascii("0")), (3, ascii("l"))], payload: payload),
            now: at(60))
        #expect(publisher.streams[0][0].rtxSSRC == 2001)
        #expect(publisher.producers[0].layers[0].retransmissionsReceived == 1)

        let sent = subscriberTransport.rtpPackets
        try #require(sent.count == 3)
        // The repaired packet takes the output number between the keyframe and the next packet.
        #expect(sent[2].sequenceNumber == sent[0].sequenceNumber &+ 1)
        #expect(sent[1].sequenceNumber == sent[0].sequenceNumber &+ 2)
        #expect(sent[2].payloadType == 100)
        #expect(bytes(sent[2].payload).count == bytes(lostPacket.payload).count)
        // No repaired-rid (or rid) goes out.
        #expect(
            sent.allSatisfy { $0.extension(id: 3) == nil && $0.extension(id: 14) == nil && $0.extension(id: 8) == nil })
    }
}

@Suite struct SignalledStreamTests {
    @Test func signalledSimulcastSSRCsBindWithoutExtensionsAndSubscriberFIRIsForwarded() throws {
        let router = SFURouter(wallClock: testWallClock)
        let publisherTransport = RecordingTransport()
        var track = videoTrack()
        track.ssrcs = [1000, 1001, 1002]
        track.rtxSSRCs = [2000: 1000, 2001: 1001, 2002: 1002]
        let publisher = router.addPublisher(
            room: "r", peerID: "pub", description: PublisherDescription(extensions: RTPExtensionIDs(), tracks: [track]),
            transport: publisherTransport, now: at(0))
        #expect(publisher.producers[0].layers.map(\.ssrc) == [1000, 1001, 1002])
        #expect(publisher.streams[0].map(\.rtxSSRC) == [2000, 2001, 2002])
        let subscriberTransport = RecordingTransport()
        let subscriber = router.addSubscriber(
            room: "r", peerID: "sub",
            description: SubscriberDescription(extensions: RTPExtensionIDs(), slots: [videoSlot()]),
            transport: subscriberTransport, now: at(0))
        // Join: a keyframe request for the first layer at once.
        #expect(publisherTransport.plis.map(\.mediaSSRC) == [1000])
        var source = SimulcastSource()
        for layer in 0..<3 {
            // No extensions at all: the SSRCs alone say which layer each packet belongs to.
            var packet = try RTPPacket(source.frame(layer: layer, keyframe: true))
            packet = try RTPPacket(
                rtpPacket(
                    payloadType: 96, sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp,
                    ssrc: packet.ssrc, payload: bytes(packet.payload)))
            publisher.receiveRTP(packet.buffer, now: at(10))
        }
        let sent = subscriberTransport.rtpPackets
        #expect(sent.count == 1)
        // Without negotiated extensions nothing is added.
        #expect(sent.first?.headerExtension == nil)

        var fir = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPFullIntraRequest.write(
            senderSSRC: 5, entries: [RTCPFullIntraRequest.Entry(ssrc: 0xAAAA_0001, sequenceNumber: 1)], into: &fir)
        subscriber.receiveRTCP(fir, now: at(20))
        // The publisher negotiated PLI: the subscriber's FIR goes up as a PLI on the layer it watches.
        #expect(publisherTransport.plis.map(\.mediaSSRC) == [1000, 1000])
    }
}
