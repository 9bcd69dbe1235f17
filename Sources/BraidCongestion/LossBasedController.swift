/// The loss-based controller of draft-ietf-rmcat-gcc-02 §6
/// (<https://datatracker.ietf.org/doc/html/draft-ietf-rmcat-gcc-02#section-6>):
///
///     As_hat(i) = As_hat(i-1) · (1 - 0.5 · p)   if p > 0.10
///     As_hat(i) = 1.05 · As_hat(i-1)            if p < 0.02
///     As_hat(i) = As_hat(i-1)                   otherwise
///
/// where `p` is the fraction of packets lost since the last evaluation.
///
/// Choices the draft leaves open:
/// - Loss is evaluated over at least ``Configuration/minPacketsPerEvaluation`` packets and
///   ``Configuration/minEvaluationIntervalUs``, so one feedback with a single lost packet out of three
///   does not read as 33 % loss.
/// - An increase never takes `As_hat` above the delay-based estimate it is combined with (it may stay
///   above if it already was): loss-free feedback says nothing about capacity the sender never used,
///   and unbounded headroom would make a later loss burst take many steps to bite.
public struct LossBasedController: Sendable {
    /// Controller parameters.
    public struct Configuration: Sendable, Hashable {
        /// Below this loss fraction the rate increases (draft §6: 2 %).
        public var lowLossThreshold: Double = 0.02
        /// Above this loss fraction the rate decreases (draft §6: 10 %).
        public var highLossThreshold: Double = 0.10
        /// Increase factor per evaluation (draft §6: 1.05).
        public var increaseFactor: Double = 1.05
        /// Fewest packets that make one loss evaluation.
        public var minPacketsPerEvaluation: Int = 20
        /// Shortest time between evaluations (µs).
        public var minEvaluationIntervalUs: Int64 = 500_000

        /// The defaults described on each property.
        public init() {}
    }

    /// The parameters in use.
    public let configuration: Configuration
    /// Lower bound (bps).
    public let minBitrate: Double
    /// Upper bound (bps).
    public let maxBitrate: Double
    /// The loss-based estimate `As_hat` (bps).
    public private(set) var bitrate: Double
    /// The loss fraction of the last evaluation (0...1).
    public private(set) var lastLossFraction: Double = 0

    private var pendingReceived = 0
    private var pendingLost = 0
    private var lastEvaluationUs: Int64?

    /// Creates a controller.
    public init(startBitrate: Int, minBitrate: Int, maxBitrate: Int, configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.minBitrate = Double(max(0, minBitrate))
        self.maxBitrate = max(self.minBitrate, Double(maxBitrate))
        bitrate = min(max(Double(startBitrate), self.minBitrate), self.maxBitrate)
    }

    /// Accounts for received and lost packets and, when enough were seen, re-evaluates the estimate.
    /// - Parameters:
    ///   - received: packets the receiver reported.
    ///   - lost: packets reported lost.
    ///   - delayBasedBitrate: the delay-based estimate that bounds increases (bps).
    ///   - now: current time (µs).
    /// - Returns: the loss-based estimate (bps).
    @discardableResult
    public mutating func update(received: Int, lost: Int, delayBasedBitrate: Double, now: Int64) -> Double {
        pendingReceived = pendingReceived.addingSaturated(max(0, received))
        pendingLost = pendingLost.addingSaturated(max(0, lost))
        let total = pendingReceived.addingSaturated(pendingLost)
        guard total >= configuration.minPacketsPerEvaluation else { return bitrate }
        if let last = lastEvaluationUs, let since = checkedDifference(now, last), since >= 0,
            since < configuration.minEvaluationIntervalUs
        {
            return bitrate
        }
        let loss = Double(pendingLost) / Double(total)
        lastLossFraction = loss
        pendingReceived = 0
        pendingLost = 0
        lastEvaluationUs = now

        if loss > configuration.highLossThreshold {
            bitrate *= 1 - 0.5 * loss
        } else if loss < configuration.lowLossThreshold {
            let ceiling = delayBasedBitrate.isFinite ? max(bitrate, delayBasedBitrate) : bitrate
            bitrate = min(bitrate * configuration.increaseFactor, ceiling)
        }
        bitrate = min(max(bitrate, minBitrate), maxBitrate)
        return bitrate
    }

    /// Overrides the estimate.
    public mutating func setBitrate(_ value: Int) {
        bitrate = min(max(Double(value), minBitrate), maxBitrate)
    }
}

extension Int {
    @inlinable
    func addingSaturated(_ other: Int) -> Int {
        let (value, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : value
    }
}
