import BraidWire
import NIOCore
import Testing

/// RFC 6716 §3.1 TOC byte (Table 2) and §3.2/§3.4 frame counts and packet validity.
@Suite struct OpusTOCTests {
    /// RFC 6716 Table 2, row by row: configs, mode, bandwidth, frame sizes in ms×10.
    static let table: [(ClosedRange<UInt8>, OpusTOC.Mode, OpusTOC.Bandwidth, [Int])] = [
        (0...3, .silk, .narrowband, [100, 200, 400, 600]),
        (4...7, .silk, .mediumband, [100, 200, 400, 600]),
        (8...11, .silk, .wideband, [100, 200, 400, 600]),
        (12...13, .hybrid, .superwideband, [100, 200]),
        (14...15, .hybrid, .fullband, [100, 200]),
        (16...19, .celt, .narrowband, [25, 50, 100, 200]),
        (20...23, .celt, .wideband, [25, 50, 100, 200]),
        (24...27, .celt, .superwideband, [25, 50, 100, 200]),
        (28...31, .celt, .fullband, [25, 50, 100, 200]),
    ]

    @Test func allThirtyTwoConfigurations() throws {
        var seen = 0
        for (configs, mode, bandwidth, tenthsOfMs) in Self.table {
            for (offset, config) in configs.enumerated() {
                for stereo in [false, true] {
                    for code: UInt8 in 0...3 {
                        let toc = try OpusTOC(configuration: config, isStereo: stereo, frameCountCode: code)
                        #expect(toc.rawValue == config << 3 | (stereo ? 4 : 0) | code)
                        #expect(toc.configuration == config)
                        #expect(toc.mode == mode)
                        #expect(toc.bandwidth == bandwidth)
                        #expect(toc.isStereo == stereo)
                        #expect(toc.frameCountCode == code)
                        // 48 samples per ms.
                        #expect(toc.samplesPerFrame * 10 == tenthsOfMs[offset] * 48)
                    }
                }
                seen += 1
            }
        }
        #expect(seen == 32)
        expectWireError(.badValue) { () throws(WireError) in
            try OpusTOC(configuration: 32, isStereo: false, frameCountCode: 0)
        }
        expectWireError(.badValue) { () throws(WireError) in
            try OpusTOC(configuration: 0, isStereo: false, frameCountCode: 4)
        }
    }

    @Test func typicalWebRTCPacket() throws {
        // 0x78: config 15 (hybrid, fullband, 20 ms), mono, one frame, as browsers send at speech rates.
        let info = try OpusPacketInfo(rtpBuffer([0x78] + Array(repeating: 0x11, count: 80)))
        #expect(info.toc.mode == .hybrid)
        #expect(info.toc.bandwidth == .fullband)
        #expect(info.frameCount == 1)
        #expect(info.durationSamples == 960)
    }

    @Test func code0And1() throws {
        #expect(try OpusPacketInfo(rtpBuffer([0x08])).frameCount == 1)  // DTX-style empty frame
        expectWireError(.badLength) { () throws(WireError) in
            try OpusPacketInfo(rtpBuffer([0x08] + Array(repeating: 0, count: 1276)))  // R2
        }
        let two = try OpusPacketInfo(rtpBuffer([0x09, 1, 2, 3, 4]))
        #expect(two.frameCount == 2)
        #expect(two.durationSamples == 2 * 960)  // config 1: SILK NB 20 ms
        expectWireError(.badLength) { () throws(WireError) in try OpusPacketInfo(rtpBuffer([0x09, 1, 2, 3])) }  // R3
        #expect(try OpusPacketInfo(rtpBuffer([0x09])).frameCount == 2)  // two empty frames
    }

    @Test func code2FrameLengths() throws {
        #expect(try OpusPacketInfo(rtpBuffer([0x0A, 2, 0xA, 0xB, 0xC])).frameCount == 2)
        // Two-byte length: 252 + 4*1 = 256 bytes for the first frame.
        let long = [0x0A, 252, 1] + Array(repeating: UInt8(0), count: 256) + [7]
        #expect(try OpusPacketInfo(rtpBuffer(long)).frameCount == 2)
        expectWireError(.truncated) { () throws(WireError) in try OpusPacketInfo(rtpBuffer([0x0A])) }
        expectWireError(.truncated) { () throws(WireError) in try OpusPacketInfo(rtpBuffer([0x0A, 253])) }
        expectWireError(.badLength) { () throws(WireError) in try OpusPacketInfo(rtpBuffer([0x0A, 5, 1, 2])) }  // R4
    }

