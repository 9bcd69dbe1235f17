import Foundation
import BraidCodecs
import BraidFunctions
import Testing

/// Opus packets of a sine tone, 20 ms each.
func tonePackets(frequency: Double, amplitude: Double, count: Int, inbandFEC: Bool = false) throws -> [[UInt8]] {
    // In-band FEC (LBRR) exists only in the SILK layer: a low bitrate and the voice hint keep it there.
    let encoder = try OpusEncoder(
        OpusEncoder.Configuration(
            bitrate: inbandFEC ? 16_000 : 48_000, inbandFEC: inbandFEC, expectedPacketLossPercent: inbandFEC ? 20 : 0,
            signal: inbandFEC ? .voice : .auto))
    var tone = SineTone(frequency: frequency, amplitude: amplitude)
    var output = [UInt8](repeating: 0, count: OpusEncoder.maximumPacketSize)
    return try (0..<count).map { _ in
        let length = try encoder.encode(pcm: tone.next(samplesPerChannel: 960), into: &output)
        return Array(output[0..<length])
    }
}

/// Opus packets of a voice-like signal (a 160 Hz glottal pitch with harmonics, syllable envelope), with
/// in-band FEC at 20 % expected loss.
func voicePackets(count: Int) throws -> [[UInt8]] {
    let encoder = try OpusEncoder(
        OpusEncoder.Configuration(bitrate: 24_000, inbandFEC: true, expectedPacketLossPercent: 20, signal: .voice))
    var output = [UInt8](repeating: 0, count: OpusEncoder.maximumPacketSize)
    var phase = 0.0
    return try (0..<count).map { frame in
        let pcm = (0..<960).map { n -> Int16 in
            let t = Double(frame * 960 + n) / 48_000
            phase += 2 * Double.pi * (160 + 20 * sin(2 * Double.pi * 1.3 * t)) / 48_000
            let value = (1...5).reduce(0.0) { $0 + sin(Double($1) * phase) / Double($1) }
            return Int16((value * (0.3 + 0.7 * abs(sin(2 * Double.pi * 3 * t))) * 7000).rounded())
        }
        let length = try encoder.encode(pcm: pcm, into: &output)
        return Array(output[0..<length])
    }
}

/// Runs `mix` for `ticks` 20 ms turns (plus the jitter buffer's delay, so every frame fed gets its turn),
/// feeding packet `tick` of each input (nil: lost) before the turn, and decodes every output: listener
/// (nil for the shared mix) → PCM.
func run(
    _ mix: AudioMix, inputs: [String: [[UInt8]?]], ticks: Int
) throws -> [String?: [Int16]] {
    var decoders: [String?: OpusDecoder] = [:]
    var decoded: [String?: [Int16]] = [:]
    var pcm = [Int16](repeating: 0, count: 5760)
    for tick in 0..<(ticks + mix.configuration.jitterBuffer.delayFrames) {
        let now = Int64(tick) * 20_000_000
        for (id, packets) in inputs where tick < packets.count {
            guard let packet = packets[tick] else { continue }
            packet.withUnsafeBytes {
                _ = mix.receive(id, timestamp: UInt32(tick * 960), payload: $0, arrivalNanoseconds: now)
            }
        }
        var frames: [(String?, [UInt8])] = []
        mix.tick(nowNanoseconds: now) { frames.append(($0.listener, Array($0.payload))) }
        for (listener, packet) in frames {
            if decoders[listener] == nil { decoders[listener] = try OpusDecoder() }
            let samples = try decoders[listener]!.decode(packet: packet, into: &pcm)
            decoded[listener, default: []].append(contentsOf: pcm[0..<samples])
        }
    }
    return decoded
}

@Suite struct AudioMixTests {
    static let tones = [("a", 440.0, 0.02), ("b", 660.0, 0.2), ("c", 880.0, 0.6)]

