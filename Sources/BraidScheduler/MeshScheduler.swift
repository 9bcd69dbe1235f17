import Dispatch
import Synchronization

/// The link-state brain of the mesh: which neighbour each node pulls each origin's tracks from, which
/// links a track crosses, and which node a new client should join.
///
/// **Model.** Links are directed and measured per direction; media flows `from` → `to`, so the weight of
/// u → v (``RoutePolicy``: one-way latency plus penalties for loss, low spare capacity, v's load and
/// draining, plus a per-hop cost, in whole ms) prices forwarding a packet from u to v. For each *active
/// origin* (a node with published tracks) the scheduler keeps that origin's shortest-path tree; a node
/// pulls the origin's tracks from its parent in the tree, and the distribution tree of a track is the
/// origin's tree pruned to the nodes that have subscribers, one copy per link:
///
/// ```
///   edge weights (ms)       A's tree (C and D pull from B)     A's track to subscribers on C and D
///   A→B 13    A→C 78              A                           A ══▶ B ──▶ C
///   B→C 13    B→D 33              └─ B   d=13                       └──▶ D
///   C→D 30                           ├─ C   d=26 (not 78)      one copy on A→B for both
///                                    └─ D   d=46 (not 56)
/// ```
///
/// `nextHop(toward: A, from: C) == B`: data flows origin → … → node, so costs are read in that direction.
///
/// **Determinism.** Weights are integers and a node's parent is the smallest node id among its
/// neighbours on a shortest path, so every node of the cluster computing from the same link state gets
/// the same trees, and the pulls they set up form no loop.
///
/// **Hysteresis.** Link and node costs are stored quantised and move only when a new measurement differs
/// by more than `max(5 ms, 10 %)` (``RoutePolicy``), so probe noise changes no weight and no route. The
/// filter is per link and depends on the order of measurements: nodes that must agree should apply the
/// same sequence of link reports (the etcd revision order) or exchange filtered costs.
///
/// **Updates.** Every mutation (or a batch through ``apply(_:)``) updates only the trees it affects,
/// incrementally (``PathEngine``, after Ramalingam and Reps): a dearer edge matters only to trees that
/// use it, and only below it; a cheaper edge only where it shortens a path. Finding the subtree below a
/// dearer edge costs one O(n) pass over the tree's parent array (no child lists to maintain); the
/// repair itself is Dijkstra over the affected nodes only. A batch that changes more than a quarter as
/// many edges as there are nodes is replayed as a recompute of every tree, and a tree whose cut-off part
/// is more than half the nodes is recomputed alone. Each returns the ``RouteChange``s: exactly the
/// (origin, node) pairs whose parent moved, sorted by origin then node. Only active origins have trees
/// (``setActiveOrigins(_:concurrency:)``); querying another origin makes it active.
///
/// **Full runs.** New trees and recomputes (``setActiveOrigins(_:concurrency:)``, ``recomputeAll(concurrency:)``,
/// a large batch) run Dijkstra over a ``RoutingSnapshot`` of the graph (compressed rows sorted by weight,
/// nodes numbered in id order, built once per graph version and shared read-only by the threads) with
/// Dial's bucket queue, reading each row only as far as an edge could still reach or tie a node (see
/// ``PathEngine``). They give exactly the trees of plain Dijkstra with the same parent rule.
///
/// Not thread-safe: use one scheduler from one task or thread. Pure: no clock, no I/O; callers pass what
/// they measured.
public final class MeshScheduler {
    /// How measurements become weights.
    public var policy: RoutePolicy { self.graph.policy }

    /// Threads a recompute or a batch touching many trees may use (trees are split between them).
    public var concurrency: Int

    private var graph: MeshGraph
    /// Trees of the active origins, by origin id.
    private var trees: [MeshNodeID: ShortestPathTree] = [:]
    /// One engine (Dijkstra scratch) per thread, kept between runs.
    private var engines: [PathEngine] = [PathEngine()]
    private var engine: PathEngine { self.engines[0] }
    /// The adjacency frozen for full runs; dropped by every ``apply(_:)``, rebuilt by the next full run.
    private var snapshot: RoutingSnapshot?

    /// The snapshot of the current graph, built now if there is none.
    private var currentSnapshot: RoutingSnapshot {
        if let snapshot = self.snapshot { return snapshot }
        let snapshot = RoutingSnapshot(self.graph)
        self.snapshot = snapshot
        return snapshot
    }

