/// Misbehaving modules (inline WAT) are refused at load or stopped and reported, never crash the
/// process, and do not disturb other instances.

import BraidWasm
import Foundation
import Testing
import WAT

@Suite struct WasmLoadTests {
    @Test func refusesGarbage() {
        expectFailure(.invalidModule, containing: "not a valid WebAssembly module") {
            _ = try WasmFunction(module: [0, 0x61, 0x73, 0x6D, 9, 9], limits: .audio, parameter: 0, log: { _ in })
        }
    }

    @Test func refusesAnUnknownImport() throws {
        let bytes = try abiModule(
            imports: #"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#)
        expectFailure(.invalidModule, containing: "wasi_snapshot_preview1.fd_write") { _ = try load(bytes) }
    }

    @Test func refusesAKnownImportOfTheWrongType() throws {
        let bytes = try abiModule(imports: #"(import "braid" "log" (func (param i64)))"#)
        expectFailure(.invalidModule, containing: "instantiation") { _ = try load(bytes) }
    }

    @Test func refusesItsOwnMemory() throws {
        let bytes = try abiModule(memory: #"(memory (export "memory") 1)"#)
        expectFailure(.invalidModule, containing: "defines its own memory") { _ = try load(bytes) }
        let none = try abiModule(memory: "")
        expectFailure(.invalidModule, containing: "does not import env.memory") { _ = try load(none) }
    }

    @Test func refusesAMemoryMinimumOverTheCap() throws {
        let bytes = try abiModule(memory: #"(import "env" "memory" (memory 300))"#)
        expectFailure(.memoryLimit, containing: "at least 300 pages") { _ = try load(bytes) }
        var small = WasmLimits.audio
        small.memoryPages = 2
        let three = try abiModule(memory: #"(import "env" "memory" (memory 3))"#)
        expectFailure(.memoryLimit, containing: "the cap is 2 pages") { _ = try load(three, limits: small) }
    }

    @Test func refusesAWrongABIVersion() throws {
        let bytes = try abiModule(version: 2)
        expectFailure(.badABI, containing: "returned 2; this host speaks version 1") { _ = try load(bytes) }
    }

    @Test func refusesMissingOrMistypedExports() throws {
        let neither = try abiModule(processAudio: nil)
        expectFailure(.badABI, containing: "neither") { _ = try load(neither) }
        let mistyped = try wat2wasm(
            """
            (module (import "env" "memory" (memory 1))
              (func (export "braid_abi_version") (result i32) (i32.const 1))
              (func (export "braid_frame_buffer") (param i64) (result i32) (i32.const 0))
              (func (export "braid_process_audio") (param i32 i32 i32 i32) (result i32) (i32.const 0)))
            """)
        expectFailure(.badABI, containing: "braid_frame_buffer has type") { _ = try load(mistyped) }
    }

    @Test func reportsARefusingInit() throws {
        let bytes = try abiModule(initBody: "(local.get $parameter)")
        expectFailure(.moduleError, containing: "braid_init(7) returned 7") { _ = try load(bytes, parameter: 7) }
        _ = try load(bytes, parameter: 0)
    }

    @Test func metersSetupCode() throws {
        // A small budget: debug builds of WasmKit run only ~5-20 M fuel a second.
        var limits = WasmLimits.audio
        limits.setupFuel = 2_000_000
        let start = ContinuousClock.now
        let looping = try abiModule(extra: "(func $spin (loop $l (br $l))) (start $spin)")
        expectFailure(.outOfFuel, containing: "instantiation") { _ = try load(looping, limits: limits) }
        let initLoop = try abiModule(initBody: "(loop $l (br $l)) (i32.const 0)")
        expectFailure(.outOfFuel, containing: "braid_init") { _ = try load(initLoop, limits: limits) }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func refusesTrappingData() throws {
        // An active data segment past the memory's end fails instantiation: no crash, a report.
        let bytes = try abiModule(extra: #"(data (i32.const 65530) "0123456789")"#)
        let error = expectFailure(.trap, containing: "instantiation") { _ = try load(bytes) }
        #expect(error?.message.contains("out of bounds") == true)
    }

    @Test func refusesAnOversizedModule() throws {
        var limits = WasmLimits.audio
        limits.moduleBytes = 100
        expectFailure(.invalidModule, containing: "the limit is 100") { _ = try load(exampleModule("gain"), limits: limits) }
    }

    @Test func refusesBadLimits() throws {
        var limits = WasmLimits.audio
        limits.memoryPages = 0
        let bytes = try abiModule()
        expectFailure(.badArgument) { _ = try load(bytes, limits: limits) }
    }
}

@Suite struct WasmFrameFailureTests {
    @Test func infiniteLoopRunsOutOfFuelQuickly() throws {
        // 2 M fuel rather than the default 5 M: debug builds of WasmKit run only ~5-20 M fuel a second
        // (release: see Tools/WasmExamples/README.md).
        var limits = WasmLimits.audio
        limits.fuelPerFrame = 2_000_000
        let function = try load(try abiModule(processAudio: "(loop $l (br $l)) (i32.const 0)"), limits: limits)
        var samples = sineFrame(amplitude: 1000)
        let start = ContinuousClock.now
        expectFailure(.outOfFuel, containing: "braid_process_audio ran out of fuel") { try runAudio(function, &samples) }
        let elapsed = ContinuousClock.now - start
        print("BraidWasm: an endless loop used its \(limits.fuelPerFrame) fuel in \(elapsed)")
        #expect(elapsed < .seconds(2))
        #expect(function.stoppedReason?.kind == .outOfFuel)
        #expect(function.fuelUsedLastFrame == limits.fuelPerFrame)
    }

    @Test func videoBudgetStopsAnEndlessLoopToo() throws {
        var limits = WasmLimits.video
        limits.fuelPerFrame = 2_000_000
        let function = try load(
            try abiModule(processAudio: nil, processVideo: "(loop $l (br $l)) (i32.const 0)"), limits: limits)
        var frame = I420Frame(width: 64, height: 48)
        let start = ContinuousClock.now
        expectFailure(.outOfFuel) { try frame.run(function) }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    /// Grows until memory.grow fails (−1 at the cap), then admits it cannot hold the frame.
    @Test func growthStopsAtTheCap() throws {
        var limits = WasmLimits.audio
        limits.memoryPages = 8
        let grow = "(block $full (loop $l (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1))) (br $l)))"
        let function = try load(try abiModule(frameBuffer: grow + " (i32.const 0)"), limits: limits)
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.memoryLimit, containing: "returned 0") { try runAudio(function, &samples) }
        #expect(function.statistics.memoryBytes == 8 * WasmLimits.pageBytes)
    }

    /// Grows to the cap, then writes just past it: an out-of-bounds trap at the cap is a memory limit.
    @Test func writingPastTheCapIsAMemoryLimit() throws {
        var limits = WasmLimits.audio
        limits.memoryPages = 4
        let grow = "(block $full (loop $l (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1))) (br $l)))"
        let write = "(i32.store (i32.mul (memory.size) (i32.const 65536)) (i32.const 1))"
        let function = try load(try abiModule(frameBuffer: "\(grow) \(write) (i32.const 1024)"), limits: limits)
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.memoryLimit, containing: "out of bounds memory access, with memory at its cap of 4 pages") {
            try runAudio(function, &samples)
        }
    }

    /// A module declaring a smaller maximum than the cap gets that maximum.
    @Test func aSmallerDeclaredMaximumIsKept() throws {
        let grow = "(drop (memory.grow (i32.const 10))) (if (result i32) (i32.eq (memory.size) (i32.const 2)) (then (i32.const 1024)) (else (i32.const 0)))"
        let function = try load(
            try abiModule(memory: #"(import "env" "memory" (memory 1 2))"#, frameBuffer: grow))
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.memoryLimit) { try runAudio(function, &samples) }
    }

    @Test func outOfBoundsBelowTheCapIsATrap() throws {
        let function = try load(try abiModule(processAudio: "(i32.store (i32.const 1048576) (i32.const 1)) (i32.const 0)"))
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.trap, containing: "out of bounds memory access") { try runAudio(function, &samples) }
    }

    @Test func unreachableTraps() throws {
        let function = try load(try abiModule(processAudio: "(unreachable)"))
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.trap, containing: "braid_process_audio trapped: unreachable") { try runAudio(function, &samples) }
    }

    @Test func divisionByZeroTraps() throws {
        let function = try load(try abiModule(processAudio: "(i32.div_s (local.get $samples) (i32.const 0))"))
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.trap, containing: "integer divide by zero") { try runAudio(function, &samples) }
    }

    @Test func stackExhaustionTraps() throws {
        let function = try load(
            try abiModule(processAudio: "(call $down (i32.const 0))", extra: "(func $down (param i32) (result i32) (call $down (local.get 0)))"))
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.trap, containing: "call stack exhausted") { try runAudio(function, &samples) }
    }

    @Test func bogusBufferPointersAreABIErrors() throws {
        // 1920 samples are 3840 bytes; memory is one page (65536 bytes).
        for pointer: Int64 in [65_000, 65_536, -8, -1, 0x7FFF_FFFF, 1 << 31] {
            let function = try load(try abiModule(frameBuffer: "(i32.const \(pointer))"))
            var samples = sineFrame(amplitude: 1000)
            let before = samples
            expectFailure(.badABI, containing: "braid_frame_buffer(3840) returned") { try runAudio(function, &samples) }
            #expect(samples == before)
        }
        // The last byte that fits is fine.
        let edge = try load(try abiModule(frameBuffer: "(i32.const \(65_536 - 3840))"))
        var samples = sineFrame(amplitude: 1000)
        try runAudio(edge, &samples)
    }

    /// A memory of zero pages has no storage at all: nothing may touch it.
    @Test func anEmptyMemoryIsNeverTouched() throws {
        let imports = #"(import "braid" "log" (func $log (param i32 i32)))"#
        let function = try load(
            try abiModule(
                imports: imports, memory: #"(import "env" "memory" (memory 0 0))"#,
                initBody: "(call $log (i32.const 0) (i32.const 0)) (i32.const 0)", frameBuffer: "(i32.const 1)"))
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.badABI, containing: "past the memory's 0 bytes") { try runAudio(function, &samples) }
        let none = try load(try abiModule(memory: #"(import "env" "memory" (memory 0 0))"#, frameBuffer: "(i32.const 0)"))
        expectFailure(.memoryLimit, containing: "returned 0") { try runAudio(none, &samples) }
    }

    @Test func anUncaughtExceptionIsATrap() throws {
        let function = try load(try abiModule(processAudio: "(throw $oops)", extra: "(tag $oops)"))
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.trap, containing: "uncaught Wasm exception") { try runAudio(function, &samples) }
    }

    @Test func videoFramesOfTheWrongShapeAreBadArguments() throws {
        let overlay = try load(exampleModule("overlay"), limits: .video)
        var frame = I420Frame(width: 64, height: 48)
        frame.u.removeLast()
        expectFailure(.badArgument, containing: "do not fit 64x48") { try frame.run(overlay) }
        var zero = I420Frame(width: 64, height: 48)
        zero.width = 0
        expectFailure(.badArgument, containing: "out of range") { try zero.run(overlay) }
        var fine = I420Frame(width: 64, height: 48)
        try fine.run(overlay)
        #expect(overlay.stoppedReason == nil)
    }

    @Test func aNonzeroStatusIsAModuleError() throws {
        let function = try load(try abiModule(processAudio: "(i32.const -3)"))
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.moduleError, containing: "braid_process_audio returned -3") { try runAudio(function, &samples) }
    }

    @Test func aBadLogPointerIsAnABIError() throws {
        let imports = #"(import "braid" "log" (func $log (param i32 i32)))"#
        let function = try load(
            try abiModule(imports: imports, processAudio: "(call $log (i32.const 65530) (i32.const 100)) (i32.const 0)"))
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.badABI, containing: "braid.log(65530, 100) reads past") { try runAudio(function, &samples) }
        let negative = try load(
            try abiModule(imports: imports, processAudio: "(call $log (i32.const 0) (i32.const -1)) (i32.const 0)"))
        expectFailure(.badABI, containing: "negative length") { try runAudio(negative, &samples) }
    }

    @Test func afterAFailureEveryCallThrowsStopped() throws {
        let function = try load(try abiModule(processAudio: "(unreachable)"))
        var samples = sineFrame(amplitude: 1000)
        expectFailure(.trap) { try runAudio(function, &samples) }
        for _ in 0..<3 {
            expectFailure(.stopped, containing: "trap: braid_process_audio trapped: unreachable") {
                try runAudio(function, &samples)
            }
        }
        #expect(function.stoppedReason?.kind == .trap)
        #expect(function.statistics.frames == 1)
    }

    @Test func aSecondInstanceKeepsWorking() throws {
        let bytes = try exampleModule("gain")
        let healthy = try load(bytes, parameter: 200)
        let broken = try load(try abiModule(processAudio: "(loop $l (br $l)) (i32.const 0)"))
        let failingTwin = try load(bytes, parameter: 200)
        let input = sineFrame(amplitude: 1000)
        for index in 0..<5 {
            var samples = input
            try runAudio(healthy, &samples, timestampMs: Int64(index * 20))
            #expect(samples == input.map { $0 * 2 })
            var other = input
            expectFailure(index == 0 ? .outOfFuel : .stopped) { try runAudio(broken, &other) }
        }
        // The same module in another instance: its failure (a frame it cannot carry) is its own.
        var odd = [Int16](repeating: 1, count: 3)
        expectFailure(.badArgument) { try runAudio(failingTwin, &odd, channels: 2) }
        var samples = input
        try runAudio(failingTwin, &samples)
        #expect(samples == input.map { $0 * 2 })
        #expect(healthy.stoppedReason == nil && failingTwin.stoppedReason == nil)
    }

    @Test func wrongMediaIsABadArgumentNotAStop() throws {
        let gain = try load(exampleModule("gain"), parameter: 100)
        var frame = I420Frame(width: 32, height: 32)
        expectFailure(.badArgument, containing: "no braid_process_video") { try frame.run(gain) }
        var samples = sineFrame(amplitude: 1000)
        try runAudio(gain, &samples)
    }
}

@Suite struct WasmHostImportTests {
    @Test func timeIsTheFrameTimestamp() throws {
        // Writes time_ms() (low 16 bits) into the first sample.
        let function = try load(
            try abiModule(
                imports: #"(import "braid" "time_ms" (func $time (result i64)))"#,
                processAudio: "(i32.store16 (local.get $ptr) (i32.wrap_i64 (call $time))) (i32.const 0)"))
        for timestamp: Int64 in [0, 20, 12_340, 1_700_000_000_123] {
            var samples = sineFrame(amplitude: 1000)
            try runAudio(function, &samples, timestampMs: timestamp)
            #expect(samples[0] == Int16(truncatingIfNeeded: timestamp))
        }
    }

