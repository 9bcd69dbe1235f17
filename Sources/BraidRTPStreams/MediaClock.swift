import NIOCore

/// Conversions between wall-clock durations and RTP/RTCP units, without overflow.
///
/// Every component in this module takes the current time as a `NIODeadline` argument (the owner's event
/// loop clock, or a fake clock in tests) and never reads a clock itself.
enum MediaClock {
    /// `nanoseconds × rate / 10^9`, truncated; split into whole seconds and remainder so that neither
    /// product overflows for any non-negative `Int64` duration and a rate below 2^32.
    @inline(__always)
    static func scale(nanoseconds: Int64, rate: Int64) -> Int64 {
        guard nanoseconds > 0 else { return 0 }
        let seconds = nanoseconds / 1_000_000_000
        let remainder = nanoseconds % 1_000_000_000
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: rate)
        let (total, overflowAdding) = whole.addingReportingOverflow(remainder * rate / 1_000_000_000)
        guard !overflow, !overflowAdding else { return Int64.max }
        return total
    }

    /// Nanoseconds from `earlier` to `later`, 0 if `later` is not after `earlier`.
    @inline(__always)
    static func elapsed(from earlier: NIODeadline, to later: NIODeadline) -> Int64 {
        guard later > earlier else { return 0 }
        let difference = later.uptimeNanoseconds - earlier.uptimeNanoseconds
        return Int64(exactly: difference) ?? Int64.max
    }
}
