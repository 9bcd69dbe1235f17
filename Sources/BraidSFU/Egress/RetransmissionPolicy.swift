import Foundation

/// How many copies of a retransmission the node sends. On a lossy link a retransmission is lost as often
/// as the original, and a playout deadline leaves room for only two or three round trips (LOSS-NOTES
/// §1.2): the first round sends ``firstRoundCopies`` copies and each further round one more (a packet
/// asked for again was lost again), as many as make losing every copy of a round unlikely
/// (`loss^copies ≤ residualTarget`), at most ``maximumCopies``. Below ``lossThreshold`` a retransmission goes
/// once.
///
/// At 50 % loss the rounds send 2, 3 and 4 copies: a packet lost once is still missing after three rounds
/// with probability 0.25 · 0.125 · 0.0625 ≈ 0.2 %, at an expected 1 + 0.5 · 2 + 0.125 · 3 + 0.016 · 4 ≈
/// 2.4 transmissions per packet when nothing else repairs it.
public struct RetransmissionPolicy: Sendable, Hashable {
    /// Below this loss a retransmission is sent once.
    public var lossThreshold: Double = 0.05
    /// Copies in the first round.
    public var firstRoundCopies: Int = 2
    /// Most copies of one retransmission.
    public var maximumCopies: Int = 4
    /// The chance of losing every copy of a round that more copies are not worth.
    public var residualTarget: Double = 0.01

    public init() {}

    /// Copies to send of a packet already resent `previousResends` times, on a link losing `loss` (0–1).
    public func copies(previousResends: Int, loss: Double) -> Int {
        guard loss.isFinite, loss >= self.lossThreshold, self.maximumCopies > 1 else { return 1 }
        let enough = loss >= 1 ? self.maximumCopies : Int((log(self.residualTarget) / log(loss)).rounded(.up))
        return max(1, min(previousResends + self.firstRoundCopies, enough, self.maximumCopies))
    }
}
