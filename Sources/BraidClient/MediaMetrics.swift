import BraidWire
import NIOCore

/// Wall-clock time as a 64-bit NTP timestamp (UQ32.32 seconds since 1900,
/// [RFC 5905 §6](https://www.rfc-editor.org/rfc/rfc5905#section-6)), the format of abs-capture-time and
/// RTCP sender reports: conveniences over `WallClock` (BraidWire), which holds the arithmetic for the node and the
/// client (publishers and subscribers keep a `WallClock` mapping of their event loop's clock).
public enum NTPTime {
    /// Seconds from 1900-01-01 to 1970-01-01.
    public static let unixEpochOffset = UInt64(WallClock.ntpUnixOffsetSeconds)

    /// The host's wall clock now (one reading of the real-time clock).
    public static func now() -> UInt64 {
        let now = NIODeadline.now()
        return WallClock.system(now: now).ntpTimestamp(at: now)
    }

    /// Converts Unix time to NTP (`WallClock.ntpTimestamp(unixNanoseconds:)`; saturating).
    public static func timestamp(unixSeconds: Int64, nanoseconds: Int64) -> UInt64 {
        let (whole, overflow) = unixSeconds.multipliedReportingOverflow(by: 1_000_000_000)
        let fraction = max(0, min(nanoseconds, 999_999_999))
        let (sum, overflowSum) = whole.addingReportingOverflow(fraction)
        let unix = overflow || overflowSum ? (unixSeconds > 0 ? Int64.max : 0) : sum
        return WallClock.ntpTimestamp(unixNanoseconds: unix)
    }

    /// `later − earlier` in microseconds (`WallClock.microseconds(fromNTP:to:)`).
    public static func microseconds(from earlier: UInt64, to later: UInt64) -> Int64 {
        WallClock.microseconds(fromNTP: earlier, to: later)
    }
}

/// A latency distribution in 1 ms buckets from 0 to 2 s (plus an overflow bucket), with exact mean,
/// minimum and maximum. Fixed storage: recording never allocates.
public struct LatencyHistogram: Sendable, Hashable {
    /// Width of a bucket in microseconds.
    public static let bucketMicroseconds: Int64 = 1000
    /// Number of regular buckets; larger values land in the overflow bucket.
    public static let bucketCount = 2000

    var buckets: [UInt32]
    /// Samples recorded.
    public private(set) var count: Int = 0
    /// Samples below zero (the sender's clock is ahead): counted, not bucketed.
    public private(set) var negativeCount: Int = 0
    var sum: Int64 = 0
    /// Smallest sample, µs.
    public private(set) var minimum: Int64 = .max
    /// Largest sample, µs.
    public private(set) var maximum: Int64 = .min

    public init() {
        self.buckets = Array(repeating: 0, count: Self.bucketCount + 1)
    }

    /// Records one sample in microseconds.
    public mutating func record(microseconds value: Int64) {
        guard value >= 0 else {
            self.negativeCount += 1
            return
        }
        self.count += 1
        self.sum &+= value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        let index = Int(min(value / Self.bucketMicroseconds, Int64(Self.bucketCount)))
        self.buckets[index] &+= 1
    }

    /// Adds every sample of `other`.
    public mutating func merge(_ other: LatencyHistogram) {
        guard other.count > 0 || other.negativeCount > 0 else { return }
        for index in self.buckets.indices { self.buckets[index] &+= other.buckets[index] }
        self.count += other.count
        self.negativeCount += other.negativeCount
        self.sum &+= other.sum
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
    }

    /// Mean in microseconds, nil when empty.
    public var mean: Int64? { self.count == 0 ? nil : self.sum / Int64(self.count) }

    /// The upper edge (µs) of the bucket holding quantile `q` (0...1), nil when empty. The overflow
    /// bucket reports ``maximum``.
    public func percentile(_ q: Double) -> Int64? {
        guard self.count > 0 else { return nil }
        let rank = max(1, Int((Double(self.count) * min(max(q, 0), 1)).rounded(.up)))
        var seen = 0
        for (index, bucketCount) in self.buckets.enumerated() {
            seen += Int(bucketCount)
            if seen >= rank {
                if index == Self.bucketCount { return self.maximum }
                return min(Int64(index + 1) * Self.bucketMicroseconds, self.maximum)
            }
        }
        return self.maximum
    }
}

/// Counts video freezes as the W3C `RTCInboundRtpStreamStats` define them
/// ([webrtc-stats §freezeCount](https://www.w3.org/TR/webrtc-stats/#dom-rtcinboundrtpstreamstats-freezecount)):
/// an interval between two rendered frames is a freeze when it is at least
/// `max(3 × avg, avg + 150 ms)`, `avg` being the mean of the previous 30 inter-frame intervals. As in
/// libwebrtc, nothing is detected before 5 intervals are known, and every interval (freezes included)
/// joins the window afterwards.
public struct FreezeDetector: Sendable, Hashable {
    /// Intervals averaged.
    public static let window = 30
    /// Intervals needed before a freeze can be detected.
    public static let minimumSamples = 5
    /// The additive threshold.
    public static let minimumIncrease: TimeAmount = .milliseconds(150)

    var intervals: [Int64]
    var next = 0
    var filled = 0
    var last: NIODeadline?
    /// Freezes detected.
    public private(set) var freezeCount = 0
    /// Sum of the freeze intervals.
    public private(set) var totalFreezesDuration: TimeAmount = .zero
    /// Frames rendered.
    public private(set) var framesRendered = 0

    public init() {
        self.intervals = Array(repeating: 0, count: Self.window)
    }

    /// Records a frame rendered at `time`; returns true when the interval since the previous one is a freeze.
    @discardableResult
    public mutating func frameRendered(at time: NIODeadline) -> Bool {
        self.framesRendered += 1
        defer { self.last = time }
        guard let last = self.last else { return false }
        let interval = (time - last).nanoseconds
        var isFreeze = false
        if self.filled >= Self.minimumSamples {
            var sum: Int64 = 0
            for index in 0..<self.filled { sum += self.intervals[index] }
            let average = sum / Int64(self.filled)
            let threshold = max(3 * average, average + Self.minimumIncrease.nanoseconds)
            if interval >= threshold {
                isFreeze = true
                self.freezeCount += 1
                self.totalFreezesDuration = self.totalFreezesDuration + .nanoseconds(interval)
            }
        }
        self.intervals[self.next] = interval
        self.next = (self.next + 1) % Self.window
        self.filled = min(self.filled + 1, Self.window)
        return isFreeze
    }
}
