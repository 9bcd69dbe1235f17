public import BraidWire
public import NIOCore

/// Receiver-side loss detection: decides which sequence numbers to ask the publisher for again.
///
/// Behaviour follows libwebrtc's `nack_requester.cc` as summarised in WEBRTC-NOTES §4 (and mediasoup's
/// `NackGenerator`):
/// - every gap in the sequence numbers adds the missing numbers to a bounded list
///   (``Configuration/maxMissing``, default 1000); when a gap would overflow it, the list is cleared and
///   ``PacketOutcome/keyframeNeeded`` tells the owner to send a PLI/FIR instead;
/// - entries more than ``Configuration/maxAge`` (default 10000) sequence numbers behind the newest are
///   forgotten, and so are packets that old when they arrive;
/// - ``pending(now:into:)`` returns each missing number once at first, then again about once per
///   ``roundTripTime`` (default 100 ms) plus ``Configuration/retryMargin``, at most
///   ``Configuration/maxRetries`` times (default 10);
/// - a number may carry a deadline and a hold (``setDeadline(_:askNotBefore:for:)``, audio's playout point):
///   it is not asked for before the hold, and dropped instead of asked for once an answer would come after
///   the deadline (``packetsExpired``); ``forget(_:)`` drops a number whose content came another way;
/// - an arriving packet, original or RTX-recovered, removes its number from the list;
/// - with ``learnsRoundTripTime`` (a receiver that has no RTCP round-trip time, such as a subscriber that
///   sends no sender reports), the time from a NACK to the retransmission that answers it updates
///   ``roundTripTime`` (RFC 6298: the first sample replaces the initial guess, later ones move it by
///   1/8; kept within 10 ms–1 s).
///
/// The NACK itself is built with ``writeNACK(senderSSRC:mediaSSRC:sequenceNumbers:into:)``, a thin
/// wrapper over BraidWire's `RTCPGenericNACK` builder; RFC 4585 §6.2.1 draws its wire format.
///
/// Ownership: one generator per inbound video (or NACK-enabled audio) stream, owned by that stream on
/// its event loop. Passed by argument: `now`, the RTT estimate, the caller's output array. Allocated by
/// this: the missing list, reserved once at ``Configuration/maxMissing`` entries (40 KB at the default)
/// when the first gap shows — a receiver has one generator per track and many never lose a packet —; it
/// never grows past that capacity (a gap that would need more clears it instead), so receiving packets
/// and computing NACKs allocate nothing after that.
public struct NACKGenerator: Sendable {
    /// Limits, with libwebrtc's values as defaults.
    public struct Configuration: Sendable, Hashable {
        /// Most missing numbers tracked at once; overflow clears the list and asks for a keyframe.
        public var maxMissing: Int
        /// Numbers this far behind the newest are given up (and late packets that old are ignored).
        public var maxAge: Int
        /// NACKs sent for one number before giving up.
        public var maxRetries: Int
        /// Wait this long after a gap before the first NACK, to let reordered packets arrive (0: at once).
        public var reorderingDelay: TimeAmount
        /// A retry waits this much longer than the round trip, so that it does not race the answer to the
        /// previous NACK (0: exactly one round trip, libwebrtc's rule).
        public var retryMargin: TimeAmount

        public init(
            maxMissing: Int = 1000, maxAge: Int = 10_000, maxRetries: Int = 10,
            reorderingDelay: TimeAmount = .zero, retryMargin: TimeAmount = .zero
        ) {
            self.maxMissing = max(1, maxMissing)
            self.maxAge = max(1, min(maxAge, 32_767))
            self.maxRetries = max(1, maxRetries)
            self.reorderingDelay = reorderingDelay
            self.retryMargin = max(.zero, retryMargin)
        }
    }

    /// What one received packet meant for the missing list.
    public enum PacketOutcome: Sendable, Hashable {
        /// The first packet of the stream.
        case first
        /// Newer than every packet so far; `newlyMissing` numbers were skipped (0: in order).
        case advanced(newlyMissing: Int)
        /// Filled a hole we were waiting for; `retransmission` says whether it came as a repair
        /// (RTX or a retransmitted original) and `nackCount` how many NACKs had been sent for it.
        case recovered(retransmission: Bool, nackCount: Int)
        /// Older than the newest and not missing: a duplicate, or one we gave up on.
        case late
        /// More than ``Configuration/maxAge`` behind the newest: ignored.
        case tooOld
        /// The gap would overflow the missing list: it was cleared; request a keyframe upstream.
        case keyframeNeeded
    }

