@testable import BraidSFU
import BraidWire
import Foundation
import NIOCore
import Testing

/// One non-simulcast VP8 publisher (SSRC 4242, RTX 4243) and one subscriber.
struct SingleStream {
    let router: SFURouter
    let publisherTransport = RecordingTransport()
    let subscriberTransport = RecordingTransport()
    let publisher: SFUPublisher
    let subscriber: SFUSubscriber
    var sequence: UInt16 = 500
    var timestamp: UInt32 = 90_000
    var pictureID: UInt16 = 1

    /// `uplinkFEC`: the publisher also sends Braid FEC repairs on SSRC 4244, payload type 98.
    init(slot: SubscriberSlotDescription = videoSlot(), configuration: SFUConfiguration = .init(), uplinkFEC: Bool = false) {
        self.router = SFURouter(configuration: configuration, wallClock: testWallClock)
        var track = videoTrack(rids: [])
        track.ssrcs = [4242]
        track.rtxSSRCs = [4243: 4242]
        if uplinkFEC {
            track.fecSSRC = 4244
            track.fecPayloadType = 98
        }
        self.publisher = router.addPublisher(
            room: "r", peerID: "pub", description: PublisherDescription(extensions: publisherIDs, tracks: [track]),
            transport: publisherTransport, now: at(0))
        self.subscriber = router.addSubscriber(
            room: "r", peerID: "sub", description: SubscriberDescription(extensions: subscriberIDs, slots: [slot]),
            transport: subscriberTransport, now: at(0))
    }

    /// The next media packet (not delivered).
    mutating func next(keyframe: Bool = false, transportSequence: UInt16? = nil) -> ByteBuffer {
        var extensions: [(UInt8, [UInt8])] = []
        if let transportSequence {
            extensions.append((5, [UInt8(transportSequence >> 8), UInt8(transportSequence & 0xFF)]))
        }
        let packet = rtpPacket(
            payloadType: 96, sequenceNumber: self.sequence, timestamp: self.timestamp, ssrc: 4242,
            extensions: extensions, payload: vp8Payload(pictureID: self.pictureID, tl0: 0, keyframe: keyframe))
        self.sequence &+= 1
        self.timestamp &+= 3000
        self.pictureID += 1
        return packet
    }
}

@Suite struct FeedbackTests {
    @Test func subscriberNACKIsAnsweredWithRTX() throws {
        var setup = SingleStream()
        for index in 0..<5 { setup.publisher.receiveRTP(setup.next(keyframe: index == 0), now: at(Int64(index) * 10)) }
        let sent = setup.subscriberTransport.rtpPackets
        try #require(sent.count == 5)
        setup.subscriberTransport.reset()

        var nack = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPGenericNACK.write(
            senderSSRC: 1, mediaSSRC: 0xAAAA_0001,
            lostSequenceNumbers: [sent[1].sequenceNumber, sent[3].sequenceNumber],
            into: &nack)
        setup.subscriber.receiveRTCP(nack, now: at(60))
        let rtx = setup.subscriberTransport.rtpPackets
        try #require(rtx.count == 2)
        var map = RTPHeaderExtensionMap()
        map.transportSequenceNumber = 11
        for (retransmission, original) in zip(rtx, [sent[1], sent[3]]) {
            // RFC 4588 §4: RTX SSRC and PT, its own sequence space, payload = OSN + original payload.
            #expect(retransmission.ssrc == 0xAAAA_0002)
            #expect(retransmission.payloadType == 101)
            #expect(retransmission.timestamp == original.timestamp)
            var payload = retransmission.payload
            #expect(payload.readInteger(as: UInt16.self) == original.sequenceNumber)
            #expect(bytes(payload) == bytes(original.payload))
        }
        #expect(rtx[1].sequenceNumber == rtx[0].sequenceNumber &+ 1)
        // Retransmissions take the next transport-wide numbers (5 media packets took 1...5).
        #expect(try rtx.map { try #require(try $0.transportSequenceNumber(map)).value } == [6, 7])
        #expect(setup.subscriber.counters.nacksReceived == 1)
        #expect(setup.subscriber.counters.retransmissions == 2)

        // A second NACK for the same packet within the RTT is not answered again.
        setup.subscriber.receiveRTCP(nack, now: at(70))
        #expect(setup.subscriberTransport.rtp.count == 2)
        let status = try #require(setup.router.roomStatuses(now: at(80)).first)
        #expect(status.subscribers[0].nacksReceived == 2)
        #expect(status.subscribers[0].retransmissions == 2)
    }

