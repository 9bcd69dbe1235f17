/// What the delay-based detector concludes about the path (draft-ietf-rmcat-gcc-02 §5.4).
public enum BandwidthUsage: Sendable, Hashable {
    /// The queuing delay is stable.
    case normal
    /// The queuing delay grows: the send rate exceeds the path capacity.
    case overusing
    /// The queuing delay shrinks: a queue is draining.
    case underusing
}

/// Compares the delay trend with an adaptive threshold and signals over-use or under-use.
///
/// draft-ietf-rmcat-gcc-02 §5.4 (<https://datatracker.ietf.org/doc/html/draft-ietf-rmcat-gcc-02#section-5.4>):
/// over-use is signalled when the trend `m(i)` stays above `del_var_th` for at least
/// ``Configuration/overuseTimeThresholdUs`` (10 ms) and more than one sample, and `m(i)` is not
/// falling; under-use as soon as `m(i) < -del_var_th`. The threshold follows `|m(i)|`:
///
///     del_var_th(i) = del_var_th(i-1) + (t(i) - t(i-1)) · K(i) · (|m(i)| - del_var_th(i-1))
///
/// with `K(i) = k_d` when `|m(i)| < del_var_th(i-1)` and `k_u` otherwise, no update when
/// `|m(i)| - del_var_th(i-1) > 15 ms` (a spike such as a route change), and clamped to 6–600 ms (§5.6).
/// The adaptation keeps a GCC flow from being starved by loss-based TCP flows that fill the queue.
///
/// The defaults of `k_u`/`k_d` are those deployed with the trendline estimator (whose output is scaled
/// differently from the draft's Kalman filter); the draft's own values (0.01 / 0.00018) can be set in
/// ``Configuration``.
public struct OveruseDetector: Sendable {
    /// Detector parameters.
    public struct Configuration: Sendable, Hashable {
        /// Threshold gain when `|m| ≥ threshold` (per ms).
        public var kUp: Double = 0.0087
        /// Threshold gain when `|m| < threshold` (per ms).
        public var kDown: Double = 0.039
        /// Initial threshold (ms).
        public var initialThresholdMs: Double = 12.5
        /// Lower threshold bound (draft §5.6: 6 ms).
        public var minThresholdMs: Double = 6
        /// Upper threshold bound (draft §5.6: 600 ms).
        public var maxThresholdMs: Double = 600
        /// Over-use must persist this long before it is signalled (draft §5.4: 10 ms).
        public var overuseTimeThresholdUs: Int64 = 10_000
        /// Largest time step used in one threshold update, so a pause cannot swing it (µs).
        public var maxThresholdUpdateStepUs: Int64 = 100_000

        /// The defaults described on each property.
        public init() {}
    }

    /// The parameters in use.
    public let configuration: Configuration
    /// The current adaptive threshold `del_var_th` (ms).
    public private(set) var thresholdMs: Double
    /// The current hypothesis.
    public private(set) var usage: BandwidthUsage = .normal

    private var overuseTimeUs: Int64 = -1
    private var overuseCount = 0
    private var previousTrend: Double = 0
    private var lastUpdateUs: Int64?

    /// Creates a detector.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        thresholdMs = configuration.initialThresholdMs
    }

    /// Feeds one modified trend.
    /// - Parameters:
    ///   - modifiedTrend: output of ``TrendlineEstimator`` (ms scale).
    ///   - sendDeltaUs: inter-departure time of the groups the trend was computed from (µs).
    ///   - now: the time of this sample, on any monotonic clock (µs).
    /// - Returns: the updated hypothesis.
    @discardableResult
    public mutating func detect(modifiedTrend: Double, sendDeltaUs: Int64, now: Int64) -> BandwidthUsage {
        guard modifiedTrend.isFinite else { return usage }
        let step = max(0, min(sendDeltaUs, configuration.maxThresholdUpdateStepUs))
        if modifiedTrend > thresholdMs {
            overuseTimeUs = overuseTimeUs < 0 ? step / 2 : overuseTimeUs + step
            overuseCount += 1
            if overuseTimeUs > configuration.overuseTimeThresholdUs, overuseCount > 1,
                modifiedTrend >= previousTrend
            {
                overuseTimeUs = 0
                overuseCount = 0
                usage = .overusing
            }
        } else if modifiedTrend < -thresholdMs {
            overuseTimeUs = -1
            overuseCount = 0
            usage = .underusing
        } else {
            overuseTimeUs = -1
            overuseCount = 0
            usage = .normal
        }
        previousTrend = modifiedTrend
        adaptThreshold(modifiedTrend, now: now)
        return usage
    }

    private mutating func adaptThreshold(_ trend: Double, now: Int64) {
        let last = lastUpdateUs ?? now
        lastUpdateUs = now
        let magnitude = abs(trend)
        // draft §5.4: ignore spikes far above the threshold.
        if magnitude > thresholdMs + 15 { return }
        let elapsedUs =
            checkedDifference(now, last).map { max(0, min($0, configuration.maxThresholdUpdateStepUs)) } ?? 0
        let k = magnitude < thresholdMs ? configuration.kDown : configuration.kUp
        thresholdMs += k * (magnitude - thresholdMs) * Double(elapsedUs) / 1000
        thresholdMs = min(max(thresholdMs, configuration.minThresholdMs), configuration.maxThresholdMs)
    }
}
