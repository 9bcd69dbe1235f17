/// How many repair packets of a sliding-window code to send after each media packet, for any hop that
/// protects a stream up front (the node toward a BraidClient subscriber, a BraidClient publisher on its
/// uplink): `ratio` repairs per media packet, spread evenly by carrying the fraction from packet to packet
/// (ρ = 0.4 sends a repair after every second or third packet, two in five in all).
///
/// With random loss `p`, a window of `w` packets loses `p·w` of them; `ρ` repairs per packet over the same
/// window bring `ρ·w·(1 − p)`, so ``ratio(loss:margin:threshold:maximum:)`` = `margin · p / (1 − p)`
/// repairs about `margin` of the losses before the receiver has to ask (LOSS-NOTES §1.2).
public struct RepairCredit: Sendable, Hashable {
    /// Repair packets per media packet in force.
    public private(set) var ratio = 0.0
    private var credit = 0.0

    public init() {}

    /// `margin · loss / (1 − loss)` repairs per packet, at most `maximum`; 0 below `threshold` (a clean
    /// link costs nothing and its rare loss is left to retransmission).
    public static func ratio(loss: Double, margin: Double = 1, threshold: Double, maximum: Double) -> Double {
        guard loss.isFinite, loss >= threshold else { return 0 }
        guard loss < 1 else { return maximum }
        return min(maximum, margin * loss / (1 - loss))
    }

    /// Sets the ratio; at 0 the carried fraction is dropped too.
    public mutating func set(ratio: Double) {
        self.ratio = ratio
        if ratio <= 0 { self.credit = 0 }
    }

    /// A media packet was sent: the repairs to send after it.
    public mutating func packetSent() -> Int {
        guard self.ratio > 0 else { return 0 }
        self.credit += self.ratio
        let repairs = Int(self.credit)
        self.credit -= Double(repairs)
        return repairs
    }
}
