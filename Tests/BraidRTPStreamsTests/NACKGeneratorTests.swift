import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@Suite struct NACKGeneratorTests {
    @Test func gapIsNackedAtOnceThenOncePerRTT() {
        var generator = NACKGenerator()
        var out = ContiguousArray<UInt16>()
        #expect(generator.packetReceived(sequenceNumber: 1, now: at(0)) == .first)
        #expect(generator.packetReceived(sequenceNumber: 2, now: at(0)) == .advanced(newlyMissing: 0))
        #expect(generator.packetReceived(sequenceNumber: 5, now: at(10)) == .advanced(newlyMissing: 2))
        #expect(generator.isMissing(3) && generator.isMissing(4) && !generator.isMissing(5))

        generator.pending(now: at(10), into: &out)
        #expect(Array(out) == [3, 4])
        generator.pending(now: at(60), into: &out)
        #expect(out.isEmpty)  // half an RTT later: not yet
        generator.pending(now: at(110), into: &out)
        #expect(Array(out) == [3, 4])

        // 3 comes back on the RTX stream after two NACKs.
        #expect(
            generator.packetReceived(sequenceNumber: 3, isRetransmission: true, now: at(120))
                == .recovered(retransmission: true, nackCount: 2))
        #expect(generator.missingCount == 1)
        generator.pending(now: at(210), into: &out)
        #expect(Array(out) == [4])

        // A longer RTT spaces the retries further apart.
        generator.roundTripTime = .milliseconds(300)
        generator.pending(now: at(410), into: &out)
        #expect(out.isEmpty)
        generator.pending(now: at(510), into: &out)
        #expect(Array(out) == [4])
    }

    @Test("A number with a deadline is asked for only while the answer can make it; a forgotten one never")
    func deadlinesAndForgetting() {
        var generator = NACKGenerator()  // 100 ms round trip
        var out = ContiguousArray<UInt16>()
        _ = generator.packetReceived(sequenceNumber: 10, now: at(0))
        #expect(generator.packetReceived(sequenceNumber: 14, now: at(0)) == .advanced(newlyMissing: 3))
        generator.setDeadline(at(90), for: 11)  // an answer would come at 100 ms: never asked for
        generator.setDeadline(at(150), for: 12)  // asked for now, not again at 100 ms
        generator.forget(13)  // arrived another way
        generator.setDeadline(at(500), for: 99)  // not missing: no effect
        generator.pending(now: at(0), into: &out)
        #expect(Array(out) == [12])
        #expect(generator.packetsExpired == 1)
        #expect(generator.missingCount == 1)
        // Still waited for: the answer to the NACK already sent may come.
        #expect(generator.packetReceived(sequenceNumber: 12, isRetransmission: true, now: at(60))
            == .recovered(retransmission: true, nackCount: 1))

        _ = generator.packetReceived(sequenceNumber: 16, now: at(100))
        generator.setDeadline(at(250), for: 15)
        generator.pending(now: at(100), into: &out)
        #expect(Array(out) == [15])
        generator.pending(now: at(200), into: &out)
        #expect(out.isEmpty)
        #expect(generator.packetsExpired == 2)
        #expect(generator.missingCount == 0)
        #expect(generator.packetsGivenUp == 0)
    }

    @Test("Numbers held back by a limit wait a round trip for the repairs in hand, using up no retry")
    func limitHoldsNumbersBackWithoutUsingRetries() {
        var generator = NACKGenerator(configuration: .init(maxRetries: 2))  // 100 ms round trip
        var out = ContiguousArray<UInt16>()
        _ = generator.packetReceived(sequenceNumber: 1, now: at(0))
        _ = generator.packetReceived(sequenceNumber: 5, now: at(0))  // 2, 3, 4 missing
        generator.pending(now: at(0), limit: 1, into: &out)
        #expect(Array(out) == [2])
        generator.pending(now: at(50), into: &out)
        #expect(out.isEmpty)  // 3 and 4 wait a round trip, as 2 does
        // A receiver whose deficit stays zero asks for nothing, round trip after round trip, and gives
        // nothing up.
        for tick: Int64 in 1...20 {
            generator.pending(now: at(tick * 10), limit: 0, into: &out)
            #expect(out.isEmpty)
        }
        #expect(generator.packetsGivenUp == 0 && generator.missingCount == 3)
        generator.pending(now: at(300), into: &out)
        #expect(Array(out) == [2, 3, 4])
        // 2 had its two NACKs and is given up; 3 and 4 have their second.
        generator.pending(now: at(400), into: &out)
        #expect(Array(out) == [3, 4] && generator.packetsGivenUp == 1 && generator.missingCount == 2)
    }

    @Test func givesUpAfterMaxRetries() {
        var generator = NACKGenerator(configuration: .init(maxRetries: 3))
        var out = ContiguousArray<UInt16>()
        _ = generator.packetReceived(sequenceNumber: 10, now: at(0))
        _ = generator.packetReceived(sequenceNumber: 12, now: at(0))
        for time: Int64 in [0, 100, 200] {
            generator.pending(now: at(time), into: &out)
            #expect(Array(out) == [11])
        }
        generator.pending(now: at(300), into: &out)
        #expect(out.isEmpty)
        #expect(generator.missingCount == 0)
        #expect(generator.packetsGivenUp == 1)
        // A packet we gave up on that still arrives is just late.
        #expect(generator.packetReceived(sequenceNumber: 11, now: at(400)) == .late)
    }

    @Test func reorderingIsNotLoss() {
        var generator = NACKGenerator()
        var out = ContiguousArray<UInt16>()
        _ = generator.packetReceived(sequenceNumber: 1, now: at(0))
        #expect(generator.packetReceived(sequenceNumber: 3, now: at(1)) == .advanced(newlyMissing: 1))
        #expect(
            generator.packetReceived(sequenceNumber: 2, now: at(2)) == .recovered(retransmission: false, nackCount: 0))
        generator.pending(now: at(2), into: &out)
        #expect(out.isEmpty)
        #expect(generator.packetReceived(sequenceNumber: 2, now: at(3)) == .late)  // duplicate
    }

    @Test func reorderingDelayHoldsTheFirstNack() {
        var generator = NACKGenerator(configuration: .init(reorderingDelay: .milliseconds(20)))
        var out = ContiguousArray<UInt16>()
        _ = generator.packetReceived(sequenceNumber: 1, now: at(0))
        _ = generator.packetReceived(sequenceNumber: 3, now: at(0))
        generator.pending(now: at(19), into: &out)
        #expect(out.isEmpty)
        generator.pending(now: at(20), into: &out)
        #expect(Array(out) == [2])
    }

    @Test func overflowClearsAndAsksForKeyframe() {
        var generator = NACKGenerator()
        var out = ContiguousArray<UInt16>()
        _ = generator.packetReceived(sequenceNumber: 0, now: at(0))
        #expect(generator.packetReceived(sequenceNumber: 600, now: at(0)) == .advanced(newlyMissing: 599))
        #expect(generator.packetReceived(sequenceNumber: 1001, now: at(0)) == .advanced(newlyMissing: 400))
        #expect(generator.missingCount == 999)
        // 1002 and 1003 would make 1001 entries: one more than the list holds.
        #expect(generator.packetReceived(sequenceNumber: 1004, now: at(0)) == .keyframeNeeded)
        #expect(generator.missingCount == 0)
        #expect(generator.keyframeRequests == 1)
        generator.pending(now: at(0), into: &out)
        #expect(out.isEmpty)
        // Tracking resumes from the newest packet.
        #expect(generator.packetReceived(sequenceNumber: 1006, now: at(1)) == .advanced(newlyMissing: 1))
        generator.pending(now: at(1), into: &out)
        #expect(Array(out) == [1005])
    }

    @Test func gapAcrossWrapAndNackBytes() throws {
        var generator = NACKGenerator()
        var out = ContiguousArray<UInt16>()
        _ = generator.packetReceived(sequenceNumber: 65534, now: at(0))
        _ = generator.packetReceived(sequenceNumber: 65535, now: at(0))
        #expect(generator.packetReceived(sequenceNumber: 2, now: at(0)) == .advanced(newlyMissing: 2))
        generator.pending(now: at(0), into: &out)
        #expect(Array(out) == [0, 1])

        var buffer = ByteBufferAllocator().buffer(capacity: 16)
        try NACKGenerator.writeNACK(
            senderSSRC: 0x0A0B_0C0D, mediaSSRC: 0x0102_0304, sequenceNumbers: out, into: &buffer)
        // RTPFB PT 205 FMT 1, length 3; PID 0, BLP bit 0 (PID + 1).
        #expect(bytes(buffer) == [0x81, 0xCD, 0x00, 0x03, 0x0A, 0x0B, 0x0C, 0x0D, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 1])
        let nack = try RTCPGenericNACK(buffer)
        #expect(Array(nack.lostSequenceNumbers) == [0, 1])
    }

    @Test func oldPacketsAndEntriesAreForgotten() {
        var generator = NACKGenerator()
        _ = generator.packetReceived(sequenceNumber: 0, now: at(0))
        _ = generator.packetReceived(sequenceNumber: 2, now: at(0))  // 1 missing
        for sequence: UInt16 in 3...10_001 {
            _ = generator.packetReceived(sequenceNumber: sequence, now: at(0))
        }
        #expect(generator.isMissing(1))  // exactly 10000 behind: still kept
        _ = generator.packetReceived(sequenceNumber: 10_002, now: at(0))
        #expect(!generator.isMissing(1))
        #expect(generator.missingCount == 0)
        #expect(generator.packetReceived(sequenceNumber: 1, now: at(0)) == .tooOld)
    }

    @Test func steadyStateReusesTheOutputStorage() {
        // The output array is reserved once (maxMissing) and then only cleared and refilled.
        var generator = NACKGenerator()
        var out = ContiguousArray<UInt16>()
        var sequence: UInt16 = 0
        _ = generator.packetReceived(sequenceNumber: sequence, now: at(0))
        generator.pending(now: at(0), into: &out)
        let address = out.withUnsafeBufferPointer { $0.baseAddress }
        for step in 1...5000 {
            sequence &+= (step % 7 == 0 ? 3 : 1)  // a two-packet gap every 7 packets
            _ = generator.packetReceived(sequenceNumber: sequence, now: at(Int64(step)))
            generator.pending(now: at(Int64(step)), into: &out)
            #expect(out.withUnsafeBufferPointer { $0.baseAddress } == address)
        }
        #expect(out.capacity >= 1000)
    }
}

