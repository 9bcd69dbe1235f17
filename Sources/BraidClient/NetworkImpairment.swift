import NIOCore

/// SplitMix64 (Steele, Lea and Flood, "Fast Splittable Pseudorandom Number Generators", OOPSLA 2014):
/// a tiny, seedable generator whose streams from nearby seeds are uncorrelated, so a load run can give
/// every peer and every direction its own reproducible stream from one `--seed`.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    var state: UInt64

    /// A generator starting from `seed`.
    public init(seed: UInt64) {
        self.state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) from the top 53 bits.
    public mutating func nextUnit() -> Double {
        Double(self.next() >> 11) * 0x1.0p-53
    }

    /// The seed of sub-stream `index` of `seed` (peer n, direction d, ...): one SplitMix step of a mix of both.
    public static func derive(_ seed: UInt64, _ index: UInt64) -> UInt64 {
        var generator = SplitMix64(seed: seed ^ (index &* 0xD1B5_4A32_D192_ED03))
        return generator.next()
    }
}

/// Two-state Gilbert–Elliott burst loss: in the good state nothing is lost, in the bad state everything
/// is ("simple Gilbert" model). Each packet first moves the chain: good → bad with probability `p`, bad → good
/// with probability `r`. The mean loss rate is `p / (p + r)` and the mean burst length is `1 / r` packets.
public struct GilbertElliottLoss: Sendable, Hashable {
    /// Probability of entering the bad state, per packet in the good state.
    public var p: Double
    /// Probability of leaving the bad state, per packet in the bad state.
    public var r: Double
    /// True while in the bad (losing) state.
    public private(set) var isBad = false

    /// A chain in the good state. `p` and `r` are clamped to 0...1; `r` of 0 would never leave a burst,
    /// so it is raised to a tiny positive value.
    public init(p: Double, r: Double) {
        self.p = p.isFinite ? min(max(p, 0), 1) : 0
        self.r = r.isFinite ? min(max(r, 1e-9), 1) : 1
    }

    /// The long-run fraction of packets lost.
    public var meanLossRate: Double { self.p / (self.p + self.r) }

    /// Moves the chain one packet and says whether that packet is lost.
    public mutating func nextPacketLost(using generator: inout SplitMix64) -> Bool {
        let draw = generator.nextUnit()
        if self.isBad {
            if draw < self.r { self.isBad = false }
        } else {
            if draw < self.p { self.isBad = true }
        }
        return self.isBad
    }
}

/// A token bucket that shapes to `bitsPerSecond` with a FIFO of at most `queueLimitBytes` behind it.
///
/// Tokens (bytes) refill continuously up to `burstBytes`. A packet that finds enough tokens (and nobody
/// queued) leaves at once; otherwise it waits in the queue until the bucket has refilled for it, and a packet
/// that would push the queue past its limit is dropped (tail drop). The queue is modelled by letting the
/// token count go negative: `-tokens` is the number of queued bytes still to be paid for, so the departure
/// time of a packet is when the count climbs back to zero. No timers, no storage: pure arithmetic.
public struct TokenBucket: Sendable, Hashable {
    /// Shaping rate.
    public let bitsPerSecond: Int
    /// Bucket depth: how many bytes may leave back to back after an idle period.
    public let burstBytes: Int
    /// Bytes that may wait; beyond this, packets are dropped.
    public let queueLimitBytes: Int
    var tokens: Double
    var updatedAt: Int64?

    /// - Parameters:
    ///   - bitsPerSecond: the rate (at least 1).
    ///   - burstBytes: bucket depth (at least one full-size datagram is sensible).
    ///   - queueLimitBytes: queue size in bytes.
    public init(bitsPerSecond: Int, burstBytes: Int, queueLimitBytes: Int) {
        self.bitsPerSecond = max(1, bitsPerSecond)
        self.burstBytes = max(0, burstBytes)
        self.queueLimitBytes = max(0, queueLimitBytes)
        self.tokens = Double(self.burstBytes)
    }

