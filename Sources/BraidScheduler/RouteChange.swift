/// One mutation of the scheduler's view of the mesh, for ``MeshScheduler/apply(_:)``.
public enum MeshChange: Sendable, Hashable {
    /// A node appeared or its load, location, liveness or draining changed.
    case node(MeshNodeID, MeshNodeState)
    /// A node left the cluster; its links go with it.
    case removeNode(MeshNodeID)
    /// A probe round measured the directed link `from` → `to` (media flows from → to).
    case link(from: MeshNodeID, to: MeshNodeID, LinkMeasurement)
    /// The directed link `from` → `to` is gone.
    case removeLink(from: MeshNodeID, to: MeshNodeID)
}

/// A node that now pulls an origin's tracks from a different neighbour (or from none: unreachable).
///
/// Pulls are hop by hop, so this is all a node needs to act on: unsubscribe from `previous`, subscribe
/// at `next`. A change further up the path shows up as its own change at the node where the path forks.
public struct RouteChange: Sendable, Hashable, CustomStringConvertible {
    /// The node whose tracks flow along the tree.
    public var origin: MeshNodeID
    /// The node whose upstream changed.
    public var node: MeshNodeID
    /// The neighbour it pulled from before, nil if it could not reach the origin.
    public var previous: MeshNodeID?
    /// The neighbour it pulls from now, nil if it can no longer reach the origin.
    public var next: MeshNodeID?

    public init(origin: MeshNodeID, node: MeshNodeID, previous: MeshNodeID?, next: MeshNodeID?) {
        self.origin = origin
        self.node = node
        self.previous = previous
        self.next = next
    }

    public var description: String {
        "\(self.origin)→\(self.node): \(self.previous.map(String.init) ?? "-") ⇒ \(self.next.map(String.init) ?? "-")"
    }
}
