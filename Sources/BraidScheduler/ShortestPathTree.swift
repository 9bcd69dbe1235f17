/// An origin's shortest-path tree on the graph's dense indices: for every node, its distance from the
/// origin (ms, `Int32.max` when unreachable) and its parent (-1 for the origin and unreachable nodes).
///
/// The parent of a node is the neighbour with the smallest node id among those on a shortest path, so
/// the tree is a function of the weights alone: an incrementally maintained tree equals a recomputed
/// one, and every node of the cluster gets the same tree from the same link state.
final class ShortestPathTree {
    static let unreachable = Int32.max

    let origin: Int32
    let originID: MeshNodeID
    var distance: [Int32] = []
    var parent: [Int32] = []

    init(origin: Int32, originID: MeshNodeID) {
        self.origin = origin
        self.originID = originID
    }

    /// Extends the arrays to `capacity` nodes (new ones unreachable).
    func resize(_ capacity: Int) {
        let missing = capacity - self.distance.count
        guard missing > 0 else { return }
        self.distance.append(contentsOf: repeatElement(Self.unreachable, count: missing))
        self.parent.append(contentsOf: repeatElement(-1, count: missing))
    }
}