    /// Bytes currently waiting in the queue.
    public var queuedBytes: Int { self.tokens < 0 ? Int((-self.tokens).rounded(.up)) : 0 }

    /// Offers a packet of `bytes` at time `nanoseconds` (any monotonic origin, non-decreasing).
    /// - Returns: nanoseconds from `now` until the packet leaves (0 = at once), or nil if it is dropped.
    public mutating func admit(bytes: Int, now nanoseconds: Int64) -> Int64? {
        let bytesPerNanosecond = Double(self.bitsPerSecond) / 8e9
        if let last = self.updatedAt, nanoseconds > last {
            self.tokens = min(Double(self.burstBytes), self.tokens + Double(nanoseconds - last) * bytesPerNanosecond)
        }
        self.updatedAt = max(self.updatedAt ?? nanoseconds, nanoseconds)
        let after = self.tokens - Double(bytes)
        if after < 0, -after > Double(self.queueLimitBytes) { return nil }
        self.tokens = after
        if after >= 0 { return 0 }
        return Int64((-after / bytesPerNanosecond).rounded(.up))
    }
}

/// What one direction of a simulated network path does to datagrams: loss (independent and/or bursty),
/// a bandwidth cap with a queue, a fixed delay and jitter. `NetworkImpairment()` does nothing.
///
/// Applied by the client in user space to SRTP and SRTCP datagrams (ICE and DTLS handshake datagrams pass
/// untouched, so impaired peers still join promptly and join time measures the node). Delay is real: the
/// datagram is handed to the socket, or to the receive path, later on the peer's event loop, so measured
/// latency includes it. Datagrams never overtake each other (one queue, as on a single link): jitter that
/// would reorder is absorbed by holding the later packet.
public struct NetworkImpairment: Sendable, Hashable {
    /// Independent random loss probability, 0...1.
    public var lossRate: Double
    /// Bursty loss (applied after, and in addition to, ``lossRate``).
    public var burstLoss: GilbertElliottLoss?
    /// Fixed one-way delay.
    public var delay: Duration
    /// Each datagram gets an extra delay drawn uniformly from 0...jitter.
    public var jitter: Duration
    /// Bandwidth cap in bits per second; nil for none.
    public var rateBitsPerSecond: Int?
    /// Queue behind the bandwidth cap, as time at the cap rate (bytes = rate × this).
    public var queueDuration: Duration

    /// Creates an impairment; the defaults impair nothing.
    public init(
        lossRate: Double = 0, burstLoss: GilbertElliottLoss? = nil, delay: Duration = .zero, jitter: Duration = .zero,
        rateBitsPerSecond: Int? = nil, queueDuration: Duration = .milliseconds(500)
    ) {
        self.lossRate = lossRate.isFinite ? min(max(lossRate, 0), 1) : 0
        self.burstLoss = burstLoss
        self.delay = max(delay, .zero)
        self.jitter = max(jitter, .zero)
        self.rateBitsPerSecond = rateBitsPerSecond
        self.queueDuration = max(queueDuration, .zero)
    }

    /// True when nothing is impaired.
    public var isNone: Bool {
        self.lossRate == 0 && self.burstLoss == nil && self.delay == .zero && self.jitter == .zero
            && self.rateBitsPerSecond == nil
    }
}

/// Counters of one impaired direction.
public struct ImpairmentStatistics: Hashable, Sendable {
    /// Datagrams offered to the impairment.
    public var offered = 0
    /// Dropped by random or burst loss.
    public var droppedByLoss = 0
    /// Dropped because the bandwidth-cap queue was full.
    public var droppedByQueue = 0
    /// Delivered later than offered (delay, jitter or queueing).
    public var delayed = 0

    /// Creates zeroed counters.
    public init() {}
}

/// The decision state of one direction: seeded generator, loss chain, token bucket, last release time.
/// Pure: `decide` takes the time and returns when (or whether) the datagram goes on.
public struct ImpairedLink: Sendable {
    /// What to do with a datagram.
    public enum Verdict: Hashable, Sendable {
        /// Drop it.
        case drop
        /// Pass it on `nanoseconds` from now (0 = at once).
        case deliver(afterNanoseconds: Int64)
    }

