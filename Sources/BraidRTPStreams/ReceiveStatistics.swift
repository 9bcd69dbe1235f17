public import BraidWire
public import NIOCore

/// Reception statistics of one inbound RTP stream, and the RTCP report block that describes them.
///
/// Follows [RFC 3550 Appendix A](https://www.rfc-editor.org/rfc/rfc3550#appendix-A):
/// - A.1 sequence number validation: a jump of 3000 or more ahead (`MAX_DROPOUT`) or more than 100
///   behind (`MAX_MISORDER`) is not counted, unless the next packet follows it, which is taken as a
///   source restart and resets the statistics. The probation of new sources is left to the owner
///   (an SFU knows its SSRCs from signalling).
/// - A.3 loss: expected = extended highest − base + 1; cumulative lost = expected − received (a 24-bit
///   signed field, clamped when written); fraction lost over the interval since the previous report.
/// - A.8 interarrival jitter, integer form: `J += |D| − ((J + 8) >> 4)`, reported as `J >> 4`, in RTP
///   timestamp units computed from the arrival time and the stream's clock rate.
/// - §6.4.1 LSR/DLSR: the middle 32 bits of the NTP timestamp of the last SR from this source, and the
///   delay since it arrived in units of 1/65536 s.
///
/// Ownership: one value per inbound SSRC, owned by the inbound stream on its event loop; the owner
/// passes `now` with every call. All state is a handful of integers: nothing is allocated.
public struct ReceiveStatistics: Sendable {
    /// SSRC of the stream described.
    public let ssrc: UInt32
    /// RTP clock rate in Hz (90000 for video, 48000 for Opus).
    public let clockRate: UInt32

    static let maxDropout: UInt16 = 3000
    static let maxMisorder: UInt16 = 100

    var started = false
    var maxSequence: UInt16 = 0
    /// Wrap-arounds × 65536.
    var cycles: Int64 = 0
    var baseSequence: Int64 = 0
    /// The sequence number that would confirm a large jump as a restart (> 65535: none).
    var badSequence: Int = 0x1_0001
    /// Packets counted (duplicates included, as in RFC 3550).
    public private(set) var packetsReceived: Int64 = 0
    var expectedPrior: Int64 = 0
    var receivedPrior: Int64 = 0

    var firstArrival: NIODeadline?
    var lastTransit: UInt32 = 0
    var hasTransit = false
    /// Jitter × 16 (A.8 integer form).
    var scaledJitter: UInt32 = 0

    var lastSenderReportNTP: UInt32 = 0
    var lastSenderReportArrival: NIODeadline?

    /// Statistics for `ssrc`, sampled with a `clockRate` Hz media clock.
    public init(ssrc: UInt32, clockRate: UInt32) {
        self.ssrc = ssrc
        self.clockRate = clockRate
    }

    /// Records one received packet.
    ///
    /// - Parameters:
    ///   - sequenceNumber: the packet's RTP sequence number (for RTX, the original sequence number).
    ///   - timestamp: the packet's RTP timestamp.
    ///   - now: its arrival time.
    ///   - isRetransmission: a repaired packet counts as received but does not feed the jitter estimate
    ///     (its arrival time says nothing about the path's jitter).
    /// - Returns: false when RFC 3550 A.1 rejected the number as a wild jump (not counted).
    @discardableResult
    public mutating func packetReceived(
        sequenceNumber: UInt16, timestamp: UInt32, now: NIODeadline, isRetransmission: Bool = false
    ) -> Bool {
        if !self.started {
            self.start(at: sequenceNumber)
        } else {
            let delta = sequenceNumber &- self.maxSequence
            if delta < Self.maxDropout {
                // In order, with a permissible gap.
                if sequenceNumber < self.maxSequence { self.cycles += 0x1_0000 }
                self.maxSequence = sequenceNumber
            } else if Int(delta) <= 0x1_0000 - Int(Self.maxMisorder) {
                // A very large jump: two sequential packets mean the source restarted.
                guard Int(sequenceNumber) == self.badSequence else {
                    self.badSequence = (Int(sequenceNumber) + 1) & 0xFFFF
                    return false
                }
                self.start(at: sequenceNumber)
                self.hasTransit = false
            }
            // Otherwise a duplicate or reordered packet: counted, no change to the highest number.
        }
        self.packetsReceived += 1
        if !isRetransmission { self.updateJitter(timestamp: timestamp, now: now) }
        return true
    }

