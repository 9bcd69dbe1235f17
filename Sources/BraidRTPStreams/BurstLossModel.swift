/// A link's loss as a two-state Markov chain fitted to its per-packet results (Gilbert–Elliott in its
/// "simple Gilbert" form: a packet sent in the good state arrives, one sent in the bad state is lost), so
/// that repairs sent back to back can be sized for losses that come in bursts.
///
/// ```
///            P(lost | previous arrived) = p
///      ┌──────┐ ──────────────────────► ┌─────┐
///      │ good │                         │ bad │   stationary loss  π = p / (p + r)
///      └──────┘ ◄────────────────────── └─────┘   mean burst       1 / r packets
///            P(arrived | previous lost) = r
/// ```
///
/// Independent loss at rate `q` is the chain with `p = q` and `r = 1 − q`, so the model reduces to the
/// binomial where losses do not cluster. Under bursts it does not: at 20 % mean loss in bursts of five
/// (p = 0.05, r = 0.2), two repairs sent together are both lost about one time in six (0.2 × 0.8), where
/// independent loss would lose both one time in 25, and each further repair takes off only a fifth of
/// what is left (LOSS-NOTES §1.4). The transition counts decay over about ``memory`` packets, like ``LossAverage``. Pure and
/// allocation-free; fed from transport-wide feedback in sending order.
public struct BurstLossModel: Sendable, Hashable {
    /// Packets the fit remembers.
    public static let memory = 300.0

    private var afterArrived = 0.0
    private var lostAfterArrived = 0.0
    private var afterLost = 0.0
    private var lostAfterLost = 0.0
    /// The previous packet's sequence number and fate: a transition is counted only between consecutive
    /// packets (feedback that skips some, or restarts, breaks the chain).
    private var previousSequence: UInt16?
    private var previousLost = false

    public init() {}

    /// A model as if fitted to a long run of the chain with these transition probabilities.
    public init(enterBurst p: Double, leaveBurst r: Double) {
        let p = min(1, max(0, p))
        let r = min(1, max(0, r))
        let lossRate = p + r > 0 ? p / (p + r) : 0
        self.afterArrived = Self.memory * (1 - lossRate)
        self.lostAfterArrived = self.afterArrived * p
        self.afterLost = Self.memory * lossRate
        self.lostAfterLost = self.afterLost * (1 - r)
    }

    /// Packet `sequence` (a transport-wide number, in sending order) was `lost` or arrived.
    public mutating func add(sequence: UInt16, lost: Bool) {
        defer {
            self.previousSequence = sequence
            self.previousLost = lost
        }
        guard let previousSequence = self.previousSequence, sequence == previousSequence &+ 1 else { return }
        let keep = 1 - 1 / Self.memory
        self.afterArrived *= keep
        self.lostAfterArrived *= keep
        self.afterLost *= keep
        self.lostAfterLost *= keep
        if self.previousLost {
            self.afterLost += 1
            if lost { self.lostAfterLost += 1 }
        } else {
            self.afterArrived += 1
            if lost { self.lostAfterArrived += 1 }
        }
    }

    /// Transitions the fit needs before it is used (a feedback interval's worth of packets).
    public static let minimumSamples = 32.0

    /// Whether enough transitions have been seen for the fit to mean something.
    public var hasSamples: Bool { self.afterArrived + self.afterLost >= Self.minimumSamples }

    /// How much likelier a loss is right after a loss than after an arrival before the losses count as
    /// bursts. Independent loss fitted over ``memory`` packets differs by chance by about 0.06 at 50 %
    /// loss; 20 % loss in bursts of five differs by 0.75.
    public static let burstinessThreshold = 0.15

    /// Whether the losses cluster: enough samples, and P(lost | lost) exceeds P(lost | arrived) by more
    /// than ``burstinessThreshold``. Otherwise the binomial at ``lossRate`` describes the link as well.
    public var isBursty: Bool {
        self.hasSamples && (1 - self.leaveBurst) - self.enterBurst > Self.burstinessThreshold
    }

    /// P(lost | previous arrived); 0 before a packet followed one that arrived.
    public var enterBurst: Double {
        self.afterArrived > 0 ? self.lostAfterArrived / self.afterArrived : 0
    }

    /// P(arrived | previous lost); 1 before any loss.
    public var leaveBurst: Double {
        self.afterLost > 0 ? 1 - self.lostAfterLost / self.afterLost : 1
    }

    /// The chain's long-run loss rate.
    public var lossRate: Double {
        let p = self.enterBurst
        let r = self.leaveBurst
        return p + r > 0 ? p / (p + r) : 1
    }

    /// Mean length of a run of lost packets.
    public var meanBurstLength: Double {
        let r = self.leaveBurst
        return r > 0 ? 1 / r : .infinity
    }

    /// P(at least `k` of `n` packets sent back to back arrive), the chain starting from its long-run
    /// state: each packet moves the chain, then arrives in the good state.
    public func atLeast(_ k: Int, of n: Int) -> Double {
        Self.atLeast(k, of: n, enterBurst: self.enterBurst, leaveBurst: self.leaveBurst)
    }

    /// ``atLeast(_:of:)`` for a chain with the given transition probabilities.
    public static func atLeast(_ k: Int, of n: Int, enterBurst p: Double, leaveBurst r: Double) -> Double {
        guard k > 0 else { return 1 }
        guard k <= n, p.isFinite, r.isFinite else { return 0 }
        let p = min(1, max(0, p))
        let r = min(1, max(0, r))
        guard p + r > 0 else { return p == 0 ? 1 : 0 }
        let lossRate = p / (p + r)
        // good[c], bad[c]: the chain in that state after the packets so far, c of them arrived (c = k
        // absorbs: k or more). Before the first packet it is in its long-run state with nothing arrived.
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: 2 * (k + 1)) { memory in
            memory.initialize(repeating: 0)
            let good = UnsafeMutableBufferPointer(rebasing: memory[0...k])
            let bad = UnsafeMutableBufferPointer(rebasing: memory[(k + 1)...])
            good[0] = 1 - lossRate
            bad[0] = lossRate
            for _ in 0..<n {
                // Downward, so that good[c − 1] and bad[c − 1] are still the previous step's when read.
                for c in stride(from: k, through: 0, by: -1) {
                    let lostNow = good[c] * p + bad[c] * (1 - r)
                    var arrivedNow = c > 0 ? good[c - 1] * (1 - p) + bad[c - 1] * r : 0
                    if c == k { arrivedNow += good[k] * (1 - p) + bad[k] * r }
                    good[c] = arrivedNow
                    bad[c] = lostNow
                }
            }
            return min(1, good[k] + bad[k])
        }
    }
}