    struct Entry: Sendable {
        var sequence: Int64
        var detectedAt: NIODeadline
        var lastSentAt: NIODeadline?
        var sendCount: Int
        /// The latest time an answer is still useful (a playout deadline); nil: none.
        var usefulUntil: NIODeadline? = nil
        /// The first NACK waits until then (the content may still come another way); nil: no wait.
        var askNotBefore: NIODeadline? = nil
    }

    /// The limits in force.
    public let configuration: Configuration
    /// The owner's current RTT estimate: a missing number is asked for again after this long.
    public var roundTripTime: TimeAmount
    /// Whether NACK-to-retransmission times update ``roundTripTime``.
    public var learnsRoundTripTime = false
    /// Whether a NACK-to-retransmission time has been measured (the first one replaces the initial guess).
    public private(set) var hasRoundTripSample = false

    var unwrapper = SequenceNumberUnwrapper()
    /// Missing numbers in increasing order; capacity reserved once.
    var missing: ContiguousArray<Entry>

    /// Counters for metrics.
    public private(set) var packetsRecovered: Int = 0
    /// Numbers dropped after ``Configuration/maxRetries`` NACKs or for age.
    public private(set) var packetsGivenUp: Int = 0
    /// Times the list overflowed and a keyframe was asked for.
    public private(set) var keyframeRequests: Int = 0
    /// Numbers dropped because an answer to a NACK sent now would come after their deadline
    /// (see ``setDeadline(_:askNotBefore:for:)``).
    public private(set) var packetsExpired: Int = 0

    /// How long after a NACK its answer is expected: the round trip and the retry margin. A missing number
    /// is asked for again once this has passed since its last NACK.
    public var answerTime: TimeAmount { self.roundTripTime + self.configuration.retryMargin }

    /// The newest sequence number received or announced (``sentThrough(sequenceNumber:now:)``), unwrapped;
    /// nil before the first packet.
    public var newestSequence: Int64? { self.unwrapper.highest }

    /// Creates a generator; `roundTripTime` is the initial RTT estimate.
    public init(configuration: Configuration = Configuration(), roundTripTime: TimeAmount = .milliseconds(100)) {
        self.configuration = configuration
        self.roundTripTime = roundTripTime
        self.missing = ContiguousArray()
    }

    /// Moves ``roundTripTime`` toward one measured NACK-to-answer time (RFC 6298 §2.2–2.3: the first sample
    /// is the estimate, later ones move it by 1/8), clamped to 10 ms–1 s. The generator takes samples itself
    /// from retransmissions when ``learnsRoundTripTime``; an owner that knows which NACK a repair round
    /// answered (``RepairRequests``) adds those.
    public mutating func roundTripSample(_ sample: TimeAmount) {
        let sample = min(max(sample.nanoseconds, 10_000_000), 1_000_000_000)
        let current = self.hasRoundTripSample ? self.roundTripTime.nanoseconds : sample
        self.roundTripTime = .nanoseconds(current + (sample - current) / 8)
        self.hasRoundTripSample = true
    }

    /// Reserves the missing list's full capacity before its first entry (see the type's notes).
    private mutating func reserveOnce() {
        if self.missing.capacity < self.configuration.maxMissing {
            self.missing.reserveCapacity(self.configuration.maxMissing)
        }
    }

    /// Number of sequence numbers currently missing.
    public var missingCount: Int { self.missing.count }
    /// The oldest number still missing, if any.
    public var oldestMissing: UInt16? { self.missing.first.map { UInt16(truncatingIfNeeded: $0.sequence) } }

    /// Whether `sequenceNumber` is currently in the missing list.
    public func isMissing(_ sequenceNumber: UInt16) -> Bool {
        self.index(of: self.unwrapper.peek(sequenceNumber)) != nil
    }