    @Test func slotWithoutRTXGetsPlainResends() throws {
        var setup = SingleStream(slot: videoSlot(rtxSSRC: nil))
        for index in 0..<3 { setup.publisher.receiveRTP(setup.next(keyframe: index == 0), now: at(Int64(index) * 10)) }
        let original = setup.subscriberTransport.rtpPackets[1]
        setup.subscriberTransport.reset()
        var nack = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPGenericNACK.write(
            senderSSRC: 1, mediaSSRC: 0xAAAA_0001, lostSequenceNumbers: [original.sequenceNumber], into: &nack)
        setup.subscriber.receiveRTCP(nack, now: at(50))
        let resent = try #require(setup.subscriberTransport.rtpPackets.first)
        #expect(resent.ssrc == 0xAAAA_0001)
        #expect(resent.sequenceNumber == original.sequenceNumber)
        #expect(bytes(resent.payload) == bytes(original.payload))
    }

    @Test func upstreamLossIsNACKedOnTickAndRTXRepairsIt() throws {
        var setup = SingleStream()
        let packets = (0..<6).map { setup.next(keyframe: $0 == 0) }
        for (index, packet) in packets.enumerated() where index != 2 && index != 3 {
            setup.publisher.receiveRTP(packet, now: at(Int64(index) * 10))
        }
        setup.publisherTransport.reset()
        setup.router.tick(now: at(70))
        let nack = try #require(setup.publisherTransport.nacks.first)
        #expect(nack.mediaSSRC == 4242)
        #expect(Array(nack.lostSequenceNumbers) == [502, 503])

        // The publisher repairs 502 over RTX (FID 4243 -> 4242): OSN + original payload.
        let original = try RTPPacket(packets[2])
        var payload: [UInt8] = [0x01, 0xF6]
        payload += bytes(original.payload)
        setup.subscriberTransport.reset()
        setup.publisher.receiveRTP(
            rtpPacket(payloadType: 97, sequenceNumber: 7, timestamp: original.timestamp, ssrc: 4243, payload: payload),
            now: at(80))
        let forwarded = try #require(setup.subscriberTransport.rtpPackets.first)
        #expect(forwarded.ssrc == 0xAAAA_0001)
        #expect(forwarded.payloadType == 100)
        #expect(bytes(forwarded.payload) == bytes(original.payload))
        // Only 503 is still missing.
        setup.publisherTransport.reset()
        setup.router.tick(now: at(300))
        #expect(setup.publisherTransport.nacks.flatMap { Array($0.lostSequenceNumbers) } == [503])
        // Chromium's empty RTX probes are ignored.
        setup.publisher.receiveRTP(
            rtpPacket(payloadType: 97, sequenceNumber: 8, timestamp: 0, ssrc: 4243, payload: [0x01]), now: at(310))
        #expect(setup.publisher.counters.paddingPackets == 1)
    }

    @Test func receiverReportsGoUpstream() throws {
        var setup = SingleStream()
        let packets = (0..<10).map { setup.next(keyframe: $0 == 0) }
        for (index, packet) in packets.enumerated() where index != 4 {
            setup.publisher.receiveRTP(packet, now: at(Int64(index) * 10))
        }
        setup.router.tick(now: at(100))
        let report = try #require(setup.publisherTransport.receiverReports.first)
        let block = try #require(report.reportBlocks.first { $0.ssrc == 4242 })
        #expect(block.cumulativeLost == 1)
        #expect(block.extendedHighestSequenceNumber == 509)
        #expect(block.fractionLost == UInt8(256 / 10))
    }

    @Test func senderReportsCarryNTPExtrapolatedTimestampAndCounts() throws {
        var setup = SingleStream()
        for index in 0..<4 { setup.publisher.receiveRTP(setup.next(keyframe: index == 0), now: at(Int64(index) * 33)) }
        let sent = setup.subscriberTransport.rtpPackets
        setup.router.tick(now: at(199))
        let report = try #require(setup.subscriberTransport.senderReports.first)
        #expect(report.senderSSRC == 0xAAAA_0001)
        #expect(report.ntpTimestamp == testWallClock.ntpTimestamp(at: at(199)))
        // Last packet sent at 99 ms: 100 ms later at 90 kHz.
        #expect(report.rtpTimestamp == sent[3].timestamp &+ 9000)
        #expect(report.packetCount == 4)
        #expect(report.octetCount == UInt32(sent.reduce(0) { $0 + $1.payloadLength }))
        // NTP: seconds since 1900 for 2023-11-14T22:13:20.199Z.
        #expect(report.ntpTimestamp >> 32 == 1_700_000_000 + 2_208_988_800)
        // The next one comes a second later, not on every tick.
        setup.router.tick(now: at(500))
        #expect(setup.subscriberTransport.senderReports.count == 1)
        setup.router.tick(now: at(1199))
        #expect(setup.subscriberTransport.senderReports.count == 2)
    }

