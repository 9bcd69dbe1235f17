/// The sandbox for operators' own edge functions: one WebAssembly module instance on WasmKit that
/// works on decoded frames in place. Everything the guest controls (its pointers, lengths, results,
/// loops, memory growth) is checked or metered here, so no module can crash or stall the node: a
/// failure stops the instance and is reported. The ABI is in ABI.md next to this file.

import WasmKit

/// One instance of an edge-function module.
///
/// Not Sendable: an instance is confined to the thread of its function's worker (WasmKit's `Store`
/// and its fuel cell are unsynchronised). Create it, call it and drop it on that thread.
public final class WasmFunction {
    /// The ABI version this host speaks (`braid_abi_version()` must return it).
    public static let abiVersion: Int32 = 1

    public let limits: WasmLimits
    /// Whether the module exports `braid_process_audio` / `braid_process_video`.
    public let handlesAudio: Bool
    public let handlesVideo: Bool
    /// The first failure; from then on every call throws `.stopped` and runs no guest code.
    public private(set) var stoppedReason: WasmFunctionError?
    public private(set) var statistics = WasmFunctionStatistics()
    /// Fuel the last frame used (its whole budget if it ran out).
    public var fuelUsedLastFrame: UInt64 { statistics.lastFrameFuel }

    /// The live instance; released (with its memory) when the function stops.
    private var guest: Guest?
    private let host: HostState

    /// One engine for every instance: it holds only configuration and interned types. Eager
    /// compilation validates every function body at load rather than at a frame.
    static let engine = Engine(
        configuration: EngineConfiguration(compilationMode: .eager, memoryBoundsChecking: .software, fuelMetering: true))

