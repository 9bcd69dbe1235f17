/// One packet's fate as reported by transport-wide congestion control feedback.
///
/// The sender knows ``sequenceNumber``, ``sendTimeUs`` and ``size``; the receiver's feedback adds
/// ``arrivalTimeUs`` (in the receiver's clock, which may have any constant offset from ours) or
/// reports the packet as lost.
///
/// All instants are microseconds on a monotonic clock. Only differences between instants of the same
/// clock are ever used, so neither clock needs a known epoch.
public struct PacketResult: Sendable, Hashable {
    /// Transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2).
    public var sequenceNumber: UInt16
    /// When the packet left the sender, in the sender's clock (µs).
    public var sendTimeUs: Int64
    /// Size on the wire in bytes (RTP header, payload and padding).
    public var size: Int
    /// When the packet reached the receiver, in the receiver's clock (µs); `nil` when it was lost.
    public var arrivalTimeUs: Int64?

    /// Creates a packet result.
    public init(sequenceNumber: UInt16, sendTimeUs: Int64, size: Int, arrivalTimeUs: Int64?) {
        self.sequenceNumber = sequenceNumber
        self.sendTimeUs = sendTimeUs
        self.size = size
        self.arrivalTimeUs = arrivalTimeUs
    }

    /// Whether the receiver reported the packet.
    @inlinable
    public var isReceived: Bool { arrivalTimeUs != nil }
}

/// `a - b`, or `nil` when the difference does not fit in `Int64` (hostile or corrupt timestamps).
@inlinable
func checkedDifference(_ a: Int64, _ b: Int64) -> Int64? {
    let (value, overflow) = a.subtractingReportingOverflow(b)
    return overflow ? nil : value
}

/// Converts a bitrate computed in floating point to whole bits per second without ever trapping:
/// NaN becomes `lower`, and the value is clamped to `lower...upper` first.
@inlinable
func clampedBitrate(_ value: Double, lower: Int, upper: Int) -> Int {
    guard value.isFinite else { return value == .infinity ? upper : lower }
    if value <= Double(lower) { return lower }
    if value >= Double(upper) { return upper }
    return Int(value)
}
