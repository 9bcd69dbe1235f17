import BraidCongestion

/// Deterministic pseudo-random numbers (SplitMix64), so every simulation run is identical.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A single-bottleneck path: a FIFO draining at `capacityBps`, a tail drop when the queue holds more
/// than `maxQueueDelayUs` of data, random loss, and a fixed propagation delay. A sender paces 1200-byte
/// packets at the estimator's target, the receiver (whose clock has a large offset from the sender's)
/// reports every packet in a transport-wide feedback every `feedbackIntervalUs`, and the feedback
/// reaches the sender one propagation delay later.
struct LinkSimulation {
    var capacityBps: Double
    var propagationUs: Int64 = 25_000
    var maxQueueDelayUs: Double = 400_000
    var randomLoss: Double = 0
    /// Extra delay after the bottleneck, uniform in `0..<jitterUs`; it reorders packets when large.
    var jitterUs: Int64 = 0
    var packetSize = 1200
    var feedbackIntervalUs: Int64 = 100_000
    /// Receiver clock = true time + this offset.
    var receiverClockOffsetUs: Int64 = 7_000_000_000
    var estimator: BandwidthEstimator

    private(set) var nowUs: Int64 = 0
    /// (time µs, target bps) after each feedback.
    private(set) var trace: [(timeUs: Int64, bitrate: Int)] = []
    private(set) var sentPackets = 0
    private(set) var lostPackets = 0

    private var rng = SplitMix64(seed: 0x5EED)
    private var linkFreeAtUs: Double = 0
    private var nextSendUs: Int64 = 0
    private var nextFeedbackUs: Int64
    private var sequence: UInt16 = 0
    /// Packets the receiver has not reported yet, with the receiver-clock time they become reportable.
    private var pending: [(result: PacketResult, reportableAtUs: Int64)] = []

    init(capacityBps: Double, estimator: BandwidthEstimator) {
        self.capacityBps = capacityBps
        self.estimator = estimator
        nextFeedbackUs = feedbackIntervalUs
        pending.reserveCapacity(4096)
    }

    var bitrate: Int { estimator.estimate.bitrate }

    /// Runs the simulation until `endUs` (true time).
    mutating func run(until endUs: Int64) {
        while nowUs < endUs {
            if nextSendUs <= nextFeedbackUs {
                nowUs = nextSendUs
                send()
            } else {
                nowUs = nextFeedbackUs
                deliverFeedback()
            }
        }
    }

    private mutating func send() {
        let bits = Double(packetSize * 8)
        var arrival: Int64?
        let queueStart = max(linkFreeAtUs, Double(nowUs))
        let queuedUs = queueStart - Double(nowUs)
        if queuedUs <= maxQueueDelayUs {
            let departure = queueStart + bits / capacityBps * 1_000_000
            linkFreeAtUs = departure
            if randomLoss == 0 || Double.random(in: 0..<1, using: &rng) >= randomLoss {
                arrival = Int64(departure) + propagationUs
                if jitterUs > 0 { arrival! += Int64.random(in: 0..<jitterUs, using: &rng) }
            }
        }
        if arrival == nil { lostPackets += 1 }
        let result = PacketResult(
            sequenceNumber: sequence,
            sendTimeUs: nowUs,
            size: packetSize,
            arrivalTimeUs: arrival.map { $0 + receiverClockOffsetUs }
        )
        // A loss is noticed by the receiver when a later packet arrives; approximate with the time the
        // packet would have arrived over an empty queue.
        pending.append((result, (arrival ?? (nowUs + propagationUs)) + receiverClockOffsetUs))
        sequence &+= 1
        sentPackets += 1
        let rate = Double(max(estimator.estimate.bitrate, 1))
        nextSendUs = nowUs + max(1, Int64(bits / rate * 1_000_000))
    }

    private mutating func deliverFeedback() {
        // The receiver builds the feedback at `nowUs - propagation` (its clock) and it arrives now.
        let builtAtReceiverClock = nowUs - propagationUs + receiverClockOffsetUs
        var reported: [PacketResult] = []
        var kept: [(result: PacketResult, reportableAtUs: Int64)] = []
        for entry in pending {
            if entry.reportableAtUs <= builtAtReceiverClock {
                reported.append(entry.result)
            } else {
                kept.append(entry)
            }
        }
        pending = kept
        if !reported.isEmpty {
            estimator.onFeedback(results: reported, now: nowUs)
        }
        trace.append((nowUs, estimator.estimate.bitrate))
        nextFeedbackUs += feedbackIntervalUs
    }

    /// First time at or after `fromUs` when the target entered `range`, if it did.
    func firstTime(from fromUs: Int64, in range: ClosedRange<Double>) -> Int64? {
        trace.first { $0.timeUs >= fromUs && range.contains(Double($0.bitrate)) }?.timeUs
    }

    /// Targets sampled in `[fromUs, toUs)`.
    func bitrates(from fromUs: Int64, to toUs: Int64) -> [Int] {
        trace.filter { $0.timeUs >= fromUs && $0.timeUs < toUs }.map(\.bitrate)
    }
}