    @Test func receiverReportFromSubscriberGivesRTTAndLoss() throws {
        var setup = SingleStream()
        setup.publisher.receiveRTP(setup.next(keyframe: true), now: at(0))
        setup.router.tick(now: at(1000))
        let sr = try #require(setup.subscriberTransport.senderReports.first)
        let lsr = UInt32(truncatingIfNeeded: sr.ntpTimestamp >> 16)
        // The subscriber held the SR for 50 ms; the report arrives 150 ms after the SR left: RTT 100 ms.
        let rr = try receiverReport(
            about: 0xAAAA_0001, fractionLost: 64, cumulativeLost: 3, lastSenderReport: lsr,
            delaySinceLastSenderReport: 65536 / 20)
        setup.subscriber.receiveRTCP(rr, now: at(1150))
        let rtt = try #require(setup.subscriber.roundTripTime)
        #expect(abs(rtt.nanoseconds - 100_000_000) < 1_000_000)
        let status = try #require(setup.router.roomStatuses(now: at(1200)).first?.subscribers.first)
        #expect(status.packetsLost == 3)
        #expect(status.lossFraction == 0.25)
        #expect(abs((status.rttMs ?? 0) - 100) < 1)
    }

    @Test func transportFeedbackToThePublisherReportsArrivals() throws {
        var setup = SingleStream()
        // Transport-wide numbers 10...17, 13 lost; arrivals 5 ms apart.
        var arrivals: [UInt16: NIODeadline] = [:]
        for (index, sequence) in (10...17).enumerated() where sequence != 13 {
            let time = at(Int64(index) * 5)
            arrivals[UInt16(sequence)] = time
            setup.publisher.receiveRTP(setup.next(keyframe: index == 0, transportSequence: UInt16(sequence)), now: time)
        }
        setup.publisherTransport.reset()
        setup.router.tick(now: at(100))
        let feedback = try #require(setup.publisherTransport.transportFeedback.first)
        #expect(feedback.baseSequenceNumber == 10)
        #expect(feedback.packetStatusCount == 8)
        #expect(feedback.senderSSRC == setup.publisher.rtcpSSRC)
        for status in feedback.packets {
            if let arrival = arrivals[status.sequenceNumber] {
                let reported = try #require(status.arrivalOffset) + feedback.referenceTimeMicroseconds
                #expect(reported == arrival.microseconds)
            } else {
                #expect(status.sequenceNumber == 13)
                #expect(status.arrivalOffset == nil)
            }
        }
        // The next feedback reports only what arrived since, with the next feedback count.
        setup.publisher.receiveRTP(setup.next(transportSequence: 18), now: at(120))
        setup.router.tick(now: at(200))
        let second = try #require(setup.publisherTransport.transportFeedback.last)
        #expect(setup.publisherTransport.transportFeedback.count == 2)
        #expect(second.baseSequenceNumber == 18)
        #expect(second.packetStatusCount == 1)
        #expect(second.feedbackPacketCount == feedback.feedbackPacketCount &+ 1)
    }

