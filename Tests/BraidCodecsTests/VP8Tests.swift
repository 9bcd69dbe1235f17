import BraidCodecs
import Testing

/// One encoded frame copied out of the encoder's callback.
private struct Captured {
    let data: [UInt8]
    let isKeyframe: Bool
    let temporalLayerID: Int
    let layerSync: Bool
    let isDiscardable: Bool
    let pts: Int64
}

@Suite("VP8")
struct VP8Tests {
    private static func capture(
        _ encoder: VP8Encoder,
        _ buffer: I420Buffer,
        forceKeyframe: Bool = false
    ) throws -> [Captured] {
        var frames: [Captured] = []
        _ = try buffer.withImage { (image) throws(CodecError) in
            try encoder.encode(image, forceKeyframe: forceKeyframe) { frame in
                frames.append(
                    Captured(
                        data: Array(frame.data),
                        isKeyframe: frame.isKeyframe,
                        temporalLayerID: frame.temporalLayerID,
                        layerSync: frame.layerSync,
                        isDiscardable: frame.isDiscardable,
                        pts: frame.pts
                    )
                )
            }
        }
        return frames
    }

    /// Adds deterministic noise to the luma plane, so the encoder needs every bit it is given.
    private static func addNoise(_ buffer: I420Buffer, seed: inout UInt64) {
        for i in buffer.y.indices {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let noise = Int(seed >> 59) - 16
            buffer.y[i] = UInt8(clamping: Int(buffer.y[i]) + noise)
        }
    }

    @Test("30 frames at 320x240: keyframes where expected, decoded pictures match the input")
    func encodeDecode() throws {
        let encoder = try VP8Encoder(.init(width: 320, height: 240, bitrate: 300_000))
        let decoder = try VP8Decoder()
        let pattern = try TestPattern(width: 320, height: 240)
        let input = try I420Buffer(width: 320, height: 240)

        var minimumPSNR = Double.infinity
        for index in 0..<30 {
            try pattern.render(frameIndex: index, into: input)
            let frames = try Self.capture(encoder, input, forceKeyframe: index == 17)
            try #require(frames.count == 1)
            let frame = frames[0]
            #expect(frame.isKeyframe == (index == 0 || index == 17), "frame \(index)")
            #expect(frame.temporalLayerID == 0)
            #expect(frame.pts == Int64(index) * 3000)

            let decoded = try #require(try decoder.decode(frame.data))
            #expect(!decoded.isCorrupted)
            #expect(decoded.image.width == 320 && decoded.image.height == 240)
            #expect(pattern.readFrameIndex(from: decoded.image) == index)
            let psnr = try #require(input.withImage { decoded.image.lumaPSNR(against: $0) })
            minimumPSNR = min(minimumPSNR, psnr)
        }
        #expect(minimumPSNR > 30, "lowest luma PSNR \(minimumPSNR) dB")
    }

    @Test("requestKeyframe and the keyframe interval produce keyframes")
    func keyframeScheduling() throws {
        let encoder = try VP8Encoder(.init(width: 160, height: 120, bitrate: 200_000, maxKeyframeInterval: 10))
        let pattern = try TestPattern(width: 160, height: 120)
        let input = try I420Buffer(width: 160, height: 120)
        var keyframes: [Int] = []
        for index in 0..<25 {
            if index == 4 { encoder.requestKeyframe() }
            try pattern.render(frameIndex: index, into: input)
            for frame in try Self.capture(encoder, input) where frame.isKeyframe { keyframes.append(index) }
        }
        #expect(keyframes == [0, 4, 14, 24])
    }

