#if canImport(Glibc)
private import Glibc
#elseif canImport(Musl)
private import Musl
#elseif canImport(Darwin)
private import Darwin
#endif

/// The state of the delay-based rate controller (draft-ietf-rmcat-gcc-02 §5.5).
public enum RateControlState: Sendable, Hashable {
    /// Keep the rate: a queue is draining or a decrease just happened.
    case hold
    /// Raise the rate, multiplicatively or additively.
    case increase
    /// Cut the rate to β × the acknowledged rate.
    case decrease
}

/// The delay-based AIMD rate controller of draft-ietf-rmcat-gcc-02 §5.5
/// (<https://datatracker.ietf.org/doc/html/draft-ietf-rmcat-gcc-02#section-5.5>).
///
/// The detector's signal drives a three-state machine:
///
///     +----+--------+-----------+------------+--------+
///     |     \ State |   Hold    |  Increase  |Decrease|
///     |      \      |           |            |        |
///     | Signal\     |           |            |        |
///     +--------+----+-----------+------------+--------+
///     |  Over-use   | Decrease  |  Decrease  |        |
///     +-------------+-----------+------------+--------+
///     |  Normal     | Increase  |            |  Hold  |
///     +-------------+-----------+------------+--------+
///     |  Under-use  |           |   Hold     |  Hold  |
///     +-------------+-----------+------------+--------+
///
/// - Increase: far from convergence the rate grows by `η = 1.08^t` (8 % per second); near it (the rate
///   is within 3 standard deviations of the acknowledged rates seen at past decreases) it grows by
///   about one packet per response time (`100 ms + RTT`). The rate never exceeds
///   `1.5 × R_hat + 10 kbps`, with `R_hat` the acknowledged rate, so an idle sender cannot inflate it.
/// - Decrease: `A_hat = β × R_hat` with `β = 0.85`, at most once per `clamp(RTT, 10 ms, 200 ms)` unless
///   `R_hat` already fell below half the rate; the controller then holds.
///
/// Bitrates are in bits per second, instants in microseconds. No allocation.
public struct AIMDRateController: Sendable {
    /// Controller parameters.
    public struct Configuration: Sendable, Hashable {
        /// Multiplicative decrease factor β (draft §5.5: 0.85).
        public var beta: Double = 0.85
        /// Multiplicative increase per second far from convergence (draft §5.5: 1.08).
        public var multiplicativeIncreasePerSecond: Double = 1.08
        /// Expected packet size for the additive increase (bytes).
        public var expectedPacketSize: Int = 1200
        /// Smallest additive increase, in bits per second per second.
        public var minAdditiveIncreaseBpsPerSecond: Double = 4_000
        /// The rate may not exceed `ackedHeadroom × R_hat + ackedHeadroomOffset` (draft §5.5: 1.5).
        public var ackedHeadroom: Double = 1.5
        /// Constant headroom above the acknowledged rate (bps).
        public var ackedHeadroomOffset: Double = 10_000
        /// Smoothing of the convergence mean/variance (weight of a new decrease sample).
        public var convergenceSmoothing: Double = 0.05

        /// The defaults described on each property.
        public init() {}
    }

    /// The parameters in use.
    public let configuration: Configuration
    /// Lower bound of the rate (bps).
    public let minBitrate: Double
    /// Upper bound of the rate (bps).
    public let maxBitrate: Double
    /// The current delay-based estimate `A_hat` (bps).
    public private(set) var bitrate: Double
    /// The current state.
    public private(set) var state: RateControlState = .hold
    /// Whether the rate is near the link capacity, so increases are additive.
    public var isNearConvergence: Bool {
        guard let mean = capacityMean else { return false }
        let deviation = capacityDeviation(mean: mean)
        return bitrate >= mean - 3 * deviation && bitrate <= mean + 3 * deviation
    }

    private var lastUpdateUs: Int64?
    private var lastDecreaseUs: Int64?
    // Mean of the acknowledged rate at decreases, and its variance normalised by the mean (bps).
    private var capacityMean: Double?
    private var capacityNormalisedVariance: Double = 400

    /// Creates a controller.
    /// - Parameters:
    ///   - startBitrate: initial rate (bps).
    ///   - minBitrate: the rate never goes below this (bps).
    ///   - maxBitrate: the rate never goes above this (bps).
    public init(startBitrate: Int, minBitrate: Int, maxBitrate: Int, configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.minBitrate = Double(max(0, minBitrate))
        self.maxBitrate = max(self.minBitrate, Double(maxBitrate))
        bitrate = min(max(Double(startBitrate), self.minBitrate), self.maxBitrate)
    }

