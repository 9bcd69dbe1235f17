public import BraidCodecs

/// Mixes mono PCM inputs, one frame each per tick, into one frame for every listener and, for a listener
/// who is also an input, a frame without their own voice (mix-minus). Levels are normalised: each input
/// is brought toward ``Configuration/targetLevel`` by a slowly moving gain, so a quiet and a loud talker
/// come out alike, and the sum passes through libopus's soft clipper instead of wrapping or cutting.
///
/// ```
///  input 0 ─ level (RMS, gated, ~0.5 s) ─ gain ramp ─┐
///  input 1 ─ …                                      ─┼─ Σ ─┬─ soft clip ─▶ the mix (everyone)
///  input 2 ─ …                                      ─┘     └─ Σ − input k ─ soft clip ─▶ mix-minus k
/// ```
///
/// Frames below ``Configuration/gate`` (silence, background) do not move an input's level estimate, so
/// silence is never amplified. Pure and allocation-free per frame: buffers are made when inputs are
/// added.
public struct AudioMixer {
    /// How levels are normalised.
    public struct Configuration: Sendable, Hashable {
        /// Samples per channel in a frame (960: 20 ms at 48 kHz).
        public var frameSamples: Int
        /// The RMS level every input is brought to, full scale = 1.0 (0.1 ≈ −20 dBFS).
        public var targetLevel: Float
        /// Bounds of the normalising gain.
        public var minimumGain: Float
        public var maximumGain: Float
        /// Frames with an RMS below this are not speech: they leave the level estimate alone.
        public var gate: Float
        /// How fast the level estimate follows (fraction of the difference per frame; 0.08 ≈ 0.25 s).
        public var levelSmoothing: Float

        /// A configuration.
        public init(
            frameSamples: Int = 960, targetLevel: Float = 0.1, minimumGain: Float = 0.1, maximumGain: Float = 10,
            gate: Float = 0.003, levelSmoothing: Float = 0.08
        ) {
            self.frameSamples = frameSamples
            self.targetLevel = targetLevel
            self.minimumGain = minimumGain
            self.maximumGain = maximumGain
            self.gate = gate
            self.levelSmoothing = levelSmoothing
        }
    }

    private struct Input {
        var inUse = true
        /// This tick's frame after gain; zeros when the input had nothing.
        var scaled: [Float]
        var contributes = false
        var level: Float?
        var gain: Float = 1
    }

    public let configuration: Configuration
    private var inputs: [Input] = []
    private var total: [Float]
    private var scratch: [Float]

    /// A mixer with no inputs.
    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        self.total = Array(repeating: 0, count: configuration.frameSamples)
        self.scratch = Array(repeating: 0, count: configuration.frameSamples)
    }

    /// Adds an input; returns its slot (a freed one is reused).
    public mutating func addInput() -> Int {
        if let free = self.inputs.firstIndex(where: { !$0.inUse }) {
            self.inputs[free] = Input(scaled: Array(repeating: 0, count: self.configuration.frameSamples))
            return free
        }
        self.inputs.append(Input(scaled: Array(repeating: 0, count: self.configuration.frameSamples)))
        return self.inputs.count - 1
    }

    /// Removes the input in `slot`.
    public mutating func removeInput(_ slot: Int) {
        guard self.inputs.indices.contains(slot) else { return }
        self.inputs[slot].inUse = false
        self.inputs[slot].contributes = false
    }

    /// The normalising gain applied to `slot` now.
    public func gain(of slot: Int) -> Float { self.inputs.indices.contains(slot) ? self.inputs[slot].gain : 0 }

    /// Starts a tick: every input is silent until ``setFrame(_:pcm:)`` gives it a frame.
    public mutating func beginFrame() {
        for index in self.inputs.indices { self.inputs[index].contributes = false }
    }

    /// This tick's frame of input `slot` (decoded or concealed; `frameSamples` 16-bit samples).
    public mutating func setFrame(_ slot: Int, pcm: UnsafeBufferPointer<Int16>) {
        guard self.inputs.indices.contains(slot), self.inputs[slot].inUse else { return }
        let count = min(pcm.count, self.configuration.frameSamples)
        var energy: Float = 0
        for index in 0..<count {
            let sample = Float(pcm[index]) / 32768
            energy += sample * sample
        }
        let rms = count > 0 ? (energy / Float(count)).squareRoot() : 0
        let c = self.configuration
        var input = self.inputs[slot]
        if rms >= c.gate {
            input.level = input.level.map { $0 + (rms - $0) * c.levelSmoothing } ?? rms
        }
        let target = input.level.map { min(c.maximumGain, max(c.minimumGain, c.targetLevel / $0)) } ?? 1
        // Ramp from the last gain to the new one across the frame: no step, no click.
        let start = input.gain
        let step = (target - start) / Float(max(1, c.frameSamples))
        input.scaled.withUnsafeMutableBufferPointer { scaled in
            for index in 0..<c.frameSamples {
                let sample = index < count ? Float(pcm[index]) / 32768 : 0
                scaled[index] = sample * (start + step * Float(index + 1))
            }
        }
        input.gain = target
        input.contributes = true
        self.inputs[slot] = input
    }

    /// Sums this tick's frames; call once after the inputs' ``setFrame(_:pcm:)``.
    public mutating func sum() {
        self.total.withUnsafeMutableBufferPointer { total in
            for index in total.indices { total[index] = 0 }
            for input in self.inputs where input.contributes {
                input.scaled.withUnsafeBufferPointer { scaled in
                    for index in total.indices { total[index] += scaled[index] }
                }
            }
        }
    }

    /// Whether `slot` gave a frame this tick.
    public func contributed(_ slot: Int) -> Bool { self.inputs.indices.contains(slot) && self.inputs[slot].contributes }

    /// Writes this tick's mix, without the inputs in `excluding` (mix-minus: a listener's own inputs),
    /// soft-clipped into `pcm` (`frameSamples` 16-bit samples). `clipper` is the output's own state.
    public mutating func render(
        excluding: [Int] = [], into pcm: UnsafeMutableBufferPointer<Int16>, clipper: inout OpusSoftClipper
    ) {
        let frame = self.configuration.frameSamples
        self.scratch.withUnsafeMutableBufferPointer { out in
            self.total.withUnsafeBufferPointer { total in
                for index in 0..<frame { out[index] = total[index] }
            }
            for own in excluding where self.inputs.indices.contains(own) && self.inputs[own].contributes {
                self.inputs[own].scaled.withUnsafeBufferPointer { mine in
                    for index in 0..<frame { out[index] -= mine[index] }
                }
            }
            clipper.apply(out)
            for index in 0..<min(frame, pcm.count) {
                pcm[index] = Int16(max(-32768, min(32767, (out[index] * 32768).rounded())))
            }
        }
    }
}
