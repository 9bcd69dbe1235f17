/// A loss fraction averaged over recent packets: each report moves the average toward its own fraction by
/// its share of a ~100-packet memory, so a report of many packets weighs more than a report of few, and
/// the first report counts in full (a lossy link is protected within one feedback interval).
public struct LossAverage: Sendable {
    public init() {}

    /// Packets the average remembers.
    public static let memory = 100.0
    public private(set) var fraction = 0.0
    public private(set) var packets = 0.0

    public var hasSamples: Bool { self.packets > 0 }

    public mutating func add(lost: Int, of total: Int) {
        guard total > 0 else { return }
        // A plain average until the memory is full, then an exponential one over about `memory` packets.
        let share = min(1, Double(total) / min(Self.memory, self.packets + Double(total)))
        self.fraction += share * (Double(lost) / Double(total) - self.fraction)
        self.packets = min(Self.memory, self.packets + Double(total))
    }
}