    /// Loads, links and initialises a module: checks its imports, gives it a memory capped at
    /// `limits.memoryPages`, checks the ABI version and calls `braid_init(parameter)`.
    /// `log` receives the module's log lines (rate-limited, one line each, control characters blanked).
    public init(
        module bytes: [UInt8], limits: WasmLimits, parameter: Int32, log: @escaping (String) -> Void
    ) throws(WasmFunctionError) {
        guard limits.memoryPages >= 1, limits.memoryPages <= WasmLimits.maximumMemoryPages else {
            throw WasmFunctionError(.badArgument, "limits.memoryPages is \(limits.memoryPages); it must be 1...65536")
        }
        guard limits.fuelPerFrame > 0, limits.setupFuel > 0 else {
            throw WasmFunctionError(.badArgument, "limits.fuelPerFrame and limits.setupFuel must be positive")
        }
        self.limits = limits
        let host = HostState(limits: limits, log: log)
        self.host = host

        guard bytes.count <= limits.moduleBytes else {
            throw WasmFunctionError(.invalidModule, "the module is \(bytes.count) bytes; the limit is \(limits.moduleBytes)")
        }
        let module: Module
        do {
            module = try parseWasm(bytes: bytes)
        } catch {
            throw WasmFunctionError(.invalidModule, "not a valid WebAssembly module: \(error)")
        }
        let memoryType = try Self.checkImports(of: module, cap: limits.memoryPages)

        // The host owns the memory: its maximum is the cap (or the module's own smaller maximum, as
        // import matching requires provided max <= declared max), so growth past it fails in the guest.
        let store = Store(engine: Self.engine)
        let maximum = min(UInt64(limits.memoryPages), memoryType.max ?? UInt64(limits.memoryPages))
        let memory: Memory
        do {
            memory = try Memory(store: store, type: MemoryType(min: memoryType.min, max: maximum))
        } catch {
            throw WasmFunctionError(.memoryLimit, "could not allocate \(memoryType.min) pages of memory: \(error)")
        }
        host.memory = memory

        var imports = Imports()
        imports.define(module: "env", name: "memory", memory)
        imports.define(
            module: "braid", name: "log",
            Function(store: store, parameters: [.i32, .i32], raw: { [weak host] _, arguments, _ in
                guard let host, arguments.count == 2, case .i32(let pointer) = arguments[0],
                    case .i32(let length) = arguments[1]
                else { return }
                try host.log(pointer: pointer, length: length)
            }))
        imports.define(
            module: "braid", name: "time_ms",
            Function(store: store, parameters: [], results: [.i64], raw: { [weak host] _, _, results in
                guard results.count == 1 else { return }
                results[0] = .i64(UInt64(bitPattern: host?.timestampMs ?? 0))
            }))

        // Loading runs guest code (the start function), so it is metered like the rest of setup.
        store.fuel = Fuel(remaining: limits.setupFuel)
        let instance: Instance
        do {
            instance = try module.instantiate(store: store, imports: imports)
        } catch {
            throw Self.classify(error, during: "instantiation", fuel: limits.setupFuel, memory: memory, cap: limits.memoryPages,
                                linkErrorKind: .invalidModule)
        }

        let i32 = ValueType.i32
        let version = try Self.requiredExport(instance, "braid_abi_version", FunctionType(parameters: [], results: [i32]))
        let initialise = try Self.export(instance, "braid_init", FunctionType(parameters: [i32], results: [i32]))
        let frameBuffer = try Self.requiredExport(instance, "braid_frame_buffer", FunctionType(parameters: [i32], results: [i32]))
        let process = FunctionType(parameters: [i32, i32, i32, i32], results: [i32])
        let processAudio = try Self.export(instance, "braid_process_audio", process)
        let processVideo = try Self.export(instance, "braid_process_video", process)
        guard processAudio != nil || processVideo != nil else {
            throw WasmFunctionError(.badABI, "the module exports neither braid_process_audio nor braid_process_video")
        }

        let guest = Guest(
            store: store, memory: memory, frameBuffer: frameBuffer, processAudio: processAudio, processVideo: processVideo)
        let abi = try Self.call(version, [], guest: guest, name: "braid_abi_version()", fuel: limits.setupFuel, cap: limits.memoryPages)
        guard Int32(bitPattern: abi) == Self.abiVersion else {
            throw WasmFunctionError(
                .badABI, "braid_abi_version() returned \(Int32(bitPattern: abi)); this host speaks version \(Self.abiVersion)")
        }
        if let initialise {
            let status = try Self.call(
                initialise, [.i32(UInt32(bitPattern: parameter))], guest: guest, name: "braid_init(\(parameter))",
                fuel: limits.setupFuel, cap: limits.memoryPages)
            guard status == 0 else {
                throw WasmFunctionError(
                    .moduleError, "braid_init(\(parameter)) returned \(Int32(bitPattern: status)): the module refused to start")
            }
        }
        self.guest = guest
        self.handlesAudio = processAudio != nil
        self.handlesVideo = processVideo != nil
        statistics.memoryBytes = memory.byteCount
    }

    /// Runs the module on one audio frame, in place: `samples` are interleaved, `channels` of them per
    /// instant. `time_ms()` returns `timestampMs` during the call.
    public func processAudio(
        _ samples: UnsafeMutableBufferPointer<Int16>, channels: Int, sampleRate: Int, timestampMs: Int64
    ) throws(WasmFunctionError) {
        let guest = try running()
        guard let process = guest.processAudio else {
            throw WasmFunctionError(.badArgument, "the module has no braid_process_audio export")
        }
        guard channels >= 1, channels <= 255, sampleRate >= 1, sampleRate <= 1_000_000 else {
            throw WasmFunctionError(.badArgument, "\(channels) channels at \(sampleRate) Hz is not an audio format")
        }
        let bytes = samples.count * MemoryLayout<Int16>.size
        guard !samples.isEmpty, samples.count % channels == 0, bytes <= Int(Int32.max), let source = samples.baseAddress else {
            throw WasmFunctionError(.badArgument, "\(samples.count) samples is not a whole, nonempty frame of \(channels) channels")
        }
        try runFrame(
            guest, process: process, name: "braid_process_audio", bytes: bytes, timestampMs: timestampMs,
            arguments: (UInt32(samples.count / channels), UInt32(channels), UInt32(sampleRate))
        ) { frame in
            frame.copyMemory(from: UnsafeRawBufferPointer(start: source, count: bytes))
        } copyOut: { frame in
            UnsafeMutableRawBufferPointer(start: source, count: bytes).copyMemory(from: frame)
        }
    }