    /// Records one received packet from its parsed view.
    @discardableResult
    public mutating func packetReceived(_ packet: RTPPacket, now: NIODeadline) -> Bool {
        self.packetReceived(sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp, now: now)
    }

    /// Records an RTCP sender report from this source, for LSR/DLSR.
    /// - Parameters:
    ///   - ntpTimestamp: the SR's 64-bit NTP timestamp.
    ///   - now: its arrival time.
    public mutating func senderReportReceived(ntpTimestamp: UInt64, now: NIODeadline) {
        self.lastSenderReportNTP = UInt32(truncatingIfNeeded: ntpTimestamp >> 16)
        self.lastSenderReportArrival = now
    }

    mutating func start(at sequenceNumber: UInt16) {
        self.started = true
        self.maxSequence = sequenceNumber
        self.baseSequence = Int64(sequenceNumber)
        self.cycles = 0
        self.badSequence = 0x1_0001
        self.packetsReceived = 0
        self.expectedPrior = 0
        self.receivedPrior = 0
    }

    mutating func updateJitter(timestamp: UInt32, now: NIODeadline) {
        let first = self.firstArrival ?? now
        self.firstArrival = first
        // Arrival in RTP units since the first packet; only differences matter, so wrapping is fine.
        let arrival = MediaClock.scale(
            nanoseconds: MediaClock.elapsed(from: first, to: now), rate: Int64(self.clockRate))
        let transit = UInt32(truncatingIfNeeded: arrival) &- timestamp
        defer {
            self.lastTransit = transit
            self.hasTransit = true
        }
        guard self.hasTransit else { return }
        let difference = Int32(bitPattern: transit &- self.lastTransit).magnitude
        // J += |D| - ((J + 8) >> 4), in wrapping-free form: the subtraction never exceeds J + |D|.
        let decay = (UInt64(self.scaledJitter) + 8) >> 4
        let sum = UInt64(self.scaledJitter) + UInt64(difference)
        let next = sum - min(decay, sum)
        self.scaledJitter = UInt32(clamping: next)
    }

    /// Cycles (high 16 bits) and highest sequence number (low 16 bits), as in the report block.
    public var extendedHighestSequenceNumber: UInt32 {
        UInt32(truncatingIfNeeded: self.cycles + Int64(self.maxSequence))
    }

    /// Packets expected since the first one (A.3): extended highest − base + 1.
    public var packetsExpected: Int64 {
        guard self.started else { return 0 }
        return self.cycles + Int64(self.maxSequence) - self.baseSequence + 1
    }

    /// Cumulative packets lost (may be negative with duplicates); not clamped.
    public var cumulativeLost: Int64 { self.packetsExpected - self.packetsReceived }

    /// Interarrival jitter in RTP timestamp units.
    public var jitter: UInt32 { self.scaledJitter >> 4 }

    /// Builds the report block for this stream and starts a new fraction-lost interval.
    ///
    /// - Parameter now: the time the report is sent, for DLSR.
    public mutating func makeReportBlock(now: NIODeadline) -> RTCPReportBlock {
        let expected = self.packetsExpected
        let expectedInterval = expected - self.expectedPrior
        self.expectedPrior = expected
        let receivedInterval = self.packetsReceived - self.receivedPrior
        self.receivedPrior = self.packetsReceived
        let lostInterval = expectedInterval - receivedInterval
        var fraction: UInt8 = 0
        if expectedInterval > 0, lostInterval > 0 {
            // lostInterval ≤ expectedInterval, so the quotient is at most 256; 256 only when all were lost.
            fraction = UInt8(clamping: (lostInterval << 8) / expectedInterval)
        }
        var delay: UInt32 = 0
        var lsr: UInt32 = 0
        if let arrival = self.lastSenderReportArrival {
            lsr = self.lastSenderReportNTP
            let units = MediaClock.scale(nanoseconds: MediaClock.elapsed(from: arrival, to: now), rate: 65536)
            delay = UInt32(clamping: units)
        }
        return RTCPReportBlock(
            ssrc: self.ssrc,
            fractionLost: fraction,
            cumulativeLost: Int32(clamping: min(max(self.cumulativeLost, -0x80_0000), 0x7F_FFFF)),
            extendedHighestSequenceNumber: self.extendedHighestSequenceNumber,
            jitter: self.jitter,
            lastSenderReport: lsr,
            delaySinceLastSenderReport: delay)
    }
}
