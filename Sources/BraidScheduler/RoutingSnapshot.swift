/// A frozen, compact copy of the routable adjacency for full Dijkstra runs (``PathEngine`` with a
/// ``DialQueue``): compressed sparse rows in raw memory, nodes renumbered by node id.
///
/// - Nodes are numbered by *rank*: the k-th smallest node id of the existing nodes is rank k. The tree's
///   tie-break (the smallest node id among the neighbours on a shortest path) is then a plain integer
///   comparison of ranks, with no look-up of ids in the inner loop.
/// - The out-edges of rank r are `edges[rowStart[r] ..< rowStart[r + 1]]`, each packed as
///   `weight << 32 | target rank` and sorted ascending, so by weight first: a run can stop reading a row
///   at the first edge too heavy to reach or tie any node (see ``PathEngine``).
/// - Everything is in raw buffers allocated once per snapshot and only read afterwards, so threads share
///   one snapshot with no reference counting or exclusivity checks per edge.
///
/// A snapshot is valid for the graph it was built from; ``MeshScheduler`` drops it on every change.
final class RoutingSnapshot: @unchecked Sendable {
    /// Number of existing nodes (ranks `0 ..< count`).
    let count: Int
    /// Graph index of each rank.
    let rankToIndex: UnsafeMutableBufferPointer<Int32>
    /// Rank of each graph index, -1 for free slots; `graph.capacity` long.
    let indexToRank: UnsafeMutableBufferPointer<Int32>
    /// Node id of each rank.
    let ids: UnsafeMutableBufferPointer<MeshNodeID>
    /// `count + 1` row offsets into `edges`.
    let rowStart: UnsafeMutableBufferPointer<Int32>
    /// Every routable edge, `weight << 16 | target rank`, rows sorted ascending, when ranks and weights
    /// fit in 16 bits (half the memory of ``wideEdges``: at the design size, the part of the rows runs
    /// read stays in a core's L2 cache); nil otherwise.
    let narrowEdges: UnsafeMutableBufferPointer<UInt32>?
    /// Every routable edge, `weight << 32 | target rank`, rows sorted ascending, when ``narrowEdges`` is nil.
    let wideEdges: UnsafeMutableBufferPointer<UInt64>?
    /// The largest edge weight (0 without edges).
    let maxWeight: UInt32
    /// How many ranks have at least one in-edge: no run can reach more nodes than these (plus its origin).
    let enterableCount: Int
    /// Whether each rank has an in-edge.
    let enterable: UnsafeMutableBufferPointer<Bool>

    init(_ graph: MeshGraph) {
        let capacity = graph.capacity
        var existing: [Int32] = []
        existing.reserveCapacity(capacity)
        for i in 0..<capacity where graph.exists[i] { existing.append(Int32(i)) }
        existing.sort { graph.ids[Int($0)] < graph.ids[Int($1)] }
        let count = existing.count
        self.count = count
        self.rankToIndex = .allocate(capacity: max(count, 1))
        self.indexToRank = .allocate(capacity: max(capacity, 1))
        self.ids = .allocate(capacity: max(count, 1))
        self.rowStart = .allocate(capacity: count + 1)
        _ = self.indexToRank.initialize(from: repeatElement(-1, count: self.indexToRank.count))
        for (rank, index) in existing.enumerated() {
            self.rankToIndex[rank] = index
            self.indexToRank[Int(index)] = Int32(rank)
            self.ids[rank] = graph.ids[Int(index)]
        }
        var total = 0
        for rank in 0..<count { total += graph.outEdges[Int(existing[rank])].count }
        let edges = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: total + 1)
        edges[total] = 0
        let entered = UnsafeMutableBufferPointer<Bool>.allocate(capacity: max(count, 1))
        _ = entered.initialize(from: repeatElement(false, count: entered.count))
        var maxWeight: UInt32 = 0
        var at = 0
        for rank in 0..<count {
            self.rowStart[rank] = Int32(at)
            let start = at
            for edge in graph.outEdges[Int(existing[rank])] {
                let target = self.indexToRank[Int(edge.node)]
                guard target >= 0, edge.weight > 0 else { continue }  // both hold for routable edges
                let weight = UInt32(edge.weight)
                maxWeight = max(maxWeight, weight)
                entered[Int(target)] = true
                edges[at] = UInt64(weight) << 32 | UInt64(UInt32(target))
                at += 1
            }
            var row = UnsafeMutableBufferPointer(rebasing: edges[start..<at])
            row.sort()
        }
        self.rowStart[count] = Int32(at)
        if count <= 1 << 16 && maxWeight < 1 << 16 {
            // One more entry than edges: a run may load the entry at the start of an empty last row.
            let narrow = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: at + 1)
            for i in 0..<at { narrow[i] = UInt32(truncatingIfNeeded: edges[i] >> 16 | edges[i] & 0xFFFF) }
            narrow[at] = 0
            edges.deallocate()
            self.narrowEdges = narrow
            self.wideEdges = nil
        } else {
            self.narrowEdges = nil
            self.wideEdges = edges
        }
        self.maxWeight = maxWeight
        self.enterable = entered
        self.enterableCount = entered[0..<count].reduce(0) { $0 + ($1 ? 1 : 0) }
    }

    deinit {
        self.rankToIndex.deallocate()
        self.indexToRank.deallocate()
        self.ids.deallocate()
        self.rowStart.deallocate()
        self.narrowEdges?.deallocate()
        self.wideEdges?.deallocate()
        self.enterable.deallocate()
    }
}

/// An adjacency entry packed as `weight << targetBits | target`, so that sorting a row sorts by weight.
protocol PackedEdge: FixedWidthInteger, UnsignedInteger {
    static var targetBits: Int { get }
}

extension PackedEdge {
    @inline(__always) var weight: UInt32 { UInt32(truncatingIfNeeded: self >> Self.targetBits) }
    @inline(__always) var target: Int { Int(truncatingIfNeeded: self & (1 << Self.targetBits - 1)) }
}

extension UInt32: PackedEdge {
    static var targetBits: Int { 16 }
}

extension UInt64: PackedEdge {
    static var targetBits: Int { 32 }
}