    /// Runs the module on one I420 video frame, in place. Planes are tightly packed: `y` is
    /// width × height, `u` and `v` are (width+1)/2 × (height+1)/2. `time_ms()` returns `timestampMs`.
    public func processVideo(
        y: UnsafeMutableBufferPointer<UInt8>, u: UnsafeMutableBufferPointer<UInt8>, v: UnsafeMutableBufferPointer<UInt8>,
        width: Int, height: Int, frameIndex: Int64, timestampMs: Int64
    ) throws(WasmFunctionError) {
        let guest = try running()
        guard let process = guest.processVideo else {
            throw WasmFunctionError(.badArgument, "the module has no braid_process_video export")
        }
        guard width >= 1, width <= 16_384, height >= 1, height <= 16_384 else {
            throw WasmFunctionError(.badArgument, "a \(width)x\(height) frame is out of range (1...16384)")
        }
        let lumaBytes = width * height
        let chromaBytes = ((width + 1) / 2) * ((height + 1) / 2)
        guard y.count == lumaBytes, u.count == chromaBytes, v.count == chromaBytes,
            let yBase = y.baseAddress, let uBase = u.baseAddress, let vBase = v.baseAddress
        else {
            throw WasmFunctionError(
                .badArgument,
                "planes of \(y.count)/\(u.count)/\(v.count) bytes do not fit \(width)x\(height) I420 (\(lumaBytes)/\(chromaBytes)/\(chromaBytes))")
        }
        let bytes = lumaBytes + 2 * chromaBytes
        try runFrame(
            guest, process: process, name: "braid_process_video", bytes: bytes, timestampMs: timestampMs,
            arguments: (UInt32(width), UInt32(height), UInt32(truncatingIfNeeded: frameIndex))
        ) { frame in
            guard let base = frame.baseAddress else { return }
            base.copyMemory(from: yBase, byteCount: lumaBytes)
            (base + lumaBytes).copyMemory(from: uBase, byteCount: chromaBytes)
            (base + lumaBytes + chromaBytes).copyMemory(from: vBase, byteCount: chromaBytes)
        } copyOut: { frame in
            guard let base = frame.baseAddress else { return }
            UnsafeMutableRawPointer(yBase).copyMemory(from: base, byteCount: lumaBytes)
            UnsafeMutableRawPointer(uBase).copyMemory(from: base + lumaBytes, byteCount: chromaBytes)
            UnsafeMutableRawPointer(vBase).copyMemory(from: base + lumaBytes + chromaBytes, byteCount: chromaBytes)
        }
    }

    // MARK: One frame

    private func running() throws(WasmFunctionError) -> Guest {
        if let stoppedReason {
            throw WasmFunctionError(.stopped, "the function stopped earlier: \(stoppedReason)")
        }
        guard let guest else { throw WasmFunctionError(.stopped, "the function has no instance") }
        return guest
    }

