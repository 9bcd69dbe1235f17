import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@Suite struct SlidingWindowFECTests {
    /// A fake RTP packet: a 12-byte header with its sequence number, then a payload of a length of its own.
    static func packet(_ sequence: UInt16, seed: UInt64) -> ByteBuffer {
        var generator = SeededGenerator(seed: seed &+ UInt64(sequence))
        let length = 12 + Int(generator.next() % 1100)
        var bytes = (0..<length).map { _ in generator.byte() }
        bytes[0] = 0x80
        bytes[2] = UInt8(sequence >> 8)
        bytes[3] = UInt8(sequence & 0xFF)
        return ByteBuffer(bytes: bytes)
    }

    struct Run {
        var recovered: [UInt16: ByteBuffer] = [:]
        var delivered: Set<UInt16> = []
        var lost: Set<UInt16> = []
    }

    /// Sends `count` packets from `first`; after each, `repairsAfter(index)` repair packets over the last
    /// `window`. `sourceLost(index)` and `repairLost(n)` drop packets.
    static func run(
        first: UInt16 = 65_500, count: Int, window: Int, repairsAfter: (Int) -> Int, sourceLost: (Int) -> Bool,
        repairLost: (Int) -> Bool = { _ in false }
    ) -> Run {
        var encoder = SlidingWindowFECEncoder(capacity: window)
        var decoder = SlidingWindowFECDecoder()
        var run = Run()
        var repairIndex = 0
        let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        for index in 0..<count {
            let sequence = first &+ UInt16(truncatingIfNeeded: index)
            let packet = Self.packet(sequence, seed: 9)
            encoder.add(packet, sequenceNumber: sequence, now: now)
            if sourceLost(index) {
                run.lost.insert(sequence)
            } else {
                decoder.sourceReceived(packet, sequenceNumber: sequence)
                run.delivered.insert(sequence)
            }
            for _ in 0..<repairsAfter(index) {
                var payload = ByteBuffer()
                guard encoder.writeRepair(now: now, maximumAge: .seconds(1), maximumSources: window, into: &payload)
                else { continue }
                defer { repairIndex += 1 }
                if repairLost(repairIndex) { continue }
                for packet in decoder.repairReceived(payload) {
                    let sequence = packet.getInteger(at: packet.readerIndex + 2, as: UInt16.self)!
                    run.recovered[sequence] = packet
                }
            }
        }
        return run
    }

    static func checkIdentical(_ run: Run) -> Bool {
        run.recovered.allSatisfy { sequence, packet in
            run.lost.contains(sequence) && packet == Self.packet(sequence, seed: 9)
        }
    }

    @Test func everySingleLossAndBurstInTheWindowIsRepairedByteForByte() {
        // One repair after every packet, over the last 8: a burst of b ≤ 4 is covered by the next repairs.
        for burst in 1...4 {
            for start in 1...(30 - burst) {
                let run = Self.run(
                    count: 40, window: 8, repairsAfter: { _ in 1 }, sourceLost: { (start..<(start + burst)).contains($0) })
                #expect(run.recovered.count == burst, "burst \(burst) at \(start)")
                #expect(Self.checkIdentical(run))
            }
        }
    }

    @Test func randomLossOfSourcesAndRepairsAtFiftyPercent() {
        var generator = SeededGenerator(seed: 77)
        var drops: [Bool] = (0..<4000).map { _ in generator.next() % 2 == 0 }
        let sourceDrops = drops
        drops.shuffle(using: &generator)
        // 1.5 repairs per packet over the last 24: about 2.5× the media.
        let run = Self.run(
            count: 1000, window: 24, repairsAfter: { $0 % 2 == 0 ? 1 : 2 }, sourceLost: { sourceDrops[$0] },
            repairLost: { drops[$0 % drops.count] })
        #expect(Self.checkIdentical(run))
        let repaired = Double(run.recovered.count) / Double(run.lost.count)
        #expect(run.lost.count > 400)
        #expect(repaired > 0.9, "repaired \(repaired)")
    }

    @Test func malformedRepairsAreCountedNotTrusted() {
        var decoder = SlidingWindowFECDecoder()
        #expect(decoder.repairReceived(ByteBuffer(bytes: [0, 1])).isEmpty)  // short
        #expect(decoder.repairReceived(ByteBuffer(bytes: [0, 1, 0, 0, 9, 9, 9])).isEmpty)  // zero sources
        #expect(decoder.repairReceived(ByteBuffer(bytes: [0, 1, 200, 0, 9, 9, 9])).isEmpty)  // too wide
        #expect(decoder.repairsDiscarded == 3)
        // A window over a known source longer than the symbol: the equation is discarded.
        decoder.sourceReceived(Self.packet(5, seed: 1), sequenceNumber: 5)
        #expect(decoder.repairReceived(ByteBuffer(bytes: [0, 5, 2, 0, 9, 9, 9])).isEmpty)
        #expect(decoder.repairsDiscarded == 4)
        // Random bytes as repairs never trap, and whatever they "recover" is at least a 12-byte packet.
        var generator = SeededGenerator(seed: 5)
        for _ in 0..<2000 {
            let bytes = (0..<(Int(generator.next() % 40))).map { _ in generator.byte() }
            for packet in decoder.repairReceived(ByteBuffer(bytes: bytes)) { #expect(packet.readableBytes >= 12) }
        }
    }

    @Test func aRepairStopsBeforeAPacketThatWouldInflateItsSymbol() throws {
        var encoder = SlidingWindowFECEncoder(capacity: 16)
        var decoder = SlidingWindowFECDecoder()
        let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        func packet(_ sequence: UInt16, length: Int) -> ByteBuffer {
            var bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(sequence)) }
            bytes[0] = 0x80
            bytes[2] = UInt8(sequence >> 8)
            bytes[3] = UInt8(sequence & 0xFF)
            return ByteBuffer(bytes: bytes)
        }
        // A keyframe's full-size packet, then small delta packets.
        let packets = [packet(10, length: 1200)] + (11...14).map { packet($0, length: 200) }
        for (offset, buffer) in packets.enumerated() {
            encoder.add(buffer, sequenceNumber: 10 + UInt16(offset), now: now)
        }
        var unlimited = ByteBuffer()
        #expect(encoder.writeRepair(now: now, maximumAge: .seconds(1), maximumSources: 16, into: &unlimited))
        #expect(try FECRepairHeader(unlimited).sourceCount == 5)
        #expect(unlimited.readableBytes == FECRepairHeader.length + 1202)
        var limited = ByteBuffer()
        #expect(
            encoder.writeRepair(
                now: now, maximumAge: .seconds(1), maximumSources: 16, maximumSymbolGrowth: 2, into: &limited))
        let header = try FECRepairHeader(limited)
        #expect(header.firstSequenceNumber == 11 && header.sourceCount == 4)
        #expect(limited.readableBytes == FECRepairHeader.length + 202)
        // The short repair still rebuilds a lost small packet byte for byte, and with it the long repair
        // (which started the decoder's record, its whole window unknown then) rebuilds the keyframe's.
        #expect(decoder.repairReceived(unlimited).isEmpty)
        for sequence in [11, 12, 14] as [UInt16] {
            decoder.sourceReceived(packets[Int(sequence) - 10], sequenceNumber: sequence)
        }
        let rebuilt = decoder.repairReceived(limited)
        #expect(rebuilt.map(bytes) == [bytes(packets[0]), bytes(packets[3])])
    }

    @Test func aRepairRoundCoversFromTheOldestMissingPacketAndSaysItAnswersANACK() throws {
        var encoder = SlidingWindowFECEncoder(capacity: 16)
        var decoder = SlidingWindowFECDecoder()
        let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var start = ByteBuffer()
        encoder.add(Self.packet(99, seed: 3), sequenceNumber: 99, now: now)
        #expect(encoder.writeRepair(now: now, maximumAge: .seconds(1), maximumSources: 16, into: &start))
        decoder.sourceReceived(Self.packet(99, seed: 3), sequenceNumber: 99)
        _ = decoder.repairReceived(start)  // everything it covers is known: it only starts the record
        #expect(decoder.isActive && decoder.pendingEquations == 0)
        for sequence in 100...111 as ClosedRange<UInt16> {
            encoder.add(Self.packet(sequence, seed: 3), sequenceNumber: sequence, now: now)
            if ![103, 104, 108].contains(sequence) { decoder.sourceReceived(Self.packet(sequence, seed: 3), sequenceNumber: sequence) }
        }
        #expect(encoder.sourcesSince(103) == 9)
        #expect(encoder.sourcesSince(111) == 1)
        #expect(encoder.sourcesSince(95) == nil)  // older than what is kept
        #expect(encoder.sourcesSince(112) == nil)  // not sent yet
        var rebuilt: [UInt16: ByteBuffer] = [:]
        for round in 0..<3 {
            var payload = ByteBuffer()
            #expect(encoder.writeRepair(since: 103, into: &payload))
            let header = try FECRepairHeader(payload)
            #expect(header.answersNACK && header.firstSequenceNumber == 103 && header.sourceCount == 9)
            #expect(header.repairID < 128)
            for packet in decoder.repairReceived(payload) {
                rebuilt[packet.getInteger(at: packet.readerIndex + 2, as: UInt16.self)!] = packet
            }
            // Three unknowns: nothing until the third repair, then all of them.
            #expect(rebuilt.count == (round == 2 ? 3 : 0))
            #expect(decoder.pendingEquations == (round == 2 ? 0 : round + 1))
        }
        for sequence in [103, 104, 108] as [UInt16] { #expect(rebuilt[sequence] == Self.packet(sequence, seed: 3)) }
        // The flag and the 7-bit id round-trip through the header byte.
        var header = ByteBuffer()
        FECRepairHeader(firstSequenceNumber: 7, sourceCount: 3, repairID: 0x85, answersNACK: true).write(into: &header)
        header.writeBytes([1, 2, 3])
        let read = try FECRepairHeader(header)
        #expect(read.repairID == 5 && read.answersNACK)
        #expect(header.getInteger(at: 3, as: UInt8.self) == 0x85)
    }

    /// An encoder with a retention keeps every packet sent within it, growing its slots (8, 16, 32, 64) when
    /// packets come fast, across the ring's wrap, and no more than it needs when they come slowly.
    @Test func aRetainingEncoderGrowsToKeepEveryPacketSentWithinItsRetention() throws {
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var slow = SlidingWindowFECEncoder(capacity: 64, retention: .milliseconds(200))
        // 30 packets a second: 200 ms hold 6, so the first 8 slots stay.
        for index in 0..<100 {
            let sequence = UInt16(truncatingIfNeeded: 65_500 + index)
            slow.add(Self.packet(sequence, seed: 5), sequenceNumber: sequence, now: start + .milliseconds(33 * Int64(index)))
        }
        #expect(slow.allocated == 8)
        #expect(slow.sourcesSince(UInt16(truncatingIfNeeded: 65_592)) == 8)
        #expect(slow.sourcesSince(UInt16(truncatingIfNeeded: 65_591)) == nil)

        // A keyframe of 40 packets at once, then about 150 packets a second.
        var fast = SlidingWindowFECEncoder(capacity: 64, retention: .milliseconds(200))
        var decoder = SlidingWindowFECDecoder()
        let first: UInt16 = 65_520
        decoder.startRecording(from: first)
        var now = start
        for index in 0..<70 {
            let sequence = first &+ UInt16(index)
            now = index < 40 ? start : start + .milliseconds(Int64(index - 39) * 7)
            fast.add(Self.packet(sequence, seed: 5), sequenceNumber: sequence, now: now)
            if ![5, 30, 66].contains(index) { decoder.sourceReceived(Self.packet(sequence, seed: 5), sequenceNumber: sequence) }
        }
        #expect(fast.allocated == 64)
        // All 64 slots hold the newest 64 packets, in order, the oldest of them 6 behind the first.
        #expect(fast.sourcesSince(first &+ 6) == 64 && fast.sourcesSince(first &+ 5) == nil)
        var rebuilt: [UInt16: ByteBuffer] = [:]
        for _ in 0..<2 {
            var payload = ByteBuffer()
            #expect(fast.writeRepair(since: first &+ 30, into: &payload))
            for packet in decoder.repairReceived(payload) {
                rebuilt[packet.getInteger(at: packet.readerIndex + 2, as: UInt16.self)!] = packet
            }
        }
        #expect(rebuilt.count == 2)
        for index in [30, 66] {
            let sequence = first &+ UInt16(index)
            #expect(rebuilt[sequence] == Self.packet(sequence, seed: 5))
        }
        // Without a retention every slot is made at once.
        #expect(SlidingWindowFECEncoder(capacity: 24).allocated == 24)
    }

    @Test func aFirstLossStartsTheRecordAndRetransmittedPacketsRetireTheirEquations() throws {
        var encoder = SlidingWindowFECEncoder(capacity: 16)
        let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        for sequence in 10...15 as ClosedRange<UInt16> { encoder.add(Self.packet(sequence, seed: 4), sequenceNumber: sequence, now: now) }
        // The receiver lost 12 and started recording at it, before any repair came.
        var decoder = SlidingWindowFECDecoder()
        decoder.sourceReceived(Self.packet(11, seed: 4), sequenceNumber: 11)
        decoder.startRecording(from: 12)
        #expect(decoder.isActive)
        for sequence in [13, 14, 15] as [UInt16] { decoder.sourceReceived(Self.packet(sequence, seed: 4), sequenceNumber: sequence) }
        var repair = ByteBuffer()
        #expect(encoder.writeRepair(since: 12, into: &repair))
        let rebuilt = decoder.repairReceived(repair)
        #expect(rebuilt == [Self.packet(12, seed: 4)])

        // Two unknowns (16, 18), one equation: pending until 16 comes as a retransmission, whose bytes
        // differ from the source symbol; the equation is then retired, not left to count as pending.
        for sequence in 16...18 as ClosedRange<UInt16> { encoder.add(Self.packet(sequence, seed: 4), sequenceNumber: sequence, now: now) }
        decoder.sourceReceived(Self.packet(17, seed: 4), sequenceNumber: 17)
        var wide = ByteBuffer()
        #expect(encoder.writeRepair(since: 16, into: &wide))
        #expect(decoder.repairReceived(wide).isEmpty)
        #expect(decoder.pendingEquations == 1)
        decoder.sourceRecoveredElsewhere(sequenceNumber: 16)
        #expect(decoder.pendingEquations == 0)
        // Equations behind a keyframe are dropped too.
        var another = ByteBuffer()
        #expect(encoder.writeRepair(since: 16, into: &another))
        _ = decoder.repairReceived(another)
        #expect(decoder.pendingEquations == 1)
        decoder.forgetEquations(before: 19)
        #expect(decoder.pendingEquations == 0)

        // A keyframe at 21 makes the receiver forget 20: an equation over 20 and 22 rebuilds nothing
        // while 20 never comes, so it is not counted as in hand for 22, which then gets its NACK.
        for sequence in 19...22 as ClosedRange<UInt16> { encoder.add(Self.packet(sequence, seed: 4), sequenceNumber: sequence, now: now) }
        decoder.sourceReceived(Self.packet(19, seed: 4), sequenceNumber: 19)
        decoder.sourceReceived(Self.packet(21, seed: 4), sequenceNumber: 21)
        var acrossKeyframe = ByteBuffer()
        #expect(encoder.writeRepair(since: 20, into: &acrossKeyframe))
        #expect(decoder.repairReceived(acrossKeyframe).isEmpty)
        var nack = NACKGenerator()
        for sequence in [19, 21] as [UInt16] { _ = nack.packetReceived(sequenceNumber: sequence, now: now) }
        nack.sentThrough(sequenceNumber: 22, now: now)
        #expect(decoder.pendingEquations(stillMissing: nack.isMissing) == 1)  // 20 and 22 still wanted
        nack.forgetMissing(before: 21)
        decoder.forgetEquations(before: 21)
        #expect(decoder.pendingEquations == 1)  // it still covers 22
        #expect(decoder.pendingEquations(stillMissing: nack.isMissing) == 0)
        var requests = RepairRequests()
        #expect(nack.deficit(equations: decoder, requests: &requests, now: now) == 1)
        // A second equation over both makes up for the forgotten packet: 22 is rebuilt.
        var second = ByteBuffer()
        #expect(encoder.writeRepair(since: 20, into: &second))
        #expect(decoder.repairReceived(second).count == 2)

        // A record that sees no repair for its horizon stops: the sender repairs that link otherwise.
        var quiet = SlidingWindowFECDecoder()
        quiet.sourceReceived(Self.packet(1, seed: 4), sequenceNumber: 1)
        quiet.startRecording(from: 2)
        let last = UInt16(2 + quiet.horizon)
        for sequence in 3...last { quiet.sourceReceived(Self.packet(sequence, seed: 4), sequenceNumber: sequence) }
        #expect(quiet.isActive)
        quiet.sourceReceived(Self.packet(last + 1, seed: 4), sequenceNumber: last + 1)
        #expect(!quiet.isActive)
    }

    @Test func repairRequestsCountWhatIsOnItsWayUntilAnsweredOrExpired() {
        var requests = RepairRequests()
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let expiry = TimeAmount.milliseconds(60)
        #expect(requests.outstanding(now: start, expiry: expiry) == 0)
        requests.asked([10, 12], at: start)
        requests.asked([20], at: start + .milliseconds(20))
        #expect(requests.outstanding(now: start + .milliseconds(30), expiry: expiry) == 3)
        // A round's first answer (its span starts at the oldest packet named) times the round trip of
        // the NACK it answers, not of the later one.
        #expect(requests.answerArrived(covering: 10, now: start + .milliseconds(50)) == .milliseconds(50))
        #expect(requests.outstanding(now: start + .milliseconds(50), expiry: expiry) == 2)
        // Its second answer, back to back, settles the rest of it; a third (surplus) settles nothing else.
        #expect(requests.answerArrived(covering: 10, now: start + .milliseconds(51)) == nil)
        #expect(requests.answerArrived(covering: 10, now: start + .milliseconds(51)) == nil)
        #expect(requests.outstanding(now: start + .milliseconds(52), expiry: expiry) == 1)
        // A round that starts inside the packets named (the sender could not cover the oldest) answers it.
        #expect(requests.answerArrived(covering: 20, now: start + .milliseconds(71)) == .milliseconds(51))
        #expect(requests.outstanding(now: start + .milliseconds(72), expiry: expiry) == 0)
        // A round that answered only part of a request: the rest counts until the round has landed.
        requests.asked([30, 31, 32], at: start + .milliseconds(100))
        requests.answerArrived(covering: 30, now: start + .milliseconds(150))
        #expect(requests.outstanding(now: start + .milliseconds(152), expiry: expiry) == 2)
        #expect(requests.outstanding(now: start + .milliseconds(150) + RepairRequests.landing, expiry: expiry) == 0)
        // An answer to nothing asked for settles nothing.
        requests.asked([40], at: start + .milliseconds(200))
        #expect(requests.answerArrived(covering: 39, now: start + .milliseconds(240)) == nil)
        #expect(requests.outstanding(now: start + .milliseconds(240), expiry: expiry) == 1)
        // Unanswered for an expiry: forgotten, so the NACK generator's retry asks again.
        #expect(requests.outstanding(now: start + .milliseconds(260), expiry: expiry) == 0)
        // Never more than its capacity: the oldest go first.
        for index in 0..<40 {
            requests.asked([UInt16(100 + index)], at: start + .milliseconds(300 + Int64(index)))
        }
        #expect(requests.outstanding(now: start + .milliseconds(350), expiry: expiry) == RepairRequests.capacity)
    }

    /// A round covers the span from the oldest packet its NACK named: a request for newer packets (a later
    /// loss, a silence probe) holds back no NACK for an older one, across the 16-bit wrap too.
    @Test func onlyRequestsWhoseRoundsReachTheOldestMissingPacketCountAsOutstanding() {
        var requests = RepairRequests()
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let expiry = TimeAmount.milliseconds(60)
        requests.asked([65_534, 65_535], at: start)
        requests.asked([3, 4, 5], at: start + .milliseconds(10))
        let now = start + .milliseconds(20)
        #expect(requests.outstanding(now: now, expiry: expiry) == 5)
        #expect(requests.outstanding(now: now, expiry: expiry, reaching: 65_534) == 2)
        #expect(requests.outstanding(now: now, expiry: expiry, reaching: 65_533) == 0)
        #expect(requests.outstanding(now: now, expiry: expiry, reaching: 1) == 2)
        #expect(requests.outstanding(now: now, expiry: expiry, reaching: 3) == 5)
        #expect(requests.outstanding(now: now, expiry: expiry, reaching: 9) == 5)
    }
}

