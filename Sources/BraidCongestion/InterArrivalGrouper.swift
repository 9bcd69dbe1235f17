/// The difference between two consecutive packet groups, the input of the arrival-time filter.
///
/// With `T(i)` the send time and `t(i)` the arrival time of the last packet of group `i`
/// (draft-ietf-rmcat-gcc-02 §5.1), ``sendDeltaUs`` is `T(i) - T(i-1)` and ``arrivalDeltaUs`` is
/// `t(i) - t(i-1)`; their difference is the inter-group delay variation `d(i)`.
public struct InterArrivalDelta: Sendable, Hashable {
    /// `T(i) - T(i-1)`: inter-departure time of the two groups (µs).
    public var sendDeltaUs: Int64
    /// `t(i) - t(i-1)`: inter-arrival time of the two groups (µs).
    public var arrivalDeltaUs: Int64
    /// Size of group `i` minus size of group `i-1` (bytes).
    public var sizeDeltaBytes: Int
    /// Arrival time of the last packet of group `i`, in the receiver's clock (µs).
    public var arrivalTimeUs: Int64

    /// The inter-group delay variation `d(i) = (t(i) - t(i-1)) - (T(i) - T(i-1))` (µs).
    @inlinable
    public var delayVariationUs: Int64 { arrivalDeltaUs &- sendDeltaUs }

    /// Creates a delta.
    public init(sendDeltaUs: Int64, arrivalDeltaUs: Int64, sizeDeltaBytes: Int, arrivalTimeUs: Int64) {
        self.sendDeltaUs = sendDeltaUs
        self.arrivalDeltaUs = arrivalDeltaUs
        self.sizeDeltaBytes = sizeDeltaBytes
        self.arrivalTimeUs = arrivalTimeUs
    }
}

/// Groups received packets into send-time bursts and reports the deltas between consecutive groups.
///
/// Implements the pre-filtering of draft-ietf-rmcat-gcc-02 §5.2
/// (<https://datatracker.ietf.org/doc/html/draft-ietf-rmcat-gcc-02#section-5.2>):
///
/// - a group is the packets sent within ``burstWindowUs`` (5 ms) of the group's first packet;
/// - a packet that arrives less than ``burstWindowUs`` after the group's last arrival *and* has a
///   negative delay variation against it (it caught up: a queue flushed a burst) joins the group too,
///   whatever its send time, so a channel outage does not look like a delay gradient.
///
/// It tolerates what real feedback contains:
/// - reordering: a packet sent before the current group began is ignored (counted in
///   ``reorderedPackets``); a group that seems to arrive before its predecessor yields no delta, and
///   after ``reorderResetThreshold`` of those in a row the grouper starts afresh;
/// - arrival-clock offset: only differences of arrival times are used, so any constant offset between
///   the clocks cancels; a jump of the arrival clock by more than ``clockJumpThresholdUs`` relative to
///   the send clock resets the grouper instead of producing a huge bogus delta.
///
/// Lost packets carry no timing and must not be passed in. No allocation.
public struct InterArrivalGrouper: Sendable {
    /// Send-time span of one group (draft §5.2: `burst_time`, 5 ms).
    public let burstWindowUs: Int64
    /// Reset after this many consecutive groups that arrived before their predecessor.
    public let reorderResetThreshold: Int
    /// Reset when `d(i)` exceeds this: the receiver's clock jumped (µs).
    public let clockJumpThresholdUs: Int64

    /// Packets ignored because they were sent before the group being built began.
    public private(set) var reorderedPackets = 0
    /// Times the grouper discarded its state (reordering or a clock jump).
    public private(set) var resets = 0

    private struct Group {
        var firstSendUs: Int64
        var lastSendUs: Int64
        var lastArrivalUs: Int64
        var size: Int
    }

    private var current: Group?
    private var previous: Group?
    private var consecutiveReordered = 0

    /// Creates a grouper.
    /// - Parameters:
    ///   - burstWindowUs: send-time span of a group (µs); the draft's 5 ms by default.
    ///   - reorderResetThreshold: consecutive out-of-order groups that trigger a reset.
    ///   - clockJumpThresholdUs: delay variation taken as a clock jump (µs).
    public init(burstWindowUs: Int64 = 5_000, reorderResetThreshold: Int = 3, clockJumpThresholdUs: Int64 = 3_000_000) {
        self.burstWindowUs = max(0, burstWindowUs)
        self.reorderResetThreshold = max(1, reorderResetThreshold)
        self.clockJumpThresholdUs = max(1, clockJumpThresholdUs)
    }

