// Release-build cost of the examples and of the fuel budgets, through BraidWasm.WasmFunction.
// Run with ../measure.sh (it builds this file in a throwaway package in release mode).
import BraidWasm
import Foundation
import WAT
import WasmKit

let examples = URL(fileURLWithPath: CommandLine.arguments[1])

func module(_ name: String) throws -> [UInt8] {
    Array(try Data(contentsOf: examples.appendingPathComponent("\(name).wasm")))
}

func microseconds(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) * 1e-12
}

// Gain: 20 ms of 48 kHz stereo.
let gain = try WasmFunction(module: module("gain"), limits: .audio, parameter: 80, log: { print($0) })
var input = [Int16](repeating: 0, count: 1920)
for i in 0..<960 {
    let s = Int16(10_000 * sin(2 * Double.pi * 440 * Double(i) / 48_000))
    input[2 * i] = s
    input[2 * i + 1] = s
}
var samples = input
let audioFrames = 5_000
var start = ContinuousClock.now
for index in 0..<audioFrames {
    samples = input
    try samples.withUnsafeMutableBufferPointer {
        try gain.processAudio($0, channels: 2, sampleRate: 48_000, timestampMs: Int64(index) * 20)
    }
}
let audioPerFrame = microseconds(ContinuousClock.now - start) / Double(audioFrames)
print(String(format: "gain, 20 ms 48 kHz stereo: %.1f µs per frame (%.2f %% of real time), fuel %llu per frame",
             audioPerFrame, audioPerFrame / 20_000 * 100, gain.fuelUsedLastFrame))

// Overlay: 1280x720 I420.
let overlay = try WasmFunction(module: module("overlay"), limits: .video, parameter: 0, log: { print($0) })
let (width, height) = (1280, 720)
let chroma = (width + 1) / 2 * ((height + 1) / 2)
var y = [UInt8](repeating: 90, count: width * height), u = [UInt8](repeating: 128, count: chroma)
var v = [UInt8](repeating: 128, count: chroma)
let videoFrames = 500
start = ContinuousClock.now
for index in 0..<videoFrames {
    try y.withUnsafeMutableBufferPointer { y in
        try u.withUnsafeMutableBufferPointer { u in
            try v.withUnsafeMutableBufferPointer { v in
                try overlay.processVideo(
                    y: y, u: u, v: v, width: width, height: height, frameIndex: Int64(index), timestampMs: Int64(index) * 33)
            }
        }
    }
}
let videoPerFrame = microseconds(ContinuousClock.now - start) / Double(videoFrames)
print(String(format: "overlay, 1280x720 I420: %.1f µs per frame (%.2f %% of a 30 fps frame time), fuel %llu per frame",
             videoPerFrame, videoPerFrame / 33_333 * 100, overlay.fuelUsedLastFrame))

// What the budgets cost: an endless loop burns its whole budget, then is stopped.
let spin = try wat2wasm(
    """
    (module (import "env" "memory" (memory 1))
      (func (export "braid_abi_version") (result i32) (i32.const 1))
      (func (export "braid_frame_buffer") (param i32) (result i32) (i32.const 1024))
      (func (export "braid_process_audio") (param i32 i32 i32 i32) (result i32) (loop $l (br $l)) (i32.const 0))
      (func (export "braid_process_video") (param i32 i32 i32 i32) (result i32) (loop $l (br $l)) (i32.const 0)))
    """)
for (name, limits) in [("audio", WasmLimits.audio), ("video", WasmLimits.video)] {
    let function = try WasmFunction(module: spin, limits: limits, parameter: 0, log: { _ in })
    var frame = [Int16](repeating: 0, count: 1920)
    start = ContinuousClock.now
    do {
        try frame.withUnsafeMutableBufferPointer { try function.processAudio($0, channels: 2, sampleRate: 48_000, timestampMs: 0) }
    } catch {
        let elapsed = microseconds(ContinuousClock.now - start)
        print(String(format: "endless loop, %@ budget (%llu fuel): stopped after %.1f ms (%.0f M fuel/s): %@",
                     name, limits.fuelPerFrame, elapsed / 1000, Double(limits.fuelPerFrame) / elapsed, "\(error)"))
    }
}

// Fuel metering's own cost: gain's process function straight on WasmKit, metered and not.
for metered in [false, true] {
    let engine = Engine(configuration: EngineConfiguration(memoryBoundsChecking: .software, fuelMetering: metered))
    let store = Store(engine: engine)
    let memory = try Memory(store: store, type: MemoryType(min: 1, max: 256))
    let imports: Imports = [
        "env": ["memory": memory],
        "braid": [
            "log": Function(store: store, parameters: [.i32, .i32]) { _, _ in [] },
            "time_ms": Function(store: store, parameters: [], results: [.i64]) { _, _ in [.i64(0)] },
        ],
    ]
    let instance = try parseWasm(bytes: try module("gain")).instantiate(store: store, imports: imports)
    guard let initialise = instance.exports[function: "braid_init"],
        let buffer = instance.exports[function: "braid_frame_buffer"],
        let process = instance.exports[function: "braid_process_audio"]
    else { fatalError("gain.wasm lacks the ABI exports") }
    _ = try initialise([.i32(80)])
    guard case .i32(let pointer) = try buffer([.i32(3840)])[0] else { fatalError() }
    var stack = ExecutionStack(engine: engine)
    let frames = 5_000
    start = ContinuousClock.now
    for _ in 0..<frames {
        if metered { store.fuel = Fuel(remaining: 5_000_000) }
        _ = try process.invoke([.i32(pointer), .i32(960), .i32(2), .i32(48_000)], on: &stack)
    }
    print(String(format: "gain's braid_process_audio alone on WasmKit, fuel metering %@: %.1f µs per frame",
                 metered ? "on " : "off", microseconds(ContinuousClock.now - start) / Double(frames)))
}
