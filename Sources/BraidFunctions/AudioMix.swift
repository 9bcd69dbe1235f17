public import BraidCodecs

/// The `audio-mix` function without threads or sockets: N Opus inputs in, one Opus stream for everyone
/// out, plus one per participant without that participant's own voice when mix-minus is on.
///
/// ```
///  receive ─▶ AudioJitterBuffer ─▶ OpusDecoder (frame · in-band FEC · PLC) ─┐
///  receive ─▶ AudioJitterBuffer ─▶ OpusDecoder                              ─┼─▶ AudioMixer ─┬─▶ OpusEncoder ─▶ the mix
///  …                                                                          ┘              └─▶ OpusEncoder ─▶ mix-minus P
/// ```
///
/// ``tick(nowNanoseconds:emit:)`` is the function's clock: call it every 20 ms. Each tick takes one frame
/// turn from every input: a frame that is here is decoded, a lost one is rebuilt from the next frame's
/// in-band FEC when that is here or concealed (never silence while the input is active), an idle input
/// adds nothing. Inputs and outputs are keyed by the caller's strings (track ids, participants).
public final class AudioMix {
    /// How the mix is made.
    public struct Configuration: Sendable, Hashable {
        /// Opus bitrate of every output.
        public var bitrate: Int
        /// One more output per participant, without that participant's inputs.
        public var mixMinus: Bool
        public var jitterBuffer: AudioJitterBuffer.Configuration
        public var mixer: AudioMixer.Configuration

        /// A configuration.
        public init(
            bitrate: Int = 32_000, mixMinus: Bool = false, jitterBuffer: AudioJitterBuffer.Configuration = .init(),
            mixer: AudioMixer.Configuration = .init()
        ) {
            self.bitrate = bitrate
            self.mixMinus = mixMinus
            self.jitterBuffer = jitterBuffer
            self.mixer = mixer
        }
    }

    /// What happened to one input's frames.
    public struct InputStatistics: Sendable, Hashable, Codable {
        public var framesDecoded = 0
        /// Rebuilt from the next frame's in-band FEC.
        public var framesRecovered = 0
        /// Concealed (lost, no FEC to rebuild them from).
        public var framesConcealed = 0
        /// Arrived after their turn.
        public var framesLate = 0
        /// Skipped to keep the delay (sender clock faster than ours, bursts).
        public var framesSkipped = 0
        public var decodeErrors = 0
        /// The normalising gain applied now.
        public var gain: Float = 1

        enum CodingKeys: String, CodingKey {
            case gain
            case framesDecoded = "frames_decoded"
            case framesRecovered = "frames_recovered"
            case framesConcealed = "frames_concealed"
            case framesLate = "frames_late"
            case framesSkipped = "frames_skipped"
            case decodeErrors = "decode_errors"
        }
    }

    /// One encoded output frame, valid during the `emit` call.
    public struct OutputFrame {
        /// nil: the mix for everyone; otherwise the participant this mix-minus is for.
        public var listener: String?
        /// The Opus packet.
        public var payload: UnsafeRawBufferPointer
        /// The newest capture time (NTP) among the frames mixed, if their senders said.
        public var captureNTP: UInt64?
        /// When the newest frame mixed arrived (monotonic ns): the function's own delay is `now` minus it.
        public var newestArrival: Int64?
        /// RMS level of the frame, full scale 1.0 (for the audio-level extension).
        public var level: Float
    }

    private final class Input {
        let participant: String
        var buffer: AudioJitterBuffer
        let decoder: OpusDecoder
        let slot: Int
        var pcm: [Int16]
        var statistics = InputStatistics()

        init(participant: String, slot: Int, configuration: Configuration) throws(CodecError) {
            self.participant = participant
            self.slot = slot
            self.buffer = AudioJitterBuffer(configuration: configuration.jitterBuffer)
            self.decoder = try OpusDecoder(sampleRate: .hz48000, channels: .mono)
            self.pcm = Array(repeating: 0, count: self.decoder.maximumSamplesPerChannel)
        }
    }

    private final class Output {
        let listener: String?
        let encoder: OpusEncoder
        var clipper = OpusSoftClipper()
        var pcm: [Int16]
        var packet: [UInt8]
        /// The mixer slots this output leaves out.
        var excluded: [Int] = []

        init(listener: String?, configuration: Configuration) throws(CodecError) {
            self.listener = listener
            self.encoder = try OpusEncoder(OpusEncoder.Configuration(bitrate: configuration.bitrate))
            self.pcm = Array(repeating: 0, count: configuration.mixer.frameSamples)
            self.packet = Array(repeating: 0, count: OpusEncoder.maximumPacketSize)
        }
    }

    public let configuration: Configuration
    private var mixer: AudioMixer
    private var inputs: [String: Input] = [:]
    private var outputs: [Output] = []
    /// Ticks that produced output.
    public private(set) var framesMixed = 0
    /// Runs on each output's PCM (mono, 48 kHz, one 20 ms frame) before it is encoded, with the tick's
    /// time in ms; false drops the frame (an operator's WebAssembly function that failed).
    public var processFrame: ((_ pcm: UnsafeMutableBufferPointer<Int16>, _ timestampMs: Int64) -> Bool)?

    /// A mix with no inputs; its shared output exists from the start.
    public init(configuration: Configuration = .init()) throws(CodecError) {
        self.configuration = configuration
        self.mixer = AudioMixer(configuration: configuration.mixer)
        self.outputs = [try Output(listener: nil, configuration: configuration)]
    }

    /// The participants with a mix-minus output now.
    public var listeners: [String] { self.outputs.compactMap(\.listener) }

