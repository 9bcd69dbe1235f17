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
        #expect(abs(policy.repairRatio(loss: 0.2) - 1.5 * 0.25) < 1e-9)
        #expect(abs(policy.repairRatio(loss: 0.5) - 1.5) < 1e-9)
        #expect(policy.repairRatio(loss: 0.9) == 2)
        #expect(policy.repairRatio(loss: .nan) == 0)
    }

    static func fecSlot() -> SubscriberSlotDescription {
        SubscriberSlotDescription(
            mid: "v0", kind: .video, payloadType: 100, clockRate: 90000, rtxPayloadType: 101, ssrc: 0xAAAA_0001,
            rtxSSRC: 0xAAAA_0002, fecPayloadType: 98, fecSSRC: 0xAAAA_0003, feedback: allFeedback)
    }

    /// The subscriber reports `fraction`/256 loss.
    static func report(_ setup: SingleStream, fraction: UInt8, at ms: Int64) throws {
        setup.subscriber.receiveRTCP(try receiverReport(about: 0xAAAA_0001, fractionLost: fraction), now: at(ms))
    }

    @Test func aLossyLinkGetsRepairPacketsThatRebuildTheLostOnesByteForByte() throws {
        var setup = SingleStream(slot: Self.fecSlot())
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
        // 1.5 repairs per packet at 50 %.
        #expect(repairs.count == 90)
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
        #expect(abs(status.videoRepairRatio - 1.5) < 1e-9)
        #expect(status.protectionBytes > 0)
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

    @Test func aNACKOnALossyLinkIsAnsweredWithSeveralCopiesMoreEachRound() throws {
        var setup = SingleStream(slot: VideoFECTests.fecSlot())
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
