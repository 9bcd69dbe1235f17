// The audio-mix edge function's work per 20 ms turn (the video functions: VideoFunctionBench.swift), without threads or sockets: every input's Opus frame
// stored in its jitter buffer, decoded, mixed, and the outputs encoded. Wall time per turn over 20 ms is
// the share of a core one mix takes; the target is ten-input mixes ≥ 15 per core (≤ 1.33 ms per
// turn).
import Benchmark
import BraidCodecs
import BraidFunctions

/// A mix of `inputs` tone inputs, with one second of pre-encoded 48 kbit/s Opus per input that the
/// iterations loop over.
private final class MixBench {
    let mix: AudioMix
    let packets: [[[UInt8]]]
    let ids: [String]
    var turn = 0

    init(inputs: Int, mixMinus: Bool) throws {
        self.mix = try AudioMix(configuration: .init(mixMinus: mixMinus))
        var packets: [[[UInt8]]] = []
        var output = [UInt8](repeating: 0, count: OpusEncoder.maximumPacketSize)
        for index in 0..<inputs {
            try self.mix.addInput("in-\(index)", participant: "p-\(index)")
            let encoder = try OpusEncoder(OpusEncoder.Configuration(bitrate: 48_000))
            var tone = SineTone(frequency: 220 + 110 * Double(index), amplitude: 0.2)
            packets.append(
                try (0..<50).map { _ in
                    let length = try encoder.encode(pcm: tone.next(samplesPerChannel: 960), into: &output)
                    return Array(output[0..<length])
                })
        }
        self.packets = packets
        self.ids = (0..<inputs).map { "in-\($0)" }
        // Past the start-up buffering, so every measured turn mixes real frames.
        for _ in 0..<10 { self.step() }
    }

    /// One turn: a frame from every input arrives, then the mix runs. Returns the bytes emitted.
    @discardableResult
    func step() -> Int {
        let now = Int64(self.turn) * 20_000_000
        for (index, frames) in self.packets.enumerated() {
            frames[self.turn % frames.count].withUnsafeBytes {
                _ = self.mix.receive(
                    self.ids[index], timestamp: UInt32(truncatingIfNeeded: self.turn * 960), payload: $0,
                    arrivalNanoseconds: now)
            }
        }
        var bytes = 0
        self.mix.tick(nowNanoseconds: now) { bytes += $0.payload.count }
        self.turn += 1
        return bytes
    }
}

// One process runs one benchmark at a time; each mix is built on first use, outside the measurement.
nonisolated(unsafe) private var mixes: [Bool: MixBench] = [:]
nonisolated(unsafe) private var transcodeBench: TranscodeBench?
nonisolated(unsafe) private var compositeBench: CompositeBench?

let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(10), maxIterations: 2_000)

    for (inputs, mixMinus) in [(10, false), (10, true)] {
        let name = mixMinus
            ? "Audio mix, \(inputs) Opus inputs with mix-minus (\(inputs + 1) outputs), one 20 ms turn"
            : "Audio mix, \(inputs) Opus inputs to one output, one 20 ms turn"
        Benchmark(name, configuration: configuration) { benchmark in
            if mixes[mixMinus] == nil { mixes[mixMinus] = try MixBench(inputs: inputs, mixMinus: mixMinus) }
            let bench = mixes[mixMinus]!
            benchmark.startMeasurement()
            blackHole(bench.step())
            benchmark.stopMeasurement()
        }
    }

    let video = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(10), maxIterations: 600)
    Benchmark("Transcode, 1280x720 VP8 to 640x360 at 500 kbit/s, one frame", configuration: video) { benchmark in
        if transcodeBench == nil { transcodeBench = try TranscodeBench() }
        let bench = transcodeBench!
        benchmark.startMeasurement()
        blackHole(bench.step())
        benchmark.stopMeasurement()
    }
    Benchmark("Composite, nine 640x360 VP8 inputs into a 640x360 grid, one output frame", configuration: video) {
        benchmark in
        if compositeBench == nil { compositeBench = try CompositeBench() }
        let bench = compositeBench!
        benchmark.startMeasurement()
        blackHole(bench.step())
        benchmark.stopMeasurement()
    }
}