    /// Records a received packet's sequence number (for RTX, the original sequence number).
    ///
    /// - Parameters:
    ///   - isRetransmission: the packet arrived as a repair (RTX stream or a retransmitted original).
    ///   - now: its arrival time.
    public mutating func packetReceived(
        sequenceNumber: UInt16, isRetransmission: Bool = false, now: NIODeadline
    ) -> PacketOutcome {
        guard let highest = self.unwrapper.highest else {
            _ = self.unwrapper.unwrap(sequenceNumber)
            return .first
        }
        let sequence = self.unwrapper.peek(sequenceNumber)
        if sequence <= highest {
            if highest - sequence > Int64(self.configuration.maxAge) { return .tooOld }
            guard let index = self.index(of: sequence) else { return .late }
            let nackCount = self.missing[index].sendCount
            if isRetransmission, self.learnsRoundTripTime, nackCount == 1, let sentAt = self.missing[index].lastSentAt {
                // Only a packet NACKed once: with several NACKs out, which one it answers is unknown.
                // RFC 6298 §2.2–2.3: the first sample is the estimate, later ones move it by 1/8.
                self.roundTripSample(now - sentAt)
            }
            self.missing.remove(at: index)
            self.packetsRecovered += 1
            return .recovered(retransmission: isRetransmission, nackCount: nackCount)
        }
        _ = self.unwrapper.unwrap(sequenceNumber)
        self.dropEntries(olderThan: sequence - Int64(self.configuration.maxAge))
        let gap = Int(sequence - highest - 1)
        guard gap > 0 else { return .advanced(newlyMissing: 0) }
        guard self.missing.count + gap <= self.configuration.maxMissing else {
            self.packetsGivenUp += self.missing.count + gap
            self.missing.removeAll(keepingCapacity: true)
            self.keyframeRequests += 1
            return .keyframeNeeded
        }
        // Never appends past the capacity reserved once (checked just above), so no reallocation.
        self.reserveOnce()
        for missingSequence in (highest + 1)..<sequence {
            self.missing.append(Entry(sequence: missingSequence, detectedAt: now, lastSentAt: nil, sendCount: 0))
        }
        return .advanced(newlyMissing: gap)
    }

    /// Learns that the sender has sent every number up to `sequenceNumber` (an FEC repair packet names the
    /// packets it covers): those after the newest received, `sequenceNumber` included, are missing now,
    /// without waiting for a later packet to show the gap. At a few packets per frame a lossy link would
    /// otherwise see a loss only one or two frame intervals later.
    /// - Returns: how many numbers became missing (0 when nothing newer was announced, when the jump is
    ///   larger than ``maximumAnnouncedGap`` — a repair covers at most 48 packets, so that is no announcement
    ///   to trust — or when the list would overflow; the next packet then handles the gap as usual).
    @discardableResult
    public mutating func sentThrough(sequenceNumber: UInt16, now: NIODeadline) -> Int {
        guard let highest = self.unwrapper.highest else { return 0 }
        let sequence = self.unwrapper.peek(sequenceNumber)
        let count = Int(sequence - highest)
        guard count > 0, count <= Self.maximumAnnouncedGap, self.missing.count + count <= self.configuration.maxMissing
        else { return 0 }
        _ = self.unwrapper.unwrap(sequenceNumber)
        self.dropEntries(olderThan: sequence - Int64(self.configuration.maxAge))
        self.reserveOnce()
        for missingSequence in (highest + 1)...sequence {
            self.missing.append(Entry(sequence: missingSequence, detectedAt: now, lastSentAt: nil, sendCount: 0))
        }
        return count
    }

    /// Learns that the sender probably sent `count` packets before the first one received: a stream joined
    /// in the middle of a frame (its first packets lost) would otherwise never ask for them, and every
    /// frame would wait for the next keyframe. Only right after the first packet, with nothing missing yet;
    /// numbers the sender never sent go unanswered and are given up like any other (or forgotten at the
    /// first keyframe, see ``forgetMissing(before:)``).
    /// - Returns: how many numbers became missing.
    @discardableResult
    public mutating func expectEarlier(_ count: Int, now: NIODeadline) -> Int {
        guard let highest = self.unwrapper.highest, self.missing.isEmpty, count > 0,
            count <= min(Self.maximumAnnouncedGap, self.configuration.maxMissing)
        else { return 0 }
        self.reserveOnce()
        for sequence in (highest - Int64(count))..<highest {
            self.missing.append(Entry(sequence: sequence, detectedAt: now, lastSentAt: nil, sendCount: 0))
        }
        return count
    }

    /// The largest jump ``sentThrough(sequenceNumber:now:)`` accepts.
    public static let maximumAnnouncedGap = 64

    /// Records a received packet from its parsed view.
    public mutating func packetReceived(_ packet: RTPPacket, isRetransmission: Bool = false, now: NIODeadline)
        -> PacketOutcome
    {
        self.packetReceived(sequenceNumber: packet.sequenceNumber, isRetransmission: isRetransmission, now: now)
    }

    /// Forgets every missing number.
    public mutating func reset() {
        self.missing.removeAll(keepingCapacity: true)
    }

    /// Forgets the missing numbers before `sequenceNumber`, e.g. the first packet of a keyframe: the
    /// decoder no longer needs anything older, so repairing it would only waste bandwidth.
    public mutating func forgetMissing(before sequenceNumber: UInt16) {
        guard self.unwrapper.highest != nil else { return }
        self.dropEntries(olderThan: self.unwrapper.peek(sequenceNumber), givenUp: false)
    }

