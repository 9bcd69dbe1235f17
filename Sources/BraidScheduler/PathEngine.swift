/// Computes and repairs shortest-path trees; one engine per thread, its scratch reused by every run.
///
/// - ``computeFull(_:in:)`` is Dijkstra from the origin over the graph's rows (for a single tree when no
///   snapshot is at hand); ``computeFull(_:in:snapshot:changes:reportChanges:useHint:forceHeap:)`` is the
///   faster one over a ``RoutingSnapshot`` that recomputes and new trees use.
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
    /// The heap of full runs over a snapshot whose weights are too large for buckets.
    let fullHeap = IndexedHeap(capacity: 1)
    /// Scratch of full runs over a snapshot (``computeFull(_:in:snapshot:changes:reportChanges:forceHeap:)``).
    var dial: DialStorage?
    /// The largest distance of the last full run over a snapshot: the hint for a new tree.
    var lastEccentricity: UInt32 = 0
    /// How often a hinted run was exact, and how often it had to be redone (for tests and tuning).
    var hintHits = 0
    var hintMisses = 0
    /// Per-node scratch in raw memory, so that the O(n) walks below pay no exclusivity or uniqueness
    /// check per access (they dominated a profile of link changes when these were arrays).
    private var capacity = 0
    /// Per node: the stamp of the run that marked it, and whether it lies in a cut-off subtree.
    private var markStamp: UnsafeMutablePointer<UInt32>
    private var inCut: UnsafeMutablePointer<Bool>
    /// Per node: the stamp of the run that first changed its parent, and the parent it had before.
    private var touchStamp: UnsafeMutablePointer<UInt32>
    private var oldParent: UnsafeMutablePointer<Int32>
    /// Nodes whose parent changed in this run (`touchedCount` of them), the cut-off nodes (`cutCount`),
    /// and a stack for walking up to an ancestor.
    private var touched: UnsafeMutablePointer<Int32>
    private var touchedCount = 0
    private var cut: UnsafeMutablePointer<Int32>
    private var cutCount = 0
    private var stack: UnsafeMutablePointer<Int32>
    private var stamp: UInt32 = 0

    init() {
        self.markStamp = .allocate(capacity: 0)
        self.inCut = .allocate(capacity: 0)
        self.touchStamp = .allocate(capacity: 0)
        self.oldParent = .allocate(capacity: 0)
        self.touched = .allocate(capacity: 0)
        self.cut = .allocate(capacity: 0)
        self.stack = .allocate(capacity: 0)
    }

    deinit { self.deallocate() }

    private func deallocate() {
        self.markStamp.deallocate()
        self.inCut.deallocate()
        self.touchStamp.deallocate()
        self.oldParent.deallocate()
        self.touched.deallocate()
        self.cut.deallocate()
        self.stack.deallocate()
    }

    /// Sizes the scratch for `capacity` nodes and starts a new run (a new stamp).
    private func prepare(_ capacity: Int) {
        self.heap.reserve(capacity)
        if capacity > self.capacity {
            self.deallocate()
            self.capacity = capacity
            self.markStamp = .allocate(capacity: capacity)
            self.markStamp.initialize(repeating: 0, count: capacity)
            self.inCut = .allocate(capacity: capacity)
            self.inCut.initialize(repeating: false, count: capacity)
            self.touchStamp = .allocate(capacity: capacity)
            self.touchStamp.initialize(repeating: 0, count: capacity)
            self.oldParent = .allocate(capacity: capacity)
            self.oldParent.initialize(repeating: -1, count: capacity)
            self.touched = .allocate(capacity: capacity)
            self.cut = .allocate(capacity: capacity)
            self.stack = .allocate(capacity: capacity)
        }
        self.stamp &+= 1
        if self.stamp == 0 {  // wrapped: forget every old mark
            self.markStamp.update(repeating: 0, count: self.capacity)
            self.touchStamp.update(repeating: 0, count: self.capacity)
            self.stamp = 1
        }
        self.touchedCount = 0
        self.cutCount = 0
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
            if delta.isDecrease, Self.shortens(tree, delta) { decreases = true }
        }
        guard roots || decreases else { return }
        self.prepare(capacity)
        let stamp = self.stamp
        if roots {
            self.markCut(tree, deltas: deltas, capacity: capacity)
            if self.cutCount > capacity / 2 {
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
        for i in 0..<self.touchedCount {
            let x = Int(self.touched[i])
            if self.oldParent[x] != tree.parent[x] { self.report(x, previous: self.oldParent[x], tree, graph, &changes) }
        }
    }

    /// Whether `deltas` can change `tree` at all: a dearer edge it uses, or a cheaper one that reaches a
    /// node at least as cheaply as its current path (a tie may move the parent). O(deltas).
    static func isAffected(_ tree: ShortestPathTree, by deltas: [EdgeDelta]) -> Bool {
        for delta in deltas {
            let v = Int(delta.to)
            if v >= tree.parent.count || Int(delta.from) >= tree.parent.count { return true }
            if delta.isIncrease, tree.parent[v] == delta.from { return true }
            if delta.isDecrease, Self.shortens(tree, delta) { return true }
        }
        return false
    }

    /// A cheaper edge u → v matters when d(u) + w' ≤ d(v), judged on the distances before the batch (a
    /// cut-off u is re-settled anyway; only an edge from a node already unreachable can be skipped).
    @inline(__always)
    private static func shortens(_ tree: ShortestPathTree, _ delta: EdgeDelta) -> Bool {
        guard let weight = delta.new else { return false }
        let du = tree.distance[Int(delta.from)]
        return du != ShortestPathTree.unreachable && du + weight <= tree.distance[Int(delta.to)]
    }

    /// Marks the subtrees hanging from every dearer tree edge (into `cut`), by walking each node's
    /// ancestors until a node whose side is known: O(n) per affected tree, no child lists to maintain.
    private func markCut(_ tree: ShortestPathTree, deltas: [EdgeDelta], capacity: Int) {
        let stamp = self.stamp
        let markStamp = self.markStamp
        let inCut = self.inCut
        let cut = self.cut
        let stack = self.stack
        var cutCount = 0
        markStamp[Int(tree.origin)] = stamp
        inCut[Int(tree.origin)] = false
        tree.parent.withUnsafeBufferPointer { parent in
            for delta in deltas where delta.isIncrease && parent[Int(delta.to)] == delta.from {
                let v = Int(delta.to)
                guard markStamp[v] != stamp else { continue }
                markStamp[v] = stamp
                inCut[v] = true
                cut[cutCount] = delta.to
                cutCount += 1
            }
            for x in 0..<capacity where markStamp[x] != stamp {
                var depth = 1
                stack[0] = Int32(x)
                var y = Int(parent[x])
                while y >= 0 && markStamp[y] != stamp {
                    stack[depth] = Int32(y)
                    depth += 1
                    y = Int(parent[y])
                }
                let value = y >= 0 && inCut[y]
                for i in 0..<depth {
                    let s = Int(stack[i])
                    markStamp[s] = stamp
                    inCut[s] = value
                }
                if value {
                    for i in 0..<depth {
                        cut[cutCount] = stack[i]
                        cutCount += 1
                    }
                }
            }
        }
        self.cutCount = cutCount
    }

    /// Forgets the cut-off nodes' distances, then queues each at its cheapest edge from the rest of the
    /// tree (smallest id on ties).
    private func reattachCut(_ tree: ShortestPathTree, in graph: MeshGraph) {
        let stamp = self.stamp
        for i in 0..<self.cutCount {
            let x = self.cut[i]
            self.touch(Int(x), tree.parent[Int(x)])
            tree.distance[Int(x)] = ShortestPathTree.unreachable
            tree.parent[Int(x)] = -1
        }
        for i in 0..<self.cutCount {
            let x = self.cut[i]
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
            self.touched[self.touchedCount] = Int32(x)
            self.touchedCount += 1
        }
    }

    func report(
        _ x: Int, previous: Int32, _ tree: ShortestPathTree, _ graph: MeshGraph, _ changes: inout [RouteChange]
    ) {
        self.report(x, previous: previous, next: tree.parent[x], tree, graph, &changes)
    }

    /// Appends the change of x's parent from `previous` to `next` (graph indices), unless x is gone or
    /// the origin, or the ids are the same.
    func report(
        _ x: Int, previous: Int32, next: Int32, _ tree: ShortestPathTree, _ graph: MeshGraph,
        _ changes: inout [RouteChange]
    ) {
        guard graph.exists[x], x != Int(tree.origin) else { return }
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
