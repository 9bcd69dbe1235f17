internal import CBraidShims
internal import COpus

/// An Opus encoder (RFC 6716) over libopus, configured for real-time use.
///
/// Owns one `OpusEncoder *`, freed in `deinit`. Encoding writes into a buffer the caller supplies and
/// allocates nothing per call. Not thread-safe: use one encoder from one isolation domain.
public final class OpusEncoder {
    /// The coding mode libopus optimises for (`OPUS_APPLICATION_*`).
    public enum Application: Sendable {
        /// Speech: favours intelligibility; enables the SILK layer at low bitrates.
        case voip
        /// Music and mixed content: favours fidelity to the input.
        case audio
        /// Lowest algorithmic delay (CELT only, no speech optimisations, no in-band FEC).
        case restrictedLowDelay

        var rawValue: Int32 {
            switch self {
            case .voip: OPUS_APPLICATION_VOIP
            case .audio: OPUS_APPLICATION_AUDIO
            case .restrictedLowDelay: OPUS_APPLICATION_RESTRICTED_LOWDELAY
            }
        }
    }

    /// A hint about the content (`OPUS_SET_SIGNAL`), which biases the SILK/CELT mode decision.
    public enum Signal: Sendable {
        case auto
        case voice
        case music

        var rawValue: Int32 {
            switch self {
            case .auto: OPUS_AUTO
            case .voice: OPUS_SIGNAL_VOICE
            case .music: OPUS_SIGNAL_MUSIC
            }
        }
    }

    /// Frame durations this wrapper encodes (RFC 6716 §2.1.4 allows 2.5–60 ms; WebRTC uses 10–60).
    public enum FrameDuration: Int, Sendable, CaseIterable {
        case ms10 = 10
        case ms20 = 20
        case ms40 = 40
        case ms60 = 60
    }

    /// Everything that can be chosen when the encoder is created; most can be changed later.
    public struct Configuration: Sendable {
        /// Rate of the input PCM (libopus codes internally at 48 kHz).
        public var sampleRate: OpusSampleRate
        /// Channels of the input PCM, interleaved.
        public var channels: OpusChannels
        /// What libopus optimises for; fixed for the encoder's life.
        public var application: Application
        /// Target bitrate in bits per second (libopus accepts 500…512000).
        public var bitrate: Int
        /// Encoder complexity 0…10 (10 = best quality, most CPU).
        public var complexity: Int
        /// Emit LBRR (in-band FEC) data so the next packet can repair this one (SILK/Hybrid only).
        public var inbandFEC: Bool
        /// Expected packet loss in percent (0…100); with FEC on, it sets how much LBRR is sent.
        public var expectedPacketLossPercent: Int
        /// Discontinuous transmission: near-empty packets during silence.
        public var dtx: Bool
        /// Audio per packet; RFC 7587 receivers accept every listed duration.
        public var frameDuration: FrameDuration
        /// Content hint for the mode decision.
        public var signal: Signal

        /// Defaults for WebRTC voice: 48 kHz mono VoIP, 32 kbit/s, 20 ms, FEC on, 10 % expected loss.
        public init(
            sampleRate: OpusSampleRate = .hz48000,
            channels: OpusChannels = .mono,
            application: Application = .voip,
            bitrate: Int = 32_000,
            complexity: Int = 9,
            inbandFEC: Bool = true,
            expectedPacketLossPercent: Int = 10,
            dtx: Bool = false,
            frameDuration: FrameDuration = .ms20,
            signal: Signal = .auto
        ) {
            self.sampleRate = sampleRate
            self.channels = channels
            self.application = application
            self.bitrate = bitrate
            self.complexity = complexity
            self.inbandFEC = inbandFEC
            self.expectedPacketLossPercent = expectedPacketLossPercent
            self.dtx = dtx
            self.frameDuration = frameDuration
            self.signal = signal
        }
    }

    /// The largest packet libopus produces for one frame (RFC 6716 §3.4, R5: 1275 bytes per frame,
    /// three frames for 60 ms plus framing). A buffer of this size never limits the bitrate.
    public static let maximumPacketSize = 4000

    // Allocated by this; freed in deinit.
    private let state: OpaquePointer
    /// Rate of the input PCM.
    public let sampleRate: OpusSampleRate
    /// Channels of the input PCM.
    public let channels: OpusChannels
    /// The duration of one input frame; ``encode(pcm:into:)`` requires exactly this much audio.
    public private(set) var frameDuration: FrameDuration

    /// Samples per channel in one frame at the configured rate and duration.
    public var samplesPerChannel: Int { self.sampleRate.samples(milliseconds: self.frameDuration.rawValue) }

    /// Interleaved samples (all channels) in one frame: the exact `pcm.count` ``encode(pcm:into:)`` takes.
    public var samplesPerFrame: Int { self.samplesPerChannel * Int(self.channels.rawValue) }

    /// Creates an encoder and applies every setting of `configuration`.
    /// - Throws: ``CodecError`` with ``CodecError/Code/badArgument`` when a setting is out of range.
    public init(_ configuration: Configuration = Configuration()) throws(CodecError) {
        var status: Int32 = OPUS_OK
        guard
            let state = opus_encoder_create(
                configuration.sampleRate.rawValue,
                configuration.channels.rawValue,
                configuration.application.rawValue,
                &status
            ), status == OPUS_OK
        else {
            throw CodecError.opus(status == OPUS_OK ? OPUS_ALLOC_FAIL : status, "opus_encoder_create")
        }
        self.state = state
        self.sampleRate = configuration.sampleRate
        self.channels = configuration.channels
        self.frameDuration = configuration.frameDuration
        try self.setBitrate(configuration.bitrate)
        try self.setComplexity(configuration.complexity)
        try self.setInbandFEC(configuration.inbandFEC)
        try self.setExpectedPacketLoss(percent: configuration.expectedPacketLossPercent)
        try self.setDTX(configuration.dtx)
        try self.set(OPUS_SET_SIGNAL_REQUEST, configuration.signal.rawValue, "signal")
    }