    /// Asks the guest for a buffer, copies the frame in, calls `process(pointer, arguments…)`, copies
    /// the frame out. One fuel budget covers both calls.
    private func runFrame(
        _ guest: Guest, process: Function, name: StaticString, bytes: Int, timestampMs: Int64,
        arguments: (UInt32, UInt32, UInt32),
        copyIn: (UnsafeMutableRawBufferPointer) -> Void, copyOut: (UnsafeRawBufferPointer) -> Void
    ) throws(WasmFunctionError) {
        let started = ContinuousClock.now
        let budget = limits.fuelPerFrame
        let cap = limits.memoryPages
        host.timestampMs = timestampMs
        guest.store.fuel = Fuel(remaining: budget)
        defer { account(guest, budget: budget, started: started) }
        do throws(WasmFunctionError) {
            let pointer = try Self.call(
                guest.frameBuffer, [.i32(UInt32(bytes))], guest: guest, name: "braid_frame_buffer(\(bytes))", fuel: budget, cap: cap)
            let memoryBytes = guest.memory.byteCount
            guard pointer != 0 else {
                throw WasmFunctionError(
                    .memoryLimit,
                    "braid_frame_buffer(\(bytes)) returned 0: the module could not provide the frame's \(bytes) bytes (memory \(memoryBytes) bytes, cap \(cap) pages = \(cap * WasmLimits.pageBytes) bytes)")
            }
            // Wasm pointers are unsigned 32-bit; a "negative" one is past 2 GiB, so past any memory here.
            guard UInt64(pointer) + UInt64(bytes) <= UInt64(memoryBytes) else {
                throw WasmFunctionError(
                    .badABI,
                    "braid_frame_buffer(\(bytes)) returned \(pointer) (i32 \(Int32(bitPattern: pointer))): \(bytes) bytes there end past the memory's \(memoryBytes) bytes")
            }
            guest.memory.withUnsafeMutableBufferPointer(offset: UInt(pointer), count: bytes) { copyIn($0) }
            let status = try Self.call(
                process, [.i32(pointer), .i32(arguments.0), .i32(arguments.1), .i32(arguments.2)], guest: guest,
                name: "\(name)", fuel: budget, cap: cap)
            guard status == 0 else {
                throw WasmFunctionError(.moduleError, "\(name) returned \(Int32(bitPattern: status)): the module reported an error")
            }
            // Memory only grows, but check again rather than assume it.
            guard UInt64(pointer) + UInt64(bytes) <= UInt64(guest.memory.byteCount) else {
                throw WasmFunctionError(.badABI, "the frame buffer at \(pointer) is no longer inside memory")
            }
            guest.memory.withUnsafeBufferPointer(offset: UInt(pointer), count: bytes) { copyOut($0) }
        } catch {
            throw stop(error)
        }
    }

    private func account(_ guest: Guest, budget: UInt64, started: ContinuousClock.Instant) {
        let elapsed = (ContinuousClock.now - started).components
        let nanoseconds = UInt64(max(0, elapsed.seconds)) * 1_000_000_000 + UInt64(max(0, elapsed.attoseconds)) / 1_000_000_000
        // On "out of fuel" WasmKit leaves the unpaid charge in the cell: count the whole budget.
        let remaining = guest.store.fuel?.remaining ?? 0
        let used = stoppedReason?.kind == .outOfFuel ? budget : budget - min(budget, remaining)
        statistics.frames += 1
        statistics.lastFrameFuel = used
        statistics.totalFuel &+= used
        statistics.maxFrameFuel = max(statistics.maxFrameFuel, used)
        statistics.lastFrameNanoseconds = nanoseconds
        statistics.totalNanoseconds &+= nanoseconds
        statistics.maxFrameNanoseconds = max(statistics.maxFrameNanoseconds, nanoseconds)
        statistics.memoryBytes = guest.memory.byteCount
        statistics.logLinesDropped = host.droppedLines
    }

    /// Records the first failure and releases the instance, so no guest code runs again.
    private func stop(_ error: WasmFunctionError) -> WasmFunctionError {
        if stoppedReason == nil { stoppedReason = error }
        guest = nil
        host.memory = nil
        return error
    }

    // MARK: Loading and calling

