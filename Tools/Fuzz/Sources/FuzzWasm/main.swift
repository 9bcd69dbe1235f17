// libFuzzer target for loading operators' WebAssembly modules (BraidWasm on WasmKit's parser and
// validator): whatever bytes an operator uploads (`module_base64` of a wasm-audio or wasm-video function),
// loading must refuse them with a WasmFunctionError or give a function that runs a frame within its fuel
// and memory cap, never crash the node. Seeds: the example modules (Corpus/Wasm).
import BraidWasm

private let limits = WasmLimits(fuelPerFrame: 200_000, memoryPages: 16, setupFuel: 200_000)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start, count >= 0 else { return 0 }
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let function = try? WasmFunction(module: bytes, limits: limits, parameter: 100, log: { _ in }) else { return 0 }
    if function.handlesAudio {
        var pcm = [Int16](repeating: 1000, count: 960)
        pcm.withUnsafeMutableBufferPointer { samples in
            _ = try? function.processAudio(samples, channels: 1, sampleRate: 48_000, timestampMs: 20)
        }
    }
    if function.handlesVideo {
        var y = [UInt8](repeating: 16, count: 64 * 48)
        var u = [UInt8](repeating: 128, count: 32 * 24)
        var v = [UInt8](repeating: 128, count: 32 * 24)
        y.withUnsafeMutableBufferPointer { y in
            u.withUnsafeMutableBufferPointer { u in
                v.withUnsafeMutableBufferPointer { v in
                    _ = try? function.processVideo(y: y, u: u, v: v, width: 64, height: 48, frameIndex: 0, timestampMs: 0)
                }
            }
        }
    }
    return 0
}