    /// Adds input `id` (a track) of `participant`; with mix-minus, the participant's own output too.
    public func addInput(_ id: String, participant: String) throws(CodecError) {
        guard self.inputs[id] == nil else { return }
        let input = try Input(participant: participant, slot: self.mixer.addInput(), configuration: self.configuration)
        self.inputs[id] = input
        if self.configuration.mixMinus, !self.outputs.contains(where: { $0.listener == participant }) {
            self.outputs.append(try Output(listener: participant, configuration: self.configuration))
        }
        self.updateExclusions()
    }

    /// Removes input `id`; a participant left without inputs loses their mix-minus output.
    public func removeInput(_ id: String) {
        guard let input = self.inputs.removeValue(forKey: id) else { return }
        self.mixer.removeInput(input.slot)
        if !self.inputs.values.contains(where: { $0.participant == input.participant }) {
            self.outputs.removeAll { $0.listener == input.participant }
        }
        self.updateExclusions()
    }

    private func updateExclusions() {
        for output in self.outputs {
            output.excluded = output.listener.map { listener in
                self.inputs.values.filter { $0.participant == listener }.map(\.slot).sorted()
            } ?? []
        }
    }

    /// One input's counters.
    public func statistics(of id: String) -> InputStatistics? {
        guard let input = self.inputs[id] else { return nil }
        var statistics = input.statistics
        statistics.framesLate = input.buffer.framesLate
        statistics.framesSkipped = input.buffer.framesSkipped
        statistics.gain = self.mixer.gain(of: input.slot)
        return statistics
    }

    /// The ids of the inputs.
    public var inputIDs: [String] { self.inputs.keys.sorted() }

    /// An Opus frame of input `id` with RTP timestamp `timestamp` (48 kHz) arrived.
    @discardableResult
    public func receive(
        _ id: String, timestamp: UInt32, payload: UnsafeRawBufferPointer, arrivalNanoseconds: Int64,
        captureNTP: UInt64? = nil
    ) -> AudioJitterBuffer.InsertOutcome? {
        guard let input = self.inputs[id] else { return nil }
        return input.buffer.insert(
            timestamp: timestamp, payload: payload, arrivalNanoseconds: arrivalNanoseconds, captureNTP: captureNTP)
    }

    /// One 20 ms turn: mixes a frame from every input and emits one encoded frame per output. Emits
    /// nothing while every input is idle (the outputs pause, as a muted sender's would).
    public func tick(nowNanoseconds: Int64, emit: (OutputFrame) -> Void) {
        let frameSamples = self.configuration.mixer.frameSamples
        self.mixer.beginFrame()
        var anyActive = false
        var newestCapture: UInt64?
        var newestArrival: Int64?
        for input in self.inputs.values {
            let decoded: Int? = input.buffer.pop { turn -> Int? in
                input.pcm.withUnsafeMutableBufferPointer { pcm -> Int? in
                    let frame = UnsafeMutableBufferPointer(rebasing: pcm[0..<frameSamples])
                    switch turn {
                    case .idle:
                        return nil
                    case .frame(let payload, let info):
                        newestCapture = max(newestCapture ?? 0, info.captureNTP ?? 0)
                        newestArrival = max(newestArrival ?? .min, info.arrivalNanoseconds)
                        do {
                            let samples = try input.decoder.decode(packet: payload, into: pcm)
                            input.statistics.framesDecoded += 1
                            return samples
                        } catch {
                            input.statistics.decodeErrors += 1
                            return (try? input.decoder.decodeLost(frameSamples: frameSamples, into: frame))
                        }
                    case .lost(let next):
                        if let next, let result = try? input.decoder.decodeFEC(from: next, frameSamples: frameSamples, into: frame) {
                            if result.recoveredFromLBRR {
                                input.statistics.framesRecovered += 1
                            } else {
                                input.statistics.framesConcealed += 1
                            }
                            return result.samplesPerChannel
                        }
                        input.statistics.framesConcealed += 1
                        return try? input.decoder.decodeLost(frameSamples: frameSamples, into: frame)
                    }
                }
            }
            guard let decoded, decoded > 0 else { continue }
            anyActive = true
            input.pcm.withUnsafeBufferPointer { pcm in
                self.mixer.setFrame(input.slot, pcm: UnsafeBufferPointer(rebasing: pcm[0..<min(decoded, frameSamples)]))
            }
        }
        guard anyActive else { return }
        self.mixer.sum()
        self.framesMixed += 1
        for output in self.outputs {
            let keep = output.pcm.withUnsafeMutableBufferPointer { pcm in
                self.mixer.render(excluding: output.excluded, into: pcm, clipper: &output.clipper)
                return self.processFrame?(pcm, nowNanoseconds / 1_000_000) ?? true
            }
            guard keep else { continue }
            var energy: Float = 0
            for sample in output.pcm {
                let value = Float(sample) / 32768
                energy += value * value
            }
            let level = (energy / Float(frameSamples)).squareRoot()
            let length = output.pcm.withUnsafeBufferPointer { pcm in
                output.packet.withUnsafeMutableBytes { packet in try? output.encoder.encode(pcm: pcm, into: packet) }
            }
            guard let length, length > 0 else { continue }
            output.packet.withUnsafeBytes { packet in
                emit(
                    OutputFrame(
                        listener: output.listener, payload: UnsafeRawBufferPointer(rebasing: packet[0..<length]),
                        captureNTP: newestCapture == 0 ? nil : newestCapture, newestArrival: newestArrival,
                        level: level))
            }
        }
    }
}
