/// Full runs over a ``RoutingSnapshot``: what recomputes and new trees use.
///
/// Dijkstra in rank space (node ids in rank order, so the parent tie-break is an integer comparison)
/// with Dial's bucket queue when weights are small (``DialQueue``; the 4-ary ``IndexedHeap`` otherwise),
/// over weight-sorted rows, reading a settled node x's row only while `d(x) + w ≤ L`, for a limit L
/// that no final distance exceeds. A heavier edge can neither shorten a path nor tie one (which would make
/// x a candidate parent), so the tree is exactly the one plain Dijkstra with the same parent rule gives,
/// and most of each row of a dense mesh is never read. Two limits are used, the smaller one winning:
///
/// - **Proven:** once every node that could be reached at all (every node with an in-edge) is queued or
///   settled, the largest key still queued bounds every final distance (``DialQueue/upperBound()``).
/// - **Guessed, then checked:** a hint E, the tree's eccentricity (largest finite distance) before the
///   recompute, or for a new tree the last run's on this engine plus 1/8. The run reads only edges with
///   `d(x) + w ≤ E` from the start. If then every node that could be reached is reached with a distance
///   ≤ E, the result is exact: a node y whose true distance were smaller than the one found would have a
///   last edge x → y on a true shortest path with `d(x) + w = d(y) ≤ E`, never skipped, and by induction
///   on d the same holds for ties. Otherwise the run is abandoned (as soon as a node is settled beyond E)
///   and redone with the proven limit of that moment if there was one, else with none. The hint only
///   ever costs time when wrong; it is never trusted. (On the benchmark mesh a hinted run reads about 8
///   edges per row of 64, and a new tree's guess is right about 96 % of the time.)
///
/// Two details for the cache and the branch predictor, each worth about 10 % there: the row of the next
/// node to pop is touched before relaxing the current one (its cache miss then overlaps the work), and a
/// row's edges that shorten or tie a path are gathered without a branch per edge, then applied.
extension PathEngine {
    /// Heaviest edge weight for which the bucket queue is used; above it, the heap (a ring of buckets
    /// that large would mostly be scanned empty).
    static let maximumBucketWeight: UInt32 = 16_383

    /// Recomputes `tree` from its origin over `snapshot` (built from `graph`); with `reportChanges`,
    /// appends a change for every node whose parent moved. `useHint: false` and `forceHeap: true` are
    /// for tests: they select the slower paths, which must give the same trees.
    func computeFull(
        _ tree: ShortestPathTree, in graph: MeshGraph, snapshot: RoutingSnapshot, changes: inout [RouteChange],
        reportChanges: Bool, useHint: Bool = true, forceHeap: Bool = false
    ) {
        let capacity = snapshot.indexToRank.count
        tree.resize(capacity)
        let n = snapshot.count
        let storage = self.dialStorage(nodes: n, span: snapshot.maxWeight)
        let distance = storage.distance
        let parent = storage.parent
        let origin = Int(tree.origin)
        let source = origin < capacity ? Int(snapshot.indexToRank[origin]) : -1
        if source >= 0 {
            if !forceHeap && snapshot.maxWeight <= Self.maximumBucketWeight {
                var hint = useHint ? Self.eccentricity(tree) : nil
                if hint == nil, useHint, self.lastEccentricity > 0 {
                    hint = self.lastEccentricity + self.lastEccentricity / 8
                }
                if let hint {
                    let retry = self.runBuckets(snapshot, source: source, storage: storage, limit: hint)
                    if retry == 0 {
                        self.hintHits &+= 1
                    } else {
                        self.hintMisses &+= 1
                        if self.runBuckets(snapshot, source: source, storage: storage, limit: retry) != 0 {
                            assertionFailure("a proven limit was too small")
                            _ = self.runBuckets(snapshot, source: source, storage: storage, limit: .max)
                        }
                    }
                } else {
                    _ = self.runBuckets(snapshot, source: source, storage: storage, limit: .max)
                }
            } else if let edges = snapshot.narrowEdges {
                self.runHeap(snapshot, edges, source: source, distance: distance, parent: parent)
            } else {
                self.runHeap(snapshot, snapshot.wideEdges!, source: source, distance: distance, parent: parent)
            }
        } else {
            distance.update(repeating: .max, count: n)
            parent.update(repeating: -1, count: n)
        }
        // Back to graph indices, comparing with the kept tree as we go.
        let indexToRank = snapshot.indexToRank
        let rankToIndex = snapshot.rankToIndex
        var eccentricity: UInt32 = 0
        tree.distance.withUnsafeMutableBufferPointer { treeDistance in
            tree.parent.withUnsafeMutableBufferPointer { treeParent in
                for x in 0..<capacity {
                    let rank = Int(indexToRank[x])
                    var newDistance = ShortestPathTree.unreachable
                    var newParent: Int32 = -1
                    if rank >= 0 {
                        let d = distance[rank]
                        if d != .max {
                            newDistance = Int32(d)
                            eccentricity = max(eccentricity, d)
                        }
                        let p = parent[rank]
                        if p >= 0 { newParent = rankToIndex[Int(p)] }
                    }
                    treeDistance[x] = newDistance
                    let previous = treeParent[x]
                    if previous != newParent {
                        treeParent[x] = newParent
                        if reportChanges { self.report(x, previous: previous, next: newParent, tree, graph, &changes) }
                    }
                }
            }
        }
        if source >= 0 { self.lastEccentricity = eccentricity }
    }

    /// The largest finite distance of a computed tree, nil if it has none beyond its origin.
    private static func eccentricity(_ tree: ShortestPathTree) -> UInt32? {
        var largest: Int32 = 0
        for d in tree.distance where d != ShortestPathTree.unreachable && d > largest { largest = d }
        return largest > 0 ? UInt32(largest) : nil
    }