    @Test func logLinesAreSanitisedCutAndRateLimited() throws {
        let log = LogLines()
        var limits = WasmLimits.audio
        limits.logLineBytes = 16
        let imports = #"(import "braid" "log" (func $log (param i32 i32)))"#
        let function = try load(
            try abiModule(
                imports: imports,
                initBody: "(call $log (i32.const 16) (i32.const 12)) (call $log (i32.const 32) (i32.const 40)) (i32.const 0)",
                processAudio: """
                    (local $i i32)
                    (loop $l (call $log (i32.const 16) (i32.const 5))
                      (local.set $i (i32.add (local.get $i) (i32.const 1)))
                      (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
                    (i32.const 0)
                    """,
                extra: #"(data (i32.const 16) "hello\nworld!") (data (i32.const 32) "0123456789abcdefghijklmnopqrstuvwxyz")"#),
            limits: limits, log: log.sink)
        #expect(log.lines == ["hello world!", "0123456789abcdef…"])
        var samples = sineFrame(amplitude: 1000)
        try runAudio(function, &samples)
        // A burst of 10 a second: 2 spent at init, so about 8 of the 100 get through (more only if the
        // machine stalled for 100 ms between init and the frame).
        let passed = log.lines.count - 2
        #expect(passed >= 8 && passed <= 10)
        #expect(function.statistics.logLinesDropped == UInt64(100 - passed))
        #expect(function.stoppedReason == nil)
    }
}

@Suite struct WasmThreadingTests {
    /// The runtime gives each function its own worker thread; instances share only the engine.
    @Test func instancesRunOnSeveralThreadsAtOnce() throws {
        let bytes = try exampleModule("gain")
        let results = ThreadResults()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            do {
                let gain = try load(bytes, parameter: Int32(100 + worker * 10))
                let input = sineFrame(amplitude: 1000)
                for index in 0..<20 {
                    var samples = input
                    try runAudio(gain, &samples, timestampMs: Int64(index * 20))
                    guard samples == input.map({ Int16(Int($0) * (100 + worker * 10) / 100) }) else {
                        results.record("worker \(worker): wrong samples at frame \(index)")
                        return
                    }
                }
            } catch {
                results.record("worker \(worker): \(error)")
            }
        }
        #expect(results.failures.isEmpty, "\(results.failures)")
    }
}

/// Failures collected from several threads.
final class ThreadResults: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [String] = []
    func record(_ failure: String) { lock.withLock { recorded.append(failure) } }
    var failures: [String] { lock.withLock { recorded } }
}
