public import BraidSFU

/// The kinds of edge function a node runs.
public enum FunctionKind: String, Sendable, Hashable, Codable, CaseIterable {
    /// N Opus inputs mixed into one (and one per participant without their own voice, with mix-minus).
    case audioMix = "audio-mix"
    /// One VP8 input to VP8 at a smaller size, frame rate and bitrate.
    case transcode
    /// N VP8 inputs in a grid, the active speaker outlined.
    case composite
    /// An operator's WebAssembly module on one Opus input's decoded audio.
    case wasmAudio = "wasm-audio"
    /// An operator's WebAssembly module on one VP8 input's decoded (and scaled) pictures.
    case wasmVideo = "wasm-video"

    /// Whether it consumes and produces video.
    public var isVideo: Bool { self == .transcode || self == .composite || self == .wasmVideo }
    /// Whether it runs an operator's WebAssembly module.
    public var isWasm: Bool { self == .wasmAudio || self == .wasmVideo }
}

/// Which tracks a function consumes.
public enum FunctionInputs: Sendable, Hashable, Codable {
    /// Every audio track of the room, now and later (but no function's output).
    case allAudio
    /// Every video track of the room, now and later (but no function's output).
    case allVideo
    /// These tracks.
    case tracks([TrackID])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            switch text {
            case "all-audio": self = .allAudio
            case "all-video": self = .allVideo
            default:
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "inputs is \"all-audio\", \"all-video\" or a list of track ids")
            }
        } else {
            self = .tracks(try container.decode([TrackID].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .allAudio: try container.encode("all-audio")
        case .allVideo: try container.encode("all-video")
        case .tracks(let ids): try container.encode(ids)
        }
    }
}

/// `POST /api/v1/rooms/{room}/functions`: what to run.
public struct FunctionRequest: Sendable, Hashable, Codable {
    /// Parameters; each kind reads its own, unknown ones are refused.
    public struct Parameters: Sendable, Hashable, Codable {
        /// Output bitrate in bit/s: audio-mix (Opus) 6,000–510,000, default 32,000; transcode and composite
        /// (VP8, the most the output uses) 30,000–8,000,000, default 500,000 and 800,000.
        public var bitrate: Int?
        /// audio-mix: one more output per participant, without that participant's own voice.
        public var mixMinus: Bool?
        /// transcode, composite: output size (even; default 640×360).
        public var width: Int?
        public var height: Int?
        /// transcode (the most), composite (the rate): output frames per second, 1–60, default 30.
        public var frameRate: Int?
        /// composite: outline the active speaker's cell (default true).
        public var highlightSpeaker: Bool?
        /// wasm-audio, wasm-video: a built-in module by name (`gain`, `overlay`), or the module's bytes.
        public var module: String?
        public var moduleBase64: String?
        /// wasm-audio, wasm-video: the integer handed to the module's `braid_init` (default 0).
        public var parameter: Int32?
        /// wasm-audio, wasm-video: fuel per frame (about one Wasm instruction each), 1,000–300,000,000
        /// (default 5,000,000 for audio, 30,000,000 for video).
        public var fuel: UInt64?
        /// wasm-audio, wasm-video: the module's memory cap in 64 KiB pages, 1–1024 (default 256 = 16 MiB).
        public var memoryPages: Int?

        public init(
            bitrate: Int? = nil, mixMinus: Bool? = nil, width: Int? = nil, height: Int? = nil, frameRate: Int? = nil,
            highlightSpeaker: Bool? = nil, module: String? = nil, moduleBase64: String? = nil, parameter: Int32? = nil,
            fuel: UInt64? = nil, memoryPages: Int? = nil
        ) {
            self.module = module
            self.moduleBase64 = moduleBase64
            self.parameter = parameter
            self.fuel = fuel
            self.memoryPages = memoryPages
            self.bitrate = bitrate
            self.mixMinus = mixMinus
            self.width = width
            self.height = height
            self.frameRate = frameRate
            self.highlightSpeaker = highlightSpeaker
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case bitrate, width, height, module, parameter, fuel
            case moduleBase64 = "module_base64"
            case memoryPages = "memory_pages"
            case mixMinus = "mix_minus"
            case frameRate = "frame_rate"
            case highlightSpeaker = "highlight_speaker"
        }

