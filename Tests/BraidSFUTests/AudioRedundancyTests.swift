@testable import BraidSFU
import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@Suite struct AudioRedundancyTests {
    // MARK: - Policy (pure)

    @Test func aCleanLinkGetsNoRedundancy() {
        let policy = AudioRedundancyPolicy()
        #expect(policy.plan(loss: 0, oneWayDelay: .zero, frameDuration: .milliseconds(20)) == .none)
        #expect(policy.plan(loss: 0.004, oneWayDelay: .zero, frameDuration: .milliseconds(20)) == .none)
        #expect(policy.plan(loss: .nan, oneWayDelay: .zero, frameDuration: .milliseconds(20)) == .none)
    }

    @Test func copiesFollowTheLossUpToTheDeadline() {
        let policy = AudioRedundancyPolicy()
        let frame = TimeAmount.milliseconds(20)
        // 1 − 0.05² = 99.75 %: one redundant block.
        #expect(policy.plan(loss: 0.05, oneWayDelay: .zero, frameDuration: frame) == .init(distance: 1, sendsPerFrame: 1))
        // 0.2³ = 0.8 %: two.
        #expect(policy.plan(loss: 0.2, oneWayDelay: .zero, frameDuration: frame) == .init(distance: 2, sendsPerFrame: 1))
        // 0.5⁷ = 0.78 %: six.
        #expect(policy.plan(loss: 0.5, oneWayDelay: .milliseconds(25), frameDuration: frame)
            == .init(distance: 6, sendsPerFrame: 1))
        // 80 % needs 21 copies; 200 − 25 − 40 ms leaves 6 later packets: 7 frames per packet, each packet
        // sent three times over its 20 ms.
        let heavy = policy.plan(loss: 0.8, oneWayDelay: .milliseconds(25), frameDuration: frame)
        #expect(heavy == .init(distance: 6, sendsPerFrame: 3))
        #expect(heavy.copies == 21)
        // Without repeats the deadline caps it.
        var noRepeats = policy
        noRepeats.maximumSendsPerFrame = 1
        #expect(noRepeats.plan(loss: 0.8, oneWayDelay: .milliseconds(25), frameDuration: frame)
            == .init(distance: 6, sendsPerFrame: 1))
        // A long one-way delay leaves no room for earlier frames: only repeats are left.
        #expect(policy.plan(loss: 0.5, oneWayDelay: .milliseconds(190), frameDuration: frame)
            == .init(distance: 0, sendsPerFrame: 3))
        // Total loss: the most the window allows.
        #expect(policy.plan(loss: 1, oneWayDelay: .zero, frameDuration: frame) == .init(distance: 7, sendsPerFrame: 3))
    }

    @Test("A receiver that NACKs gets less redundancy where a round trip still fits the deadline")
    func nackLeavesRoomForFewerCopies() {
        let policy = AudioRedundancyPolicy()
        let frame = TimeAmount.milliseconds(20)
        let oneWay = TimeAmount.milliseconds(25)
        func rounds(_ loss: Double, rtt: Int64 = 50) -> AudioRedundancyPolicy.NACKRounds {
            .init(roundTrip: .milliseconds(rtt), copies: (0..<4).map { RetransmissionPolicy().copies(previousResends: $0, loss: loss) })
        }
        // 20 %: without NACK two earlier frames (0.2³ = 0.8 %). With it, plain packets: a lost frame is seen
        // missing at about 90 ms, its two resent copies come at 140 ms, 0.2 · 0.2² = 0.8 %.
        #expect(policy.plan(loss: 0.2, oneWayDelay: oneWay, frameDuration: frame) == .init(distance: 2))
        #expect(policy.plan(loss: 0.2, oneWayDelay: oneWay, frameDuration: frame, nack: rounds(0.2)) == .none)
        // A long round trip leaves no room for an answer: RED as without NACK.
        #expect(policy.plan(loss: 0.2, oneWayDelay: oneWay, frameDuration: frame, nack: rounds(0.2, rtt: 200))
            == .init(distance: 2))
        // 50 %: the five earlier frames a round trip would leave room for miss 1.6 % and are seen missing
        // too late for an answer; the plan stays six earlier frames.
        #expect(policy.plan(loss: 0.5, oneWayDelay: oneWay, frameDuration: frame, nack: rounds(0.5))
            == policy.plan(loss: 0.5, oneWayDelay: oneWay, frameDuration: frame))
        // 80 %: the copies alone fill the deadline.
        #expect(policy.plan(loss: 0.8, oneWayDelay: oneWay, frameDuration: frame, nack: rounds(0.8))
            == .init(distance: 6, sendsPerFrame: 3))
        // A clean link: nothing either way.
        #expect(policy.plan(loss: 0, oneWayDelay: oneWay, frameDuration: frame, nack: rounds(0)) == .none)
    }

    @Test func burstsNeedMoreCopiesThanTheSameRandomLoss() {
        let policy = AudioRedundancyPolicy()
        let frame = TimeAmount.milliseconds(20)
        // 20 % loss in bursts of five, audio every second packet of the link.
        let bursts = BurstLossModel(enterBurst: 0.05, leaveBurst: 0.2)
        #expect(bursts.isBursty)
        // Independent 20 %: two earlier frames (0.2³). In bursts a loss two packets after a loss has odds
        // 0.2 + 0.8 · 0.75² = 0.65, so seven copies in consecutive packets still miss 1.5 %; repeats, one
        // packet apart (0.8 each), reach 99 % with 15 copies: four earlier frames, each packet sent three
        // times.
        #expect(policy.plan(loss: 0.2, oneWayDelay: .milliseconds(25), frameDuration: frame) == .init(distance: 2))
        let plan = policy.plan(bursts: bursts, spacing: 2, oneWayDelay: .milliseconds(25), frameDuration: frame)
        #expect(plan == .init(distance: 4, sendsPerFrame: 3), "\(plan)")
        var noRepeats = policy
        noRepeats.maximumSendsPerFrame = 1
        // Without repeats, as many earlier frames as the deadline allows.
        #expect(noRepeats.plan(bursts: bursts, spacing: 2, oneWayDelay: .milliseconds(25), frameDuration: frame)
            == .init(distance: 6))
        // Audio far apart on the link (ten packets between): most bursts have passed, a loss after a loss
        // has odds 0.2 + 0.8 · 0.75¹⁰ = 0.245, and three earlier frames do.
        #expect(policy.plan(bursts: bursts, spacing: 10, oneWayDelay: .milliseconds(25), frameDuration: frame)
            == .init(distance: 3))
        #expect(policy.plan(bursts: BurstLossModel(), spacing: 2, oneWayDelay: .zero, frameDuration: frame) == .none)
        // Losses that alternate (a loss makes the next one less likely) are taken as independent.
        let alternating = BurstLossModel(enterBurst: 0.5, leaveBurst: 0.9)
        #expect(policy.plan(bursts: alternating, spacing: 1.5, oneWayDelay: .milliseconds(25), frameDuration: frame)
            == policy.plan(loss: alternating.lossRate, oneWayDelay: .milliseconds(25), frameDuration: frame))
    }

    @Test func lossAverageCountsTheFirstReportInFullThenSmoothsOverAHundredPackets() {
        var average = LossAverage()
        #expect(!average.hasSamples)
        average.add(lost: 10, of: 20)
        #expect(average.fraction == 0.5)
        // A plain average while fewer than 100 packets were seen.
        average.add(lost: 0, of: 20)
        #expect(abs(average.fraction - 0.25) < 1e-9)
        for _ in 0..<10 { average.add(lost: 0, of: 20) }
        // Then each report of 20 moves it a fifth of the way.
        let before = average.fraction
        average.add(lost: 20, of: 20)
        #expect(abs(average.fraction - (before + 0.2 * (1 - before))) < 1e-9)
        average.add(lost: 3, of: 0)  // empty report: ignored
        #expect(average.hasSamples)
    }

    // MARK: - Encoder

    static func frame(_ index: Int, length: Int = 40) -> ByteBuffer {
        ByteBuffer(bytes: [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: length))
    }

    @Test func eachPacketCarriesThePlannedEarlierFramesOldestFirst() throws {
        var encoder = AudioRedundancy()
        // Before any plan asks for redundancy nothing is kept or written.
        #expect(encoder.payload(primary: Self.frame(0), timestamp: 0, payloadType: 109) == nil)
        #expect(encoder.footprint == 0)
        encoder.update(plan: .init(distance: 2, sendsPerFrame: 1))
        var outputs: [REDPayload] = []
        for index in 1...4 {
            let payload = encoder.payload(primary: Self.frame(index), timestamp: UInt32(index * 960), payloadType: 109)
            outputs.append(try REDPayload(try #require(payload)))
        }
        // The first frame with a plan has nothing kept yet; then one, then two earlier frames.
        #expect(outputs.map(\.redundant.count) == [0, 1, 2, 2])
        let last = try #require(outputs.last)
        #expect(last.redundant.map(\.timestampOffset) == [1920, 960])
        #expect(last.redundant.map { Array($0.data.readableBytesView) } == [Array(repeating: 2, count: 40), Array(repeating: 3, count: 40)])
        #expect(last.redundant.allSatisfy { $0.payloadType == 109 })
        #expect(last.primary.payloadType == 109)
        #expect(Array(last.primary.data.readableBytesView) == Array(repeating: 4, count: 40))
        #expect(encoder.frameDuration(clockRate: 48000) == .milliseconds(20))
    }

    @Test func framesTheHeaderCannotDescribeAreLeftOut() throws {
        var encoder = AudioRedundancy()
        encoder.update(plan: .init(distance: 3, sendsPerFrame: 1))
        _ = encoder.payload(primary: Self.frame(1), timestamp: 960, payloadType: 109)
        // Too long to keep.
        _ = encoder.payload(primary: Self.frame(2, length: 600), timestamp: 1920, payloadType: 109)
        // After 400 ms of DTX silence: the older frames are more than 2^14 ticks back.
        let silence = encoder.payload(primary: Self.frame(3), timestamp: 1920 + 19_200, payloadType: 109)
        let afterSilence = try REDPayload(try #require(silence))
        #expect(afterSilence.redundant.isEmpty)
        let nextPayload = encoder.payload(primary: Self.frame(4), timestamp: 1920 + 20_160, payloadType: 109)
        let next = try REDPayload(try #require(nextPayload))
        #expect(next.redundant.map(\.timestampOffset) == [960])
        // Large frames: only the newest that fit 1000 bytes go along.
        encoder.update(plan: .init(distance: 16, sendsPerFrame: 1))
        for index in 10..<26 {
            _ = encoder.payload(primary: Self.frame(index, length: 300), timestamp: UInt32(100_000 + index * 960), payloadType: 109)
        }
        let bigPayload = encoder.payload(primary: Self.frame(26, length: 300), timestamp: UInt32(100_000 + 26 * 960), payloadType: 109)
        let big = try REDPayload(try #require(bigPayload))
        #expect(big.redundant.map(\.timestampOffset) == [2880, 1920, 960])
        // A new track on the slot: nothing of the old one is sent.
        encoder.reset()
        let freshPayload = encoder.payload(primary: Self.frame(5), timestamp: 7, payloadType: 109)
        let fresh = try REDPayload(try #require(freshPayload))
        #expect(fresh.redundant.isEmpty)
    }

    // MARK: - Through the router

    struct AudioRoom {
        let router = SFURouter(wallClock: testWallClock)
        let publisher: SFUPublisher
        let redTransport = RecordingTransport()
        let plainTransport = RecordingTransport()
        let redSubscriber: SFUSubscriber
        var sequence: UInt16 = 100
        var timestamp: UInt32 = 48_000

        init() {
            self.publisher = self.router.addPublisher(
                room: "r", peerID: "pub",
                description: PublisherDescription(extensions: publisherIDs, tracks: [audioTrack()]),
                transport: RecordingTransport(), now: at(0))
            self.redSubscriber = self.router.addSubscriber(
                room: "r", peerID: "red",
                description: SubscriberDescription(extensions: subscriberIDs, slots: [audioSlot(red: 120)]),
                transport: self.redTransport, now: at(0))
            self.router.addSubscriber(
                room: "r", peerID: "plain",
                description: SubscriberDescription(extensions: subscriberIDs, slots: [audioSlot()]),
                transport: self.plainTransport, now: at(0))
        }

        /// One 20 ms Opus frame (TOC 0x78: SILK... any bytes do; the node does not decode).
        mutating func frame(at ms: Int64) {
            let payload = [0x78] + [UInt8](repeating: UInt8(truncatingIfNeeded: self.sequence), count: 50)
            self.publisher.receiveRTP(
                rtpPacket(
                    payloadType: 111, sequenceNumber: self.sequence, timestamp: self.timestamp, ssrc: 5,
                    extensions: [(1, ascii("1"))], payload: payload),
                now: at(ms))
            self.sequence &+= 1
            self.timestamp &+= 960
        }

        /// The subscriber reports `fraction`/256 loss on its audio SSRC.
        func report(fraction: UInt8, at ms: Int64) throws {
            self.redSubscriber.receiveRTCP(try receiverReport(about: 0xBBBB_0001, fractionLost: fraction), now: at(ms))
        }
    }

    @Test func redundancyStartsWhenTheSubscriberReportsLossAndOnlyForIt() throws {
        var room = AudioRoom()
        for index in 0..<5 { room.frame(at: Int64(index) * 20) }
        // Clean link: plain Opus under the subscriber's PT, like everyone else.
        #expect(room.redTransport.rtpPackets.allSatisfy { $0.payloadType == 109 })
        try room.report(fraction: 51, at: 100)  // 20 %
        room.router.tick(now: at(101))
        room.redTransport.reset()
        room.plainTransport.reset()
        for index in 5..<10 { room.frame(at: Int64(index) * 20) }
        let red = room.redTransport.rtpPackets
        #expect(red.count == 5)
        #expect(red.allSatisfy { $0.payloadType == 120 })
        let parsed = try red.map { try REDPayload($0.payload) }
        // Two earlier frames once two are kept.
        #expect(parsed.map(\.redundant.count) == [0, 1, 2, 2, 2])
        #expect(parsed.last?.redundant.map(\.timestampOffset) == [1920, 960])
        // Sequence numbers stay continuous: one packet per frame.
        #expect(zip(red, red.dropFirst()).allSatisfy { $1.sequenceNumber == $0.sequenceNumber &+ 1 })
        // The other subscriber still gets plain Opus.
        #expect(room.plainTransport.rtpPackets.allSatisfy { $0.payloadType == 109 && $0.payload.readableBytes == 51 })
        let status = try #require(room.router.roomStatuses(now: at(200)).first?.subscribers.first { $0.id == "red" })
        let protection = try #require(status.protection)
        #expect(protection.audioRedundancyDistance == 2)
        #expect(!protection.audioRepeats)
        // Seven blocks of 51 bytes with 4-byte headers, and the primary's 1-byte header in each packet.
        #expect(protection.protectionBytes == 7 * 55 + 5)
        // Loss gone: back to plain packets.
        try room.report(fraction: 0, at: 220)
        room.router.tick(now: at(221))
        room.redTransport.reset()
        room.frame(at: 240)
        #expect(room.redTransport.rtpPackets.first?.payloadType == 109)
    }

    @Test func heavyLossSendsEachPacketThreeTimesOverItsFrame() throws {
        var room = AudioRoom()
        for index in 0..<3 { room.frame(at: Int64(index) * 20) }
        try room.report(fraction: 205, at: 60)  // 80 %, no RTT known: 7 frames per packet, 3 sends
        room.router.tick(now: at(61))
        room.redTransport.reset()
        var sentAfterTicks: [Int] = []
        for index in 3..<8 {
            let ms = Int64(index) * 20
            room.frame(at: ms)
            room.router.tick(now: at(ms + 5))  // too early for a repeat
            sentAfterTicks.append(room.redTransport.rtp.count)
            room.router.tick(now: at(ms + 10))  // the first repeat (due at +6.7 ms)
            sentAfterTicks.append(room.redTransport.rtp.count)
        }
        // The second repeat (due at +13.3 ms) goes out just before the next primary.
        #expect(sentAfterTicks == [1, 2, 4, 5, 7, 8, 10, 11, 13, 14])
        room.router.tick(now: at(160))
        let packets = room.redTransport.rtpPackets
        #expect(packets.count == 15)
        // Numbered without a gap; each repeat carries its primary's timestamp and bytes.
        #expect(zip(packets, packets.dropFirst()).allSatisfy { $1.sequenceNumber == $0.sequenceNumber &+ 1 })
        for first in stride(from: 0, to: packets.count, by: 3) {
            for copy in packets[(first + 1)...(first + 2)] {
                #expect(copy.timestamp == packets[first].timestamp)
                #expect(bytes(copy.payload) == bytes(packets[first].payload))
                // Each with its own transport-wide sequence number.
                #expect(
                    copy.extension(id: 11).map { bytes($0.value) } != packets[first].extension(id: 11).map { bytes($0.value) })
            }
        }
        // Frames are kept from the moment redundancy was planned: the fifth frame's packet carries the four before it.
        let last = try REDPayload(try #require(packets.last).payload)
        #expect(last.redundant.count == 4)
        let protection = try #require(
            room.router.roomStatuses(now: at(200)).first?.subscribers.first { $0.id == "red" }?.protection)
        #expect(protection.audioRepeats)
        #expect(protection.audioRedundancyDistance == 6)
        #expect(protection.measuredLoss > 0.79)
        #expect(protection.overhead > 2)
    }

    @Test("An audio NACK is answered with the stored frame, plain, under its own number; a repeat's number with nothing")
    func audioNACKResendsTheFrame() throws {
        var room = AudioRoom()
        for index in 0..<3 { room.frame(at: Int64(index) * 20) }
        try room.report(fraction: 205, at: 60)  // 80 %: RED and repeats
        room.router.tick(now: at(61))
        room.redTransport.reset()
        for index in 3..<6 {
            room.frame(at: Int64(index) * 20)
            room.router.tick(now: at(Int64(index) * 20 + 10))
        }
        let sent = room.redTransport.rtpPackets
        try #require(sent.count >= 7)
        let primary = sent[3]  // frame 4's first send
        let repeatNumber = sent[4].sequenceNumber
        #expect(sent[4].timestamp == primary.timestamp)
        room.redTransport.reset()
        var nack = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPGenericNACK.write(
            senderSSRC: 1, mediaSSRC: 0xBBBB_0001, lostSequenceNumbers: [primary.sequenceNumber, repeatNumber], into: &nack)
        room.redSubscriber.receiveRTCP(nack, now: at(125))
        let resent = room.redTransport.rtpPackets
        // At 80 % loss a first round goes out twice (RetransmissionPolicy); the repeat is not in the history.
        #expect(resent.count == 2)
        for packet in resent {
            #expect(packet.ssrc == 0xBBBB_0001)
            #expect(packet.sequenceNumber == primary.sequenceNumber)
            #expect(packet.timestamp == primary.timestamp)
            // The frame alone as plain Opus: the RED blocks it first came with carried older frames.
            #expect(packet.payloadType == 109)
            #expect(bytes(packet.payload) == bytes(try REDPayload(primary.payload).primary.data))
        }
        #expect(room.redSubscriber.counters.retransmissions == 1)
    }
}