    /// The storage for a run over `nodes` nodes with weights up to `span`, reused when it fits.
    private func dialStorage(nodes: Int, span: UInt32) -> DialStorage {
        let span = min(span, Self.maximumBucketWeight)
        if let storage = self.dial, storage.fits(nodes: nodes, span: span) { return storage }
        let storage = DialStorage(
            nodes: max(nodes, self.dial?.nodeCapacity ?? 0), span: max(span, UInt32((self.dial?.bucketCount ?? 1) - 1)))
        self.dial = storage
        return storage
    }

    private func runBuckets(_ snapshot: RoutingSnapshot, source: Int, storage: DialStorage, limit: UInt32) -> UInt32 {
        if let edges = snapshot.narrowEdges {
            return Self.runBuckets(snapshot, edges, source: source, storage: storage, limit: limit)
        }
        return Self.runBuckets(snapshot, snapshot.wideEdges!, source: source, storage: storage, limit: limit)
    }

    /// Dijkstra with Dial's buckets, reading rows only up to the limits described above (`limit` is the
    /// guessed one, `.max` for none). Returns 0 when the result is exact. When the guess proves too small
    /// (the result is then meaningless) returns a limit to run again with: one proven sufficient when every
    /// reachable node was queued before the run gave up (the largest key then queued, or the guess if
    /// larger: no final distance exceeds either), `.max` otherwise. Always leaves the queue empty.
    private static func runBuckets<Edge: PackedEdge>(
        _ snapshot: RoutingSnapshot, _ edges: UnsafeMutableBufferPointer<Edge>, source: Int, storage: DialStorage,
        limit guess: UInt32
    ) -> UInt32 {
        let n = snapshot.count
        let distance = storage.distance
        let parent = storage.parent
        distance.update(repeating: .max, count: n)
        parent.update(repeating: -1, count: n)
        let rows = snapshot.rowStart.baseAddress!
        let edges = edges.baseAddress!
        // Nodes other than the source that some edge enters: when all of them are queued or settled,
        // nothing more can be reached.
        let reachable = snapshot.enterableCount - (snapshot.enterable[source] ? 1 : 0)
        var reached = 0
        var queue = DialQueue(storage)
        distance[source] = 0
        queue.insert(Int32(source), key: 0)
        var bounded = reached == reachable
        var warm: UInt64 = 0
        let gather = storage.gather
        defer { storage.sink = warm }
        while !queue.isEmpty {
            let (x, dx) = queue.popMin()
            if dx > guess {
                let retry = bounded ? max(guess, queue.upperBound()) : UInt32.max
                queue.removeAll()
                return retry
            }
            // The next node of this bucket is popped next (relaxing x only queues larger keys): start
            // loading its row now, so that the cache miss overlaps x's row instead of following it.
            let following = queue.head[Int(dx) & queue.mask]
            if following >= 0 { warm ^= UInt64(edges[Int(rows[Int(following)])]) }
            var limit = guess &- dx
            if bounded { limit = min(limit, queue.upperBound() &- dx) }
            // First the edges that shorten or tie a path, gathered without a branch per edge (most fail
            // and their outcome is unpredictable), then those few applied.
            var e = Int(rows[Int(x)])
            let end = Int(rows[Int(x) + 1])
            var hits = 0
            while e < end {
                let packed = edges[e]
                let w = packed.weight
                if w > limit { break }
                gather[hits] = Int32(truncatingIfNeeded: e)
                hits &+= dx &+ w <= distance[packed.target] ? 1 : 0
                e &+= 1
            }
            for h in 0..<hits {
                let packed = edges[Int(gather[h])]
                let y = packed.target
                let candidate = dx &+ packed.weight
                let dy = distance[y]
                if candidate < dy {
                    if dy == .max {
                        queue.insert(Int32(y), key: candidate)
                        reached &+= 1
                    } else {
                        queue.decrease(Int32(y), from: dy, to: candidate)
                    }
                    distance[y] = candidate
                    parent[y] = x
                } else if candidate == dy && x < parent[y] {
                    parent[y] = x
                }
            }
            if !bounded && reached == reachable { bounded = true }
        }
        return guess == .max || reached == reachable ? 0 : .max
    }

    /// Plain Dijkstra with the 4-ary heap, for weights too large for buckets.
    private func runHeap<Edge: PackedEdge>(
        _ snapshot: RoutingSnapshot, _ edges: UnsafeMutableBufferPointer<Edge>, source: Int, distance: UnsafeMutablePointer<UInt32>,
        parent: UnsafeMutablePointer<Int32>
    ) {
        let n = snapshot.count
        distance.update(repeating: .max, count: n)
        parent.update(repeating: -1, count: n)
        let rows = snapshot.rowStart.baseAddress!
        let edges = edges.baseAddress!
        let heap = self.fullHeap
        heap.reserve(n)
        distance[source] = 0
        heap.push(Int32(source), distance: 0)
        while !heap.isEmpty {
            let (x, d) = heap.pop()
            let dx = UInt32(d)
            for e in Int(rows[Int(x)])..<Int(rows[Int(x) + 1]) {
                let packed = edges[e]
                let w = packed.weight
                let y = packed.target
                let candidate = dx &+ w
                let dy = distance[y]
                if candidate < dy {
                    distance[y] = candidate
                    parent[y] = x
                    heap.push(Int32(y), distance: Int32(candidate))
                } else if candidate == dy && x < parent[y] {
                    parent[y] = x
                }
            }
        }
    }
}

