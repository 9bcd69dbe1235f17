public import NIOCore

/// A receiver's probe for losses it cannot see yet: when a stream that sends packets steadily falls silent
/// for several of its packet intervals, what was sent meanwhile was lost, and asking for it now saves the
/// wait for the next packet to show the gap (the idea of TCP's tail loss probe, RFC 8985 §7, and QUIC's
/// probe timeout, RFC 9002 §6.2, on the receiving side).
///
/// At 50 % random loss a stream of 30 packets a second, each followed by one repair, falls silent for four
/// packet intervals (eight transmissions lost in a row) about once in 256 packets. The receiver learned of
/// those losses only when the next packet came, some 165 ms after the last, and the repair round it then
/// asked for landed a round trip later: past a 250 ms playout point (Benchmarks/README.md, "Loss
/// protection", "Silence probes"). A probe names the numbers after the newest packet seen, as many as the
/// silence probably hid; the sender answers a repair round for those it has sent (the ones it has not sent
/// yet it ignores), so a probe on a stream that merely paused costs one NACK.
///
/// The packet interval is learned from arrivals: an exponential average of the time per sequence number
/// over spans of at least ``sampleSpan`` (a keyframe's packets come back to back, and would otherwise pull
/// the average far below the stream's mean). After ``maximumProbes`` probes in one silence the
/// stream is taken to have paused, and probing waits for the next packet.
///
/// A value type on the track's event loop, a few integers: no allocation.
public struct SilenceProbe: Sendable {
    /// A silence this many packet intervals long is a probable loss.
    public var intervals: Double = 2.5
    /// The shortest silence probed (a fast stream's intervals are shorter than the jitter of its path).
    public var minimumSilence: TimeAmount = .milliseconds(40)
    /// Probes sent in one silence at most.
    public var maximumProbes = 3
    /// Numbers named in one probe at most.
    public var maximumNamed = 8
    /// The shortest span of arrivals one interval sample is taken over.
    public var sampleSpan: TimeAmount = .milliseconds(100)
    /// A longer span between two arrivals is a pause of the sender, not its rate: no sample.
    public var longestSample: TimeAmount = .seconds(1)

    /// The estimated time between two packets of the stream, in nanoseconds; nil before the first sample.
    public private(set) var packetInterval: Double?
    private var lastArrival: NIODeadline?
    private var lastAdvance: (sequence: Int64, at: NIODeadline)?
    private var probesInSilence = 0
    private var nextProbeAt: NIODeadline?
    /// Probes sent.
    public private(set) var probesSent = 0

    public init() {}

    /// Any packet of the stream (media, retransmission or repair) arrived; `newest` is the newest sequence
    /// number known sent after it (unwrapped), if any.
    public mutating func arrived(newest: Int64?, now: NIODeadline) {
        self.lastArrival = now
        self.probesInSilence = 0
        self.nextProbeAt = nil
        guard let newest else { return }
        if let last = self.lastAdvance {
            guard newest > last.sequence, now - last.at >= self.sampleSpan else { return }
            guard now - last.at <= self.longestSample else {
                self.lastAdvance = (newest, now)
                return
            }
            let sample = Double((now - last.at).nanoseconds) / Double(newest - last.sequence)
            // 1/8 per sample, as RFC 6298 smooths round trips.
            self.packetInterval = self.packetInterval.map { $0 + (sample - $0) / 8 } ?? sample
        }
        self.lastAdvance = (newest, now)
    }

    /// How many numbers after the newest to name in a probe now, or nil when none is due. Marks the probe
    /// sent: the next one in the same silence waits `answerTime` (the round trip and a margin) for this
    /// one's answer.
    public mutating func due(now: NIODeadline, answerTime: TimeAmount) -> Int? {
        guard let interval = self.packetInterval, interval > 0, let lastArrival = self.lastArrival,
            self.probesInSilence < self.maximumProbes
        else { return nil }
        if let next = self.nextProbeAt, now < next { return nil }
        let silence = Double((now - lastArrival).nanoseconds)
        guard silence >= max(Double(self.minimumSilence.nanoseconds), self.intervals * interval) else { return nil }
        self.probesInSilence += 1
        self.probesSent += 1
        self.nextProbeAt = now + answerTime
        return max(1, min(self.maximumNamed, Int((silence / interval).rounded())))
    }

    /// When a probe is due (``due(now:answerTime:)``), writes the numbers it names, those after `newest`
    /// (unwrapped), into `names` (cleared first, its capacity kept) and returns true.
    public mutating func probe(
        after newest: Int64, now: NIODeadline, answerTime: TimeAmount, into names: inout ContiguousArray<UInt16>
    ) -> Bool {
        guard let count = self.due(now: now, answerTime: answerTime) else { return false }
        names.removeAll(keepingCapacity: true)
        for offset in 1...Int64(count) { names.append(UInt16(truncatingIfNeeded: newest + offset)) }
        return true
    }
}
