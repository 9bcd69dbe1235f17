/// Computes and repairs shortest-path trees; one engine per thread, its scratch reused by every run.
///
/// - ``computeFull(_:in:)`` is Dijkstra from the origin.
/// - ``update(_:in:deltas:changes:)`` replays a batch of edge weight changes on a tree in the manner of
///   Ramalingam and Reps: a dearer (or removed) edge u → v matters only if it is v's tree edge, and then
///   only to v's subtree, which is cut off, re-attached through its cheapest edges from the rest of the
///   tree and settled by Dijkstra; a cheaper (or new) edge u → v matters only if d(u) + w' ≤ d(v), and
///   then Dijkstra spreads the improvement from v. Nodes outside the cut-off subtrees and the region
///   the improvements reach are never visited. When the cut-off part is more than half the graph a run
///   from scratch is cheaper, and is what happens.
///
/// The parent rule (smallest node id among the neighbours on a shortest path) is applied on every
/// relaxation, including ties, so both paths produce exactly the tree a full run would.
final class PathEngine {
    private let heap = IndexedHeap(capacity: 1)
    /// Per node: the stamp of the run that marked it, and whether it lies in a cut-off subtree.
    private var markStamp: [UInt32] = []
    private var inCut: [Bool] = []
    /// Per node: the stamp of the run that first changed its parent, and the parent it had before.
    private var touchStamp: [UInt32] = []
    private var oldParent: [Int32] = []
    private var touched: [Int32] = []
    private var cut: [Int32] = []
    private var stack: [Int32] = []
    private var stamp: UInt32 = 0

    init() {}

    private func prepare(_ capacity: Int) {
        self.heap.reserve(capacity)
        let missing = capacity - self.markStamp.count
        if missing > 0 {
            self.markStamp.append(contentsOf: repeatElement(0, count: missing))
            self.inCut.append(contentsOf: repeatElement(false, count: missing))
            self.touchStamp.append(contentsOf: repeatElement(0, count: missing))
            self.oldParent.append(contentsOf: repeatElement(-1, count: missing))
        }
        self.stamp &+= 1
        if self.stamp == 0 {  // wrapped: forget every old mark
            for i in self.markStamp.indices {
                self.markStamp[i] = 0
                self.touchStamp[i] = 0
            }
            self.stamp = 1
        }
        self.touched.removeAll(keepingCapacity: true)
        self.cut.removeAll(keepingCapacity: true)
    }

    // MARK: - From scratch

    /// Recomputes `tree` from its origin.
    func computeFull(_ tree: ShortestPathTree, in graph: MeshGraph) {
        let capacity = graph.capacity
        self.prepare(capacity)
        tree.resize(capacity)
        tree.distance.withUnsafeMutableBufferPointer { $0.update(repeating: ShortestPathTree.unreachable) }
        tree.parent.withUnsafeMutableBufferPointer { $0.update(repeating: -1) }
        let origin = Int(tree.origin)
        guard origin < capacity, graph.exists[origin] else { return }
        tree.distance[origin] = 0
        self.heap.push(tree.origin, distance: 0)
        self.settle(tree, in: graph, recording: false)
    }

    /// Recomputes `tree` and appends a change for every node whose parent moved.
    func computeFull(_ tree: ShortestPathTree, in graph: MeshGraph, changes: inout [RouteChange]) {
        let before = tree.parent
        self.computeFull(tree, in: graph)
        for x in 0..<graph.capacity {
            let previous = x < before.count ? before[x] : -1
            if previous != tree.parent[x] { self.report(x, previous: previous, tree, graph, &changes) }
        }
    }

    // MARK: - Incremental

    /// Replays `deltas` (the weights in `graph` are already the new ones) on `tree`, appending a change
    /// for every node whose parent moved.
    func update(_ tree: ShortestPathTree, in graph: MeshGraph, deltas: [EdgeDelta], changes: inout [RouteChange]) {
        let capacity = graph.capacity
        tree.resize(capacity)
        var roots = false
        var decreases = false
        for delta in deltas {
            if delta.isIncrease, tree.parent[Int(delta.to)] == delta.from { roots = true }
            if delta.isDecrease { decreases = true }
        }
        guard roots || decreases else { return }
        self.prepare(capacity)
        let stamp = self.stamp
        if roots {
            self.markCut(tree, deltas: deltas, capacity: capacity)
            if self.cut.count > capacity / 2 {
                self.computeFull(tree, in: graph, changes: &changes)
                return
            }
            self.reattachCut(tree, in: graph)
        }
        if decreases {
            for delta in deltas where delta.isDecrease {
                let u = Int(delta.from)
                let v = Int(delta.to)
                guard let weight = delta.new, !(self.markStamp[u] == stamp && self.inCut[u]) else { continue }
                let du = tree.distance[u]
                guard du != ShortestPathTree.unreachable else { continue }
                let candidate = du + weight
                let dv = tree.distance[v]
                if candidate < dv {
                    self.touch(v, tree.parent[v])
                    tree.distance[v] = candidate
                    tree.parent[v] = delta.from
                    self.heap.push(delta.to, distance: candidate)
                } else if candidate == dv, v != Int(tree.origin),
                    graph.ids[u] < graph.ids[Int(tree.parent[v])]
                {
                    self.touch(v, tree.parent[v])
                    tree.parent[v] = delta.from
                }
            }
        }
        self.settle(tree, in: graph, recording: true)
        for x in self.touched where self.oldParent[Int(x)] != tree.parent[Int(x)] {
            self.report(Int(x), previous: self.oldParent[Int(x)], tree, graph, &changes)
        }
    }

