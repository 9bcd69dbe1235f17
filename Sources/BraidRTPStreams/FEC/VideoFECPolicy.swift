import Foundation
public import NIOCore

/// How much repair a link gets from Braid's sliding-window FEC (``SlidingWindowFECEncoder``; hops with Braid
/// at both ends: node → BraidClient subscriber, relay links, a BraidClient publisher's uplink): repair
/// packets sent with the media up front, and repair rounds in answer to NACKs (LOSS-NOTES §1.2).
///
/// Up front: `ρ = margin · p / (1 − p)` repairs per packet at loss `p` repair about `margin` of the losses
/// before the receiver has to ask (``RepairCredit``). What is left is the receiver's deficit: it NACKs that many
/// of its missing packets, and the node answers with fresh repairs over the span from the oldest of them
/// through the newest packet sent, as many as make it likely that at least the deficit arrives
/// (``repairs(deficit:loss:round:)``). Any deficit-many repairs rebuild every missing packet in the span,
/// so a round costs about `deficit / (1 − p)` packets where per-packet copies would cost several times
/// that. No repair below ``lossThreshold``: a clean link costs nothing, and its rare loss goes to RTX.
public struct VideoFECPolicy: Sendable, Hashable {
    /// Below this loss no repair packets are sent.
    public var lossThreshold: Double = 0.005
    /// Repairs sent up front that arrive per packet lost. Measured with braid-load at 50 % loss and 300
    /// kbit/s (Benchmarks/README.md, "Loss protection", "Silence probes"), seeds 7–10 interleaved: since
    /// subscribers probe a silent stream, 0.7 made 99.57–99.80 % of frames decodable in time at 2.93–2.98×
    /// the media bytes, 1.0 99.21–99.88 % at 3.03–3.12×, 0.5 99.39–99.59 % at 2.85–3.00×. (Before the
    /// probes, less up front meant later rounds: 0.8 gave 97.8–98.3 %.)
    public var margin: Double = 0.7
    /// Most repair packets per media packet.
    public var maximumRatio: Double = 2
    /// The chance that a repair round brings at least the deficit, for the first round and for each later
    /// one (a span asked for again was not repaired in time by the last round: the next one is surer).
    /// Cheaper first rounds trade time for bytes: [0.75, 0.9, 0.99] sent 10 % fewer bytes at 50 % loss
    /// (3.35–3.47× against 3.71–3.79×, seeds 7–9) but made 98.0–99.0 % of frames decodable in time
    /// against 99.2–99.5 % (Benchmarks/README.md, "Loss protection").
    public var roundSuccess: [Double] = [0.9, 0.97, 0.99]
    /// Most repair packets in one round.
    public var maximumRoundRepairs: Int = 32
    /// Packets a repair covers at most. The encoder keeps what was sent within ``keptDuration``, up to this
    /// many: a 1.4 Mbit/s stream sends about 30 packets in 200 ms and a keyframe of 40 packets at once.
    /// 24 packets (the earlier default) cut such a stream's window short: at 50 % loss, packets left out of
    /// every span were lost for good and broke the decoding chain until the next keyframe (83–85 % of frames
    /// in time against 99.8 % with 64; Benchmarks/README.md, "Loss protection").
    public var window: Int = 64
    /// A repair covers only packets sent this recently (older ones would be recovered too late to play).
    public var windowDuration: TimeAmount = .milliseconds(200)
    /// The encoder keeps the packets sent this recently (at most ``window``; slots grow in powers of two,
    /// so a 30-packet-a-second stream keeps 16, 530 ms): a repair round answering a NACK reaches back to the
    /// oldest packet named. That may be older than ``windowDuration``: a frame rebuilt after its playout
    /// point still keeps the decoding chain whole, where a packet lost for good breaks it until the next
    /// keyframe. Older packets go to RTX, whose buffer keeps a second.
    public var keptDuration: TimeAmount = .milliseconds(400)
    /// A repair's window stops before a packet that would make it more than this many times longer than
    /// the newer packets need (a keyframe's full-size packets would otherwise inflate every later repair).
    public var maximumSymbolGrowth: Int = 2

    public init() {}

    /// Repair packets per media packet for a link losing `loss` (0–1) of its packets.
    public func repairRatio(loss: Double) -> Double {
        RepairCredit.ratio(loss: loss, margin: self.margin, threshold: self.lossThreshold, maximum: self.maximumRatio)
    }

    /// Repair packets to send in answer to a NACK of `deficit` packets on a link losing `loss` (0–1), in
    /// repair round `round` (0 for the first time these packets are asked for): the fewest `m` with
    /// P(at least `deficit` of `m` arrive) ≥ ``roundSuccess``, at most ``maximumRoundRepairs``.
    public func repairs(deficit: Int, loss: Double, round: Int) -> Int {
        guard loss.isFinite, loss > 0 else { return deficit > 0 ? deficit : 0 }
        guard loss < 1 else { return deficit > 0 ? max(deficit, self.maximumRoundRepairs) : 0 }
        return self.repairs(deficit: deficit, round: round) { Self.atLeast($0, of: $1, arriving: 1 - loss) }
    }

    /// ``repairs(deficit:loss:round:)`` on a link whose losses come in bursts, as `bursts` measured them:
    /// the round's repairs go out back to back, so a burst can take them all, and the fewest that reach
    /// the round's target under the fitted chain are sent (more than for independent loss at the same
    /// rate, since extra repairs die in the same burst; LOSS-NOTES §1.4).
    public func repairs(deficit: Int, bursts: BurstLossModel, round: Int) -> Int {
        let loss = bursts.lossRate
        guard loss.isFinite, loss > 0, loss < 1 else { return self.repairs(deficit: deficit, loss: loss, round: round) }
        return self.repairs(deficit: deficit, round: round) { bursts.atLeast($0, of: $1) }
    }

    /// The fewest `m` in deficit...cap with `atLeast(deficit, m)` ≥ the round's target, or the cap.
    private func repairs(deficit: Int, round: Int, atLeast: (Int, Int) -> Double) -> Int {
        guard deficit > 0 else { return 0 }
        let cap = max(deficit, self.maximumRoundRepairs)
        guard let target = self.roundSuccess.isEmpty ? nil : self.roundSuccess[min(round, self.roundSuccess.count - 1)]
        else { return cap }
        var m = deficit
        while m < cap, atLeast(deficit, m) < target { m += 1 }
        return m
    }

    /// P(Binomial(n, q) ≥ k).
    public static func atLeast(_ k: Int, of n: Int, arriving q: Double) -> Double {
        guard k > 0 else { return 1 }
        guard k <= n else { return 0 }
        // Sum the terms below k: P(X = i) = C(n, i) qⁱ (1 − q)ⁿ⁻ⁱ, built up term by term.
        var term = pow(1 - q, Double(n))
        var below = 0.0
        for i in 0..<k {
            below += term
            term *= Double(n - i) / Double(i + 1) * q / (1 - q)
        }
        return max(0, 1 - below)
    }
}
