import BraidCodecs
import BraidWasm
import Foundation
import NIOCore
import Testing

@testable import BraidFunctions

@Suite("WebAssembly functions in the pipelines (real WasmKit, libopus, no sockets)")
struct UserFunctionTests {
    @Test("the built-in modules are the committed examples of Tools/WasmExamples")
    func builtInsAreTheExamples() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Tools/WasmExamples")
        for name in ["gain", "overlay"] {
            let committed = Array(try Data(contentsOf: examples.appendingPathComponent("\(name).wasm")))
            #expect(try UserFunctions.module(.init(module: name)) == committed, "\(name)")
        }
        #expect(throws: FunctionError.self) { try UserFunctions.module(.init(module: "echo")) }
        #expect(throws: FunctionError.self) { try UserFunctions.module(.init(module: "gain", moduleBase64: "AA==")) }
    }

    /// The 440 Hz tone's amplitude in what a wasm-audio function with the gain module at `percent` makes.
    private func gainOutput(percent: Int32) throws -> Double {
        let request = FunctionRequest(kind: .wasmAudio, inputs: .tracks([]), parameters: .init(module: "gain", parameter: percent))
        let pipeline = try #require(try FunctionHost.makePipeline(request) as? AudioMixPipeline)
        var output = FunctionOutput()
        pipeline.handle(.added(input: "in", participant: "p"), payload: UnsafeRawBufferPointer(start: nil, count: 0), now: .now(), into: &output)
        let decoder = try OpusDecoder(sampleRate: .hz48000, channels: .mono)
        var pcm = [Int16](repeating: 0, count: decoder.maximumSamplesPerChannel)
        var samples: [Int16] = []
        for (index, packet) in try tonePackets(frequency: 440, amplitude: 0.2, count: 60).enumerated() {
            packet.withUnsafeBytes { bytes in
                _ = pipeline.mix.receive(
                    "in", timestamp: UInt32(index * 960), payload: bytes, arrivalNanoseconds: Int64(index) * 20_000_000)
            }
            var turn = FunctionOutput()
            pipeline.tick(Int64(index), now: .now(), into: &turn)
            #expect(turn.failure == nil)
            for frame in turn.audio {
                let count = try decoder.decode(packet: frame.payload, into: &pcm)
                samples += pcm[0..<count]
            }
        }
        try #require(samples.count > 48_000 / 2)
        return toneAmplitude(samples[(samples.count - 24_000)...], frequency: 440)
    }

    @Test("wasm-audio: the gain module at 50 % halves the level of what it passes")
    func gainHalvesTheLevel() throws {
        let full = try self.gainOutput(percent: 100)
        let half = try self.gainOutput(percent: 50)
        #expect(abs(full - 0.2) < 0.03, "unity gain passes the tone as it is: \(full)")
        #expect(abs(half / full - 0.5) < 0.05, "\(half) / \(full)")
    }

    @Test("wasm limits out of range and a module without the kind's media are refused")
    func refusals() throws {
        for (parameters, reason) in [
            (FunctionRequest.Parameters(module: "gain", fuel: 10), "fuel"),
            (FunctionRequest.Parameters(module: "gain", memoryPages: 5000), "memory_pages"),
            (FunctionRequest.Parameters(), "module"),
            (FunctionRequest.Parameters(module: "gain", parameter: -5), "does not load"),
        ] {
            do {
                _ = try FunctionHost.makePipeline(FunctionRequest(kind: .wasmAudio, inputs: .tracks([]), parameters: parameters))
                Issue.record("accepted \(parameters)")
            } catch {
                #expect(error.reason.contains(reason), "\(error.reason)")
            }
        }
        do {
            _ = try FunctionHost.makePipeline(FunctionRequest(kind: .wasmVideo, inputs: .tracks([]), parameters: .init(module: "gain")))
            Issue.record("a module without braid_process_video accepted for wasm-video")
        } catch {
            #expect(error.reason.contains("braid_process_video"), "\(error.reason)")
        }
        do {
            _ = try FunctionHost.makePipeline(FunctionRequest(kind: .transcode, inputs: .tracks([]), parameters: .init(fuel: 100_000)))
            Issue.record("fuel accepted for transcode")
        } catch {
            #expect(error.reason.contains("fuel"), "\(error.reason)")
        }
    }
}
