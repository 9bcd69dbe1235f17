import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@Suite struct ReceiveStatisticsTests {
    @Test func lossAndFractionLostPerInterval() {
        var stats = ReceiveStatistics(ssrc: 0xABCD, clockRate: 90000)
        for sequence: UInt16 in 1...10 where sequence != 4 && sequence != 7 {
            stats.packetReceived(sequenceNumber: sequence, timestamp: UInt32(sequence) * 3000, now: at(Int64(sequence)))
        }
        #expect(stats.packetsExpected == 10)
        #expect(stats.packetsReceived == 8)
        #expect(stats.cumulativeLost == 2)
        let first = stats.makeReportBlock(now: at(100))
        #expect(first.ssrc == 0xABCD)
        #expect(first.fractionLost == 51)  // (2 << 8) / 10
        #expect(first.cumulativeLost == 2)
        #expect(first.extendedHighestSequenceNumber == 10)
        #expect(first.lastSenderReport == 0)
        #expect(first.delaySinceLastSenderReport == 0)

        // Next interval: 11...20, with 15 lost and 4 arriving late (a repair of the earlier loss).
        for sequence: UInt16 in 11...20 where sequence != 15 {
            stats.packetReceived(sequenceNumber: sequence, timestamp: 0, now: at(200))
        }
        stats.packetReceived(sequenceNumber: 4, timestamp: 0, now: at(200), isRetransmission: true)
        let second = stats.makeReportBlock(now: at(300))
        // Interval: expected 10, received 10 → nothing lost in the interval; cumulative 20 − 18 = 2.
        #expect(second.fractionLost == 0)
        #expect(second.cumulativeLost == 2)
        #expect(second.extendedHighestSequenceNumber == 20)
    }

    @Test func extendedHighestCountsCycles() {
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 48000)
        var sequence: UInt16 = 65530
        for _ in 0..<11 {
            stats.packetReceived(sequenceNumber: sequence, timestamp: 0, now: at(0))
            sequence &+= 1
        }
        #expect(stats.extendedHighestSequenceNumber == 0x1_0004)
        #expect(stats.packetsExpected == 11)
        #expect(stats.cumulativeLost == 0)
    }

    @Test func duplicatesMakeCumulativeLossNegative() {
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 48000)
        for sequence: UInt16 in [1, 2, 2, 3] {
            stats.packetReceived(sequenceNumber: sequence, timestamp: 0, now: at(0))
        }
        let block = stats.makeReportBlock(now: at(0))
        #expect(block.cumulativeLost == -1)
        #expect(block.fractionLost == 0)
    }

    @Test func cumulativeLossClampsTo24BitsSigned() {
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 90000)
        // Jumps of 2999 are "permissible gaps" (below MAX_DROPOUT), so every one counts as loss.
        var sequence: UInt16 = 0
        for _ in 0..<3000 {
            stats.packetReceived(sequenceNumber: sequence, timestamp: 0, now: at(0))
            sequence &+= 2999
        }
        #expect(stats.cumulativeLost == 2999 * 2999 + 1 - 3000)
        #expect(stats.makeReportBlock(now: at(0)).cumulativeLost == 0x7F_FFFF)
    }

    @Test func largeJumpIsRejectedUntilConfirmedAsRestart() {
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 90000)
        for sequence: UInt16 in 100...105 {
            let counted = stats.packetReceived(sequenceNumber: sequence, timestamp: 0, now: at(0))
            #expect(counted)
        }
        let jump = stats.packetReceived(sequenceNumber: 5000, timestamp: 0, now: at(0))
        #expect(!jump)
        #expect(stats.packetsReceived == 6)
        // The next number confirms the jump: RFC 3550 A.1 re-initialises on it.
        let restart = stats.packetReceived(sequenceNumber: 5001, timestamp: 0, now: at(0))
        #expect(restart)
        #expect(stats.extendedHighestSequenceNumber == 5001)
        #expect(stats.packetsExpected == 1)
        #expect(stats.packetsReceived == 1)
    }

    @Test func jitterMatchesHandComputedRFC3550Integers() {
        // 8 kHz clock: 1 ms = 8 units. Packets every 20 ms of media (160 units); arrivals at 0, 20, 45, 60 ms
        // → arrival units 0, 160, 360, 480 → transit 0, 0, 40, 0 → |D| = 0, 40, 40.
        // J×16: 0 → 0 + 0 − 0 = 0 → 0 + 40 − 0 = 40 → 40 + 40 − ((40 + 8) >> 4 = 3) = 77; J = 77 >> 4 = 4.
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 8000)
        let arrivals: [Int64] = [0, 20, 45, 60]
        for (index, arrival) in arrivals.enumerated() {
            stats.packetReceived(
                sequenceNumber: UInt16(index), timestamp: 1000 + UInt32(index) * 160, now: at(arrival))
        }
        #expect(stats.jitter == 4)
        #expect(stats.makeReportBlock(now: at(60)).jitter == 4)
    }

    @Test func jitterIsZeroForPerfectPacing() {
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 90000)
        // Timestamps wrap during the run; only differences matter.
        var timestamp: UInt32 = 0xFFFF_0000
        for index in 0..<100 {
            stats.packetReceived(sequenceNumber: UInt16(index), timestamp: timestamp, now: at(Int64(index) * 40))
            timestamp &+= 3600
        }
        #expect(stats.jitter == 0)
    }

    @Test func lastSenderReportAndDelay() throws {
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 90000)
        stats.packetReceived(sequenceNumber: 1, timestamp: 0, now: at(0))
        stats.senderReportReceived(ntpTimestamp: 0x1122_3344_5566_7788, now: at(1000))
        let block = stats.makeReportBlock(now: at(1500))
        #expect(block.lastSenderReport == 0x3344_5566)
        #expect(block.delaySinceLastSenderReport == 32768)  // 0.5 s in 1/65536 s

        // The block round-trips through BraidWire's RR builder and parser.
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPReceiverReport.write(senderSSRC: 9, reportBlocks: [block], into: &buffer)
        let parsed = try RTCPReceiverReport(buffer)
        #expect(Array(parsed.reportBlocks) == [block])
    }
}
