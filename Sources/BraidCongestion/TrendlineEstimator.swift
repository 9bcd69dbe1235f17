/// Estimates the one-way delay gradient from inter-group deltas by linear regression.
///
/// draft-ietf-rmcat-gcc-02 §5.3 (<https://datatracker.ietf.org/doc/html/draft-ietf-rmcat-gcc-02#section-5.3>)
/// estimates the queuing-delay gradient `m(i)` with a Kalman filter. Deployed GCC replaced that filter
/// with a trendline: the delay variations `d(i)` are accumulated into a one-way queuing delay,
/// exponentially smoothed, and the slope of a least-squares line through the last ``windowSize``
/// (arrival time, smoothed delay) points is the gradient. A positive slope means a queue is building.
///
/// The output, the *modified trend*, is `slope × min(deltas, 60) × thresholdGain`, so it is comparable
/// with the over-use threshold in milliseconds (draft §5.4) and is damped until enough deltas were seen.
///
/// The window is a ring allocated once at init; ``update(_:)`` never allocates.
public struct TrendlineEstimator: Sendable {
    /// Number of points in the regression window.
    public let windowSize: Int
    /// Weight of the previous smoothed delay in the exponential smoothing (0...1).
    public let smoothing: Double
    /// Gain applied to the slope so it is on the scale of the detector threshold.
    public let thresholdGain: Double

    /// The latest modified trend; 0 until the window has filled.
    public private(set) var modifiedTrend: Double = 0
    /// The latest raw slope (ms of queuing delay per ms); 0 until the window has filled.
    public private(set) var slope: Double = 0
    /// Deltas seen since the last reset, saturating at 1000.
    public private(set) var deltaCount = 0

    private var accumulatedDelayMs: Double = 0
    private var smoothedDelayMs: Double = 0
    private var firstArrivalUs: Int64?
    // Ring of (x: ms since first arrival, y: smoothed delay ms).
    private var xs: [Double]
    private var ys: [Double]
    private var head = 0
    private var count = 0

    /// Creates an estimator.
    /// - Parameters:
    ///   - windowSize: regression window (points); at least 2. 20 by default.
    ///   - smoothing: weight of history in the delay smoothing; 0.9 by default.
    ///   - thresholdGain: scale of the modified trend; 4 by default.
    public init(windowSize: Int = 20, smoothing: Double = 0.9, thresholdGain: Double = 4.0) {
        self.windowSize = max(2, windowSize)
        self.smoothing = smoothing.isFinite ? min(max(smoothing, 0), 1) : 0.9
        self.thresholdGain = thresholdGain.isFinite ? thresholdGain : 4.0
        xs = Array(repeating: 0, count: self.windowSize)
        ys = Array(repeating: 0, count: self.windowSize)
    }

    /// Adds one inter-group delta and returns the new modified trend.
    @discardableResult
    public mutating func update(_ delta: InterArrivalDelta) -> Double {
        // Deltas are bounded by the grouper's clock-jump check, but stay safe for any caller.
        let variationMs = Double(delta.arrivalDeltaUs) / 1000 - Double(delta.sendDeltaUs) / 1000
        guard variationMs.isFinite else { return modifiedTrend }
        if deltaCount < 1000 { deltaCount += 1 }
        accumulatedDelayMs += variationMs
        smoothedDelayMs = smoothing * smoothedDelayMs + (1 - smoothing) * accumulatedDelayMs

        let first = firstArrivalUs ?? delta.arrivalTimeUs
        firstArrivalUs = first
        let sinceFirst = checkedDifference(delta.arrivalTimeUs, first).map { Double($0) / 1000 } ?? 0

        xs[head] = sinceFirst
        ys[head] = smoothedDelayMs
        head = head + 1 == windowSize ? 0 : head + 1
        if count < windowSize { count += 1 }

        if count == windowSize, let fitted = Self.leastSquaresSlope(xs, ys) {
            slope = fitted
            modifiedTrend = Double(min(deltaCount, 60)) * slope * thresholdGain
        }
        return modifiedTrend
    }

    /// Forgets the history (after a reset of the grouper).
    public mutating func reset() {
        accumulatedDelayMs = 0
        smoothedDelayMs = 0
        firstArrivalUs = nil
        head = 0
        count = 0
        deltaCount = 0
        slope = 0
        modifiedTrend = 0
    }

    /// Slope of the ordinary least-squares line through the points, or `nil` when all x are equal.
    static func leastSquaresSlope(_ xs: [Double], _ ys: [Double]) -> Double? {
        let n = Double(xs.count)
        var sumX = 0.0
        var sumY = 0.0
        for i in xs.indices {
            sumX += xs[i]
            sumY += ys[i]
        }
        let meanX = sumX / n
        let meanY = sumY / n
        var numerator = 0.0
        var denominator = 0.0
        for i in xs.indices {
            let dx = xs[i] - meanX
            numerator += dx * (ys[i] - meanY)
            denominator += dx * dx
        }
        guard denominator > 0, numerator.isFinite else { return nil }
        return numerator / denominator
    }
}