    /// Accepts only env.memory, braid.log and braid.time_ms (WasmKit checks the function types when
    /// linking); returns the memory type the module declares.
    private static func checkImports(of module: Module, cap: Int) throws(WasmFunctionError) -> MemoryType {
        var memoryType: MemoryType?
        for entry in module.imports {
            switch (entry.module, entry.name, entry.descriptor) {
            case ("env", "memory", .memory(let type)): memoryType = type
            case ("braid", "log", .function), ("braid", "time_ms", .function): continue
            default:
                let kind =
                    switch entry.descriptor {
                    case .function: "function"
                    case .table: "table"
                    case .memory: "memory"
                    case .global: "global"
                    case .tag: "tag"
                    }
                throw WasmFunctionError(
                    .invalidModule,
                    "unknown import \(entry.module).\(entry.name) (\(kind)); the host provides env.memory, braid.log and braid.time_ms")
            }
        }
        guard let memoryType else {
            let ownsMemory = module.exports.contains { if case .memory = $0.descriptor { true } else { false } }
            throw WasmFunctionError(
                .invalidModule,
                ownsMemory
                    ? "the module defines its own memory; build it with -Wl,--import-memory so it imports env.memory"
                    : "the module does not import env.memory (build it with -Wl,--import-memory)")
        }
        guard !memoryType.shared, !memoryType.isMemory64 else {
            throw WasmFunctionError(.invalidModule, "env.memory must be an unshared 32-bit memory")
        }
        guard memoryType.min <= UInt64(cap) else {
            throw WasmFunctionError(
                .memoryLimit,
                "the module needs at least \(memoryType.min) pages (\(memoryType.min * 64) KiB) of memory; the cap is \(cap) pages (\(cap * 64) KiB)")
        }
        return memoryType
    }

    /// The export `name`, which must exist and have exactly `type`.
    private static func requiredExport(
        _ instance: Instance, _ name: String, _ type: FunctionType
    ) throws(WasmFunctionError) -> Function {
        guard let function = try export(instance, name, type) else {
            throw WasmFunctionError(.badABI, "the module does not export \(name)")
        }
        return function
    }

    /// The export `name` with exactly `type`, nil if the module has none.
    private static func export(
        _ instance: Instance, _ name: String, _ type: FunctionType
    ) throws(WasmFunctionError) -> Function? {
        guard let function = instance.exports[function: name] else { return nil }
        guard function.type == type else {
            throw WasmFunctionError(
                .badABI, "\(name) has type \(signature(function.type)); the ABI wants \(signature(type))")
        }
        return function
    }

    private static func signature(_ type: FunctionType) -> String {
        "(\(type.parameters.map { "\($0)" }.joined(separator: ", "))) -> (\(type.results.map { "\($0)" }.joined(separator: ", ")))"
    }

    /// Calls a guest function that returns one i32, turning whatever it throws into a report. `name`
    /// is built only for a report.
    private static func call(
        _ function: Function, _ arguments: [Value], guest: Guest, name: @autoclosure () -> String, fuel: UInt64, cap: Int
    ) throws(WasmFunctionError) -> UInt32 {
        let results: [Value]
        do {
            results = try function.invoke(arguments, on: &guest.stack)
        } catch {
            throw classify(error, during: name(), fuel: fuel, memory: guest.memory, cap: cap, linkErrorKind: .trap)
        }
        guard results.count == 1, case .i32(let value) = results[0] else {
            throw WasmFunctionError(.badABI, "\(name()) did not return one i32")
        }
        return value
    }

    /// Maps what WasmKit (or a host import) threw to an error kind. Trap's reason is not public API,
    /// so its text is read: "out of fuel" is WasmKit's message for an exhausted budget.
    private static func classify(
        _ error: any Error, during name: String, fuel: UInt64, memory: Memory, cap: Int, linkErrorKind: WasmFunctionError.Kind
    ) -> WasmFunctionError {
        if let fault = error as? HostFault { return fault.error }
        guard let trap = error as? Trap else {
            if error is WasmKitException {
                return WasmFunctionError(.trap, "\(name) threw an uncaught Wasm exception")
            }
            return WasmFunctionError(linkErrorKind, "\(name) failed: \(error)")
        }
        var reason = String(trap.description.prefix { $0 != "\n" })
        if reason.hasPrefix("Trap: ") { reason.removeFirst("Trap: ".count) }
        if reason == "out of fuel" {
            return WasmFunctionError(.outOfFuel, "\(name) ran out of fuel (budget \(fuel))")
        }
        let atCap = memory.byteCount >= cap * WasmLimits.pageBytes
        if reason == "out of bounds memory access", atCap {
            return WasmFunctionError(
                .memoryLimit, "\(name) trapped: \(reason), with memory at its cap of \(cap) pages (\(cap * 64) KiB)")
        }
        return WasmFunctionError(.trap, "\(name) trapped: \(reason)")
    }
}

