@testable import BraidSFU
import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@Suite struct VideoFECTests {
    @Test func repairRatioFollowsTheLoss() {
        let policy = VideoFECPolicy()
        #expect(policy.repairRatio(loss: 0) == 0)
        #expect(policy.repairRatio(loss: 0.004) == 0)
        #expect(abs(policy.repairRatio(loss: 0.2) - policy.margin * 0.25) < 1e-9)
        #expect(abs(policy.repairRatio(loss: 0.5) - policy.margin) < 1e-9)
        #expect(policy.repairRatio(loss: 0.9) == 2)
        #expect(policy.repairRatio(loss: .nan) == 0)
    }

    /// The encoder exists while the link gets repairs, with the slots its stream's rate needs, and goes
    /// when the link is clean (every subscriber starts protected; its start's copies are not kept for good).
    @Test func theEncoderIsMadeForALossyLinkAndFreedWhenItIsClean() {
        let policy = VideoFECPolicy()
        var protection = VideoProtection(ssrc: 1)
        protection.update(ratio: policy.repairRatio(loss: 0.5), policy: policy, maximumPacketSize: 1200)
        #expect(protection.encoder?.allocated == 8 && protection.encoder?.capacity == 64)
        var packet = ByteBuffer()
        packet.writeRepeatingByte(7, count: 1000)
        // 150 packets a second: the 400 ms kept grow the slots to 64.
        for index in 0..<80 {
            _ = protection.sent(packet, sequenceNumber: UInt16(index), now: .uptimeNanoseconds(UInt64(index) * 6_666_667))
        }
        #expect(protection.encoder?.allocated == 64)
        protection.update(ratio: 0, policy: policy, maximumPacketSize: 1200)
        #expect(protection.encoder == nil && protection.footprint == 0)
        #expect(protection.sent(packet, sequenceNumber: 80, now: .uptimeNanoseconds(600_000_000)) == 0)
    }

    static func fecSlot(fec: Bool = true) -> SubscriberSlotDescription {
        SubscriberSlotDescription(
            mid: "v0", kind: .video, payloadType: 100, clockRate: 90000, rtxPayloadType: 101, ssrc: 0xAAAA_0001,
            rtxSSRC: 0xAAAA_0002, fecPayloadType: fec ? 98 : nil, fecSSRC: fec ? 0xAAAA_0003 : nil,
            feedback: allFeedback)
    }

    @Test func aRepairRoundSendsEnoughRepairsForTheDeficitAtTheLinksLoss() {
        let policy = VideoFECPolicy()
        // 50 %: one missing packet needs 4 repairs for a 90 % chance (93.8 %), 6 in a second round for 97 %
        // (98.4 %; 5 give 96.9 %).
        #expect(policy.repairs(deficit: 1, loss: 0.5, round: 0) == 4)
        #expect(policy.repairs(deficit: 1, loss: 0.5, round: 1) == 6)
        // Three missing: 9 repairs (P(≥ 3 of 9) = 91.0 %; of 8 it is 85.5 %), where copies of each would
        // take 15 (5 each: 0.969³ = 91.0 %).
        #expect(policy.repairs(deficit: 3, loss: 0.5, round: 0) == 9)
        #expect(policy.repairs(deficit: 2, loss: 0, round: 0) == 2)
        #expect(policy.repairs(deficit: 0, loss: 0.5, round: 0) == 0)
        #expect(policy.repairs(deficit: 4, loss: 1, round: 0) == policy.maximumRoundRepairs)
        #expect(policy.repairs(deficit: 30, loss: 0.9, round: 2) == policy.maximumRoundRepairs)
        #expect(abs(VideoFECPolicy.atLeast(3, of: 8, arriving: 0.5) - (1 - 37.0 / 256)) < 1e-12)
    }

    @Test func aRoundOnABurstyLinkSendsMoreThanAtTheSameRandomLoss() {
        let policy = VideoFECPolicy()
        // 20 % loss in bursts of five, fitted from a pattern (20 arrive, 5 are lost), and random 20 % loss.
        var bursts = BurstLossModel()
        var random = BurstLossModel()
        var sequence: UInt16 = 0
        var state: UInt64 = 7  // a seeded LCG: the same "random" loss every run
        for _ in 0..<200 {
            for index in 0..<25 {
                bursts.add(sequence: sequence, lost: index >= 20)
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                random.add(sequence: sequence, lost: Double(state >> 11) / Double(UInt64(1) << 53) < 0.2)
                sequence &+= 1
            }
        }
        // One missing packet: 2 repairs at independent 20 % loss (96 %), but a burst takes a whole round
        // one time in five; it needs 5 back to back for 90 % (1 − 0.2 · 0.8⁴ = 91.8 %).
        #expect(policy.repairs(deficit: 1, loss: 0.2, round: 0) == 2)
        #expect(policy.repairs(deficit: 1, bursts: bursts, round: 0) == 5)
        // Independent loss fitted as a chain gives the binomial's answer, give or take the fit's noise.
        #expect((2...3).contains(policy.repairs(deficit: 1, bursts: random, round: 0)))
        #expect(policy.repairs(deficit: 0, bursts: bursts, round: 0) == 0)
        #expect(policy.repairs(deficit: 2, bursts: BurstLossModel(), round: 0) == 2)  // nothing lost yet
    }

    /// A stream to an FEC subscriber that reported 50 % loss: a keyframe, then `packets` − 1 packets 33 ms
    /// apart, sent with their up-front repairs.
    static func streamAtHalfLoss(packets: Int) throws -> SingleStream {
        var setup = SingleStream(slot: Self.fecSlot())
        setup.publisher.receiveRTP(setup.next(keyframe: true), now: at(0))
        try Self.report(setup, fraction: 128, at: 10)
        setup.router.tick(now: at(11))
        for index in 1..<packets { setup.publisher.receiveRTP(setup.next(), now: at(Int64(index) * 33)) }
        return setup
    }

    @Test func aNACKOnAnFECLinkIsAnsweredWithARepairRoundOverTheMissingSpan() throws {
        let setup = try Self.streamAtHalfLoss(packets: 12)
        let sent = setup.subscriberTransport.rtp
        let media = sent.filter { (try? RTPPacket($0))?.ssrc == 0xAAAA_0001 }
        // The subscriber lost media packets 4 and 6, and every repair sent with the media.
        let lost = [media[4], media[6]].map { try! RTPPacket($0).sequenceNumber }
        var decoder = SlidingWindowFECDecoder()
        var repairsSeen = 0
        for buffer in sent {
            let packet = try RTPPacket(buffer)
            if packet.ssrc == 0xAAAA_0003 {
                // The first repair only starts the decoder's record (it covers a packet before it).
                if repairsSeen == 0 { #expect(decoder.repairReceived(packet.payload).isEmpty) }
                repairsSeen += 1
            } else if !lost.contains(packet.sequenceNumber) {
                decoder.sourceReceived(buffer, sequenceNumber: packet.sequenceNumber)
            }
        }
        #expect(repairsSeen > 0 && decoder.pendingEquations == 0)
        setup.subscriberTransport.reset()
        var nack = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPGenericNACK.write(senderSSRC: 1, mediaSSRC: 0xAAAA_0001, lostSequenceNumbers: lost, into: &nack)
        setup.subscriber.receiveRTCP(nack, now: at(400))
        let answers = try setup.subscriberTransport.rtp.map { try RTPPacket($0) }
        // No RTX: fresh repairs, as many as the policy gives a deficit of 2 at 50 %, each flagged as an
        // answer and covering packet 4 through the newest.
        #expect(answers.allSatisfy { $0.ssrc == 0xAAAA_0003 })
        let expected = VideoFECPolicy().repairs(deficit: 2, loss: 0.5, round: 0)
        #expect(answers.count == expected)
        for answer in answers {
            let header = try FECRepairHeader(answer.payload)
            #expect(header.answersNACK)
            #expect(header.firstSequenceNumber == lost[0])
            #expect(header.sourceCount == media.count - 4)
        }
        // Any two of them rebuild both packets byte for byte.
        #expect(decoder.repairReceived(answers[answers.count - 1].payload).isEmpty)
        let rebuilt = decoder.repairReceived(answers[0].payload)
        #expect(rebuilt.map(bytes) == [bytes(media[4]), bytes(media[6])])
        #expect(setup.subscriber.counters.repairRounds == 1)
        #expect(setup.subscriber.counters.roundRepairs == expected)
        #expect(setup.subscriber.counters.retransmissions == 0)
        // The same NACK within the round trip is a duplicate; a packet older than the encoder's window
        // still gets RTX.
        setup.subscriberTransport.reset()
        setup.subscriber.receiveRTCP(nack, now: at(420))
        #expect(setup.subscriberTransport.rtp.isEmpty)
        let status = try #require(setup.router.roomStatuses(now: at(500)).first?.subscribers.first?.protection)
        #expect(status.videoRepairRounds == 1 && status.videoRoundRepairs == expected)
    }

    /// A subscriber's silence probe names the numbers after the newest packet it saw: the round covers the
    /// ones sent, and numbers not sent yet cost nothing (no repair, no RTX, no round).
    @Test func aProbeForPacketsNotSentYetIsAnsweredOnlyForThoseSent() throws {
        let setup = try Self.streamAtHalfLoss(packets: 8)
        let media = setup.subscriberTransport.rtp.compactMap { try? RTPPacket($0) }.filter { $0.ssrc == 0xAAAA_0001 }
        let newest = try #require(media.last?.sequenceNumber)
        func probe(_ numbers: [UInt16], at ms: Int64) throws -> [RTPPacket] {
            setup.subscriberTransport.reset()
            var nack = ByteBufferAllocator().buffer(capacity: 64)
            try RTCPGenericNACK.write(senderSSRC: 1, mediaSSRC: 0xAAAA_0001, lostSequenceNumbers: numbers, into: &nack)
            setup.subscriber.receiveRTCP(nack, now: at(ms))
            return try setup.subscriberTransport.rtp.map { try RTPPacket($0) }
        }
        // Nothing named was sent: nothing goes out.
        #expect(try probe([newest &+ 1, newest &+ 2, newest &+ 3], at: 300).isEmpty)
        #expect(setup.subscriber.counters.repairRounds == 0 && setup.subscriber.counters.retransmissions == 0)
        // The last two sent and three not yet: a round for a deficit of two, over those two.
        let answers = try probe([newest &- 1, newest, newest &+ 1, newest &+ 2, newest &+ 3], at: 320)
        #expect(answers.count == VideoFECPolicy().repairs(deficit: 2, loss: 0.5, round: 0))
        for answer in answers {
            let header = try FECRepairHeader(answer.payload)
            #expect(answer.ssrc == 0xAAAA_0003 && header.answersNACK)
            #expect(header.firstSequenceNumber == newest &- 1 && header.sourceCount == 2)
        }
        #expect(setup.subscriber.counters.repairRounds == 1 && setup.subscriber.counters.retransmissions == 0)
    }

    /// The subscriber reports `fraction`/256 loss.
    static func report(_ setup: SingleStream, fraction: UInt8, at ms: Int64) throws {
        setup.subscriber.receiveRTCP(try receiverReport(about: 0xAAAA_0001, fractionLost: fraction), now: at(ms))
    }

    @Test func aLossyLinkGetsRepairPacketsThatRebuildTheLostOnesByteForByte() throws {
        // One repair per packet at 50 % (the default margin leaves part of the loss to repair rounds): with
        // every other packet lost, the repairs alone rebuild them all.
        var configuration = SFUConfiguration()
        configuration.videoFEC.margin = 1
        var setup = SingleStream(slot: Self.fecSlot(), configuration: configuration)
        setup.publisher.receiveRTP(setup.next(keyframe: true), now: at(0))
        // Clean: media only.
        for index in 1..<5 { setup.publisher.receiveRTP(setup.next(), now: at(Int64(index) * 33)) }
        #expect(setup.subscriberTransport.rtpPackets.allSatisfy { $0.ssrc == 0xAAAA_0001 })
        try Self.report(setup, fraction: 128, at: 170)  // 50 %
        setup.router.tick(now: at(171))
        setup.subscriberTransport.reset()
        for index in 6..<66 { setup.publisher.receiveRTP(setup.next(), now: at(Int64(index) * 33)) }
        let sent = setup.subscriberTransport.rtp
        let media = sent.filter { (try? RTPPacket($0))?.ssrc == 0xAAAA_0001 }
        let repairs = sent.filter { (try? RTPPacket($0))?.ssrc == 0xAAAA_0003 }
        #expect(media.count == 60)
        // `margin` repairs per packet at 50 %.
        #expect(repairs.count == 60)
        let first = try RTPPacket(try #require(repairs.first))
        #expect(first.payloadType == 98)
        // Each repair has its own sequence number and transport-wide number.
        let parsedRepairs = try repairs.map { try RTPPacket($0) }
        #expect(zip(parsedRepairs, parsedRepairs.dropFirst()).allSatisfy { $1.sequenceNumber == $0.sequenceNumber &+ 1 })

        // Deliver every other media packet and every repair: the decoder rebuilds the missing ones exactly.
        var decoder = SlidingWindowFECDecoder()
        var recovered: [UInt16: ByteBuffer] = [:]
        var lost: [UInt16: ByteBuffer] = [:]
        var mediaIndex = 0
        for buffer in sent {
            let packet = try RTPPacket(buffer)
            if packet.ssrc == 0xAAAA_0001 {
                defer { mediaIndex += 1 }
                if mediaIndex % 2 == 1 {
                    lost[packet.sequenceNumber] = buffer
                    continue
                }
                decoder.sourceReceived(buffer, sequenceNumber: packet.sequenceNumber)
            } else {
                for rebuilt in decoder.repairReceived(packet.payload) {
                    recovered[try RTPPacket(rebuilt).sequenceNumber] = rebuilt
                }
            }
        }
        #expect(recovered.count == 30, "recovered \(recovered.count) of \(lost.count)")
        for (sequence, packet) in recovered { #expect(lost[sequence] == packet) }
        let status = try #require(setup.router.roomStatuses(now: at(3000)).first?.subscribers.first?.protection)
        #expect(abs(status.videoRepairRatio - 1) < 1e-9)
        #expect(status.videoFEC == "x-braid-fec")
        #expect(status.videoRepairsSent == 60)
        #expect(status.protectionBytes > 0)
    }
}

@Suite struct FlexFECEgressTests {
    static func flexSlot() -> SubscriberSlotDescription {
        SubscriberSlotDescription(
            mid: "v0", kind: .video, payloadType: 100, clockRate: 90000, rtxPayloadType: 101, ssrc: 0xAAAA_0001,
            rtxSSRC: 0xAAAA_0002, fecPayloadType: 49, fecSSRC: 0xAAAA_0003, fecScheme: .flexFEC,
            feedback: allFeedback)
    }

    @Test func spanFollowsTheLoss() {
        let policy = FlexFECPolicy()
        #expect(policy.span(loss: 0) == nil)
        #expect(policy.span(loss: 0.005) == nil)
        #expect(policy.span(loss: 0.02) == policy.maximumSpan)
        #expect(policy.span(loss: 0.2) == 4)
        #expect(policy.span(loss: 0.3) == 2)
        #expect(policy.span(loss: 0.5) == 1)
        #expect(policy.span(loss: 0.9) == 1)
        #expect(policy.span(loss: .nan) == nil)
    }

    @Test func aBrowsersLossyLinkGetsFlexFECThatRebuildsOneLostPacketPerRepair() throws {
        var setup = SingleStream(slot: Self.flexSlot())
        setup.publisher.receiveRTP(setup.next(keyframe: true), now: at(0))
        for index in 1..<5 { setup.publisher.receiveRTP(setup.next(), now: at(Int64(index) * 33)) }
        #expect(setup.subscriberTransport.rtpPackets.allSatisfy { $0.ssrc == 0xAAAA_0001 })
        try VideoFECTests.report(setup, fraction: 51, at: 170)  // 20 %: a repair after every 4 packets
        setup.router.tick(now: at(171))
        setup.subscriberTransport.reset()
        for index in 6..<46 { setup.publisher.receiveRTP(setup.next(), now: at(Int64(index) * 33)) }
        let sent = try setup.subscriberTransport.rtp.map { try RTPPacket($0) }
        let media = sent.filter { $0.ssrc == 0xAAAA_0001 }
        let repairs = sent.filter { $0.ssrc == 0xAAAA_0003 }
        #expect(media.count == 40)
        #expect(repairs.count == 10)
        #expect(repairs.allSatisfy { $0.payloadType == 49 })
        #expect(zip(repairs, repairs.dropFirst()).allSatisfy { $1.sequenceNumber == $0.sequenceNumber &+ 1 })
        // Each repair follows the four packets it covers, named by SN base and mask.
        for (index, repair) in repairs.enumerated() {
            let header = try FlexFECHeader(repair.payload)
            #expect(header.protectedSSRC == 0xAAAA_0001)
            #expect(header.sequenceNumberBase == media[index * 4].sequenceNumber)
            #expect(header.offsets == [0, 1, 2, 3])
        }
        // Lose one packet of each four: the decoder rebuilds each (transport-wide sequence number and
        // abs-send-time data aside, which browsers zero before XOR as the node does).
        var decoder = FlexFECDecoder(ssrc: 0xAAAA_0001)
        var rebuilt = 0
        var mediaIndex = 0
        for packet in sent {
            if packet.ssrc == 0xAAAA_0001 {
                defer { mediaIndex += 1 }
                if mediaIndex % 4 == mediaIndex / 4 % 4 { continue }
                decoder.received(Self.zeroingSendExtensions(packet, setup: setup), sequenceNumber: packet.sequenceNumber)
            } else if let packet = decoder.repairReceived(packet.payload) {
                let recovered = try RTPPacket(packet)
                let original = try #require(media.first { $0.sequenceNumber == recovered.sequenceNumber })
                #expect(recovered.timestamp == original.timestamp)
                #expect(recovered.marker == original.marker)
                #expect(recovered.payloadType == original.payloadType)
                #expect(bytes(recovered.payload) == bytes(original.payload))
                #expect(recovered.buffer == Self.zeroingSendExtensions(original, setup: setup))
                rebuilt += 1
            }
        }
        #expect(rebuilt == 10)
        let status = try #require(setup.router.roomStatuses(now: at(1500)).first?.subscribers.first?.protection)
        #expect(status.videoFEC == "flexfec-03")
        #expect(status.videoRepairsSent == 10)
        #expect(abs(status.videoRepairRatio - 0.25) < 1e-9)

        // A NACK is answered with RTX: browsers get no repair rounds.
        setup.subscriberTransport.reset()
        var nack = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPGenericNACK.write(
            senderSSRC: 1, mediaSSRC: 0xAAAA_0001, lostSequenceNumbers: [media[38].sequenceNumber], into: &nack)
        setup.subscriber.receiveRTCP(nack, now: at(1500))
        #expect(setup.subscriberTransport.rtpPackets.contains { $0.ssrc == 0xAAAA_0002 })
        #expect(!setup.subscriberTransport.rtpPackets.contains { $0.ssrc == 0xAAAA_0003 })
    }

    /// `packet` with the data of its abs-send-time and transport-wide sequence number set to zero.
    static func zeroingSendExtensions(_ packet: RTPPacket, setup: SingleStream) -> ByteBuffer {
        var copy = packet
        let ids = subscriberIDs
        if let id = ids.absSendTime { try? copy.setExtension(AbsSendTime(rawValue: 0), id: id) }
        if let id = ids.transportWideSequence { try? copy.setExtension(TransportSequenceNumber(0), id: id) }
        return copy.buffer
    }
}

@Suite struct UplinkFECTests {
    @Test func aPublishersRepairsRebuildItsLostPacketsBeforeAnyRetransmission() throws {
        var setup = SingleStream(slot: VideoFECTests.fecSlot(fec: false), uplinkFEC: true)
        var encoder = SlidingWindowFECEncoder(capacity: 24)
        var sent: [ByteBuffer] = []
        var lostSequenceNumbers: [UInt16] = []
        var sequence: UInt16 = 5000
        for index in 0..<40 {
            let packet = setup.next(keyframe: index == 0)
            let now = at(Int64(index) * 33)
            encoder.add(packet, sequenceNumber: try RTPPacket(packet).sequenceNumber, now: now)
            sent.append(packet)
            // Every third packet after the keyframe is lost on the uplink; a repair over the last six follows
            // every second packet.
            if index > 0, index % 3 == 0 {
                lostSequenceNumbers.append(try RTPPacket(packet).sequenceNumber)
            } else {
                setup.publisher.receiveRTP(packet, now: now)
            }
            if index % 2 == 1 {
                var payload = ByteBuffer()
                #expect(encoder.writeRepair(
                    now: now, maximumAge: .milliseconds(200), maximumSources: 6, maximumSymbolGrowth: 2, into: &payload))
                let repair = rtpPacket(payloadType: 98, sequenceNumber: sequence, timestamp: 0, ssrc: 4244, payload: Array(payload.readableBytesView))
                sequence &+= 1
                setup.publisher.receiveRTP(repair, now: now)
            }
        }
        // The subscriber got every packet, the lost ones rebuilt byte for byte (payloads as published).
        let forwarded = setup.subscriberTransport.rtpPackets.filter { $0.ssrc == 0xAAAA_0001 }
        #expect(forwarded.count == 40)
        let published = try sent.map { bytes(try RTPPacket($0).payload) }
        let received = forwarded.sorted { $0.sequenceNumber &- forwarded[0].sequenceNumber < $1.sequenceNumber &- forwarded[0].sequenceNumber }
            .map { bytes($0.payload) }
        #expect(received.count == published.count)
        // VP8 descriptors are rewritten per subscriber; the frames after them are the publisher's.
        for (sentPayload, receivedPayload) in zip(published, received) {
            #expect(sentPayload.count == receivedPayload.count)
            #expect(sentPayload.suffix(max(0, sentPayload.count - 6)) == receivedPayload.suffix(max(0, receivedPayload.count - 6)))
        }
        let stream = setup.publisher.streams[0][0]
        #expect(stream.packetsRecoveredByFEC == lostSequenceNumbers.count)
        // Rebuilt packets are not received ones: the receiver reports still count them lost.
        #expect(stream.statistics?.packetsReceived == Int64(40 - lostSequenceNumbers.count))
    }
}

extension UplinkFECTests {
    @Test("With uplink FEC the node NACKs only its deficit, and the publisher's round of repairs rebuilds every loss")
    func theNodeAsksTheUplinkOnlyForItsDeficit() throws {
        var setup = SingleStream(slot: VideoFECTests.fecSlot(fec: false), uplinkFEC: true)
        var encoder = SlidingWindowFECEncoder(capacity: 24)
        var sequenceNumbers: [UInt16] = []
        var repairSequence: UInt16 = 7000
        func deliverRepair(at ms: Int64, _ write: (inout ByteBuffer) -> Bool) {
            var payload = ByteBuffer()
            guard write(&payload) else { return }
            let repair = rtpPacket(
                payloadType: 98, sequenceNumber: repairSequence, timestamp: 0, ssrc: 4244,
                payload: Array(payload.readableBytesView))
            repairSequence &+= 1
            setup.publisher.receiveRTP(repair, now: at(ms))
        }
        for index in 0..<10 {
            let packet = setup.next(keyframe: index == 0)
            let sequenceNumber = try RTPPacket(packet).sequenceNumber
            encoder.add(packet, sequenceNumber: sequenceNumber, now: at(Int64(index) * 33))
            sequenceNumbers.append(sequenceNumber)
            if ![4, 6, 8].contains(index) { setup.publisher.receiveRTP(packet, now: at(Int64(index) * 33)) }
        }
        // One repair sent with the media, over packets 4–9, arrives: three missing, one equation in hand.
        deliverRepair(at: 300) {
            encoder.writeRepair(now: at(297), maximumAge: .milliseconds(400), maximumSources: 6, into: &$0)
        }
        setup.publisherTransport.reset()
        setup.router.tick(now: at(310))
        // The deficit is two: the NACK names the two oldest missing packets.
        #expect(setup.publisherTransport.nacks.map { Array($0.lostSequenceNumbers) } == [[sequenceNumbers[4], sequenceNumbers[6]]])
        // The publisher's round: two fresh repairs over the span from packet 4 (flagged as an answer).
        for _ in 0..<2 {
            deliverRepair(at: 340) { encoder.writeRepair(since: sequenceNumbers[4], into: &$0) }
        }
        let stream = setup.publisher.streams[0][0]
        #expect(stream.packetsRecoveredByFEC == 3)
        #expect(stream.nack.missingCount == 0)
        #expect(setup.subscriberTransport.rtpPackets.filter { $0.ssrc == 0xAAAA_0001 }.count == 10)
    }
}

extension UplinkFECTests {
    @Test("A lossy uplink that falls silent is probed: the node NACKs the numbers after the newest it saw")
    func theNodeProbesASilentLossyUplink() throws {
        var setup = SingleStream(slot: VideoFECTests.fecSlot(fec: false), uplinkFEC: true)
        var sequenceNumbers: [UInt16] = []
        for index in 0..<10 {
            let packet = setup.next(keyframe: index == 0)
            sequenceNumbers.append(try RTPPacket(packet).sequenceNumber)
            // Packet 3 is lost: the uplink is lossy, and the FEC decoder starts its record.
            if index != 3 { setup.publisher.receiveRTP(packet, now: at(Int64(index) * 33)) }
        }
        let stream = setup.publisher.streams[0][0]
        #expect(stream.fec?.isActive == true)
        setup.publisherTransport.reset()
        // 70 ms after the last packet (2.1 intervals): nothing yet beyond the NACK for packet 3.
        setup.router.tick(now: at(9 * 33 + 70))
        let newest = sequenceNumbers[9]
        #expect(!setup.publisherTransport.nacks.contains { $0.lostSequenceNumbers.contains(newest &+ 1) })
        setup.publisherTransport.reset()
        // 100 ms: a probe for the three packets the silence probably hid.
        setup.router.tick(now: at(9 * 33 + 100))
        #expect(setup.publisherTransport.nacks.map { Array($0.lostSequenceNumbers) } == [[newest &+ 1, newest &+ 2, newest &+ 3]])
        #expect(setup.publisher.counters.silenceProbesSent == 1)
        // Within its answer time, no second probe.
        setup.publisherTransport.reset()
        setup.router.tick(now: at(9 * 33 + 120))
        #expect(setup.publisherTransport.nacks.isEmpty)
    }
}

@Suite struct RetransmissionCopiesTests {
    @Test func copiesGrowPerRoundOnALossyLinkOnly() {
        let policy = RetransmissionPolicy()
        #expect(policy.copies(previousResends: 0, loss: 0) == 1)
        #expect(policy.copies(previousResends: 5, loss: 0.04) == 1)
        #expect(policy.copies(previousResends: 0, loss: .nan) == 1)
        // 50 %: 2, 3, 4, then no more than 4.
        #expect((0..<5).map { policy.copies(previousResends: $0, loss: 0.5) } == [2, 3, 4, 4, 4])
        // 10 %: two copies already make losing both 1 %.
        #expect((0..<3).map { policy.copies(previousResends: $0, loss: 0.1) } == [2, 2, 2])
        #expect(policy.copies(previousResends: 0, loss: 1) == 2)
    }

    @Test func aNACKOnALossyLinkWithoutFECIsAnsweredWithSeveralCopiesMoreEachRound() throws {
        var setup = SingleStream(slot: VideoFECTests.fecSlot(fec: false))
        for index in 0..<5 { setup.publisher.receiveRTP(setup.next(keyframe: index == 0), now: at(Int64(index) * 33)) }
        let original = setup.subscriberTransport.rtpPackets.filter { $0.ssrc == 0xAAAA_0001 }[2]
        try VideoFECTests.report(setup, fraction: 128, at: 170)  // 50 %
        setup.subscriberTransport.reset()
        var nack = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPGenericNACK.write(
            senderSSRC: 1, mediaSSRC: 0xAAAA_0001, lostSequenceNumbers: [original.sequenceNumber], into: &nack)

        func answers() -> [RTPPacket] { setup.subscriberTransport.rtpPackets.filter { $0.ssrc == 0xAAAA_0002 } }
        setup.subscriber.receiveRTCP(nack, now: at(200))
        #expect(answers().count == 2)
        // Within the resend interval (no RTT measured: 100 ms) the same NACK is a duplicate.
        setup.subscriber.receiveRTCP(nack, now: at(250))
        #expect(answers().count == 2)
        setup.subscriber.receiveRTCP(nack, now: at(310))
        #expect(answers().count == 5)
        // Every copy carries the original packet under its own RTX sequence number.
        let copies = answers()
        #expect(Set(copies.map(\.sequenceNumber)).count == 5)
        for copy in copies {
            var payload = copy.payload
            #expect(payload.readInteger(as: UInt16.self) == original.sequenceNumber)
            #expect(bytes(payload) == bytes(original.payload))
        }
        #expect(setup.subscriber.counters.retransmissions == 2)
    }
}

@Suite struct ULPFECEgressTests {
    static func ulpSlot() -> SubscriberSlotDescription {
        SubscriberSlotDescription(
            mid: "v0", kind: .video, payloadType: 100, clockRate: 90000, rtxPayloadType: 101, redPayloadType: 116,
            ssrc: 0xAAAA_0001, rtxSSRC: 0xAAAA_0002, fecPayloadType: 117, fecScheme: .ulpfec, feedback: allFeedback)
    }

    /// A packet sent RED-wrapped, as the browser's ULPFEC receiver sees it: the RTP header with the
    /// block's payload type, then the block's data.
    static func unwrapped(_ packet: RTPPacket) throws -> RTPPacket {
        let red = try REDPayload(packet.payload)
        #expect(red.redundant.isEmpty)
        var plain = packet.buffer.getSlice(at: packet.buffer.readerIndex, length: packet.headerLength)!
        plain.setInteger(plain.getInteger(at: plain.readerIndex + 1, as: UInt8.self)! & 0x80 | red.primary.payloadType, at: plain.readerIndex + 1)
        var copy = ByteBuffer()
        copy.writeImmutableBuffer(plain)
        copy.writeImmutableBuffer(red.primary.data)
        return try RTPPacket(copy)
    }

    @Test func aBrowserWithoutFlexFECGetsULPFECInsideREDOnItsMediaStream() throws {
        var setup = SingleStream(slot: Self.ulpSlot())
        setup.publisher.receiveRTP(setup.next(keyframe: true), now: at(0))
        for index in 1..<5 { setup.publisher.receiveRTP(setup.next(), now: at(Int64(index) * 33)) }
        // A clean link: plain media, not a byte more.
        #expect(setup.subscriberTransport.rtpPackets.allSatisfy { $0.ssrc == 0xAAAA_0001 && $0.payloadType == 100 })
        try VideoFECTests.report(setup, fraction: 51, at: 170)  // 20 %: a repair after every 4 packets
        setup.router.tick(now: at(171))
        setup.subscriberTransport.reset()
        for index in 6..<46 { setup.publisher.receiveRTP(setup.next(), now: at(Int64(index) * 33)) }
        let sent = try setup.subscriberTransport.rtp.map { try RTPPacket($0) }
        #expect(sent.allSatisfy { $0.ssrc == 0xAAAA_0001 && $0.payloadType == 116 })
        // One stream of numbers: media and repairs share it without a gap.
        #expect(zip(sent, sent.dropFirst()).allSatisfy { $1.sequenceNumber == $0.sequenceNumber &+ 1 })
        let blocks = try sent.map { try REDPayload($0.payload).primary.payloadType }
        let media = try zip(sent, blocks).filter { $0.1 == 100 }.map { try Self.unwrapped($0.0) }
        let repairs = zip(sent, blocks).filter { $0.1 == 117 }.map(\.0)
        #expect(media.count == 40)
        #expect(repairs.count == 10)
        #expect(blocks.count == 50)
        for (index, repair) in repairs.enumerated() {
            let header = try ULPFECHeader(try REDPayload(repair.payload).primary.data)
            #expect(header.sequenceNumberBase == media[index * 4].sequenceNumber)
            #expect(header.offsets == [0, 1, 2, 3])
            #expect(repair.marker == false)
            #expect(repair.timestamp == media[index * 4 + 3].timestamp)
        }
        // Lose one media packet of each four: the browser's decoder rebuilds each one, byte for byte as it
        // was before RED (send-time extension data aside, which browsers zero before XOR as the node does).
        var decoder = ULPFECDecoder(ssrc: 0xAAAA_0001)
        var rebuilt = 0
        var mediaIndex = 0
        for (packet, block) in zip(sent, blocks) {
            if block == 100 {
                defer { mediaIndex += 1 }
                if mediaIndex % 4 == mediaIndex / 4 % 4 { continue }
                let plain = try Self.unwrapped(packet)
                decoder.received(
                    FlexFECEgressTests.zeroingSendExtensions(plain, setup: setup), sequenceNumber: plain.sequenceNumber)
            } else if let packet = decoder.repairReceived(try REDPayload(packet.payload).primary.data) {
                let recovered = try RTPPacket(packet)
                let original = try #require(media.first { $0.sequenceNumber == recovered.sequenceNumber })
                #expect(recovered.payloadType == 100)
                #expect(recovered.buffer == FlexFECEgressTests.zeroingSendExtensions(original, setup: setup))
                rebuilt += 1
            }
        }
        #expect(rebuilt == 10)
        let status = try #require(setup.router.roomStatuses(now: at(1500)).first?.subscribers.first?.protection)
        #expect(status.videoFEC == "ulpfec")
        #expect(status.videoRepairsSent == 10)
        // One repair per four packets, each about one packet long: about a quarter on top of the media.
        #expect(status.overhead > 0.2 && status.overhead < 0.5, "\(status)")

        // A NACK of a media packet is answered with RTX of the plain packet; one of a repair's number with
        // nothing (the browser learns the number from the repair it lost, not a packet to wait for).
        setup.subscriberTransport.reset()
        var nack = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPGenericNACK.write(
            senderSSRC: 1, mediaSSRC: 0xAAAA_0001,
            lostSequenceNumbers: [media[38].sequenceNumber, repairs[9].sequenceNumber], into: &nack)
        setup.subscriber.receiveRTCP(nack, now: at(1500))
        let answers = setup.subscriberTransport.rtpPackets
        #expect(!answers.isEmpty && answers.allSatisfy { $0.ssrc == 0xAAAA_0002 && $0.payloadType == 101 })
        for answer in answers {
            #expect(answer.payload.getInteger(at: answer.payload.readerIndex, as: UInt16.self) == media[38].sequenceNumber)
        }
    }

    /// A browser assembles a frame only from consecutive numbers: a repair may not take a number inside a
    /// frame. After a frame of nine packets at span 4, three repairs follow its last packet (1 + 4 + 4).
    @Test func ulpfecRepairsFollowTheFramesLastPacketNeverSplitIt() throws {
        var setup = SingleStream(slot: Self.ulpSlot())
        setup.publisher.receiveRTP(setup.next(keyframe: true), now: at(0))
        try VideoFECTests.report(setup, fraction: 51, at: 10)  // 20 %: span 4
        setup.router.tick(now: at(11))
        setup.subscriberTransport.reset()
        for index in 0..<9 {
            let packet = rtpPacket(
                payloadType: 96, sequenceNumber: setup.sequence &+ UInt16(index), timestamp: setup.timestamp, ssrc: 4242,
                marker: index == 8,
                payload: vp8Payload(pictureID: setup.pictureID, tl0: 0, keyframe: true, startOfFrame: index == 0))
            setup.publisher.receiveRTP(packet, now: at(40))
        }
        let sent = try setup.subscriberTransport.rtp.map { try RTPPacket($0) }
        let blocks = try sent.map { try REDPayload($0.payload).primary.payloadType }
        #expect(blocks == Array(repeating: 100, count: 9) + [117, 117, 117])
        #expect(zip(sent, sent.dropFirst()).allSatisfy { $1.sequenceNumber == $0.sequenceNumber &+ 1 })
        let headers = try sent.suffix(3).map { try ULPFECHeader(try REDPayload($0.payload).primary.data) }
        #expect(headers.map(\.sequenceNumberBase) == [0, 1, 5].map { sent[0].sequenceNumber &+ $0 })
        #expect(headers.map(\.offsets) == [[0], [0, 1, 2, 3], [0, 1, 2, 3]])
    }
}
