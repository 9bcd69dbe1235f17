/// The example modules in Tools/WasmExamples do what their README says, and what they cost.

import BraidWasm
import Foundation
import Testing

@Suite struct WasmExampleTests {
    @Test func gainScalesASine() throws {
        let gain = try load(exampleModule("gain"), parameter: 50)
        #expect(gain.handlesAudio && !gain.handlesVideo)
        let input = sineFrame(amplitude: 20_000)
        var samples = input
        try runAudio(gain, &samples)
        #expect(samples == input.map { Int16(Int($0) * 50 / 100) })
        #expect(gain.fuelUsedLastFrame > 0 && gain.fuelUsedLastFrame < WasmLimits.audio.fuelPerFrame)
        #expect(gain.statistics.frames == 1)
    }

    @Test func gainSaturates() throws {
        let gain = try load(exampleModule("gain"), parameter: 300)
        let input = sineFrame(amplitude: 20_000)
        var samples = input
        try runAudio(gain, &samples)
        #expect(samples == input.map { Int16(clamping: Int($0) * 300 / 100) })
        #expect(samples.max() == Int16.max && samples.min() == Int16.min)
    }

    @Test func gainRefusesABadParameter() throws {
        let log = LogLines()
        let error = expectFailure(.moduleError, containing: "braid_init(-5)") {
            _ = try WasmFunction(module: try! exampleModule("gain"), limits: .audio, parameter: -5, log: log.sink)
        }
        #expect(error != nil)
        #expect(log.lines == ["gain: parameter is the gain in percent, 0...10000"])
    }

    @Test func overlayMarksTheTopRightCornerOnly() throws {
        let overlay = try load(exampleModule("overlay"), limits: .video)
        #expect(overlay.handlesVideo && !overlay.handlesAudio)
        let (width, height) = (1280, 720)
        let original = I420Frame(width: width, height: height)
        var frame = original
        try frame.run(overlay, frameIndex: 7)

        // The box of overlay.c: width/6 × height/8, width/40 from the top and right edges.
        let boxWidth = width / 6, boxHeight = height / 8, margin = width / 40
        let x0 = width - margin - boxWidth, y0 = margin
        var changedInside = 0
        var changedOutside = 0
        for row in 0..<height {
            for col in 0..<width where frame.y[row * width + col] != original.y[row * width + col] {
                let inside = row >= y0 && row < y0 + boxHeight && col >= x0 && col < x0 + boxWidth
                if inside { changedInside += 1 } else { changedOutside += 1 }
            }
        }
        #expect(changedOutside == 0)
        #expect(changedInside > boxWidth * boxHeight / 2)
        #expect(frame.y[y0 * width + x0] == 235)  // the border's corner
        #expect(frame.u == original.u && frame.v == original.v)
    }

    @Test func overlayLeavesSmallFramesAlone() throws {
        let overlay = try load(exampleModule("overlay"), limits: .video)
        let original = I420Frame(width: 17, height: 9)  // odd sizes: chroma planes round up
        var frame = original
        try frame.run(overlay)
        #expect(frame == original)
    }

    /// Guest cost per frame; prints rather than asserts (the machine is shared). Tests run a debug
    /// build of WasmKit, ~150-350x slower than release: the figures quoted in Tools/WasmExamples/README.md
    /// come from Tools/WasmExamples/measure.sh (release).
    @Test func measureGuestTimePerFrame() throws {
        let gain = try load(exampleModule("gain"), parameter: 80)
        let input = sineFrame(amplitude: 10_000)
        var samples = input
        for index in 0..<5 { samples = input; try runAudio(gain, &samples, timestampMs: Int64(index * 20)) }
        let audioFrames = 100
        let audioStart = ContinuousClock.now
        for index in 0..<audioFrames { samples = input; try runAudio(gain, &samples, timestampMs: Int64(index * 20)) }
        let audioTotal = ContinuousClock.now - audioStart
        let audio = gain.statistics

        let overlay = try load(exampleModule("overlay"), limits: .video)
        let original = I420Frame(width: 1280, height: 720)
        var frame = original
        for index in 0..<5 { try frame.run(overlay, frameIndex: Int64(index)) }
        let videoFrames = 20
        let videoStart = ContinuousClock.now
        for index in 0..<videoFrames { frame = original; try frame.run(overlay, frameIndex: Int64(index)) }
        let videoTotal = ContinuousClock.now - videoStart
        let video = overlay.statistics

        func micro(_ nanoseconds: UInt64) -> String { String(format: "%.1f µs", Double(nanoseconds) / 1000) }
        func perFrame(_ total: Duration, _ frames: Int) -> String {
            let c = total.components
            return micro(UInt64(c.seconds) * 1_000_000_000 / UInt64(frames) + UInt64(c.attoseconds / 1_000_000_000) / UInt64(frames))
        }
        #if DEBUG
            let build = "debug build"
        #else
            let build = "release build"
        #endif
        print(
            """
            BraidWasm cost (\(build)): gain, 20 ms 48 kHz stereo (1920 samples): \(perFrame(audioTotal, audioFrames)) per frame \
            (instance average \(micro(audio.averageFrameNanoseconds)), max \(micro(audio.maxFrameNanoseconds))), \
            fuel \(audio.lastFrameFuel) per frame
            BraidWasm cost (\(build)): overlay, 1280x720 I420: \(perFrame(videoTotal, videoFrames)) per frame \
            (instance average \(micro(video.averageFrameNanoseconds)), max \(micro(video.maxFrameNanoseconds))), \
            fuel \(video.lastFrameFuel) per frame
            """)
        #expect(audio.frames == UInt64(5 + audioFrames))
        #expect(video.frames == UInt64(5 + videoFrames))
    }
}