    /// The configuration.
    public let impairment: NetworkImpairment
    var generator: SplitMix64
    var burst: GilbertElliottLoss?
    var bucket: TokenBucket?
    var lastRelease: Int64 = .min
    /// Counters so far.
    public private(set) var statistics = ImpairmentStatistics()

    /// A link applying `impairment`, drawing from a generator seeded with `seed`.
    public init(_ impairment: NetworkImpairment, seed: UInt64) {
        self.impairment = impairment
        self.generator = SplitMix64(seed: seed)
        self.burst = impairment.burstLoss
        if let rate = impairment.rateBitsPerSecond {
            let queueSeconds = Double(impairment.queueDuration.components.seconds)
                + Double(impairment.queueDuration.components.attoseconds) * 1e-18
            let queueBytes = Int((Double(rate) / 8 * queueSeconds).rounded())
            // Depth of one 20 ms worth or two full datagrams, whichever is larger.
            self.bucket = TokenBucket(
                bitsPerSecond: rate, burstBytes: max(2 * 1500, rate / 8 / 50), queueLimitBytes: max(1500, queueBytes))
        }
    }

    /// Decides the fate of a datagram of `bytes` offered at `now` (monotonic nanoseconds).
    public mutating func decide(bytes: Int, now: Int64) -> Verdict {
        self.statistics.offered += 1
        if self.impairment.lossRate > 0, self.generator.nextUnit() < self.impairment.lossRate {
            self.statistics.droppedByLoss += 1
            return .drop
        }
        if self.burst != nil, self.burst!.nextPacketLost(using: &self.generator) {
            self.statistics.droppedByLoss += 1
            return .drop
        }
        var wait: Int64 = 0
        if self.bucket != nil {
            guard let queued = self.bucket!.admit(bytes: bytes, now: now) else {
                self.statistics.droppedByQueue += 1
                return .drop
            }
            wait = queued
        }
        wait += Self.nanoseconds(self.impairment.delay)
        let jitter = Self.nanoseconds(self.impairment.jitter)
        if jitter > 0 { wait += Int64(self.generator.nextUnit() * Double(jitter)) }
        // One queue: never release before the previous datagram.
        let release = max(now &+ wait, self.lastRelease)
        self.lastRelease = release
        let after = release - now
        if after > 0 { self.statistics.delayed += 1 }
        return .deliver(afterNanoseconds: after)
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max / 4 : whole &+ attoseconds / 1_000_000_000
    }
}

/// Datagrams waiting for their release time, in release order (``ImpairedLink`` never reorders), with one
/// timer for the head. Storage is reused: steady state allocates only the timer.
struct DelayLine {
    struct Entry {
        var deadline: NIODeadline
        var datagram: ByteBuffer
        var address: SocketAddress
    }

    var entries: [Entry] = []
    var head = 0
    var timer: Scheduled<Void>?

    var isEmpty: Bool { self.head == self.entries.count }

    mutating func append(_ entry: Entry) {
        self.entries.append(entry)
    }

    /// Removes and returns the entries due by `now`, calling `body` on each in order.
    mutating func drain(now: NIODeadline, _ body: (ByteBuffer, SocketAddress) -> Void) {
        while self.head < self.entries.count, self.entries[self.head].deadline <= now {
            let entry = self.entries[self.head]
            self.entries[self.head].datagram = ByteBuffer()
            self.head += 1
            body(entry.datagram, entry.address)
        }
        if self.head == self.entries.count {
            self.entries.removeAll(keepingCapacity: true)
            self.head = 0
        } else if self.head > 256, self.head * 2 > self.entries.count {
            self.entries.removeFirst(self.head)
            self.head = 0
        }
    }

    var nextDeadline: NIODeadline? { self.isEmpty ? nil : self.entries[self.head].deadline }

    mutating func cancel() {
        self.timer?.cancel()
        self.timer = nil
        self.entries.removeAll()
        self.head = 0
    }
}