    /// - Parameters:
    ///   - policy: how measurements become weights.
    ///   - concurrency: threads for recomputes and for batches that touch at least
    ///     ``parallelTreeThreshold`` trees; 1 keeps everything on the caller's thread.
    public init(policy: RoutePolicy = .init(), concurrency: Int = 1) {
        self.graph = MeshGraph(policy: policy)
        self.concurrency = max(1, concurrency)
    }

    /// Below this many trees to repair, a batch is not worth handing to other threads.
    public static let parallelTreeThreshold = 8

    // MARK: - Graph

    /// Every known node, in id order.
    public var nodes: [MeshNodeID] { self.graph.indexOf.keys.sorted() }

    /// A node's last reported state.
    public func state(of node: MeshNodeID) -> MeshNodeState? {
        self.graph.index(of: node).map { self.graph.states[Int($0)] }
    }

    /// The last measurement of the directed link `from` → `to`.
    public func measurement(from: MeshNodeID, to: MeshNodeID) -> LinkMeasurement? {
        guard let u = self.graph.index(of: from), let v = self.graph.index(of: to) else { return nil }
        return self.graph.links[Int(u)][v]?.measurement
    }

    /// The weight routes use for `from` → `to` now (ms, after hysteresis), nil if the edge carries nothing.
    public func weight(from: MeshNodeID, to: MeshNodeID) -> Int? {
        guard let u = self.graph.index(of: from), let v = self.graph.index(of: to) else { return nil }
        return self.graph.weight(from: u, to: v).map(Int.init)
    }

    /// Adds a node or updates its state.
    @discardableResult
    public func updateNode(_ node: MeshNodeID, state: MeshNodeState) -> [RouteChange] {
        self.apply(CollectionOfOne(.node(node, state)))
    }

    /// Removes a node with its links; its own tree (if it was an origin) is dropped without changes
    /// being reported for it, and it appears in no change as a node.
    @discardableResult
    public func removeNode(_ node: MeshNodeID) -> [RouteChange] {
        self.apply(CollectionOfOne(.removeNode(node)))
    }

    /// Records a measurement of the directed link `from` → `to`; unknown nodes are added (alive, idle).
    @discardableResult
    public func updateLink(from: MeshNodeID, to: MeshNodeID, measurement: LinkMeasurement) -> [RouteChange] {
        self.apply(CollectionOfOne(.link(from: from, to: to, measurement)))
    }

    /// Removes the directed link `from` → `to`.
    @discardableResult
    public func removeLink(from: MeshNodeID, to: MeshNodeID) -> [RouteChange] {
        self.apply(CollectionOfOne(.removeLink(from: from, to: to)))
    }

    /// Applies a batch of changes (a probe round, a node failure) and updates the affected trees once.
    @discardableResult
    public func apply(_ changes: some Sequence<MeshChange>) -> [RouteChange] {
        self.snapshot = nil
        for change in changes {
            switch change {
            case .node(let id, let state): self.graph.updateNode(id, state: state)
            case .removeNode(let id):
                self.graph.removeNode(id)
                self.trees[id] = nil
            case .link(let from, let to, let measurement):
                self.graph.updateLink(from: from, to: to, measurement: measurement)
            case .removeLink(let from, let to): self.graph.removeLink(from: from, to: to)
            }
        }
        let deltas = self.graph.endBatch()
        for tree in self.trees.values { tree.resize(self.graph.capacity) }  // new nodes: unreachable
        guard !deltas.isEmpty else { return [] }
        let graph = self.graph
        if deltas.count > max(16, graph.capacity / 4) {
            return Self.sorted(self.compute(self.sortedTrees, concurrency: self.concurrency, reportChanges: true))
        }
        let affected = self.sortedTrees.filter { PathEngine.isAffected($0, by: deltas) }
        let threads = affected.count >= Self.parallelTreeThreshold ? self.concurrency : 1
        return Self.sorted(
            self.forEach(affected, concurrency: threads) { engine, tree, changes in
                engine.update(tree, in: graph, deltas: deltas, changes: &changes)
            })
    }

    // MARK: - Origins

    /// The origins whose trees are kept, in id order.
    public var activeOrigins: [MeshNodeID] { self.trees.keys.sorted() }

