/// Helpers for the BraidWasm tests: the example modules from Tools/WasmExamples, small modules in
/// WebAssembly text, and expecting a given failure.

import BraidWasm
import Foundation
import Testing
import WAT

/// The repository root, from this file's path (Tests/BraidWasmTests/WasmTestSupport.swift).
let repositoryRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// A built example module, e.g. "gain" → Tools/WasmExamples/gain.wasm.
func exampleModule(_ name: String) throws -> [UInt8] {
    let url = repositoryRoot.appendingPathComponent("Tools/WasmExamples/\(name).wasm")
    return Array(try Data(contentsOf: url))
}

/// A module speaking the ABI whose parts default to harmless ones; each is WAT for the body.
/// `imports` go before the memory import's neighbours (text format wants imports first).
func abiModule(
    imports: String = "",
    memory: String = #"(import "env" "memory" (memory 1))"#,
    version: Int32 = 1,
    initBody: String? = nil,
    frameBuffer: String = "(i32.const 1024)",
    processAudio: String? = "(i32.const 0)",
    processVideo: String? = nil,
    extra: String = ""
) throws -> [UInt8] {
    var text = "(module\n\(imports)\n\(memory)\n"
    text += "(func (export \"braid_abi_version\") (result i32) (i32.const \(version)))\n"
    if let initBody {
        text += "(func (export \"braid_init\") (param $parameter i32) (result i32) \(initBody))\n"
    }
    text += "(func (export \"braid_frame_buffer\") (param $bytes i32) (result i32) \(frameBuffer))\n"
    if let processAudio {
        text += """
            (func (export "braid_process_audio") (param $ptr i32) (param $samples i32) (param $channels i32) \
            (param $rate i32) (result i32) \(processAudio))\n
            """
    }
    if let processVideo {
        text += """
            (func (export "braid_process_video") (param $ptr i32) (param $width i32) (param $height i32) \
            (param $index i32) (result i32) \(processVideo))\n
            """
    }
    text += extra + ")"
    return try wat2wasm(text)
}

/// Collects a function's log lines.
final class LogLines {
    var lines: [String] = []
    var sink: (String) -> Void { { [unowned self] in self.lines.append($0) } }
}

/// Runs `body`, expecting it to throw `kind` (with `text` in the message); returns the error.
@discardableResult
func expectFailure(
    _ kind: WasmFunctionError.Kind, containing text: String? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> WasmFunctionError? {
    do {
        try body()
        Issue.record("expected \(kind), got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as WasmFunctionError {
        #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        if let text {
            #expect(error.message.contains(text), "\(error)", sourceLocation: sourceLocation)
        }
        return error
    } catch {
        Issue.record("expected a WasmFunctionError (\(kind)), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Loads a module, expecting success.
func load(
    _ bytes: [UInt8], limits: WasmLimits = .audio, parameter: Int32 = 0, log: @escaping (String) -> Void = { _ in }
) throws -> WasmFunction {
    try WasmFunction(module: bytes, limits: limits, parameter: parameter, log: log)
}

/// One 20 ms stereo frame at 48 kHz of a sine at `amplitude`.
func sineFrame(amplitude: Double, frequency: Double = 440, samplesPerChannel: Int = 960, channels: Int = 2) -> [Int16] {
    var samples = [Int16](repeating: 0, count: samplesPerChannel * channels)
    for i in 0..<samplesPerChannel {
        let value = Int16((amplitude * sin(2 * Double.pi * frequency * Double(i) / 48_000)).rounded())
        for c in 0..<channels { samples[i * channels + c] = value }
    }
    return samples
}

/// Runs audio through `function` in place.
func runAudio(_ function: WasmFunction, _ samples: inout [Int16], channels: Int = 2, timestampMs: Int64 = 0)
    throws(WasmFunctionError)
{
    var result: WasmFunctionError?
    samples.withUnsafeMutableBufferPointer { buffer in
        do throws(WasmFunctionError) {
            try function.processAudio(buffer, channels: channels, sampleRate: 48_000, timestampMs: timestampMs)
        } catch {
            result = error
        }
    }
    if let result { throw result }
}

/// An I420 frame in three planes.
struct I420Frame: Equatable {
    var width: Int, height: Int
    var y: [UInt8], u: [UInt8], v: [UInt8]

    /// A deterministic, textured frame (every byte differs from its neighbours).
    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        let chroma = ((width + 1) / 2) * ((height + 1) / 2)
        y = (0..<(width * height)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 / width &* 7) }
        u = (0..<chroma).map { UInt8(truncatingIfNeeded: 100 &+ $0 &* 3) }
        v = (0..<chroma).map { UInt8(truncatingIfNeeded: 150 &+ $0 &* 5) }
    }

    mutating func run(_ function: WasmFunction, frameIndex: Int64 = 0) throws(WasmFunctionError) {
        var result: WasmFunctionError?
        let (width, height) = (self.width, self.height)
        y.withUnsafeMutableBufferPointer { y in
            u.withUnsafeMutableBufferPointer { u in
                v.withUnsafeMutableBufferPointer { v in
                    do throws(WasmFunctionError) {
                        try function.processVideo(
                            y: y, u: u, v: v, width: width, height: height, frameIndex: frameIndex, timestampMs: frameIndex * 33)
                    } catch {
                        result = error
                    }
                }
            }
        }
        if let result { throw result }
    }
}