    /// Applies one detector signal.
    /// - Parameters:
    ///   - usage: the over-use detector's hypothesis.
    ///   - ackedBitrate: the acknowledged rate `R_hat` (bps), `nil` while unknown.
    ///   - rttUs: current round-trip time (µs).
    ///   - now: current time (µs).
    /// - Returns: the new estimate (bps).
    @discardableResult
    public mutating func update(usage: BandwidthUsage, ackedBitrate: Double?, rttUs: Int64, now: Int64) -> Double {
        let acked = ackedBitrate.flatMap { $0.isFinite && $0 > 0 ? $0 : nil }
        let elapsedUs = lastUpdateUs.flatMap { checkedDifference(now, $0) }.map { min(max($0, 0), 1_000_000) } ?? 0
        lastUpdateUs = now
        let rtt = min(max(rttUs, 0), 10_000_000)

        switch usage {
        case .overusing:
            state = .decrease
        case .underusing:
            state = .hold
        case .normal:
            if state == .hold || state == .increase { state = .increase } else { state = .hold }
        }

        switch state {
        case .hold:
            break
        case .increase:
            increase(acked: acked, elapsedUs: elapsedUs, rttUs: rtt)
        case .decrease:
            decrease(acked: acked, rttUs: rtt, now: now)
        }
        bitrate = min(max(bitrate, minBitrate), maxBitrate)
        return bitrate
    }

    /// Overrides the estimate (for instance with a probe result or a REMB cap).
    public mutating func setBitrate(_ value: Int) {
        bitrate = min(max(Double(value), minBitrate), maxBitrate)
    }

    private mutating func increase(acked: Double?, elapsedUs: Int64, rttUs: Int64) {
        if let acked, let mean = capacityMean, acked > mean + 3 * capacityDeviation(mean: mean) {
            // The path got faster than anything seen at a decrease: forget the old capacity.
            capacityMean = nil
        }
        let seconds = Double(elapsedUs) / 1_000_000
        var increased: Double
        if isNearConvergence {
            let responseSeconds = 0.1 + Double(rttUs) / 1_000_000
            let packetBits = Double(max(1, configuration.expectedPacketSize) * 8)
            let slope = max(configuration.minAdditiveIncreaseBpsPerSecond, packetBits / responseSeconds)
            increased = bitrate + slope * seconds
        } else {
            let factor = pow(configuration.multiplicativeIncreasePerSecond, min(seconds, 1))
            increased = bitrate + max(bitrate * (factor - 1), 1_000 * seconds)
        }
        if let acked {
            let cap = configuration.ackedHeadroom * acked + configuration.ackedHeadroomOffset
            // Never raise above the cap; never lower the rate because of it either.
            increased = max(bitrate, min(increased, cap))
        }
        bitrate = increased
    }

    private mutating func decrease(acked: Double?, rttUs: Int64, now: Int64) {
        defer { state = .hold }
        guard let acked else {
            bitrate *= configuration.beta
            lastDecreaseUs = now
            return
        }
        let interval = min(max(rttUs, 10_000), 200_000)
        if let last = lastDecreaseUs, let since = checkedDifference(now, last), since >= 0, since < interval,
            acked >= bitrate / 2
        {
            return
        }
        let target = configuration.beta * acked
        bitrate = min(bitrate, target)
        lastDecreaseUs = now
        updateCapacity(sample: acked)
    }

    private mutating func updateCapacity(sample: Double) {
        guard let mean = capacityMean else {
            capacityMean = sample
            capacityNormalisedVariance = 400
            return
        }
        if sample < mean - 3 * capacityDeviation(mean: mean) {
            // The path got slower: restart the statistics from this sample.
            capacityMean = sample
            return
        }
        let alpha = configuration.convergenceSmoothing
        let newMean = (1 - alpha) * mean + alpha * sample
        let error = newMean - sample
        capacityNormalisedVariance = (1 - alpha) * capacityNormalisedVariance + alpha * error * error / max(newMean, 1)
        // Keep the band neither degenerate nor huge: 0.4–2.5 kbps-normalised, i.e. 400–2500 in bps.
        capacityNormalisedVariance = min(max(capacityNormalisedVariance, 400), 2_500)
        capacityMean = newMean
    }

    private func capacityDeviation(mean: Double) -> Double {
        (capacityNormalisedVariance * max(mean, 1)).squareRoot()
    }
}