    @Test("Tones at 440/660/880 Hz and very different levels come out of the mix each at the target level")
    func mixContainsEveryToneNormalised() throws {
        let mix = try AudioMix()
        var inputs: [String: [[UInt8]?]] = [:]
        for (name, frequency, amplitude) in Self.tones {
            try mix.addInput(name, participant: name)
            inputs[name] = try tonePackets(frequency: frequency, amplitude: amplitude, count: 150)
        }
        let output = try #require(try run(mix, inputs: inputs, ticks: 150)[nil])
        #expect(output.count >= 140 * 960)
        // The last second: the level estimates have settled.
        let tail = output[(output.count - 48_000)...]
        // A sine at RMS 0.1 (the target) has amplitude 0.1 × √2.
        let target = 0.1 * 2.0.squareRoot()
        for (name, frequency, _) in Self.tones {
            let amplitude = toneAmplitude(tail, frequency: frequency)
            #expect(abs(20 * log10(amplitude / target)) < 2, "\(name) \(frequency) Hz: \(amplitude), target \(target)")
            #expect(mix.statistics(of: name)?.framesDecoded == 150)
        }
        // Quiet talkers are raised, loud ones lowered.
        #expect(try #require(mix.statistics(of: "a")?.gain) > 5)
        #expect(try #require(mix.statistics(of: "c")?.gain) < 0.5)
        // Off-tone frequencies hold almost nothing.
        #expect(toneAmplitude(tail, frequency: 550) < target / 20)
    }

    @Test("Mix-minus: each participant's own output leaves out their tone and keeps the others")
    func mixMinusOmitsTheListener() throws {
        let mix = try AudioMix(configuration: .init(mixMinus: true))
        var inputs: [String: [[UInt8]?]] = [:]
        for (name, frequency, amplitude) in Self.tones {
            try mix.addInput(name, participant: name)
            inputs[name] = try tonePackets(frequency: frequency, amplitude: amplitude, count: 100)
        }
        #expect(mix.listeners.sorted() == ["a", "b", "c"])
        let outputs = try run(mix, inputs: inputs, ticks: 100)
        let target = 0.1 * 2.0.squareRoot()
        for (listener, _, _) in Self.tones {
            let pcm = try #require(outputs[listener])
            let tail = pcm[(pcm.count - 24_000)...]
            for (name, frequency, _) in Self.tones {
                let amplitude = toneAmplitude(tail, frequency: frequency)
                if name == listener {
                    #expect(amplitude < target / 30, "\(listener)'s mix holds its own \(frequency) Hz at \(amplitude)")
                } else {
                    #expect(abs(20 * log10(amplitude / target)) < 2, "\(listener)'s mix: \(frequency) Hz at \(amplitude)")
                }
            }
        }
        mix.removeInput("b")
        #expect(mix.listeners.sorted() == ["a", "c"])
    }

    @Test("A lost input frame is concealed, not silent; with in-band FEC it is rebuilt")
    func lostFramesAreConcealed() throws {
        for inbandFEC in [false, true] {
            let mix = try AudioMix()
            try mix.addInput("a", participant: "a")
            var packets: [[UInt8]?] = inbandFEC ? try voicePackets(count: 100) : try tonePackets(frequency: 440, amplitude: 0.1, count: 100)
            let lost = Array(stride(from: 20, to: 100, by: 7))
            // SILK codes LBRR for a frame when it was active speech: count the ones the next packet carries.
            let rebuildable = try lost.filter { try OpusPacketInfo(packet: packets[$0 + 1]!).hasLBRR }.count
            for index in lost { packets[index] = nil }
            let output = try #require(try run(mix, inputs: ["a": packets], ticks: 100)[nil])
            let statistics = try #require(mix.statistics(of: "a"))
            #expect(statistics.framesConcealed + statistics.framesRecovered == lost.count, "\(statistics)")
            #expect(statistics.framesRecovered == rebuildable)
            if inbandFEC { #expect(rebuildable >= lost.count / 2) }
            // Every output frame after the start carries sound: nothing dropped to silence.
            let frames = output.count / 960
            #expect(frames == 100)
            for index in 5..<frames {
                let slice = output[(index * 960)..<((index + 1) * 960)]
                let rms = (slice.reduce(0.0) { $0 + pow(Double($1) / 32768, 2) } / 960).squareRoot()
                #expect(rms > 0.01, "frame \(index): RMS \(rms)")
            }
        }
    }

    @Test("Nothing is emitted while every input is idle; an input that stops goes idle")
    func idleInputsEmitNothing() throws {
        let mix = try AudioMix()
        try mix.addInput("a", participant: "a")
        var emitted = 0
        mix.tick(nowNanoseconds: 0) { _ in emitted += 1 }
        #expect(emitted == 0)
        let outputs = try run(mix, inputs: ["a": try tonePackets(frequency: 440, amplitude: 0.1, count: 10)], ticks: 40)
        // 10 frames played, then concealment until the input goes idle (15 empty turns), then nothing.
        let frames = (outputs[nil]?.count ?? 0) / 960
        #expect(frames == 10 + 14, "\(frames) frames")
    }
}
