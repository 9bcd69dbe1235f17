public import NIOCore

/// The receiver's side of repair rounds (LOSS-NOTES §1.2): how much of its deficit it has already asked for,
/// and how long a round took to come.
///
/// A NACK of `d` packets on a link with Braid's FEC is answered by a round of repairs of which at least `d`
/// are expected to arrive about a round trip later. Until they come, or until that round trip has passed,
/// asking again for the same deficit would only double the round: the receiver's new deficit is its
/// missing packets minus the repair equations in hand minus what is still outstanding here.
///
/// An answer belongs to the request whose named packets contain the first packet it covers: the sender
/// starts a round's span at the oldest packet the NACK named that it can still cover (and an RTX answer
/// carries the packet itself). A round's repairs go out back to back, so the first of them to arrive
/// settles the request (the rest are then counted as equations in hand, not as outstanding) and times
/// the round trip exactly. Settling by arrival order instead (the oldest request first) let a round's
/// surplus repairs settle a later request still on its way, and took the time from a later NACK to an
/// earlier round's answer for a round trip: both made receivers ask again before the answer could come,
/// and each such retry cost a second round.
///
/// Holds at most ``capacity`` requests (the oldest go first), reserved at the first request, so it
/// allocates nothing per packet. Owned by one track on its event loop.
public struct RepairRequests: Sendable {
    /// Requests kept at most.
    public static let capacity = 16
    /// How long after a round's first answer its other answers may still come: they were sent back to back.
    public static let landing = TimeAmount.milliseconds(5)

    private struct Request: Sendable {
        var sentAt: NIODeadline
        /// The packets named: from `first` through `first + span` (sequence order, wrapping).
        var first: UInt16
        var span: UInt16
        var outstanding: Int
        /// When its first answer came; until ``landing`` later, its other answers are expected.
        var answeredAt: NIODeadline?

        func names(_ sequenceNumber: UInt16) -> Bool { sequenceNumber &- self.first <= self.span }
    }

    private var requests: [Request] = []

    public init() {}

    /// A NACK naming `sequenceNumbers` (oldest first) went out.
    public mutating func asked(_ sequenceNumbers: some Collection<UInt16>, at now: NIODeadline) {
        guard let first = sequenceNumbers.first else { return }
        var span: UInt16 = 0
        for sequenceNumber in sequenceNumbers { span = max(span, sequenceNumber &- first) }
        if self.requests.capacity < Self.capacity { self.requests.reserveCapacity(Self.capacity) }
        if self.requests.count == Self.capacity { self.requests.removeFirst() }
        self.requests.append(Request(sentAt: now, first: first, span: span, outstanding: sequenceNumbers.count))
    }

    /// A repair answering a NACK, whose span starts at `sequenceNumber`, or a retransmission of
    /// `sequenceNumber` arrived. Returns the round trip of the request it answers when it is that request's
    /// first answer; nil when it is a later one, or answers no request kept here.
    @discardableResult
    public mutating func answerArrived(covering sequenceNumber: UInt16, now: NIODeadline) -> TimeAmount? {
        guard
            let index = self.requests.firstIndex(where: {
                $0.names(sequenceNumber) && ($0.answeredAt.map { now - $0 < Self.landing } ?? true)
            })
        else { return nil }
        self.requests[index].outstanding = max(0, self.requests[index].outstanding - 1)
        guard self.requests[index].answeredAt == nil else { return nil }
        self.requests[index].answeredAt = now
        return now - self.requests[index].sentAt
    }

    /// Packets asked for less than `expiry` before `now` and not answered (a request answered counts what
    /// its round may still bring for ``landing``); older requests are forgotten (a retry due exactly one
    /// expiry later asks again).
    ///
    /// With `reaching`, the receiver's oldest missing packet, only requests whose rounds cover it count: a
    /// round spans from the oldest packet its NACK named through the newest sent, so one asked for newer
    /// packets (a later loss, or a ``SilenceProbe``) rebuilds nothing older, and counting it would hold back
    /// the NACK the older packet needs until that round had come and gone.
    public mutating func outstanding(now: NIODeadline, expiry: TimeAmount, reaching oldest: UInt16? = nil) -> Int {
        self.requests.removeAll { request in
            if let answeredAt = request.answeredAt { return now - answeredAt >= Self.landing }
            return now - request.sentAt >= expiry
        }
        guard let oldest else { return self.requests.reduce(0) { $0 + $1.outstanding } }
        return self.requests.reduce(0) { total, request in
            // `first` at or before `oldest` in sequence order (RFC 3550 numbers wrap).
            oldest &- request.first < 0x8000 ? total + request.outstanding : total
        }
    }
}

extension NACKGenerator {
    /// A receiver's deficit on a link with Braid's FEC: its missing packets less the repair equations in
    /// hand that can still rebuild one of them, less what rounds on their way that reach its oldest missing
    /// packet will bring. Its NACK names that many packets (``pending(now:limit:into:)``), the oldest first.
    public func deficit(
        equations decoder: SlidingWindowFECDecoder, requests: inout RepairRequests, now: NIODeadline
    ) -> Int {
        self.missingCount - decoder.pendingEquations(stillMissing: self.isMissing)
            - requests.outstanding(now: now, expiry: self.answerTime, reaching: self.oldestMissing)
    }
}