    /// Keeps trees for exactly these origins (unknown ids are ignored); new ones are computed now.
    public func setActiveOrigins(_ origins: Set<MeshNodeID>, concurrency: Int? = nil) {
        for origin in self.trees.keys where !origins.contains(origin) { self.trees[origin] = nil }
        var added: [ShortestPathTree] = []
        for origin in origins.sorted() where self.trees[origin] == nil {
            guard let index = self.graph.index(of: origin) else { continue }
            let tree = ShortestPathTree(origin: index, originID: origin)
            self.trees[origin] = tree
            added.append(tree)
        }
        _ = self.compute(added, concurrency: concurrency ?? self.concurrency, reportChanges: false)
    }

    /// Starts keeping `origin`'s tree (a no-op if it is kept already or the node is unknown).
    public func activate(origin: MeshNodeID) {
        _ = self.tree(for: origin)
    }

    /// Stops keeping `origin`'s tree.
    public func deactivate(origin: MeshNodeID) {
        self.trees[origin] = nil
    }

    /// Recomputes every active origin's tree from scratch, over `concurrency` threads (default
    /// ``concurrency``), and returns the
    /// parents that moved (none, unless the incremental updates were wrong or the policy changed).
    @discardableResult
    public func recomputeAll(concurrency: Int? = nil) -> [RouteChange] {
        Self.sorted(self.compute(self.sortedTrees, concurrency: concurrency ?? self.concurrency, reportChanges: true))
    }

    private var sortedTrees: [ShortestPathTree] {
        self.trees.values.sorted { $0.originID < $1.originID }
    }

    /// Runs Dijkstra for `trees` over the snapshot, split over `concurrency` threads.
    private func compute(_ trees: [ShortestPathTree], concurrency: Int, reportChanges: Bool) -> [RouteChange] {
        guard !trees.isEmpty else { return [] }
        let graph = self.graph
        let snapshot = self.currentSnapshot
        return self.forEach(trees, concurrency: concurrency) { engine, tree, changes in
            engine.computeFull(tree, in: graph, snapshot: snapshot, changes: &changes, reportChanges: reportChanges)
        }
    }

