public import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Maps the monotonic event-loop clock to wall-clock time, for the NTP timestamps of sender reports,
/// abs-send-time and abs-capture-time; the one NTP arithmetic of the node and the client.
///
/// Tests inject a fixed mapping; production takes one reading of the system clock (``system(now:)``) and
/// then follows the monotonic clock, so a wall-clock step never makes the NTP timestamps jump. That one
/// reading is the only place in this module that reads a clock. It lives with the wire formats because
/// the node's forwarding core and BraidClient both stamp packets with it, and both import BraidWire.
///
/// NTP timestamps are 64-bit fixed point ([RFC 5905 §6](https://www.rfc-editor.org/rfc/rfc5905#section-6),
/// as RTCP carries them, [RFC 3550 §4](https://www.rfc-editor.org/rfc/rfc3550#section-4)):
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Seconds since 1900-01-01                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     Fraction (1/2^32 s)                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
public struct WallClock: Sendable {
    /// The monotonic instant that corresponds to ``referenceUnixNanoseconds``.
    public let referenceDeadline: NIODeadline
    /// Nanoseconds since the Unix epoch at ``referenceDeadline``.
    public let referenceUnixNanoseconds: Int64

    /// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (RFC 5905 §6).
    public static let ntpUnixOffsetSeconds: Int64 = 2_208_988_800

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

    /// The 64-bit NTP timestamp at `deadline`.
    public func ntpTimestamp(at deadline: NIODeadline) -> UInt64 {
        Self.ntpTimestamp(unixNanoseconds: self.unixNanoseconds(at: deadline))
    }

    /// The 64-bit NTP timestamp of a Unix time in nanoseconds (times before 1970 count as 1970); the
    /// fraction is truncated to 1/2^32 s.
    public static func ntpTimestamp(unixNanoseconds: Int64) -> UInt64 {
        let unix = max(0, unixNanoseconds)
        let seconds = unix / 1_000_000_000 + Self.ntpUnixOffsetSeconds
        let remainder = unix % 1_000_000_000
        let fraction = (UInt64(remainder) << 32) / 1_000_000_000
        return UInt64(truncatingIfNeeded: seconds) << 32 | fraction
    }

    /// `later − earlier` in microseconds (rounded); negative when `later` is before `earlier`. Wrapping
    /// arithmetic on the 64-bit values keeps this right across the NTP era boundary for differences under
    /// 68 years.
    public static func microseconds(fromNTP earlier: UInt64, to later: UInt64) -> Int64 {
        let difference = Int64(bitPattern: later &- earlier)
        // Q32.32 → µs: split to avoid overflow: whole seconds and the fraction.
        let seconds = difference >> 32
        let fraction = difference & 0xFFFF_FFFF
        return seconds * 1_000_000 + (fraction * 1_000_000 + (1 << 31)) >> 32
    }
}
