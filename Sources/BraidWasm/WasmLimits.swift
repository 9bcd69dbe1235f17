/// What an edge function in WebAssembly may spend, and how it failed when it could not: the types
/// the node's function runtime configures `WasmFunction` with and reports on its status page.

/// The budget of one WebAssembly function instance.
public struct WasmLimits: Sendable, Equatable {
    /// WasmKit fuel for one frame (`braid_frame_buffer` plus the process call); 1 unit ≈ 1 Wasm operator.
    public var fuelPerFrame: UInt64
    /// The memory cap in 64 KiB pages: the host-owned memory's maximum, so `memory.grow` past it returns −1.
    public var memoryPages: Int
    /// Fuel for loading: the start function, `braid_abi_version` and `braid_init`, together.
    public var setupFuel: UInt64
    /// Log lines a second the module may print (a burst of as many); the rest are counted and dropped.
    public var logLinesPerSecond: Int
    /// Bytes of one log line kept; the rest of a longer line is cut.
    public var logLineBytes: Int
    /// The largest module accepted: parsing and compiling happen before any fuel is counted.
    public var moduleBytes: Int

    public init(
        fuelPerFrame: UInt64, memoryPages: Int = 256, setupFuel: UInt64 = 50_000_000,
        logLinesPerSecond: Int = 10, logLineBytes: Int = 256, moduleBytes: Int = 4 << 20
    ) {
        self.fuelPerFrame = fuelPerFrame
        self.memoryPages = memoryPages
        self.setupFuel = setupFuel
        self.logLinesPerSecond = logLinesPerSecond
        self.logLineBytes = logLineBytes
        self.moduleBytes = moduleBytes
    }

    /// Audio: 5 M fuel per frame (a 20 ms stereo 48 kHz frame is 1920 samples), 16 MiB.
    public static let audio = WasmLimits(fuelPerFrame: 5_000_000)
    /// Video: 300 M fuel per frame (a 720p I420 frame is 1.38 MB), 16 MiB.
    public static let video = WasmLimits(fuelPerFrame: 300_000_000)

    /// Bytes in a WebAssembly page.
    public static let pageBytes = 65_536
    /// The most pages a wasm32 memory can have (4 GiB).
    public static let maximumMemoryPages = 65_536
}

/// Why a module was refused at load, why a frame failed, or that the instance had already stopped.
public struct WasmFunctionError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// Not a valid module, or one this host cannot link (unknown import, its own memory).
        case invalidModule
        /// The module needs more memory than the cap (at load, or a frame it could not get a buffer for).
        case memoryLimit
        /// The module broke the ABI: wrong version, missing or mistyped export, a bad pointer.
        case badABI
        /// The module reported an error itself: nonzero from `braid_init` or a process call.
        case moduleError
        /// The module used up its fuel (an endless or too slow loop).
        case outOfFuel
        /// The module trapped (unreachable, divide by zero, out-of-bounds access, stack exhausted…).
        case trap
        /// The caller passed a frame or limits the ABI cannot carry; the instance keeps running.
        case badArgument
        /// The instance failed earlier (see `WasmFunction.stoppedReason`) and runs no more guest code.
        case stopped
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}

/// Figures for a status page. Frames that failed are counted too (their fuel and time included).
public struct WasmFunctionStatistics: Sendable, Equatable {
    /// Frames handed to guest code.
    public var frames: UInt64 = 0
    public var totalFuel: UInt64 = 0
    public var lastFrameFuel: UInt64 = 0
    public var maxFrameFuel: UInt64 = 0
    /// Wall time of a frame: the guest calls plus copying the frame in and out.
    public var lastFrameNanoseconds: UInt64 = 0
    public var totalNanoseconds: UInt64 = 0
    public var maxFrameNanoseconds: UInt64 = 0
    /// Log lines over the rate limit.
    public var logLinesDropped: UInt64 = 0
    /// The guest memory's current size.
    public var memoryBytes: Int = 0

    public var averageFrameNanoseconds: UInt64 { frames == 0 ? 0 : totalNanoseconds / frames }
    public var averageFrameFuel: UInt64 { frames == 0 ? 0 : totalFuel / frames }

    public init() {}
}
