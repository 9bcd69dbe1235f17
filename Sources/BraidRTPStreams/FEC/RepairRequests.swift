public import NIOCore

/// The receiver's side of repair rounds (LOSS-NOTES §1.2): how much of its deficit it has already asked for.
///
/// A NACK of `d` packets on a link with Braid's FEC is answered by a round of repairs of which at least `d`
/// are expected to arrive about a round trip later. Until they come, or until that round trip has passed,
/// asking again for the same deficit would only double the round: the receiver's new deficit is its
/// missing packets minus the repair equations in hand minus what is still outstanding here. An answer
/// (a repair flagged ``FECRepairHeader/answersNACK``) settles the oldest request first; a request no
/// answer settled within the expiry is forgotten, and the NACK generator's retry asks again.
///
/// Holds at most ``capacity`` requests (the oldest go first), reserved at the first request, so it
/// allocates nothing per packet. Owned by one track on its event loop.
public struct RepairRequests: Sendable {
    /// Requests kept at most.
    public static let capacity = 16

    private struct Request: Sendable {
        var sentAt: NIODeadline
        var outstanding: Int
    }

    private var requests: [Request] = []

    public init() {}

    /// A NACK asking for `count` packets went out.
    public mutating func asked(_ count: Int, at now: NIODeadline) {
        guard count > 0 else { return }
        if self.requests.capacity < Self.capacity { self.requests.reserveCapacity(Self.capacity) }
        if self.requests.count == Self.capacity { self.requests.removeFirst() }
        self.requests.append(Request(sentAt: now, outstanding: count))
    }

    /// A repair answering a NACK arrived.
    public mutating func answerArrived() {
        guard !self.requests.isEmpty else { return }
        self.requests[0].outstanding -= 1
        if self.requests[0].outstanding <= 0 { self.requests.removeFirst() }
    }

    /// Packets asked for less than `expiry` before `now` and not yet answered; older requests are
    /// forgotten (a retry due exactly one expiry later asks again).
    public mutating func outstanding(now: NIODeadline, expiry: TimeAmount) -> Int {
        self.requests.removeAll { now - $0.sentAt >= expiry }
        return self.requests.reduce(0) { $0 + $1.outstanding }
    }
}