    /// Adds one received packet.
    /// - Returns: the delta between the two previous groups when this packet starts a new group,
    ///   otherwise `nil`.
    public mutating func add(sendTimeUs: Int64, arrivalTimeUs: Int64, size: Int) -> InterArrivalDelta? {
        let size = max(0, size)
        guard var group = current else {
            current = Group(firstSendUs: sendTimeUs, lastSendUs: sendTimeUs, lastArrivalUs: arrivalTimeUs, size: size)
            return nil
        }
        guard let sinceFirstSend = checkedDifference(sendTimeUs, group.firstSendUs) else {
            reset(startingWith: sendTimeUs, arrivalTimeUs, size)
            return nil
        }
        if sinceFirstSend < 0 {
            // Sent before this group began: it belongs to a group already closed.
            reorderedPackets &+= 1
            return nil
        }
        if belongsToGroup(group, sinceFirstSend: sinceFirstSend, sendTimeUs: sendTimeUs, arrivalTimeUs: arrivalTimeUs) {
            group.lastSendUs = max(group.lastSendUs, sendTimeUs)
            group.lastArrivalUs = max(group.lastArrivalUs, arrivalTimeUs)
            group.size = group.size > Int.max - size ? Int.max : group.size + size
            current = group
            return nil
        }

        // This packet opens a new group, so `group` is complete: compare it with its predecessor.
        var result: InterArrivalDelta?
        if let previous {
            guard let sendDelta = checkedDifference(group.lastSendUs, previous.lastSendUs),
                let arrivalDelta = checkedDifference(group.lastArrivalUs, previous.lastArrivalUs),
                let variation = checkedDifference(arrivalDelta, sendDelta),
                variation < clockJumpThresholdUs
            else {
                reset(startingWith: sendTimeUs, arrivalTimeUs, size)
                return nil
            }
            if arrivalDelta < 0 {
                consecutiveReordered += 1
                if consecutiveReordered >= reorderResetThreshold {
                    reset(startingWith: sendTimeUs, arrivalTimeUs, size)
                    return nil
                }
            } else {
                consecutiveReordered = 0
                result = InterArrivalDelta(
                    sendDeltaUs: sendDelta,
                    arrivalDeltaUs: arrivalDelta,
                    sizeDeltaBytes: group.size &- previous.size,
                    arrivalTimeUs: group.lastArrivalUs
                )
            }
        }
        // A group that arrived out of order is dropped and the older predecessor kept, so the next
        // comparison is against a group that really arrived earlier.
        if consecutiveReordered == 0 {
            previous = group
        }
        current = Group(firstSendUs: sendTimeUs, lastSendUs: sendTimeUs, lastArrivalUs: arrivalTimeUs, size: size)
        return result
    }

    /// Forgets all groups (for instance after a long pause in sending).
    public mutating func reset() {
        current = nil
        previous = nil
        consecutiveReordered = 0
    }

    private mutating func reset(startingWith sendTimeUs: Int64, _ arrivalTimeUs: Int64, _ size: Int) {
        resets &+= 1
        previous = nil
        consecutiveReordered = 0
        current = Group(firstSendUs: sendTimeUs, lastSendUs: sendTimeUs, lastArrivalUs: arrivalTimeUs, size: size)
    }

    private func belongsToGroup(_ group: Group, sinceFirstSend: Int64, sendTimeUs: Int64, arrivalTimeUs: Int64) -> Bool
    {
        if sinceFirstSend <= burstWindowUs { return true }
        // draft §5.2: inter-arrival time below burst_time with d(i) < 0 means the packet was
        // released in a burst together with the group.
        guard let arrivalDelta = checkedDifference(arrivalTimeUs, group.lastArrivalUs),
            let sendDelta = checkedDifference(sendTimeUs, group.lastSendUs),
            let variation = checkedDifference(arrivalDelta, sendDelta)
        else { return false }
        return arrivalDelta >= 0 && arrivalDelta < burstWindowUs && variation < 0
    }
}