/// The instance's WasmKit objects; dropped together when the function stops.
private final class Guest {
    let store: Store
    let memory: Memory
    let frameBuffer: Function
    let processAudio: Function?
    let processVideo: Function?
    /// Reused by every call rather than allocated per call.
    var stack: ExecutionStack

    init(store: Store, memory: Memory, frameBuffer: Function, processAudio: Function?, processVideo: Function?) {
        self.store = store
        self.memory = memory
        self.frameBuffer = frameBuffer
        self.processAudio = processAudio
        self.processVideo = processVideo
        self.stack = ExecutionStack(engine: store.engine)
    }
}

/// A host import's verdict on a guest's call (a bad pointer), thrown through the guest to `call`.
private struct HostFault: Error {
    var error: WasmFunctionError
}

/// What the host imports read and write. Captured weakly by them (the store holds the imports).
private final class HostState {
    let limits: WasmLimits
    let output: (String) -> Void
    var memory: Memory?
    var timestampMs: Int64 = 0
    var droppedLines: UInt64 = 0
    private var droppedSinceLastLine: UInt64 = 0
    private var tokens: Double
    private var refilled = ContinuousClock.now
    private var line: [UInt8] = []

    init(limits: WasmLimits, log: @escaping (String) -> Void) {
        self.limits = limits
        self.output = log
        self.tokens = Double(max(0, limits.logLinesPerSecond))
    }

    /// `braid.log(ptr, len)`: one line of (at most `logLineBytes` of) UTF-8.
    func log(pointer: UInt32, length: UInt32) throws {
        let requested = Int32(bitPattern: length)
        guard requested >= 0 else {
            throw HostFault(error: WasmFunctionError(.badABI, "braid.log(\(pointer), \(requested)): negative length"))
        }
        let count = min(Int(requested), max(0, limits.logLineBytes))
        guard let memory, UInt64(pointer) + UInt64(count) <= UInt64(memory.byteCount) else {
            throw HostFault(
                error: WasmFunctionError(
                    .badABI, "braid.log(\(pointer), \(requested)) reads past the memory's \(memory?.byteCount ?? 0) bytes"))
        }
        guard admit() else {
            droppedLines += 1
            droppedSinceLastLine += 1
            return
        }
        line.removeAll(keepingCapacity: true)
        if count > 0 {
            memory.withUnsafeBufferPointer(offset: UInt(pointer), count: count) { bytes in
                // Blank control characters so one call is one line in the node's log.
                line.append(contentsOf: bytes.lazy.map { $0 < 0x20 || $0 == 0x7F ? 0x20 : $0 })
            }
        }
        if droppedSinceLastLine > 0 {
            output("(\(droppedSinceLastLine) log lines dropped: over \(limits.logLinesPerSecond) a second)")
            droppedSinceLastLine = 0
        }
        output(String(decoding: line, as: UTF8.self) + (Int(requested) > count ? "…" : ""))
    }

    /// A token bucket on the monotonic clock: `logLinesPerSecond` lines a second, bursts as large.
    private func admit() -> Bool {
        let rate = Double(max(0, limits.logLinesPerSecond))
        let now = ContinuousClock.now
        let elapsed = (now - refilled).components
        refilled = now
        tokens = min(rate, tokens + rate * (Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18))
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