    deinit {
        opus_encoder_destroy(self.state)
    }

    /// Sets the target bitrate in bits per second (500…512000).
    public func setBitrate(_ bitsPerSecond: Int) throws(CodecError) {
        try self.set(OPUS_SET_BITRATE_REQUEST, try Self.int32(bitsPerSecond, in: 500...512_000, "bitrate"), "bitrate")
    }

    /// The bitrate libopus is currently targeting, in bits per second.
    public func bitrate() throws(CodecError) -> Int {
        Int(try self.get(OPUS_GET_BITRATE_REQUEST, "bitrate"))
    }

    /// Sets the computational complexity, 0…10.
    public func setComplexity(_ complexity: Int) throws(CodecError) {
        try self.set(OPUS_SET_COMPLEXITY_REQUEST, try Self.int32(complexity, in: 0...10, "complexity"), "complexity")
    }

    /// Turns in-band FEC (LBRR, RFC 6716 §2.1.7) on or off.
    ///
    /// - Note: LBRR is produced only in SILK and Hybrid modes, only when the expected packet loss is
    ///   above zero, and only when the bitrate leaves room for it.
    public func setInbandFEC(_ enabled: Bool) throws(CodecError) {
        try self.set(OPUS_SET_INBAND_FEC_REQUEST, enabled ? 1 : 0, "inband FEC")
    }

    /// Sets the expected packet loss in percent, 0…100.
    public func setExpectedPacketLoss(percent: Int) throws(CodecError) {
        let value = try Self.int32(percent, in: 0...100, "packet loss percent")
        try self.set(OPUS_SET_PACKET_LOSS_PERC_REQUEST, value, "packet loss percent")
    }

    /// Turns discontinuous transmission on or off.
    public func setDTX(_ enabled: Bool) throws(CodecError) {
        try self.set(OPUS_SET_DTX_REQUEST, enabled ? 1 : 0, "DTX")
    }

    /// Changes the frame duration for the following calls of ``encode(pcm:into:)``.
    public func setFrameDuration(_ duration: FrameDuration) {
        self.frameDuration = duration
    }

    /// Samples of look-ahead the encoder adds (delay between input and decoded output).
    public func lookahead() throws(CodecError) -> Int {
        Int(try self.get(OPUS_GET_LOOKAHEAD_REQUEST, "lookahead"))
    }

    /// Encodes one frame of interleaved 16-bit PCM into `output`.
    ///
    /// - Parameters:
    ///   - pcm: exactly ``samplesPerFrame`` interleaved samples.
    ///   - output: where the packet is written; ``maximumPacketSize`` bytes never limit the bitrate, a
    ///     smaller buffer caps the size of this packet.
    /// - Returns: the packet length in bytes. With DTX a result of 1 or 2 bytes means silence; such a
    ///   packet need not be sent (RFC 7587 §3.1.3 and libopus documentation).
    /// - Throws: ``CodecError/Code/badArgument`` when `pcm` has the wrong length,
    ///   ``CodecError/Code/bufferTooSmall`` when `output` is empty.
    public func encode(pcm: UnsafeBufferPointer<Int16>, into output: UnsafeMutableRawBufferPointer) throws(CodecError)
        -> Int
    {
        guard pcm.count == self.samplesPerFrame, let samples = pcm.baseAddress else {
            throw CodecError(.badArgument, "expected \(self.samplesPerFrame) samples, got \(pcm.count)")
        }
        guard let out = output.baseAddress, output.count > 0 else {
            throw CodecError(.bufferTooSmall, "empty output buffer")
        }
        // Clamp: libopus never needs more than maximumPacketSize, and the count must fit an opus_int32.
        let capacity = Int32(min(output.count, Self.maximumPacketSize))
        let result = opus_encode(
            self.state,
            samples,
            Int32(self.samplesPerChannel),
            out.assumingMemoryBound(to: UInt8.self),
            capacity
        )
        guard result >= 0 else { throw CodecError.opus(result, "opus_encode") }
        return Int(result)
    }

    /// Convenience for arrays: encodes `pcm` into the start of `output` and returns the packet length.
    public func encode(pcm: [Int16], into output: inout [UInt8]) throws(CodecError) -> Int {
        do {
            return try pcm.withUnsafeBufferPointer { input in
                try output.withUnsafeMutableBytes { out in try self.encode(pcm: input, into: out) }
            }
        } catch let error as CodecError {
            throw error
        } catch {
            throw CodecError(.internalError, "\(error)")
        }
    }

    private func set(_ request: Int32, _ value: Int32, _ what: String) throws(CodecError) {
        let status = braid_opus_encoder_set_int(UnsafeMutableRawPointer(self.state), request, value)
        guard status == OPUS_OK else { throw CodecError.opus(status, "set \(what)") }
    }

    private func get(_ request: Int32, _ what: String) throws(CodecError) -> Int32 {
        var value: Int32 = 0
        let status = braid_opus_encoder_get_int(UnsafeMutableRawPointer(self.state), request, &value)
        guard status == OPUS_OK else { throw CodecError.opus(status, "get \(what)") }
        return value
    }

    private static func int32(_ value: Int, in range: ClosedRange<Int>, _ what: String) throws(CodecError) -> Int32 {
        guard range.contains(value), let narrow = Int32(exactly: value) else {
            throw CodecError(.badArgument, "\(what) \(value) outside \(range)")
        }
        return narrow
    }
}