    @Test func transportFeedbackFromTheSubscriberFeedsTheEstimator() throws {
        var setup = SingleStream()
        for index in 0..<20 { setup.publisher.receiveRTP(setup.next(keyframe: index == 0), now: at(Int64(index) * 5)) }
        var map = RTPHeaderExtensionMap()
        map.transportSequenceNumber = 11
        let sent = setup.subscriberTransport.rtpPackets
        let numbers = try sent.map { try #require(try $0.transportSequenceNumber(map)).value }
        #expect(numbers == Array(1...20))
        var feedback = ByteBufferAllocator().buffer(capacity: 1500)
        try RTCPTransportWideFeedback.write(
            senderSSRC: 5, mediaSSRC: 0xAAAA_0001, baseSequenceNumber: 1, feedbackPacketCount: 0,
            arrivals: (0..<20).map { Int64(50_000 + $0 * 5_000) }, into: &feedback)
        setup.subscriber.receiveRTCP(feedback, now: at(120))
        #expect(setup.subscriber.counters.transportFeedbackReceived == 1)
        #expect(setup.subscriber.lastFeedbackResultCount == 20)
    }

    @Test func rembIsTheEstimateWithoutTransportCC() throws {
        var slot = videoSlot()
        slot.feedback = RTCPFeedbackSupport(nack: true, pli: true, remb: true)
        let setup = SingleStream(slot: slot)
        var remb = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPReceiverEstimatedMaximumBitrate.write(
            senderSSRC: 5, bitrate: 250_000, ssrcs: [0xAAAA_0001], into: &remb)
        setup.subscriber.receiveRTCP(remb, now: at(10))
        let estimate = setup.subscriber.availableBitrate
        #expect(abs(estimate - 250_000) < 1000)
        setup.subscriber.maximumBitrate = 100_000
        #expect(setup.subscriber.availableBitrate == 100_000)
    }

    @Test func bitrateCapMovesToTheLowestLayerAndBackAfterTheDwell() throws {
        let router = SFURouter(wallClock: testWallClock)
        let publisherTransport = RecordingTransport()
        let publisher = router.addPublisher(
            room: "r", peerID: "pub",
            description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack()]),
            transport: publisherTransport, now: at(0))
        let subscriber = router.addSubscriber(
            room: "r", peerID: "sub",
            description: SubscriberDescription(extensions: subscriberIDs, slots: [videoSlot()]),
            transport: RecordingTransport(), now: at(0))
        let consumer = subscriber.slots[0]
        var source = SimulcastSource()
        var time: Int64 = 0
        /// 30 fps on every layer, a keyframe on each layer every 500 ms, a tick every frame.
        func run(until end: Int64) {
            while time < end {
                let keyframe = time % 500 == 0
                for layer in 0..<3 {
                    publisher.receiveRTP(
                        source.frame(layer: layer, keyframe: keyframe, withRID: time == 0), now: at(time))
                }
                router.tick(now: at(time))
                time += 20
            }
        }
        // The estimate (the 1 Mbps start value, no feedback yet) covers the top layer: up after the dwell.
        run(until: 3100)
        let order = publisher.producers[0].qualityOrder()
        #expect(order == [0, 1, 2])
        #expect(consumer.currentLayer == 2)

        // Capped below the middle layer: down at once (target), on the next keyframe (current).
        subscriber.maximumBitrate = 40_000
        #expect(consumer.targetLayer == 0)
        run(until: 3600)
        #expect(consumer.currentLayer == 0)
        let capped = try #require(router.roomStatuses(now: at(time)).first?.subscribers.first)
        #expect(capped.estimateBps == 40_000)
        #expect(capped.layers["v0"] == "l")

        // Cap lifted: back up only after the dwell.
        subscriber.maximumBitrate = nil
        run(until: 4600)
        #expect(consumer.currentLayer == 0)
        run(until: 6200)
        #expect(consumer.currentLayer == 2)
    }

    @Test func activeSpeakersAreOrderedLoudestFirst() throws {
        let router = SFURouter(wallClock: testWallClock)
        let levels: [(String, UInt8)] = [("quiet", 50), ("loud", 10), ("silent", 127), ("medium", 30)]
        var publishers: [SFUPublisher] = []
        for (name, _) in levels {
            publishers.append(
                router.addPublisher(
                    room: "r", peerID: name,
                    description: PublisherDescription(
                        extensions: publisherIDs, tracks: [audioTrack(mid: "0", trackID: name)]),
                    transport: RecordingTransport(), now: at(0)))
        }
        for step in 0..<50 {
            for (index, (_, level)) in levels.enumerated() {
                publishers[index].receiveRTP(
                    rtpPacket(
                        payloadType: 111, sequenceNumber: UInt16(step), timestamp: UInt32(step) * 960,
                        ssrc: 100 + UInt32(index),
                        extensions: [(1, ascii("0")), (6, [0x80 | level])], payload: [0xF8, 0xFF, 0xFE]),
                    now: at(Int64(step) * 20))
            }
        }
        #expect(router.activeSpeakers(room: "r", now: at(1000)) == ["loud", "medium", "quiet"])
        let status = try #require(router.roomStatuses(now: at(1000)).first)
        #expect(status.activeSpeakers == ["loud", "medium", "quiet"])
        // Long after the last level, nobody is speaking.
        #expect(router.activeSpeakers(room: "r", now: at(5000)).isEmpty)
    }

    @Test func statusEncodesWithSnakeCaseKeys() throws {
        var setup = SingleStream()
        setup.publisher.receiveRTP(setup.next(keyframe: true), now: at(0))
        setup.router.tick(now: at(600))
        let status = setup.router.roomStatuses(now: at(600))
        let json = String(decoding: try JSONEncoder().encode(status), as: UTF8.self)
        for key in [
            "\"active_speakers\"", "\"bitrate_in_bps\"", "\"track_id\"", "\"nacks_received\"", "\"bitrate_bps\"",
        ] {
            #expect(json.contains(key))
        }
    }
}