@Suite struct NACKGeneratorKeyframeTests {
    @Test func keyframeForgetsOlderMissingNumbers() {
        var generator = NACKGenerator()
        var out = ContiguousArray<UInt16>()
        _ = generator.packetReceived(sequenceNumber: 100, now: at(0))
        _ = generator.packetReceived(sequenceNumber: 105, now: at(0))  // 101...104 missing
        _ = generator.packetReceived(sequenceNumber: 108, now: at(0))  // 106, 107 missing
        generator.forgetMissing(before: 106)
        generator.pending(now: at(0), into: &out)
        #expect(Array(out) == [106, 107])
        #expect(generator.packetsGivenUp == 0)
    }

    @Test func aRepairPacketsAnnouncementMarksTheGapAtOnce() {
        var generator = NACKGenerator()
        var out = ContiguousArray<UInt16>()
        #expect(generator.sentThrough(sequenceNumber: 5, now: at(0)) == 0)  // nothing received yet
        #expect(generator.packetReceived(sequenceNumber: 10, now: at(0)) == .first)
        // A repair covering up to 12: 11 and 12 are missing, 12 included.
        #expect(generator.sentThrough(sequenceNumber: 12, now: at(5)) == 2)
        #expect(generator.sentThrough(sequenceNumber: 12, now: at(6)) == 0)
        #expect(generator.sentThrough(sequenceNumber: 9, now: at(6)) == 0)
        #expect(generator.sentThrough(sequenceNumber: 12 + 65, now: at(6)) == 0)  // no repair covers that much
        generator.pending(now: at(5), into: &out)
        #expect(Array(out) == [11, 12])
        // 13 then arrives in order: no new gap.
        #expect(generator.packetReceived(sequenceNumber: 13, now: at(30)) == .advanced(newlyMissing: 0))
        #expect(
            generator.packetReceived(sequenceNumber: 12, isRetransmission: true, now: at(40))
                == .recovered(retransmission: true, nackCount: 1))
        #expect(generator.isMissing(11) && !generator.isMissing(12))
    }

    @Test func theFirstLearnedRoundTripReplacesTheGuessAndRetriesWaitTheMargin() {
        var generator = NACKGenerator(configuration: .init(retryMargin: .milliseconds(8)))
        generator.learnsRoundTripTime = true
        var out = ContiguousArray<UInt16>()
        _ = generator.packetReceived(sequenceNumber: 1, now: at(0))
        _ = generator.packetReceived(sequenceNumber: 4, now: at(0))
        generator.pending(now: at(0), into: &out)
        #expect(Array(out) == [2, 3])
        _ = generator.packetReceived(sequenceNumber: 2, isRetransmission: true, now: at(50))
        #expect(generator.hasRoundTripSample)
        #expect(generator.roundTripTime == .milliseconds(50))  // not 100 + (50 − 100) / 8
        generator.pending(now: at(55), into: &out)
        #expect(out.isEmpty)
        generator.pending(now: at(57), into: &out)
        #expect(out.isEmpty)  // 50 ms plus the 8 ms margin not yet passed
        generator.pending(now: at(58), into: &out)
        #expect(Array(out) == [3])
        // A second sample moves the estimate by an eighth.
        _ = generator.packetReceived(sequenceNumber: 6, now: at(60))
        generator.pending(now: at(60), into: &out)
        _ = generator.packetReceived(sequenceNumber: 5, isRetransmission: true, now: at(150))
        #expect(generator.roundTripTime == .milliseconds(55))
    }

    @Test func packetsBeforeAStreamsFirstCanBeAskedForOnce() {
        var generator = NACKGenerator()
        var out = ContiguousArray<UInt16>()
        #expect(generator.expectEarlier(4, now: at(0)) == 0)  // nothing received yet
        #expect(generator.packetReceived(sequenceNumber: 2, now: at(0)) == .first)
        #expect(generator.expectEarlier(100, now: at(0)) == 0)  // more than a repair window
        #expect(generator.expectEarlier(4, now: at(0)) == 4)
        generator.pending(now: at(0), into: &out)
        #expect(Array(out) == [65_534, 65_535, 0, 1])  // across the wrap
        #expect(generator.expectEarlier(4, now: at(1)) == 0)  // only once, with nothing missing
        // One of them comes as a retransmission; the stream goes on without a new gap.
        #expect(
            generator.packetReceived(sequenceNumber: 1, isRetransmission: true, now: at(50))
                == .recovered(retransmission: true, nackCount: 1))
        #expect(generator.packetReceived(sequenceNumber: 3, now: at(60)) == .advanced(newlyMissing: 0))
        // A keyframe at 3: the rest is forgotten, not counted as given up.
        generator.forgetMissing(before: 3)
        #expect(generator.missingCount == 0 && generator.packetsGivenUp == 0)
    }
}
