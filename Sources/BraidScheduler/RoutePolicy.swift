/// How a link measurement and a node's state become the integer weight of a directed edge.
///
/// The weight of edge u → v, in whole milliseconds, is
///
/// ```
///   w(u→v) = link(u→v) + node(v) + hopCost
///   link   = rtt/2 + jitterWeight·jitter + lossPenalty(loss) + capacityPenalty(spare)
///   lossPenalty(loss)     = lossPerPercent·p + lossPerPercentSquared·p²          (p = loss in %)
///   capacityPenalty(spare)= lowCapacityPenalty·(1 − spare/lowCapacityThreshold)  (when spare < threshold)
///   node   = loadWeight·L/(1 − L) (+ drainingPenalty while draining)             (L = load, capped)
/// ```
///
/// With the defaults: 1 % loss costs 2.2 ms, 10 % 40 ms, 50 % 600 ms (a lossy short link loses to any
/// clean path shorter than ~0.6 s one way); load 0.5 costs 5 ms, 0.9 costs 45 ms, 0.99 costs 495 ms.
/// Why these shapes: each hop repairs its own loss (NACK, FEC), so a little loss costs about a retransmission
/// round trip on a few packets, while heavy loss eats the repair budget and the bandwidth; a node's queueing
/// delay grows like L/(1 − L) as it nears saturation. The hop cost is there so that a detour saving a
/// millisecond or two does not add a forwarding hop (one more copy, one more place to fail).
///
/// ``link`` and ``node`` are quantised to whole milliseconds and pass through hysteresis separately: a
/// stored value moves only when a new measurement differs from it by more than
/// `max(hysteresisMilliseconds, hysteresisFraction × stored)`, so probe noise leaves every route alone.
/// Weights are integers, so equal-cost paths are exact ties, broken by node id.
public struct RoutePolicy: Sendable, Hashable {
    /// Added to every edge: a detour must save more than this per extra hop, ms.
    public var hopCost: Int32 = 3
    /// Milliseconds of cost per millisecond of jitter.
    public var jitterWeight: Double = 0.5
    /// Linear loss term, ms per % of loss.
    public var lossPerPercent: Double = 2
    /// Quadratic loss term, ms per %², what makes heavy loss steep.
    public var lossPerPercentSquared: Double = 0.2
    /// Below this spare capacity (kbit/s) a link is penalised, linearly up to ``lowCapacityPenalty`` at 0.
    public var lowCapacityThreshold: Double = 1_000
    /// Penalty of a link with no spare capacity left, ms.
    public var lowCapacityPenalty: Double = 100
    /// Scale of the load penalty L/(1 − L), ms.
    public var loadWeight: Double = 5
    /// The load at which the penalty stops growing (L/(1 − L) is infinite at 1).
    public var maximumLoad: Double = 0.995
    /// Added to a draining node, ms: it forwards only where no other path exists.
    public var drainingPenalty: Double = 1_000
    /// A stored cost moves only when the new one differs by more than this, ms ...
    public var hysteresisMilliseconds: Double = 5
    /// ... or by more than this fraction of the stored cost, whichever is larger.
    public var hysteresisFraction: Double = 0.10
    /// No single cost component exceeds this, ms, so path sums stay far from `Int32.max`.
    public var maximumCost: Double = 100_000

    public init() {}

    /// The link part of an edge's cost, ms, before quantisation.
    public func linkCost(_ m: LinkMeasurement) -> Double {
        let percent = min(max(m.loss, 0), 1) * 100
        var cost = max(m.rtt, 0) / 2 + self.jitterWeight * max(m.jitter, 0)
        cost += self.lossPerPercent * percent + self.lossPerPercentSquared * percent * percent
        if let spare = m.spareCapacity, spare < self.lowCapacityThreshold, self.lowCapacityThreshold > 0 {
            cost += self.lowCapacityPenalty * (1 - max(spare, 0) / self.lowCapacityThreshold)
        }
        return min(cost, self.maximumCost)
    }

    /// The node part of the cost of every edge into a node, ms, before quantisation.
    public func nodeCost(load: Double, isDraining: Bool) -> Double {
        let l = min(max(load, 0), self.maximumLoad)
        let cost = self.loadWeight * l / (1 - l) + (isDraining ? self.drainingPenalty : 0)
        return min(cost, self.maximumCost)
    }

    /// `cost` rounded to whole milliseconds.
    public func quantise(_ cost: Double) -> Int32 {
        Int32(min(max(cost, 0), self.maximumCost).rounded())
    }

    /// The value to store when `measured` arrives on top of `stored`: `stored` unless the difference
    /// exceeds the hysteresis margin, else `measured` quantised.
    public func filtered(stored: Int32?, measured: Double) -> Int32 {
        let candidate = self.quantise(measured)
        guard let stored else { return candidate }
        let margin = max(self.hysteresisMilliseconds, self.hysteresisFraction * Double(stored))
        return abs(Double(candidate) - Double(stored)) > margin ? candidate : stored
    }
}