@Suite struct LayerActivityTests {
    @Test func aLayerThatStopsIsReplacedByTheBestFlowingOne() throws {
        let router = SFURouter(wallClock: testWallClock)
        let publisher = router.addPublisher(
            room: "r", peerID: "pub",
            description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack()]),
            transport: RecordingTransport(), now: at(0))
        let subscriberTransport = RecordingTransport()
        let subscriber = router.addSubscriber(
            room: "r", peerID: "sub",
            description: SubscriberDescription(extensions: subscriberIDs, slots: [videoSlot()]),
            transport: subscriberTransport, now: at(0))
        let consumer = subscriber.slots[0]
        var source = SimulcastSource()
        var time: Int64 = 0
        func run(until end: Int64, layers: Range<Int>) {
            while time < end {
                for layer in layers {
                    publisher.receiveRTP(
                        source.frame(layer: layer, keyframe: time % 500 == 0, withRID: time == 0), now: at(time))
                }
                router.tick(now: at(time))
                time += 20
            }
        }
        run(until: 3100, layers: 0..<3)
        #expect(consumer.currentLayer == 2)
        // The browser drops its top layer: within a window and a keyframe the middle one takes over.
        run(until: 4100, layers: 0..<2)
        #expect(consumer.targetLayer == 1)
        #expect(consumer.currentLayer == 1)
        let sequences = subscriberTransport.rtpPackets.map(\.sequenceNumber)
        #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $1 == $0 &+ 1 })
    }
}

@Suite struct EstimateDrivenLayerTests {
    @Test func transportFeedbackReportingLossMovesTheLayerDown() throws {
        let router = SFURouter(wallClock: testWallClock)
        let publisher = router.addPublisher(
            room: "r", peerID: "pub",
            description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack()]),
            transport: RecordingTransport(), now: at(0))
        let subscriberTransport = RecordingTransport()
        let subscriber = router.addSubscriber(
            room: "r", peerID: "sub",
            description: SubscriberDescription(extensions: subscriberIDs, slots: [videoSlot()]),
            transport: subscriberTransport, now: at(0))
        let consumer = subscriber.slots[0]
        var source = SimulcastSource()
        var time: Int64 = 0
        var map = RTPHeaderExtensionMap()
        map.transportSequenceNumber = 11
        var reported = 0
        var feedbackCount: UInt8 = 0
        /// Frames every 20 ms; with `lossy`, every 100 ms a feedback reports every other packet lost.
        func run(until end: Int64, lossy: Bool) throws {
            while time < end {
                for layer in 0..<3 {
                    publisher.receiveRTP(
                        source.frame(layer: layer, keyframe: time % 500 == 0, withRID: time == 0), now: at(time))
                }
                router.tick(now: at(time))
                if lossy, time % 100 == 0 {
                    let media = subscriberTransport.rtpPackets.filter { $0.ssrc == 0xAAAA_0001 }
                    let fresh = media[reported...]
                    if let first = fresh.first, let base = try first.transportSequenceNumber(map)?.value {
                        let arrivals: [Int64?] = fresh.indices.map { $0 % 2 == 0 ? Int64($0) * 20_000 : nil }
                        var feedback = ByteBufferAllocator().buffer(capacity: 1500)
                        try RTCPTransportWideFeedback.write(
                            senderSSRC: 5, mediaSSRC: 0xAAAA_0001, baseSequenceNumber: base,
                            feedbackPacketCount: feedbackCount, arrivals: arrivals, into: &feedback)
                        feedbackCount &+= 1
                        subscriber.receiveRTCP(feedback, now: at(time))
                    }
                    reported = media.count
                }
                time += 20
            }
        }
        try run(until: 3100, lossy: false)
        #expect(consumer.currentLayer == 2)
        try run(until: 6100, lossy: true)
        #expect(subscriber.availableBitrate < 500_000)
        #expect(consumer.currentLayer != 2)
        #expect(subscriber.counters.transportFeedbackReceived == 30)
    }
}
