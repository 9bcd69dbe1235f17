import BraidCodecs
import Testing

@Suite("Test signals")
struct TestSignalsTests {
    @Test("the frame index written into the pattern reads back", arguments: [(320, 240), (640, 360), (32, 32)])
    func frameIndexRoundTrip(width: Int, height: Int) throws {
        let pattern = try TestPattern(width: width, height: height)
        let buffer = try I420Buffer(width: width, height: height)
        for index in [0, 1, 2, 255, 256, 4097, 65_535, 65_536, -1] {
            try pattern.render(frameIndex: index, into: buffer)
            let read = buffer.withImage { pattern.readFrameIndex(from: $0) }
            #expect(read == index & 0xFFFF)
        }
    }

    @Test("consecutive frames differ (the box moves) and the bars are in place")
    func patternMoves() throws {
        let pattern = try TestPattern(width: 320, height: 240)
        let a = try I420Buffer(width: 320, height: 240)
        let b = try I420Buffer(width: 320, height: 240)
        try pattern.render(frameIndex: 10, into: a)
        try pattern.render(frameIndex: 11, into: b)
        let psnr = try #require(a.withImage { first in b.withImage { first.lumaPSNR(against: $0) } })
        #expect(psnr < 40)
        // Row 200, column 5 is the first bar (75 % white); column 315 the last (black).
        #expect(a.y[200 * 320 + 5] == 180)
        #expect(a.y[200 * 320 + 315] == 16)
        #expect(throws: CodecError.self) {
            try pattern.render(frameIndex: 0, into: try I420Buffer(width: 64, height: 64))
        }
    }

    @Test("the sine tone has its frequency and amplitude, and joins across calls without a jump")
    func sineTone() {
        var tone = SineTone(frequency: 1000, amplitude: 0.25, sampleRate: 48_000, channels: 2)
        let first = tone.next(samplesPerChannel: 480)
        let second = tone.next(samplesPerChannel: 480)
        let left =
            stride(from: 0, to: first.count, by: 2).map { first[$0] }
            + stride(from: 0, to: second.count, by: 2).map { second[$0] }
        #expect(first[0] == first[1])
        #expect(abs(AudioAnalysis.zeroCrossingFrequency(left[...], sampleRate: 48_000) - 1000) < 110)
        #expect(abs(Int(left.max() ?? 0) - 8192) < 10)
        // Largest step between neighbours: 2π·1000/48000 of the amplitude, also across the join.
        let steps = zip(left, left.dropFirst()).map { abs(Int($0) - Int($1)) }
        #expect(steps.max() ?? 0 <= 1080)
    }
}
