public import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Intervals, buffer sizes and thresholds of the forwarding core; the defaults are production values.
public struct SFUConfiguration: Sendable {
    /// Minimum time between two keyframe requests sent upstream for one stream (mediasoup: 1 s).
    public var keyframeRequestInterval: TimeAmount = .seconds(1)
    /// How often receiver reports go to each publisher (RFC 3550 §6.2 suggests ~5 s; WebRTC stacks use 1 s).
    public var receiverReportInterval: TimeAmount = .seconds(1)
    /// How often transport-wide feedback goes to each publisher (libwebrtc, pion, mediasoup: 100 ms).
    public var transportFeedbackInterval: TimeAmount = .milliseconds(100)
    /// Sender report interval for video consumers (libwebrtc: 1 s).
    public var videoSenderReportInterval: TimeAmount = .seconds(1)
    /// Sender report interval for audio consumers.
    public var audioSenderReportInterval: TimeAmount = .seconds(2)
    /// How often the video layer of each consumer is re-decided from the bandwidth estimate.
    public var layerDecisionInterval: TimeAmount = .milliseconds(100)
    /// Packets kept per video consumer for retransmission (rounded up to a power of two).
    public var videoRetransmissionCapacity: Int = 1024
    /// Packets kept per audio consumer for retransmission.
    public var audioRetransmissionCapacity: Int = 128
    /// Age after which a packet is no longer retransmitted (video); audio uses half.
    public var retransmissionMaxAge: TimeAmount = .seconds(1)
    /// Largest RTP packet the core builds or stores.
    public var maximumPacketSize: Int = 1500
    /// Window over which layer and peer bitrates are measured.
    public var bitrateWindow: TimeAmount = .milliseconds(500)
    /// Hysteresis of the layer choice: go up when the estimate is this multiple of the target layer.
    public var layerUpThreshold: Double = 1.2
    /// Go down when the estimate falls below this multiple of the current layer's bitrate.
    public var layerDownThreshold: Double = 0.95
    /// How long a higher layer must stay affordable before the consumer moves up.
    public var layerUpDwell: TimeAmount = .seconds(2)
    /// Start estimate of a subscriber's bandwidth estimator (bits/s).
    public var startBitrate: Int = 1_000_000
    /// Audio level (RFC 6464, −dBov; 127 = silence) at or above which a track counts as silent.
    public var speakerSilenceLevel: Double = 80
    /// Weight of each new audio level sample in the smoothed level (exponential average).
    public var speakerSmoothing: Double = 0.25
    /// A track whose last audio level is older than this counts as silent.
    public var speakerTimeout: TimeAmount = .seconds(1)

    /// The production defaults.
    public init() {}
}

/// Maps the monotonic event-loop clock to wall-clock time, for the NTP timestamps of sender reports and
/// abs-send-time.
///
/// Tests inject a fixed mapping; production takes one reading of the system clock (``system(now:)``) and
/// then follows the monotonic clock, so a wall-clock step never makes the NTP timestamps jump.
public struct WallClock: Sendable {
    /// The monotonic instant that corresponds to ``referenceUnixNanoseconds``.
    public let referenceDeadline: NIODeadline
    /// Nanoseconds since the Unix epoch at ``referenceDeadline``.
    public let referenceUnixNanoseconds: Int64

    /// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (RFC 5905 §6).
    static let ntpUnixOffsetSeconds: Int64 = 2_208_988_800

    /// A mapping that says `referenceDeadline` happened `referenceUnixNanoseconds` after the Unix epoch.
    public init(referenceDeadline: NIODeadline, referenceUnixNanoseconds: Int64) {
        self.referenceDeadline = referenceDeadline
        self.referenceUnixNanoseconds = referenceUnixNanoseconds
    }

    /// Reads the system's real-time clock once and pairs it with `now`.
    public static func system(now: NIODeadline) -> WallClock {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let nanoseconds = Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
        return WallClock(referenceDeadline: now, referenceUnixNanoseconds: nanoseconds)
    }

    /// Nanoseconds since the Unix epoch at `deadline` (saturating).
    public func unixNanoseconds(at deadline: NIODeadline) -> Int64 {
        let elapsed =
            Int64(clamping: deadline.uptimeNanoseconds) &- Int64(clamping: self.referenceDeadline.uptimeNanoseconds)
        let (sum, overflow) = self.referenceUnixNanoseconds.addingReportingOverflow(elapsed)
        return overflow ? (elapsed > 0 ? .max : 0) : sum
    }

    /// The 64-bit NTP timestamp (RFC 3550 §4: seconds since 1900 in the high 32 bits, fraction in the low
    /// 32 bits) at `deadline`.
    public func ntpTimestamp(at deadline: NIODeadline) -> UInt64 {
        let unix = max(0, self.unixNanoseconds(at: deadline))
        let seconds = unix / 1_000_000_000 + Self.ntpUnixOffsetSeconds
        let remainder = unix % 1_000_000_000
        let fraction = (UInt64(remainder) << 32) / 1_000_000_000
        return UInt64(truncatingIfNeeded: seconds) << 32 | fraction
    }
}
