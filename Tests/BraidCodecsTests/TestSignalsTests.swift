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

    @Test("noise changes every frame within its amplitude, keeps the index readable, and makes the encoder spend its budget")
    func noiseTexture() throws {
        var pattern = try TestPattern(width: 320, height: 240)
        pattern.noise = 10
        let a = try I420Buffer(width: 320, height: 240)
        let b = try I420Buffer(width: 320, height: 240)
        try pattern.render(frameIndex: 7, into: a)
        try pattern.render(frameIndex: 8, into: b)
        #expect(a.withImage { pattern.readFrameIndex(from: $0) } == 7)
        var changed = 0
        for row in 100..<200 {
            for column in 0..<40 {
                let luma = Int(a.y[row * 320 + column])
                #expect(abs(luma - 180) <= 10)
                if a.y[row * 320 + column] != b.y[row * 320 + column] { changed += 1 }
            }
        }
        #expect(changed > 3000, "the grain is fresh in most pixels of the next frame")
        // The plain pattern encodes far below 400 kbit/s; with noise the encoder comes near it.
        func encodedBits(noise: UInt8) throws -> Int {
            var pattern = try TestPattern(width: 320, height: 240)
            pattern.noise = noise
            let encoder = try VP8Encoder(.init(width: 320, height: 240, bitrate: 400_000))
            let input = try I420Buffer(width: 320, height: 240)
            var bytes = 0
            for index in 0..<30 {
                try pattern.render(frameIndex: index, into: input)
                _ = try input.withImage { (image: I420Image) throws(CodecError) in
                    try encoder.encode(image, forceKeyframe: index == 0) { bytes += $0.data.count }
                }
            }
            return bytes * 8
        }
        let plain = try encodedBits(noise: 0)
        let noisy = try encodedBits(noise: 16)
        #expect(noisy > 2 * plain && noisy > 250_000, "plain \(plain) bits, noisy \(noisy) bits in 1 s")
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