    /// Writes the sequence numbers to NACK now into `output` (cleared first), oldest first, and marks
    /// them sent. Numbers already NACKed ``Configuration/maxRetries`` times whose retry is due are
    /// dropped instead.
    ///
    /// - Parameters:
    ///   - limit: most numbers to take. Due numbers past it wait a round trip as if asked for, without using
    ///     up a retry: a receiver with FEC asks only for its deficit, and the rest are left to the repairs
    ///     in hand and on their way, which a round trip brings (asking for them as soon as the deficit shows
    ///     again cost 7 % more bytes at 50 % loss for no frame more in time).
    ///   - output: reused by the caller; reserve ``Configuration/maxMissing`` capacity once (this method
    ///     does it on first use) and it never allocates again.
    public mutating func pending(now: NIODeadline, limit: Int = .max, into output: inout ContiguousArray<UInt16>) {
        output.removeAll(keepingCapacity: true)
        if output.capacity < self.configuration.maxMissing {
            output.reserveCapacity(self.configuration.maxMissing)
        }
        var kept = 0
        for index in self.missing.indices {
            var entry = self.missing[index]
            let due: Bool
            if let lastSent = entry.lastSentAt {
                due = now - lastSent >= self.answerTime
            } else {
                due = now - entry.detectedAt >= self.configuration.reorderingDelay && now >= (entry.askNotBefore ?? now)
            }
            if due {
                // Past use: kept while a NACK already sent may still be answered, dropped when the next is due.
                if let usefulUntil = entry.usefulUntil, now + self.roundTripTime > usefulUntil {
                    self.packetsExpired += 1
                    continue
                }
                if entry.sendCount >= self.configuration.maxRetries {
                    self.packetsGivenUp += 1
                    continue
                }
                entry.lastSentAt = now
                if output.count < limit {
                    entry.sendCount += 1
                    output.append(UInt16(truncatingIfNeeded: entry.sequence))
                }
            }
            self.missing[kept] = entry
            kept += 1
        }
        self.missing.removeLast(self.missing.count - kept)
    }

    /// Appends an RTCP generic NACK (RFC 4585 §6.2.1) for `sequenceNumbers` to `buffer`.
    /// - Throws: `.badValue` for an empty list, `.badLength` when `buffer` lacks the writable capacity.
    public static func writeNACK(
        senderSSRC: UInt32, mediaSSRC: UInt32, sequenceNumbers: ContiguousArray<UInt16>, into buffer: inout ByteBuffer
    ) throws(WireError) {
        try RTCPGenericNACK.write(
            senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, lostSequenceNumbers: sequenceNumbers, into: &buffer)
    }

    /// Gives missing number `sequenceNumber` a deadline: it is asked for only while an answer sent now can
    /// arrive by then (now + ``roundTripTime`` ≤ `deadline`), and dropped (``packetsExpired``) when a NACK
    /// is due that could not. Audio uses it: a frame that would arrive after its playout point is concealed
    /// anyway, so asking for it only costs bandwidth. No effect when the number is not missing.
    ///
    /// `askNotBefore` holds the first NACK until then: audio waits while a later packet's redundant block
    /// may still bring the frame, but no later than the last moment an answer can make the deadline.
    public mutating func setDeadline(_ deadline: NIODeadline, askNotBefore: NIODeadline? = nil, for sequenceNumber: UInt16) {
        guard self.unwrapper.highest != nil, let index = self.index(of: self.unwrapper.peek(sequenceNumber)) else { return }
        self.missing[index].usefulUntil = deadline
        self.missing[index].askNotBefore = askNotBefore
    }

    /// Stops waiting for missing number `sequenceNumber`: its content arrived another way (audio: its
    /// frame came as a redundant block of a later packet). Not counted as recovered or given up.
    public mutating func forget(_ sequenceNumber: UInt16) {
        guard self.unwrapper.highest != nil, let index = self.index(of: self.unwrapper.peek(sequenceNumber)) else { return }
        self.missing.remove(at: index)
    }

    /// Binary search in the sorted missing list.
    func index(of sequence: Int64) -> Int? {
        var low = 0
        var high = self.missing.count
        while low < high {
            let middle = (low + high) / 2
            let value = self.missing[middle].sequence
            if value == sequence { return middle }
            if value < sequence { low = middle + 1 } else { high = middle }
        }
        return nil
    }

    mutating func dropEntries(olderThan limit: Int64, givenUp: Bool = true) {
        var count = 0
        while count < self.missing.count, self.missing[count].sequence < limit { count += 1 }
        guard count > 0 else { return }
        if givenUp { self.packetsGivenUp += count }
        self.missing.removeFirst(count)
    }
}
