import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

/// A small deterministic generator (SplitMix64) so failures reproduce; the suites of this target share it.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Arbitrary sequence numbers, timestamps, SSRC changes, clocks that jump back and forth and garbage
/// payloads must never trap, and the invariants that hold for any input must hold.
@Suite struct RobustnessTests {
    @Test(arguments: [1, 2, 3, 4])
    func randomInputNeverTraps(seed: UInt64) throws {
        var random = SeededGenerator(state: seed)
        var stats = ReceiveStatistics(ssrc: 1, clockRate: 90000)
        var generator = NACKGenerator(configuration: .init(maxMissing: 300))
        var retransmission = RetransmissionBuffer(capacity: 64, slotSize: 200, rtx: .init(ssrc: 2, payloadType: 97))
        var rewriter = RTPRewriter(outputSSRC: 3, clockRate: 90000, rewritesVP8: true)
        var throttle = KeyframeRequestThrottle(mediaSSRC: 1)
        var out = ContiguousArray<UInt16>()
        var scratch = ByteBuffer()
        var sequence = UInt16.random(in: 0...UInt16.max, using: &random)
        var time: Int64 = 0
        for _ in 0..<3000 {
            // Mostly small steps, sometimes reordering, sometimes a wild jump.
            switch Int.random(in: 0..<20, using: &random) {
            case 0: sequence = UInt16.random(in: 0...UInt16.max, using: &random)
            case 1...3: sequence &-= UInt16.random(in: 0...50, using: &random)
            default: sequence &+= UInt16.random(in: 0...5, using: &random)
            }
            time += Int64.random(in: -50...200, using: &random)
            let now = at(max(time, -900))
            let payloadLength = Int.random(in: 0...250, using: &random)
            let payload = (0..<payloadLength).map { _ in UInt8.random(in: 0...255, using: &random) }
            let packet = try makePacket(
                sequenceNumber: sequence, timestamp: UInt32.random(in: 0...UInt32.max, using: &random),
                ssrc: UInt32.random(in: 0...2, using: &random), marker: Bool.random(using: &random), payload: payload,
                paddingLength: Int.random(in: 0...3, using: &random))

            stats.packetReceived(packet, now: now)
            _ = stats.makeReportBlock(now: now)
            _ = generator.packetReceived(packet, isRetransmission: Bool.random(using: &random), now: now)
            generator.pending(now: now, into: &out)
            #expect(generator.missingCount <= 300)
            retransmission.store(packet, now: now)
            scratch.clear()
            let asked = sequence &- UInt16.random(in: 0...70, using: &random)
            if case .written = retransmission.retransmit(asked, now: now, into: &scratch) {
                // Every retransmission is a well-formed RTX packet carrying the requested OSN.
                let rtx = try RTPPacket(scratch)
                #expect(rtx.ssrc == 2 && rtx.payloadType == 97 && !rtx.hasPadding)
                #expect(rtx.payload.getInteger(at: rtx.payload.readerIndex, as: UInt16.self) == asked)
            }
            if Bool.random(using: &random) {
                rewriter.drop(sequenceNumber: sequence)
            } else {
                var copy = packet
                if (try? rewriter.rewrite(packet: &copy, now: now)) == .forward {
                    #expect(copy.ssrc == 3)
                }
            }
            _ = throttle.keyframeRequested(now: now)
            _ = throttle.retryDue(now: now)
        }
    }
}