        public init(from decoder: any Decoder) throws {
            try refuseUnknownKeys(CodingKeys.self, in: decoder, what: "parameters")
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.bitrate = try container.decodeIfPresent(Int.self, forKey: .bitrate)
            self.mixMinus = try container.decodeIfPresent(Bool.self, forKey: .mixMinus)
            self.width = try container.decodeIfPresent(Int.self, forKey: .width)
            self.height = try container.decodeIfPresent(Int.self, forKey: .height)
            self.frameRate = try container.decodeIfPresent(Int.self, forKey: .frameRate)
            self.highlightSpeaker = try container.decodeIfPresent(Bool.self, forKey: .highlightSpeaker)
            self.module = try container.decodeIfPresent(String.self, forKey: .module)
            self.moduleBase64 = try container.decodeIfPresent(String.self, forKey: .moduleBase64)
            self.parameter = try container.decodeIfPresent(Int32.self, forKey: .parameter)
            self.fuel = try container.decodeIfPresent(UInt64.self, forKey: .fuel)
            self.memoryPages = try container.decodeIfPresent(Int.self, forKey: .memoryPages)
        }
    }

    public var kind: FunctionKind
    public var inputs: FunctionInputs
    public var parameters: Parameters

    public init(kind: FunctionKind, inputs: FunctionInputs, parameters: Parameters = .init()) {
        self.kind = kind
        self.inputs = inputs
        self.parameters = parameters
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case kind, inputs, parameters
    }

    public init(from decoder: any Decoder) throws {
        try refuseUnknownKeys(CodingKeys.self, in: decoder, what: "the request")
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.kind = try container.decode(FunctionKind.self, forKey: .kind)
        self.inputs = try container.decode(FunctionInputs.self, forKey: .inputs)
        self.parameters = try container.decodeIfPresent(Parameters.self, forKey: .parameters) ?? .init()
    }
}

/// Any key of a JSON object, to list them all.
private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Throws when the object `decoder` holds has a key `Keys` does not name: a misspelt parameter
/// ("mixminus") is an error the operator sees, not a default they did not ask for.
private func refuseUnknownKeys<Keys: CodingKey & CaseIterable>(_: Keys.Type, in decoder: any Decoder, what: String) throws {
    let container = try decoder.container(keyedBy: AnyKey.self)
    let known = Set(Keys.allCases.map(\.stringValue))
    if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { !known.contains($0) }) {
        throw DecodingError.dataCorrupted(
            DecodingError.Context(
                codingPath: container.codingPath,
                debugDescription: "\(what) has no key \"\(unknown)\" (known: \(known.sorted().joined(separator: ", ")))"))
    }
}

/// Why a function could not start.
public struct FunctionError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// The request is malformed or names something unusable (400).
        case badRequest
        /// An input track is not published here (404).
        case unknownTrack
        /// The node runs its maximum of functions (503).
        case full
    }

    public let code: Code
    public let reason: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { self.reason }
}

/// A running function as `GET /api/v1/rooms/{room}/functions` shows it.
public struct FunctionStatus: Sendable, Hashable, Codable {
    public struct Input: Sendable, Hashable, Codable {
        public var track: String
        public var participant: String
        /// Frames refused because the function's inbox was full (it fell behind).
        public var drops: Int
        /// An audio input's frames (audio-mix).
        public var statistics: AudioMix.InputStatistics?
        /// A video input's frames (transcode, composite).
        public var video: VideoInputStatistics?
    }

    public struct Output: Sendable, Hashable, Codable {
        public var track: String
        /// nil: the mix for everyone; otherwise the participant this mix-minus output is for.
        public var listener: String?
        public var consumers: Int
        /// A video output's bitrate now (it follows its subscribers' estimates up to the target).
        public var bitrate: Int?
    }

    public var id: String
    public var kind: FunctionKind
    public var room: String
    /// `running`, or `stopped: reason` (a WebAssembly module that failed; DELETE removes it).
    public var state: String
    public var inputs: [Input]
    public var outputs: [Output]
    /// Input frames taken and output frames made per second (over the last second).
    public var framesInPerSecond: Double
    public var framesOutPerSecond: Double
    public var framesOut: Int
    /// Input frames refused while the function was behind.
    public var drops: Int
    /// Ticks that ran more than a frame late (the worker was starved).
    public var lateTicks: Int
    /// CPU of the function's work on its worker thread, percent of one core (over the last second).
    public var cpuPercent: Double
    /// The function's own delay: from the arrival of the newest input frame mixed to its output, ms.
    public var delayP50Ms: Double?
    public var delayP95Ms: Double?

    enum CodingKeys: String, CodingKey {
        case id, kind, room, state, inputs, outputs, drops
        case framesInPerSecond = "frames_in_per_second"
        case framesOutPerSecond = "frames_out_per_second"
        case framesOut = "frames_out"
        case lateTicks = "late_ticks"
        case cpuPercent = "cpu_percent"
        case delayP50Ms = "delay_p50_ms"
        case delayP95Ms = "delay_p95_ms"
    }
}