    @Test("three temporal layers follow 0,2,1,2 with sync points, and TL0+TL1 decode alone")
    func temporalLayers() throws {
        let encoder = try VP8Encoder(.init(width: 320, height: 240, bitrate: 400_000, temporalLayers: 3))
        let pattern = try TestPattern(width: 320, height: 240)
        let input = try I420Buffer(width: 320, height: 240)
        var frames: [Captured] = []
        for index in 0..<24 {
            try pattern.render(frameIndex: index, into: input)
            frames += try Self.capture(encoder, input)
        }
        try #require(frames.count == 24)
        #expect(frames.map(\.temporalLayerID) == Array(repeating: [0, 2, 1, 2], count: 6).flatMap { $0 })
        #expect(frames[0].isKeyframe && frames.dropFirst().allSatisfy { !$0.isKeyframe })
        // Each 8-frame period opens with sync frames on TL2 (1) and TL1 (2); the rest depend on
        // frames of their own layer.
        #expect(
            frames.map(\.layerSync)
                == Array(repeating: [true, true, true, false, true, false, false, false], count: 3).flatMap { $0 }
        )
        #expect(
            frames.map(\.isDiscardable)
                == Array(repeating: [false, false, false, false, false, false, false, true], count: 3).flatMap { $0 }
        )

        // An SFU forwarding only TL0 and TL1 sends a stream that decodes without corruption.
        let decoder = try VP8Decoder()
        for (index, frame) in frames.enumerated() where frame.temporalLayerID <= 1 {
            let decoded = try #require(try decoder.decode(frame.data))
            #expect(!decoded.isCorrupted, "frame \(index)")
            #expect(pattern.readFrameIndex(from: decoded.image) == index)
        }
        // And TL0 alone.
        let baseDecoder = try VP8Decoder()
        for (index, frame) in frames.enumerated() where frame.temporalLayerID == 0 {
            let decoded = try #require(try baseDecoder.decode(frame.data))
            #expect(!decoded.isCorrupted)
            #expect(pattern.readFrameIndex(from: decoded.image) == index)
        }
    }

    @Test("a keyframe in mid-pattern restarts the layer pattern; two layers alternate")
    func keyframeRestartsPattern() throws {
        let encoder = try VP8Encoder(.init(width: 160, height: 120, bitrate: 200_000, temporalLayers: 3))
        let input = try I420Buffer(width: 160, height: 120)
        let pattern = try TestPattern(width: 160, height: 120)
        var layers: [Int] = []
        for index in 0..<9 {
            try pattern.render(frameIndex: index, into: input)
            for frame in try Self.capture(encoder, input, forceKeyframe: index == 5) {
                layers.append(frame.temporalLayerID)
                #expect(frame.isKeyframe == (index == 0 || index == 5))
            }
        }
        #expect(layers == [0, 2, 1, 2, 0, 0, 2, 1, 2])

        let twoLayers = try VP8Encoder(.init(width: 160, height: 120, bitrate: 200_000, temporalLayers: 2))
        layers = []
        var sync: [Bool] = []
        for index in 0..<8 {
            try pattern.render(frameIndex: index, into: input)
            for frame in try Self.capture(twoLayers, input) {
                layers.append(frame.temporalLayerID)
                sync.append(frame.layerSync)
            }
        }
        #expect(layers == [0, 1, 0, 1, 0, 1, 0, 1])
        #expect(sync == [true, true, true, false, true, false, true, false])
    }

    @Test("a lower bitrate takes effect: frames get smaller")
    func bitrateChange() throws {
        let encoder = try VP8Encoder(.init(width: 320, height: 240, bitrate: 1_000_000))
        let pattern = try TestPattern(width: 320, height: 240)
        let input = try I420Buffer(width: 320, height: 240)
        var seed: UInt64 = 42
        var sizes: [Int] = []
        for index in 0..<90 {
            if index == 30 { try encoder.setBitrate(200_000) }
            try pattern.render(frameIndex: index, into: input)
            Self.addNoise(input, seed: &seed)
            sizes += try Self.capture(encoder, input).map(\.data.count)
        }
        try #require(sizes.count == 90)
        let before = Double(sizes[10..<30].reduce(0, +)) / 20
        let after = Double(sizes[60..<90].reduce(0, +)) / 30
        // 1 Mbit/s at 30 fps is ~4170 bytes per frame, 200 kbit/s ~830.
        #expect(after * 2.5 < before, "mean frame \(before) bytes at 1 Mbit/s, \(after) at 200 kbit/s")
        #expect(encoder.bitrate == 200_000)
    }

    @Test("garbage and truncated frames give typed errors, never crashes")
    func garbage() throws {
        let decoder = try VP8Decoder()
        var error = #expect(throws: CodecError.self) { try decoder.decode([UInt8]()) }
        #expect(error?.code == .badArgument)
        // A keyframe tag (P = 0) without the 0x9d 0x01 0x2a start code (RFC 6386 §9.1).
        error = #expect(throws: CodecError.self) {
            try decoder.decode([0x50, 0x02, 0x00, 0x11, 0x22, 0x33, 0, 0, 0, 0])
        }
        #expect(error?.code == .unsupportedBitstream || error?.code == .corruptFrame)

        // An inter frame before any keyframe cannot be decoded.
        let encoder = try VP8Encoder(.init(width: 160, height: 120, bitrate: 200_000))
        let input = try I420Buffer(width: 160, height: 120)
        let pattern = try TestPattern(width: 160, height: 120)
        var frames: [Captured] = []
        for index in 0..<3 {
            try pattern.render(frameIndex: index, into: input)
            frames += try Self.capture(encoder, input)
        }
        #expect(throws: CodecError.self) { try decoder.decode(frames[1].data) }

        // Random bytes and corrupted real frames: each either decodes or throws CodecError.
        let keyframe = frames[0].data
        var seed: UInt64 = 7
        for round in 0..<300 {
            var data: [UInt8]
            if round % 2 == 0 {
                data = keyframe
                for _ in 0..<8 {
                    seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    data[Int(seed >> 33) % data.count] ^= UInt8(truncatingIfNeeded: seed >> 20)
                }
                if round % 4 == 0 { data = Array(data.prefix(Int(seed >> 40) % data.count + 1)) }
            } else {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                data = (0..<(Int(seed >> 56) + 1)).map {
                    UInt8(truncatingIfNeeded: (seed >> UInt64($0 % 50)) &+ UInt64($0))
                }
            }
            do {
                if let decoded = try decoder.decode(data) {
                    #expect(decoded.image.width > 0)
                }
            } catch {
                #expect(error.libraryStatus != 0)
            }
        }
        // The decoder still works after all that.
        let decoded = try #require(try decoder.decode(keyframe))
        #expect(pattern.readFrameIndex(from: decoded.image) == 0)
    }

    @Test("bad encoder settings and mismatched pictures give typed errors")
    func badArguments() throws {
        #expect(throws: CodecError.self) { try VP8Encoder(.init(width: 321, height: 240)) }
        #expect(throws: CodecError.self) { try VP8Encoder(.init(width: 320, height: 240, temporalLayers: 4)) }
        #expect(throws: CodecError.self) { try VP8Encoder(.init(width: 320, height: 240, bitrate: 10)) }
        let encoder = try VP8Encoder(.init(width: 320, height: 240))
        #expect(throws: CodecError.self) { try encoder.setBitrate(0) }
        let wrongSize = try I420Buffer(width: 160, height: 120)
        let error = #expect(throws: CodecError.self) {
            try wrongSize.withImage { (image) throws(CodecError) in try encoder.encode(image) { _ in } }
        }
        #expect(error?.code == .badArgument)

        // A view whose luma plane is shorter than its rows is rejected before any read.
        let short = [UInt8](repeating: 0, count: 100)
        short.withUnsafeBufferPointer { plane in
            _ = #expect(throws: CodecError.self) {
                try I420Image(width: 16, height: 16, y: plane, yStride: 16, u: plane, uStride: 8, v: plane, vStride: 8)
            }
        }
    }
}
