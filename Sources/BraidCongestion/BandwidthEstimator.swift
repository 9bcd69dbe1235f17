/// A snapshot of a ``BandwidthEstimator``.
public struct BandwidthEstimate: Sendable, Hashable {
    /// The target send rate: `min(delay-based, loss-based, REMB)` clamped to the configured bounds (bps).
    public var bitrate: Int
    /// The delay-based estimate `A_hat` (bps).
    public var delayBasedBitrate: Int
    /// The loss-based estimate `As_hat` (bps).
    public var lossBasedBitrate: Int
    /// The acknowledged (received) rate, when known (bps).
    public var ackedBitrate: Int?
    /// The last REMB value received, if any (bps).
    public var rembBitrate: Int?
    /// The over-use detector's hypothesis.
    public var usage: BandwidthUsage
    /// The delay-based rate controller's state.
    public var state: RateControlState
    /// The loss fraction of the last loss evaluation (0...1).
    public var lossFraction: Double

    /// Creates a snapshot.
    public init(
        bitrate: Int,
        delayBasedBitrate: Int,
        lossBasedBitrate: Int,
        ackedBitrate: Int?,
        rembBitrate: Int?,
        usage: BandwidthUsage,
        state: RateControlState,
        lossFraction: Double
    ) {
        self.bitrate = bitrate
        self.delayBasedBitrate = delayBasedBitrate
        self.lossBasedBitrate = lossBasedBitrate
        self.ackedBitrate = ackedBitrate
        self.rembBitrate = rembBitrate
        self.usage = usage
        self.state = state
        self.lossFraction = lossFraction
    }
}

/// Send-side bandwidth estimation for one subscriber leg, in the manner of Google Congestion Control
/// (draft-ietf-rmcat-gcc-02, <https://datatracker.ietf.org/doc/html/draft-ietf-rmcat-gcc-02>).
///
/// Feed it every transport-wide congestion control feedback (``onFeedback(results:now:)``), the RTT
/// when known (``onRTT(_:)``) and any REMB (``onREMB(bitrate:)``); read ``estimate``.
///
/// Pipeline for each received packet of a feedback:
/// ``AcknowledgedBitrateEstimator`` (incoming rate) and ``InterArrivalGrouper`` (§5.2) →
/// ``TrendlineEstimator`` (§5.3) → ``OveruseDetector`` (§5.4); then once per feedback
/// ``AIMDRateController`` (§5.5) and ``LossBasedController`` (§6). The target is the minimum of the
/// delay-based and loss-based estimates (§6) and of the last REMB, clamped to the configured range.
///
/// When the leg negotiated no transport-wide feedback, the target is simply the last REMB (the
/// receiver runs the estimator), clamped; before any input it is the start bitrate.
///
/// All buffers are allocated at init: a feedback never allocates. Bad input (negative sizes, absurd
/// or overflowing timestamps, reordering, clock jumps, negative REMB) never traps.
public struct BandwidthEstimator: Sendable {
    /// Estimator parameters.
    public struct Configuration: Sendable, Hashable {
        /// Initial target (bps).
        public var startBitrate: Int = 300_000
        /// The target never goes below this (bps).
        public var minBitrate: Int = 30_000
        /// The target never goes above this (bps).
        public var maxBitrate: Int = 10_000_000
        /// RTT assumed until ``BandwidthEstimator/onRTT(_:)`` is called (µs).
        public var initialRttUs: Int64 = 100_000
        /// Send-time span of a packet group (µs; draft §5.2: 5 ms).
        public var burstWindowUs: Int64 = 5_000
        /// Trendline regression window (points).
        public var trendlineWindow: Int = 20
        /// Over-use detector parameters.
        public var detector = OveruseDetector.Configuration()
        /// Delay-based rate controller parameters.
        public var rateControl = AIMDRateController.Configuration()
        /// Loss-based controller parameters.
        public var lossControl = LossBasedController.Configuration()

        /// The defaults described on each property.
        public init() {}

        /// Defaults with the given bitrates (bps).
        public init(startBitrate: Int, minBitrate: Int, maxBitrate: Int) {
            self.startBitrate = startBitrate
            self.minBitrate = minBitrate
            self.maxBitrate = maxBitrate
        }
    }

    /// The parameters in use.
    public let configuration: Configuration

    private let minBitrate: Int
    private let maxBitrate: Int
    private var grouper: InterArrivalGrouper
    private var trendline: TrendlineEstimator
    private var detector: OveruseDetector
    private var acked = AcknowledgedBitrateEstimator()
    private var delayBased: AIMDRateController
    private var lossBased: LossBasedController
    private var rttUs: Int64
    private var rembBitrate: Int?
    private var hasTransportFeedback = false