    /// Marks the subtrees hanging from every dearer tree edge (into `cut`), by walking each node's
    /// ancestors until a node whose side is known: O(n) per affected tree, no child lists to maintain.
    private func markCut(_ tree: ShortestPathTree, deltas: [EdgeDelta], capacity: Int) {
        let stamp = self.stamp
        self.markStamp[Int(tree.origin)] = stamp
        self.inCut[Int(tree.origin)] = false
        for delta in deltas where delta.isIncrease && tree.parent[Int(delta.to)] == delta.from {
            let v = Int(delta.to)
            guard self.markStamp[v] != stamp else { continue }
            self.markStamp[v] = stamp
            self.inCut[v] = true
            self.cut.append(delta.to)
        }
        tree.parent.withUnsafeBufferPointer { parent in
            for x in 0..<capacity where self.markStamp[x] != stamp {
                self.stack.append(Int32(x))
                var y = Int(parent[x])
                while y >= 0 && self.markStamp[y] != stamp {
                    self.stack.append(Int32(y))
                    y = Int(parent[y])
                }
                let value = y >= 0 && self.inCut[y]
                for s in self.stack {
                    self.markStamp[Int(s)] = stamp
                    self.inCut[Int(s)] = value
                    if value { self.cut.append(s) }
                }
                self.stack.removeAll(keepingCapacity: true)
            }
        }
    }

    /// Forgets the cut-off nodes' distances, then queues each at its cheapest edge from the rest of the
    /// tree (smallest id on ties).
    private func reattachCut(_ tree: ShortestPathTree, in graph: MeshGraph) {
        let stamp = self.stamp
        for x in self.cut {
            self.touch(Int(x), tree.parent[Int(x)])
            tree.distance[Int(x)] = ShortestPathTree.unreachable
            tree.parent[Int(x)] = -1
        }
        for x in self.cut {
            var best = ShortestPathTree.unreachable
            var bestParent: Int32 = -1
            for edge in graph.inEdges[Int(x)] {
                let y = Int(edge.node)
                if self.markStamp[y] == stamp && self.inCut[y] { continue }
                let dy = tree.distance[y]
                if dy == ShortestPathTree.unreachable { continue }
                let candidate = dy + edge.weight
                if candidate < best || (candidate == best && graph.ids[y] < graph.ids[Int(bestParent)]) {
                    best = candidate
                    bestParent = edge.node
                }
            }
            if bestParent >= 0 {
                tree.distance[Int(x)] = best
                tree.parent[Int(x)] = bestParent
                self.heap.push(x, distance: best)
            }
        }
    }

    @inline(__always)
    private func touch(_ x: Int, _ parent: Int32) {
        if self.touchStamp[x] != self.stamp {
            self.touchStamp[x] = self.stamp
            self.oldParent[x] = parent
            self.touched.append(Int32(x))
        }
    }

    private func report(
        _ x: Int, previous: Int32, _ tree: ShortestPathTree, _ graph: MeshGraph, _ changes: inout [RouteChange]
    ) {
        guard graph.exists[x], x != Int(tree.origin) else { return }
        let next = tree.parent[x]
        let change = RouteChange(
            origin: tree.originID, node: graph.ids[x],
            previous: previous >= 0 ? graph.ids[Int(previous)] : nil,
            next: next >= 0 ? graph.ids[Int(next)] : nil)
        if change.previous != change.next { changes.append(change) }
    }

    // MARK: - Dijkstra

    /// Pops the queue empty, relaxing every out-edge of each settled node. A strictly shorter distance
    /// moves a node (and queues it); an equal one moves only its parent, to the smaller node id.
    private func settle(_ tree: ShortestPathTree, in graph: MeshGraph, recording: Bool) {
        let heap = self.heap
        graph.ids.withUnsafeBufferPointer { ids in
            graph.outEdges.withUnsafeBufferPointer { rows in
                tree.distance.withUnsafeMutableBufferPointer { distance in
                    tree.parent.withUnsafeMutableBufferPointer { parent in
                        while !heap.isEmpty {
                            let (x, dx) = heap.pop()
                            let xID = ids[Int(x)]
                            rows[Int(x)].withUnsafeBufferPointer { edges in
                                for edge in edges {
                                    let y = Int(edge.node)
                                    let candidate = dx &+ edge.weight
                                    let dy = distance[y]
                                    if candidate < dy {
                                        if recording { self.touch(y, parent[y]) }
                                        distance[y] = candidate
                                        parent[y] = x
                                        heap.push(edge.node, distance: candidate)
                                    } else if candidate == dy, xID < ids[Int(parent[y])] {
                                        if recording { self.touch(y, parent[y]) }
                                        parent[y] = x
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
