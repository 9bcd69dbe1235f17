/// Picks the simulcast (or SVC) layer a subscriber receives from the bandwidth estimate, with
/// hysteresis so a flat or noisy estimate near a layer boundary never makes it oscillate.
///
/// - Down, immediately: when the estimate falls below ``Configuration/downThreshold`` × the current
///   layer's bitrate, switch to the highest layer whose bitrate × `downThreshold` the estimate still
///   covers (the lowest layer when none fits: the base layer is never dropped here).
/// - Up, after a dwell: a higher layer is taken only once the estimate has stayed at or above
///   ``Configuration/upThreshold`` × its bitrate for ``Configuration/upDwellUs`` without interruption.
///   Going up one layer or several at once, whichever the estimate has sustained.
///
/// Because `upThreshold > downThreshold`, an estimate that makes the selector go up is always far from
/// making it come back down: a flat estimate selects one layer for good. This mirrors what deployed
/// SFUs do (a dwell before going up, confirmation before trusting a higher estimate); see
/// mediasoup's 2 s minimum active time per layer and LiveKit's stream allocator.
public struct LayerSelector: Sendable {
    /// Hysteresis parameters.
    public struct Configuration: Sendable, Hashable {
        /// Go up only when the estimate is at least this multiple of the target layer's bitrate.
        public var upThreshold: Double = 1.2
        /// Go down when the estimate is below this multiple of the current layer's bitrate.
        public var downThreshold: Double = 0.95
        /// How long the estimate must stay high enough before going up (µs).
        public var upDwellUs: Int64 = 2_000_000

        /// The defaults described on each property.
        public init() {}

        /// Custom thresholds.
        public init(upThreshold: Double, downThreshold: Double, upDwellUs: Int64) {
            self.upThreshold = upThreshold
            self.downThreshold = downThreshold
            self.upDwellUs = upDwellUs
        }
    }

    /// Why a selector could not be created.
    public enum ConfigurationError: Error, Sendable, Hashable {
        /// No layers were given.
        case noLayers
        /// Layer bitrates must be positive and strictly increasing from the lowest layer.
        case bitratesNotIncreasing
        /// `upThreshold` must be finite and above `downThreshold`, which must be positive; the dwell ≥ 0.
        case invalidThresholds
    }

    /// The parameters in use.
    public let configuration: Configuration
    /// Bitrate of each layer, lowest first (bps).
    public let layerBitrates: [Int]
    /// The selected layer (index into ``layerBitrates``).
    public private(set) var currentLayer: Int
    /// Layer switches so far (up and down).
    public private(set) var switchCount = 0

    private var upCandidate: Int?
    private var upCandidateSinceUs: Int64 = 0

    /// Creates a selector.
    /// - Parameters:
    ///   - layerBitrates: bitrate of each layer, lowest first (bps), e.g. `[150_000, 500_000, 1_500_000]`.
    ///   - initialLayer: layer to start on; the lowest by default, so a new subscriber starts safe.
    ///   - configuration: hysteresis parameters.
    /// - Throws: ``ConfigurationError`` for empty or non-increasing layers or inconsistent thresholds.
    public init(layerBitrates: [Int], initialLayer: Int = 0, configuration: Configuration = Configuration()) throws {
        guard !layerBitrates.isEmpty else { throw ConfigurationError.noLayers }
        guard layerBitrates[0] > 0, zip(layerBitrates, layerBitrates.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw ConfigurationError.bitratesNotIncreasing
        }
        guard configuration.upThreshold.isFinite, configuration.downThreshold.isFinite,
            configuration.downThreshold > 0, configuration.upThreshold > configuration.downThreshold,
            configuration.upDwellUs >= 0
        else { throw ConfigurationError.invalidThresholds }
        self.layerBitrates = layerBitrates
        self.configuration = configuration
        currentLayer = min(max(initialLayer, 0), layerBitrates.count - 1)
    }

    /// Feeds the current estimate.
    /// - Parameters:
    ///   - estimate: available bitrate for this subscriber's video (bps).
    ///   - now: current time (µs).
    /// - Returns: the layer to forward.
    @discardableResult
    public mutating func update(estimate: Int, now: Int64) -> Int {
        let available = Double(estimate)
        if available < configuration.downThreshold * Double(layerBitrates[currentLayer]) {
            var layer = currentLayer
            while layer > 0, available < configuration.downThreshold * Double(layerBitrates[layer]) {
                layer -= 1
            }
            switchTo(layer)
            return currentLayer
        }

        // Highest layer above the current one that the estimate covers with the up margin.
        var candidate: Int?
        var layer = layerBitrates.count - 1
        while layer > currentLayer {
            if available >= configuration.upThreshold * Double(layerBitrates[layer]) {
                candidate = layer
                break
            }
            layer -= 1
        }
        guard let candidate else {
            upCandidate = nil
            return currentLayer
        }
        if let pending = upCandidate {
            // Keep the dwell that already ran if the estimate still covers at least that layer.
            if candidate < pending {
                upCandidate = candidate
            } else if candidate > pending {
                // Higher layers must prove themselves for the full dwell; the running one keeps its clock.
                upCandidate = pending
            }
        } else {
            upCandidate = candidate
            upCandidateSinceUs = now
        }
        if let pending = upCandidate, let held = checkedDifference(now, upCandidateSinceUs),
            held >= configuration.upDwellUs
        {
            switchTo(pending)
        }
        return currentLayer
    }

    private mutating func switchTo(_ layer: Int) {
        upCandidate = nil
        if layer != currentLayer {
            currentLayer = layer
            switchCount += 1
        }
    }
}