    /// Creates an estimator.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        minBitrate = max(0, configuration.minBitrate)
        maxBitrate = max(minBitrate, configuration.maxBitrate)
        let start = min(max(configuration.startBitrate, minBitrate), maxBitrate)
        grouper = InterArrivalGrouper(burstWindowUs: configuration.burstWindowUs)
        trendline = TrendlineEstimator(windowSize: configuration.trendlineWindow)
        detector = OveruseDetector(configuration: configuration.detector)
        delayBased = AIMDRateController(
            startBitrate: start,
            minBitrate: minBitrate,
            maxBitrate: maxBitrate,
            configuration: configuration.rateControl
        )
        lossBased = LossBasedController(
            startBitrate: start,
            minBitrate: minBitrate,
            maxBitrate: maxBitrate,
            configuration: configuration.lossControl
        )
        rttUs = max(0, configuration.initialRttUs)
    }

    /// Processes one transport-wide congestion control feedback.
    ///
    /// Inlinable so the loop is specialised for the caller's collection: iterating an unspecialised
    /// `some Collection` boxes every element (one heap allocation per packet result).
    /// - Parameters:
    ///   - results: the packets the feedback covers, in the order reported (normally sequence order).
    ///   - now: the time the feedback was received, on the sender's monotonic clock (µs).
    /// - Returns: the updated estimate.
    @inlinable @discardableResult
    public mutating func onFeedback(results: some Collection<PacketResult>, now: Int64) -> BandwidthEstimate {
        var counts = FeedbackCounts()
        for packet in results {
            self.add(packet, to: &counts)
        }
        return self.finishFeedback(counts, now: now)
    }

    /// Received and lost packets of one feedback.
    @usableFromInline
    struct FeedbackCounts {
        @usableFromInline var received = 0
        @usableFromInline var lost = 0
        @usableFromInline init() {}
    }

    /// Feeds one packet result to the acknowledged-bitrate, inter-arrival and over-use stages.
    @usableFromInline
    mutating func add(_ packet: PacketResult, to counts: inout FeedbackCounts) {
        guard let arrival = packet.arrivalTimeUs else {
            counts.lost += 1
            return
        }
        counts.received += 1
        let size = max(0, packet.size)
        acked.add(arrivalTimeUs: arrival, size: size)
        let resetsBefore = grouper.resets
        let delta = grouper.add(sendTimeUs: packet.sendTimeUs, arrivalTimeUs: arrival, size: size)
        if grouper.resets != resetsBefore {
            // The arrival clock jumped or reordering was severe: older delay history is meaningless.
            trendline.reset()
        }
        if let delta {
            let trend = trendline.update(delta)
            detector.detect(modifiedTrend: trend, sendDeltaUs: delta.sendDeltaUs, now: delta.arrivalTimeUs)
        }
    }

    /// Updates the rate controllers once the whole feedback has been read.
    @usableFromInline
    mutating func finishFeedback(_ counts: FeedbackCounts, now: Int64) -> BandwidthEstimate {
        guard counts.received + counts.lost > 0 else { return estimate }
        hasTransportFeedback = true
        if counts.received > 0 {
            delayBased.update(usage: detector.usage, ackedBitrate: acked.bitrate, rttUs: rttUs, now: now)
        }
        lossBased.update(received: counts.received, lost: counts.lost, delayBasedBitrate: delayBased.bitrate, now: now)
        return estimate
    }

    /// Records a receiver estimated maximum bitrate (REMB, draft-alvestrand-rmcat-remb-03 §2.2) (bps).
    ///
    /// With transport-wide feedback it caps the target; without it, it is the target.
    @discardableResult
    public mutating func onREMB(bitrate: Int) -> BandwidthEstimate {
        rembBitrate = max(0, bitrate)
        return estimate
    }

    /// Forgets the last REMB (the receiver stopped sending it).
    public mutating func clearREMB() {
        rembBitrate = nil
    }

    /// Updates the round-trip time (µs), from RTCP receiver reports or feedback timing.
    public mutating func onRTT(_ rttUs: Int64) {
        self.rttUs = min(max(0, rttUs), 10_000_000)
    }

    /// The current estimate.
    public var estimate: BandwidthEstimate {
        let delay = clampedBitrate(delayBased.bitrate, lower: minBitrate, upper: maxBitrate)
        let loss = clampedBitrate(lossBased.bitrate, lower: minBitrate, upper: maxBitrate)
        var target: Int
        if hasTransportFeedback {
            target = min(delay, loss)
            if let rembBitrate { target = min(target, rembBitrate) }
        } else {
            target = rembBitrate ?? delay
        }
        return BandwidthEstimate(
            bitrate: min(max(target, minBitrate), maxBitrate),
            delayBasedBitrate: delay,
            lossBasedBitrate: loss,
            ackedBitrate: acked.bitrate.map { clampedBitrate($0, lower: 0, upper: Int.max) },
            rembBitrate: rembBitrate,
            usage: detector.usage,
            state: delayBased.state,
            lossFraction: lossBased.lastLossFraction
        )
    }
}
