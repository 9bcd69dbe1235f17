public import NIOCore

/// What an emulated link does to the datagrams crossing it: one-way delay with jitter, random loss and a
/// bandwidth limit. There is no `tc netem` on the machines Braid is tested on, so local meshes
/// (`Tools/mesh-up.sh`) and tests impair relay links in user space with this, on the sending side.
public struct LinkProfile: Sendable, Hashable, Codable {
    /// One-way delay, milliseconds (half the RTT of a symmetric link).
    public var latencyMs: Double
    /// Uniform extra delay in 0..<jitterMs, milliseconds (datagrams are never reordered by it).
    public var jitterMs: Double
    /// Probability that a datagram is dropped, 0...1.
    public var loss: Double
    /// Serialisation rate, kbit/s (0: unlimited); a datagram waits for the ones before it.
    public var bandwidthKbps: Double

    public init(latencyMs: Double = 0, jitterMs: Double = 0, loss: Double = 0, bandwidthKbps: Double = 0) {
        self.latencyMs = latencyMs
        self.jitterMs = jitterMs
        self.loss = loss
        self.bandwidthKbps = bandwidthKbps
    }

    enum CodingKeys: String, CodingKey {
        case latencyMs = "latency_ms"
        case jitterMs = "jitter_ms"
        case loss
        case bandwidthKbps = "bandwidth_kbps"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.latencyMs = try container.decodeIfPresent(Double.self, forKey: .latencyMs) ?? 0
        self.jitterMs = try container.decodeIfPresent(Double.self, forKey: .jitterMs) ?? 0
        self.loss = try container.decodeIfPresent(Double.self, forKey: .loss) ?? 0
        self.bandwidthKbps = try container.decodeIfPresent(Double.self, forKey: .bandwidthKbps) ?? 0
    }
}

/// Decides, datagram by datagram, when an emulated link delivers (or whether it drops). Pure: the clock
/// is passed in and the randomness is a seeded generator, so a run can be repeated.
public struct LinkEmulator: Sendable {
    public var profile: LinkProfile
    private var random: SplitMix64
    /// When the link has finished serialising what it was given.
    private var busyUntil: NIODeadline = .uptimeNanoseconds(0)
    /// The last delivery time handed out (jitter never reorders).
    private var lastDelivery: NIODeadline = .uptimeNanoseconds(0)
    public private(set) var dropped = 0
    public private(set) var passed = 0

    public init(profile: LinkProfile, seed: UInt64 = 1) {
        self.profile = profile
        self.random = SplitMix64(seed: seed)
    }

    /// When a datagram of `bytes` sent `now` arrives, or nil when the link drops it.
    public mutating func schedule(bytes: Int, now: NIODeadline) -> NIODeadline? {
        if self.profile.loss > 0 && self.random.nextUnit() < self.profile.loss {
            self.dropped += 1
            return nil
        }
        var departure = now
        if self.profile.bandwidthKbps > 0 {
            let start = max(now, self.busyUntil)
            let serialisation = TimeAmount.nanoseconds(Int64(Double(bytes * 8) / self.profile.bandwidthKbps * 1_000_000))
            departure = start + serialisation
            self.busyUntil = departure
        }
        var delay = self.profile.latencyMs
        if self.profile.jitterMs > 0 { delay += self.random.nextUnit() * self.profile.jitterMs }
        let delivery = max(departure + .nanoseconds(Int64(delay * 1_000_000)), self.lastDelivery)
        self.lastDelivery = delivery
        self.passed += 1
        return delivery
    }
}

/// A small seeded generator (SplitMix64, Steele et al. 2014): repeatable impairments.
struct SplitMix64: Sendable {
    private var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in 0..<1.
    mutating func nextUnit() -> Double {
        Double(self.next() >> 11) / Double(1 << 53)
    }
}
