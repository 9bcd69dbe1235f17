import BraidCodecs
import Testing

@Suite("Opus")
struct OpusTests {
    /// Encodes `frames` 20 ms frames from `source` and returns the packets.
    private static func encode(_ encoder: OpusEncoder, _ pcm: [Int16]) throws -> [[UInt8]] {
        var packets: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: OpusEncoder.maximumPacketSize)
        let frame = encoder.samplesPerFrame
        var start = 0
        while start + frame <= pcm.count {
            let length = try encoder.encode(pcm: Array(pcm[start..<start + frame]), into: &buffer)
            packets.append(Array(buffer[0..<length]))
            start += frame
        }
        return packets
    }

    private static func tone(seconds: Double, frequency: Double = 440, amplitude: Double = 0.5) -> [Int16] {
        var tone = SineTone(frequency: frequency, amplitude: amplitude)
        return tone.next(samplesPerChannel: Int(48_000 * seconds))
    }

    @Test("a 440 Hz tone survives encoding and decoding", arguments: [12_000, 24_000, 64_000])
    func toneRoundTrip(bitrate: Int) throws {
        let encoder = try OpusEncoder(.init(application: .audio, bitrate: bitrate, inbandFEC: false))
        let decoder = try OpusDecoder()
        let packets = try Self.encode(encoder, Self.tone(seconds: 1))
        #expect(packets.count == 50)

        var output: [Int16] = []
        var pcm = [Int16](repeating: 0, count: 5760)
        for packet in packets {
            let samples = try decoder.decode(packet: packet, into: &pcm)
            #expect(samples == 960)
            output += pcm[0..<samples]
        }
        // Skip the encoder's start-up and look-ahead; measure the steady tone.
        let steady = output[9600...]
        let frequency = AudioAnalysis.zeroCrossingFrequency(steady, sampleRate: 48_000)
        let rms = AudioAnalysis.rms(steady)
        let expectedRMS = 0.5 * Double(Int16.max) / 2.0.squareRoot()
        #expect(abs(frequency - 440) < 4, "decoded frequency \(frequency) Hz at \(bitrate) bit/s")
        #expect(abs(rms - expectedRMS) / expectedRMS < 0.2, "decoded RMS \(rms), expected \(expectedRMS)")
    }

    @Test("packet loss concealment returns the requested number of samples and continues the signal")
    func concealment() throws {
        let encoder = try OpusEncoder(.init(application: .audio, bitrate: 32_000))
        let decoder = try OpusDecoder()
        var pcm = [Int16](repeating: 0, count: 5760)
        for packet in try Self.encode(encoder, Self.tone(seconds: 0.2)) {
            _ = try decoder.decode(packet: packet, into: &pcm)
        }
        #expect(try decoder.lastPacketDuration() == 960)

        for frameSamples in [480, 960, 1920] {
            pcm = [Int16](repeating: 0, count: 5760)
            let written = try decoder.decodeLost(frameSamples: frameSamples, into: &pcm)
            #expect(written == frameSamples)
        }
        // The first concealed frame after a tone is not silence.
        let fresh = try OpusDecoder()
        for packet in try Self.encode(encoder, Self.tone(seconds: 0.2)) {
            _ = try fresh.decode(packet: packet, into: &pcm)
        }
        _ = try fresh.decodeLost(frameSamples: 960, into: &pcm)
        #expect(AudioAnalysis.rms(pcm[0..<960]) > 1000)

        #expect(throws: CodecError.self) { try decoder.decodeLost(frameSamples: 100, into: &pcm) }
        var tiny = [Int16](repeating: 0, count: 100)
        let error = #expect(throws: CodecError.self) { try decoder.decodeLost(frameSamples: 960, into: &tiny) }
        #expect(error?.code == .bufferTooSmall)
    }

    @Test("in-band FEC recovers a lost frame better than concealment")
    func inbandFECRecovers() throws {
        let encoder = try OpusEncoder(
            .init(application: .voip, bitrate: 24_000, inbandFEC: true, expectedPacketLossPercent: 20, signal: .voice)
        )
        let speech = AudioAnalysis.speechLike(samples: 48_000)
        let packets = try Self.encode(encoder, speech)
        #expect(packets.count == 50)

        // SILK codes LBRR for the previous frame when that frame was active speech; most are.
        let infos = try packets.map { try OpusPacketInfo(packet: $0) }
        #expect(infos.allSatisfy { $0.mode != .celt })
        let withLBRR = infos.dropFirst(2).filter(\.hasLBRR).count
        #expect(withLBRR >= 30, "only \(withLBRR) of 48 packets carry LBRR")

        // Reference: every packet arrives.
        let reference = try OpusDecoder()
        var referenceFrames: [[Int16]] = []
        var pcm = [Int16](repeating: 0, count: 5760)
        for packet in packets {
            let n = try reference.decode(packet: packet, into: &pcm)
            referenceFrames.append(Array(pcm[0..<n]))
        }

        // Lose each frame in turn; recover it from the next packet, or conceal it.
        var fecError = 0.0
        var plcError = 0.0
        var compared = 0
        for lost in 2..<(packets.count - 1) {
            let viaFEC = try OpusDecoder()
            let viaPLC = try OpusDecoder()
            for packet in packets[0..<lost] {
                _ = try viaFEC.decode(packet: packet, into: &pcm)
                _ = try viaPLC.decode(packet: packet, into: &pcm)
            }
            let result = try viaFEC.decodeFEC(from: packets[lost + 1], frameSamples: 960, into: &pcm)
            #expect(result.samplesPerChannel == 960)
            #expect(result.recoveredFromLBRR == infos[lost + 1].hasLBRR)
            let recovered = Array(pcm[0..<960])
            _ = try viaPLC.decodeLost(frameSamples: 960, into: &pcm)
            let concealed = Array(pcm[0..<960])
            // The flag read from the bitstream matches what libopus did: without LBRR it conceals,
            // giving exactly the PLC output; with LBRR it decodes different (real) audio.
            #expect((recovered != concealed) == result.recoveredFromLBRR, "frame \(lost)")
            if result.recoveredFromLBRR {
                fecError += AudioAnalysis.squaredError(recovered[...], referenceFrames[lost][...])
                plcError += AudioAnalysis.squaredError(concealed[...], referenceFrames[lost][...])
                compared += 1
            }
        }
        #expect(compared == withLBRR - (infos.last?.hasLBRR == true ? 1 : 0))
        // LBRR is a real low-bitrate copy of the lost frame: far closer than extrapolation.
        #expect(fecError * 2 < plcError, "FEC error \(fecError), PLC error \(plcError) over \(compared) frames")
    }

    @Test("without in-band FEC no packet carries LBRR and FEC decoding falls back to concealment")
    func noFECNoLBRR() throws {
        let encoder = try OpusEncoder(
            .init(application: .voip, bitrate: 24_000, inbandFEC: false, expectedPacketLossPercent: 20, signal: .voice)
        )
        let packets = try Self.encode(encoder, AudioAnalysis.speechLike(samples: 24_000))
        let infos = try packets.map { try OpusPacketInfo(packet: $0) }
        #expect(infos.allSatisfy { !$0.hasLBRR })
        let decoder = try OpusDecoder()
        var pcm = [Int16](repeating: 0, count: 960)
        _ = try decoder.decode(packet: packets[0], into: &pcm)
        let result = try decoder.decodeFEC(from: packets[2], frameSamples: 960, into: &pcm)
        #expect(result.samplesPerChannel == 960)
        #expect(!result.recoveredFromLBRR)
    }

    @Test("DTX shrinks packets during silence")
    func dtx() throws {
        var silenceSizes: [Bool: Double] = [:]
        for enabled in [false, true] {
            let encoder = try OpusEncoder(.init(application: .voip, bitrate: 32_000, dtx: enabled))
            let pcm = AudioAnalysis.speechLike(samples: 48_000) + [Int16](repeating: 0, count: 96_000)
            let packets = try Self.encode(encoder, pcm)
            let lastSecond = packets.suffix(50)
            silenceSizes[enabled] = Double(lastSecond.map(\.count).reduce(0, +)) / Double(lastSecond.count)
            if enabled {
                #expect(lastSecond.filter { $0.count <= 2 }.count >= 40)
            }
        }
        let off = try #require(silenceSizes[false])
        let on = try #require(silenceSizes[true])
        #expect(on * 2 < off, "mean silent packet: \(on) bytes with DTX, \(off) without")
    }

    @Test("malformed packets give typed errors")
    func invalidPackets() throws {
        let decoder = try OpusDecoder()
        var pcm = [Int16](repeating: 0, count: 5760)
        // Code 3 with a frame count of zero (RFC 6716 §3.2.5, R5).
        var error = #expect(throws: CodecError.self) { try decoder.decode(packet: [0x03, 0x00], into: &pcm) }
        #expect(error?.code == .invalidPacket)
        // Code 2 whose first frame length runs past the end (§3.2.4).
        error = #expect(throws: CodecError.self) { try decoder.decode(packet: [0x02, 0xF0, 0x01], into: &pcm) }
        #expect(error?.code == .invalidPacket)
        error = #expect(throws: CodecError.self) { try decoder.decode(packet: [], into: &pcm) }
        #expect(error?.code == .invalidPacket)
        error = #expect(throws: CodecError.self) { try OpusPacketInfo(packet: [0x03, 0x00]) }
        #expect(error?.code == .invalidPacket)

        // Random bytes never crash: they decode (Opus has little redundancy) or fail with CodecError.
        var seed: UInt64 = 0x1234_5678
        for _ in 0..<500 {
            let length = Int(seed % 200) + 1
            var packet = [UInt8](repeating: 0, count: length)
            for i in 0..<length {
                seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                packet[i] = UInt8(truncatingIfNeeded: seed >> 33)
            }
            do {
                _ = try decoder.decode(packet: packet, into: &pcm)
                _ = try OpusPacketInfo(packet: packet)
            } catch {
                #expect(error.code == .invalidPacket || error.code == .bufferTooSmall)
            }
        }
    }

    @Test("short buffers and bad settings give typed errors")
    func bufferAndArgumentErrors() throws {
        let encoder = try OpusEncoder()
        let decoder = try OpusDecoder()
        let packets = try Self.encode(encoder, Self.tone(seconds: 0.06))
        var small = [Int16](repeating: 0, count: 100)
        var error = #expect(throws: CodecError.self) { try decoder.decode(packet: packets[0], into: &small) }
        #expect(error?.code == .bufferTooSmall)

        var output = [UInt8](repeating: 0, count: 100)
        error = #expect(throws: CodecError.self) {
            try encoder.encode(pcm: [Int16](repeating: 0, count: 100), into: &output)
        }
        #expect(error?.code == .badArgument)
        var empty: [UInt8] = []
        error = #expect(throws: CodecError.self) {
            try encoder.encode(pcm: [Int16](repeating: 0, count: 960), into: &empty)
        }
        #expect(error?.code == .bufferTooSmall)

        error = #expect(throws: CodecError.self) { try encoder.setBitrate(100) }
        #expect(error?.code == .badArgument)
        error = #expect(throws: CodecError.self) { try encoder.setComplexity(11) }
        #expect(error?.code == .badArgument)
        error = #expect(throws: CodecError.self) { try encoder.setExpectedPacketLoss(percent: 101) }
        #expect(error?.code == .badArgument)
    }

    @Test("settings apply: bitrate, frame duration, stereo")
    func settings() throws {
        let encoder = try OpusEncoder(.init(channels: .stereo, bitrate: 48_000, frameDuration: .ms40))
        #expect(try encoder.bitrate() == 48_000)
        #expect(encoder.samplesPerFrame == 1920 * 2)
        try encoder.setBitrate(20_000)
        #expect(try encoder.bitrate() == 20_000)
        encoder.setFrameDuration(.ms10)
        #expect(encoder.samplesPerChannel == 480)

        var tone = SineTone(channels: 2)
        let pcm = tone.next(samplesPerChannel: 480)
        var out = [UInt8](repeating: 0, count: 1500)
        let length = try encoder.encode(pcm: pcm, into: &out)
        let info = try OpusPacketInfo(packet: Array(out[0..<length]))
        #expect(info.samplesPerFrameAt48kHz == 480)
        #expect(info.frameCount == 1)

        let decoder = try OpusDecoder(sampleRate: .hz16000, channels: .stereo)
        var decoded = [Int16](repeating: 0, count: 2 * 1920)
        #expect(try decoder.decode(packet: Array(out[0..<length]), into: &decoded) == 160)
    }
}
