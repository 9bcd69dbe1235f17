import BraidWire

/// A token bucket per UDP source (IP address and port), in a table of fixed size: how many datagrams the
/// media socket takes from a source that has no session with completed DTLS (`limits.unverified_packets_per_second`).
///
/// Each bucket is one number, its *theoretical arrival time* (the generic cell rate algorithm, equivalent to a
/// token bucket): a datagram is admitted when that time is no further ahead of now than one burst, and then
/// pushes it one interval (1 s / rate) further. A new source starts with a full bucket of `burst` datagrams
/// (one second's worth), then gets `rate` a second.
///
/// Bounded: at most ``capacity`` sources are remembered; a new one takes the slot of the source that came
/// longest ago (first in, first out), which then starts again with a full bucket when it comes back. Slots,
/// keys and the index are allocated once, up front: admitting a datagram never allocates.
///
/// Confined to one media event loop (no locks). The clock is passed in (nanoseconds, any monotonic origin) so
/// tests need no sleep.
struct SourceRateLimiter {
    /// Sources remembered by default: a flood from more distinct sources than this at once evicts the oldest.
    static let defaultCapacity = 16_384

    /// Datagrams a second, per source.
    let rate: Int
    /// Datagrams a new source may send at once.
    let burst: Int
    /// Most sources remembered.
    let capacity: Int

    /// Nanoseconds between two datagrams at `rate`.
    private let interval: UInt64
    /// How far ahead of now a bucket's arrival time may be and still admit: (burst - 1) intervals.
    private let tolerance: UInt64

    private var index: [STUNAddress: Int]
    private var keys: [STUNAddress?]
    private var arrivals: [UInt64]
    /// The slot the next new source takes (the oldest once the table is full).
    private var next = 0

    /// Datagrams refused since creation.
    private(set) var refused: UInt64 = 0

    init(rate: Int, burst: Int? = nil, capacity: Int = SourceRateLimiter.defaultCapacity) {
        self.rate = max(1, rate)
        self.burst = max(1, burst ?? self.rate)
        self.capacity = max(1, capacity)
        self.interval = 1_000_000_000 / UInt64(self.rate)
        self.tolerance = self.interval &* UInt64(self.burst - 1)
        self.index = [:]
        self.index.reserveCapacity(self.capacity)
        self.keys = [STUNAddress?](repeating: nil, count: self.capacity)
        self.arrivals = [UInt64](repeating: 0, count: self.capacity)
    }

    /// Sources remembered now.
    var count: Int { self.index.count }

    /// Whether a datagram from `source` at `now` (nanoseconds) is within its rate; counts a refusal.
    mutating func admit(_ source: STUNAddress, now: UInt64) -> Bool {
        let slot: Int
        if let known = self.index[source] {
            slot = known
        } else {
            slot = self.next
            self.next = self.next + 1 == self.capacity ? 0 : self.next + 1
            if let old = self.keys[slot] { self.index.removeValue(forKey: old) }
            self.keys[slot] = source
            self.index[source] = slot
            self.arrivals[slot] = now
        }
        let arrival = max(self.arrivals[slot], now)
        guard arrival &- now <= self.tolerance else {
            self.refused &+= 1
            return false
        }
        self.arrivals[slot] = arrival &+ self.interval
        return true
    }

    /// Forgets `source` (its session completed DTLS, or it should start afresh).
    mutating func forget(_ source: STUNAddress) {
        guard let slot = self.index.removeValue(forKey: source) else { return }
        self.keys[slot] = nil
    }
}