@Suite struct SilenceProbeTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static func at(_ milliseconds: Int64) -> NIODeadline { start + .milliseconds(milliseconds) }

    /// A probe that learned a stream of one packet every `interval` ms, the last arriving at `last`.
    static func learned(interval: Int64 = 33, packets: Int64 = 10) -> (probe: SilenceProbe, last: Int64) {
        var probe = SilenceProbe()
        for index in 0..<packets { probe.arrived(newest: 100 + index, now: at(index * interval)) }
        return (probe, (packets - 1) * interval)
    }

    @Test func aSilenceOfTwoAndAHalfPacketIntervalsIsProbedForThePacketsItProbablyHid() throws {
        var (probe, last) = Self.learned()
        let interval = try #require(probe.packetInterval)
        #expect(abs(interval - 33_000_000) < 1_000)
        #expect(probe.due(now: Self.at(last + 80), answerTime: .milliseconds(60)) == nil)
        // 100 ms of silence: about three packets were sent and lost.
        #expect(probe.due(now: Self.at(last + 100), answerTime: .milliseconds(60)) == 3)
        // The next probe waits for this one's answer, then names what the longer silence hid.
        #expect(probe.due(now: Self.at(last + 140), answerTime: .milliseconds(60)) == nil)
        #expect(probe.due(now: Self.at(last + 165), answerTime: .milliseconds(60)) == 5)
        #expect(probe.due(now: Self.at(last + 230), answerTime: .milliseconds(60)) == 7)
        // After three, the stream has paused: no more until a packet comes.
        #expect(probe.due(now: Self.at(last + 400), answerTime: .milliseconds(60)) == nil)
        #expect(probe.probesSent == 3)
        probe.arrived(newest: 120, now: Self.at(last + 410))
        #expect(probe.due(now: Self.at(last + 450), answerTime: .milliseconds(60)) == nil)
        // Names at most `maximumNamed`.
        #expect(probe.due(now: Self.at(last + 900), answerTime: .milliseconds(60)) == probe.maximumNamed)
    }

    @Test func aFastStreamIsProbedNoSoonerThanTheMinimumSilence() {
        var (probe, last) = Self.learned(interval: 5, packets: 60)
        #expect(probe.due(now: Self.at(last + 30), answerTime: .milliseconds(60)) == nil)
        #expect(probe.due(now: Self.at(last + 40), answerTime: .milliseconds(60)) == 8)
    }

    @Test func aKeyframesBackToBackPacketsDoNotShortenTheInterval() throws {
        var (probe, last) = Self.learned()
        // Eight packets within a millisecond, then the stream goes on at 33 ms.
        for index in 0..<8 { probe.arrived(newest: 110 + Int64(index), now: Self.at(last + 33)) }
        for index in 1...6 { probe.arrived(newest: 117 + Int64(index), now: Self.at(last + 33 + 33 * Int64(index))) }
        // Samples span at least 100 ms: the burst is one sample of 12 ms among 33 ms ones, not eight of zero.
        let interval = try #require(probe.packetInterval)
        #expect(interval > 20_000_000)
    }

    @Test func aPauseOfTheSenderIsNotTakenForItsRate() throws {
        var (probe, last) = Self.learned()
        // Five seconds without a packet (video muted), then the stream resumes at 33 ms.
        probe.arrived(newest: 110, now: Self.at(last + 5_000))
        #expect(abs(try #require(probe.packetInterval) - 33_000_000) < 1_000)
    }

    @Test func noProbeBeforeTheIntervalIsKnown() {
        var probe = SilenceProbe()
        probe.arrived(newest: 1, now: Self.at(0))
        #expect(probe.due(now: Self.at(1_000), answerTime: .milliseconds(60)) == nil)
        probe.arrived(newest: nil, now: Self.at(1_000))
        #expect(probe.due(now: Self.at(2_000), answerTime: .milliseconds(60)) == nil)
    }
}
