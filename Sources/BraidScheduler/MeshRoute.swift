/// A path media takes from an origin to a node.
public struct MeshRoute: Sendable, Hashable {
    /// The nodes crossed, origin first.
    public var nodes: [MeshNodeID]
    /// Sum of the edge weights (ms, with penalties and hop costs): what the scheduler minimised.
    public var cost: Int
    /// Sum of the links' one-way latencies (RTT/2), ms: what a packet should take.
    public var latency: Double
}

/// A directed link a track crosses: `from` forwards one copy to `to`.
public struct MeshEdge: Sendable, Hashable, CustomStringConvertible {
    public var from: MeshNodeID
    public var to: MeshNodeID

    public init(from: MeshNodeID, to: MeshNodeID) {
        self.from = from
        self.to = to
    }

    public var description: String { "\(self.from)→\(self.to)" }
}

/// An origin's tree pruned to the nodes with subscribers.
public struct MeshDistributionTree: Sendable, Hashable {
    /// One edge per link used, parents before children (by distance from the origin, then node id).
    public var edges: [MeshEdge]
    /// Subscriber nodes the origin cannot reach (or unknown ones), in id order.
    public var unreachable: [MeshNodeID]
}