    @Test func code3FrameCounts() throws {
        // CELT 2.5 ms (config 16) × 48 frames = 120 ms: the maximum.
        let max = try OpusPacketInfo(rtpBuffer([16 << 3 | 3, 48]))
        #expect(max.frameCount == 48)
        #expect(max.durationSamples == 5760)
        // SILK 60 ms (config 3) × 2 = 120 ms is fine; × 3 = 180 ms is not (R5).
        #expect(try OpusPacketInfo(rtpBuffer([3 << 3 | 3, 2])).durationSamples == 5760)
        expectWireError(.badValue) { () throws(WireError) in try OpusPacketInfo(rtpBuffer([3 << 3 | 3, 3])) }
        expectWireError(.badValue) { () throws(WireError) in try OpusPacketInfo(rtpBuffer([16 << 3 | 3, 49])) }
        // M = 0 (R5) and a missing count byte.
        expectWireError(.badValue) { () throws(WireError) in try OpusPacketInfo(rtpBuffer([0x0B, 0])) }
        expectWireError(.truncated) { () throws(WireError) in try OpusPacketInfo(rtpBuffer([0x0B])) }
    }

    @Test func code3CBRAndPadding() throws {
        // CBR, 3 frames of 2 bytes.
        #expect(try OpusPacketInfo(rtpBuffer([0x0B, 3, 1, 1, 2, 2, 3, 3])).frameCount == 3)
        // R6: 5 bytes do not split into 3 frames.
        expectWireError(.badLength) { () throws(WireError) in try OpusPacketInfo(rtpBuffer([0x0B, 3, 1, 1, 2, 2, 3])) }
        // Padding flag with 2 bytes of padding, then 2 frames of 1 byte.
        let padded = try OpusPacketInfo(rtpBuffer([0x0B, 0x42, 2, 0xA, 0xB, 0, 0]))
        #expect(padded.paddingLength == 2)
        #expect(padded.frameCount == 2)
        // Padding length 255 means 254 and one more byte follows: 254 + 1 = 255 bytes.
        let bigPadding = try OpusPacketInfo(rtpBuffer([0x0B, 0x41, 255, 1] + Array(repeating: 0, count: 255)))
        #expect(bigPadding.paddingLength == 255)
        expectWireError(.truncated) { () throws(WireError) in try OpusPacketInfo(rtpBuffer([0x0B, 0x41, 255])) }
        expectWireError(.badLength) { () throws(WireError) in try OpusPacketInfo(rtpBuffer([0x0B, 0x41, 10, 0, 0])) }
    }

    @Test func code3VBR() throws {
        // VBR, 3 frames: lengths 1 and 2 given, the last takes the remaining 3 bytes.
        #expect(try OpusPacketInfo(rtpBuffer([0x0B, 0x83, 1, 2, 0xA, 0xB, 0xB, 0xC, 0xC, 0xC])).frameCount == 3)
        expectWireError(.badLength) { () throws(WireError) in
            try OpusPacketInfo(rtpBuffer([0x0B, 0x83, 5, 5, 0xA]))  // R7: lengths overrun
        }
        expectWireError(.truncated) { () throws(WireError) in
            try OpusPacketInfo(rtpBuffer([0x0B, 0x83, 1]))  // second length missing
        }
    }

    @Test func emptyPacket() {
        expectWireError(.truncated) { () throws(WireError) in try OpusPacketInfo(ByteBuffer()) }
    }

    @Test func randomPacketsNeverTrap() {
        var random = SplitMix64(state: 0x5EED_0004)
        var valid = 0
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...40, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
            if let info = try? OpusPacketInfo(rtpBuffer(bytes)) {
                #expect((1...48).contains(info.frameCount))
                #expect(info.durationSamples <= 5760)
                valid += 1
            }
        }
        #expect(valid > 1000)
    }
}