    /// Runs `body` on every tree over up to `concurrency` threads with one engine each, and gathers the
    /// changes. Threads take the next tree from a shared counter, so that one slowed down (a busy
    /// machine) leaves the rest to the others. The graph is only read; each tree is written by one thread.
    private func forEach(
        _ trees: [ShortestPathTree], concurrency: Int,
        _ body: @escaping @Sendable (PathEngine, ShortestPathTree, inout [RouteChange]) -> Void
    ) -> [RouteChange] {
        guard !trees.isEmpty else { return [] }
        let workers = max(1, min(concurrency, trees.count))
        if workers == 1 {
            var changes: [RouteChange] = []
            for tree in trees { body(self.engine, tree, &changes) }
            return changes
        }
        while self.engines.count < workers { self.engines.append(PathEngine()) }
        let work = ParallelWork(trees: trees, engines: Array(self.engines.prefix(workers)))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let engine = work.engines[worker]
            var changes: [RouteChange] = []
            while true {
                let index = work.next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard index < work.trees.count else { break }
                body(engine, work.trees[index], &changes)
            }
            work.store(changes, at: worker)
        }
        return work.all
    }

    /// The kept tree of `origin`, computed now if the origin was not active yet.
    private func tree(for origin: MeshNodeID) -> ShortestPathTree? {
        if let tree = self.trees[origin] { return tree }
        guard let index = self.graph.index(of: origin) else { return nil }
        let tree = ShortestPathTree(origin: index, originID: origin)
        if let snapshot = self.snapshot {
            var none: [RouteChange] = []
            self.engine.computeFull(tree, in: self.graph, snapshot: snapshot, changes: &none, reportChanges: false)
        } else {
            self.engine.computeFull(tree, in: self.graph)  // one run: not worth building a snapshot
        }
        self.trees[origin] = tree
        return tree
    }

    private static func sorted(_ changes: [RouteChange]) -> [RouteChange] {
        changes.sorted { ($0.origin, $0.node) < ($1.origin, $1.node) }
    }

    // MARK: - Routes

    /// The neighbour `node` pulls `origin`'s tracks from: its parent in origin's tree. Nil when `node`
    /// is the origin or cannot reach it. An origin that was not active becomes active.
    public func nextHop(toward origin: MeshNodeID, from node: MeshNodeID) -> MeshNodeID? {
        guard let tree = self.tree(for: origin), let x = self.graph.index(of: node) else { return nil }
        let parent = tree.parent[Int(x)]
        return parent >= 0 ? self.graph.ids[Int(parent)] : nil
    }

    /// The path media takes from `origin` to `node` (origin first), with its cost and latency. Nil when
    /// unreachable. An origin that was not active becomes active.
    public func path(from origin: MeshNodeID, to node: MeshNodeID) -> MeshRoute? {
        guard let tree = self.tree(for: origin), let x = self.graph.index(of: node) else { return nil }
        let cost = tree.distance[Int(x)]
        guard cost != ShortestPathTree.unreachable else { return nil }
        var indices: [Int32] = [x]
        var at = x
        while at != tree.origin {
            at = tree.parent[Int(at)]
            indices.append(at)
        }
        indices.reverse()
        var latency = 0.0
        for (u, v) in zip(indices, indices.dropFirst()) {
            latency += (self.graph.links[Int(u)][v]?.measurement.rtt ?? 0) / 2
        }
        return MeshRoute(nodes: indices.map { self.graph.ids[Int($0)] }, cost: Int(cost), latency: latency)
    }

    /// The links `origin`'s tracks cross to reach `subscribers` (the nodes that have subscribers): its
    /// tree pruned to them, one edge per link however many subscribers are behind it. An origin that was
    /// not active becomes active.
    public func distributionTree(origin: MeshNodeID, subscribers: Set<MeshNodeID>) -> MeshDistributionTree {
        guard let tree = self.tree(for: origin) else {
            return MeshDistributionTree(edges: [], unreachable: subscribers.sorted())
        }
        var onTree = Set<Int32>([tree.origin])
        var edges: [(edge: MeshEdge, depth: Int32)] = []
        var unreachable: [MeshNodeID] = []
        for subscriber in subscribers.sorted() {
            guard let x = self.graph.index(of: subscriber), tree.distance[Int(x)] != ShortestPathTree.unreachable
            else {
                unreachable.append(subscriber)
                continue
            }
            var at = x
            while onTree.insert(at).inserted {
                let parent = tree.parent[Int(at)]
                edges.append(
                    (MeshEdge(from: self.graph.ids[Int(parent)], to: self.graph.ids[Int(at)]), tree.distance[Int(at)]))
                at = parent
            }
        }
        // Parents before children: closer to the origin first, then by node id.
        edges.sort { ($0.depth, $0.edge.to) < ($1.depth, $1.edge.to) }
        return MeshDistributionTree(edges: edges.map(\.edge), unreachable: unreachable)
    }

    // MARK: - Placement

    /// The node a new client should join (see ``ClientPlacement``), among `candidates` (every node when
    /// nil). Nil when no candidate is known and alive.
    public func placement(client: ClientPlacement, candidates: Set<MeshNodeID>? = nil) -> MeshNodeID? {
        var pool: [(id: MeshNodeID, state: MeshNodeState)] = []
        for (id, index) in self.graph.indexOf where candidates?.contains(id) ?? true {
            let state = self.graph.states[Int(index)]
            if state.isAlive { pool.append((id, state)) }
        }
        return client.choose(among: pool, policy: self.policy)
    }
}

/// The trees of a parallel recompute and the changes each thread found.
///
/// Unchecked: worker `w` uses only engine `w` and result slot `w`, writes only the trees whose indices
/// it drew from `next` (each index is drawn once), and everything is read back only after
/// `concurrentPerform` has returned.
private final class ParallelWork: @unchecked Sendable {
    let trees: [ShortestPathTree]
    let engines: [PathEngine]
    /// The index of the next tree to take.
    let next = Atomic<Int>(0)
    /// Raw slots, so that two threads storing at once never touch a shared array header.
    private let slots: UnsafeMutablePointer<[RouteChange]>
    private let workers: Int

    init(trees: [ShortestPathTree], engines: [PathEngine]) {
        self.trees = trees
        self.engines = engines
        let workers = engines.count
        self.workers = workers
        self.slots = .allocate(capacity: workers)
        self.slots.initialize(repeating: [], count: workers)
    }

    deinit {
        self.slots.deinitialize(count: self.workers)
        self.slots.deallocate()
    }

    func store(_ changes: [RouteChange], at worker: Int) {
        self.slots[worker] = changes
    }

    var all: [RouteChange] { UnsafeBufferPointer(start: self.slots, count: self.workers).flatMap { $0 } }
}
