import Testing

@testable import BraidScheduler

/// The full-run machinery (``RoutingSnapshot``, ``DialQueue``, the pruned bucket Dijkstra and its
/// heap fallback) against simple references on random graphs.
@Suite("Snapshot Dijkstra equals the reference")
struct SnapshotDijkstraTests {
    @Test("Dial's queue pops what a sorted list would", arguments: [11, 12, 13] as [UInt64])
    func dialQueue(seed: UInt64) {
        var random = SplitMix64(state: seed)
        let nodes = 300
        let span: UInt32 = 37
        let storage = DialStorage(nodes: nodes, span: span)
        for _ in 0..<3 {  // the storage is reused: each round must leave it empty
            var queue = DialQueue(storage)
            var keys: [Int32: UInt32] = [:]  // the reference: queued node → key
            var settled = Set<Int32>()
            var last: UInt32 = 0
            queue.insert(0, key: 0)
            keys[0] = 0
            while !keys.isEmpty {
                #expect(queue.count == keys.count)
                let largest = keys.values.max()!
                let bound = queue.upperBound()
                #expect(bound == largest)
                let (node, key) = queue.popMin()
                #expect(keys[node] == key)
                #expect(key == keys.values.min()!)
                #expect(key >= last)
                last = key
                keys[node] = nil
                settled.insert(node)
                // Relax a few random "edges": new nodes, and decreases of queued ones.
                for _ in 0..<Int.random(in: 0...4, using: &random) {
                    let y = Int32.random(in: 0..<Int32(nodes), using: &random)
                    guard !settled.contains(y) else { continue }
                    let candidate = key + UInt32.random(in: 1...span, using: &random)
                    if let old = keys[y] {
                        if candidate < old {
                            queue.decrease(y, from: old, to: candidate)
                            keys[y] = candidate
                        }
                    } else {
                        queue.insert(y, key: candidate)
                        keys[y] = candidate
                    }
                }
            }
            #expect(queue.isEmpty)
            #expect((0..<storage.bucketCount).allSatisfy { storage.head[$0] == -1 })
        }
        // Abandoning a run half way empties the queue too.
        var queue = DialQueue(storage)
        for node in 0..<50 { queue.insert(Int32(node), key: UInt32(node % 30)) }
        _ = queue.popMin()
        queue.removeAll()
        #expect(queue.isEmpty)
        #expect((0..<storage.bucketCount).allSatisfy { storage.head[$0] == -1 })
    }

    /// No hysteresis (the reference computes weights from measurements alone); `heavy` makes a link with
    /// no spare capacity weigh more than the bucket queue takes.
    static func policy(heavy: Bool) -> RoutePolicy {
        var policy = RoutePolicy()
        policy.hysteresisMilliseconds = 0
        policy.hysteresisFraction = 0
        if heavy { policy.lowCapacityPenalty = 20_000 }
        return policy
    }

    /// A random graph in both the scheduler's internal form and the reference's.
    static func randomGraph(
        seed: UInt64, nodes: Int, links: Int, heavy: Bool
    ) -> (graph: MeshGraph, reference: ReferenceMesh, ids: [MeshNodeID]) {
        var random = SplitMix64(state: seed)
        var graph = MeshGraph(policy: Self.policy(heavy: heavy))
        var reference = ReferenceMesh(policy: Self.policy(heavy: heavy))
        // Scattered ids: index order and id order differ.
        let ids = (0..<nodes).map { MeshNodeID(($0 * 7919) % 10_007 + 1) }
        for id in ids {
            // Some dead nodes (no routable edges), some draining (a heavy node cost), some loaded.
            let state = MeshNodeState(
                load: [0, 0, 0.5, 0.9].randomElement(using: &random)!,
                isAlive: Int.random(in: 0..<12, using: &random) != 0,
                isDraining: Int.random(in: 0..<15, using: &random) == 0)
            graph.updateNode(id, state: state)
            reference.states[id] = state
        }
        for _ in 0..<links {
            let from = ids.randomElement(using: &random)!
            let to = ids.randomElement(using: &random)!
            guard from != to else { continue }
            // Even RTTs from a small range: many equal-cost paths. With `heavy`, some links weigh more
            // than the bucket queue takes, so the heap is used.
            var measurement = LinkMeasurement(rtt: Double(2 * Int.random(in: 2...20, using: &random)))
            if heavy, Int.random(in: 0..<8, using: &random) == 0 { measurement.spareCapacity = 0 }
            graph.updateLink(from: from, to: to, measurement: measurement)
            reference.links[MeshEdge(from: from, to: to)] = measurement
        }
        _ = graph.endBatch()
        return (graph, reference, ids)
    }

    /// Every node's parent id and distance in `tree`, as the reference gives them.
    static func check(
        _ tree: ShortestPathTree, _ graph: MeshGraph, _ expected: (parent: [MeshNodeID: MeshNodeID], distance: [MeshNodeID: Int]),
        _ context: Comment
    ) {
        for (id, index) in graph.indexOf {
            let i = Int(index)
            let parent = tree.parent[i] >= 0 ? graph.ids[Int(tree.parent[i])] : nil
            let distance = tree.distance[i] == ShortestPathTree.unreachable ? nil : Int(tree.distance[i])
            #expect(parent == expected.parent[id], "\(context): parent of \(id)")
            #expect(distance == expected.distance[id], "\(context): distance of \(id)")
        }
    }

    @Test(
        "every origin, every mode, on random graphs",
        arguments: [
            (21, 30, 60, false), (22, 60, 900, false), (23, 120, 5_000, false), (24, 80, 400, true),
            (25, 50, 2_000, true), (26, 200, 1_500, false),
        ] as [(UInt64, Int, Int, Bool)])
    func randomGraphs(seed: UInt64, nodes: Int, links: Int, heavy: Bool) {
        let (graph, reference, ids) = Self.randomGraph(seed: seed, nodes: nodes, links: links, heavy: heavy)
        let snapshot = RoutingSnapshot(graph)
        #expect(snapshot.count == ids.count)
        #expect((snapshot.maxWeight > PathEngine.maximumBucketWeight) == heavy)
        let engine = PathEngine()
        var changes: [RouteChange] = []
        for origin in ids {
            let expected = reference.tree(origin: origin)
            let index = graph.index(of: origin)!
            // No kept tree: the hint is the engine's last run (right, too small or absent).
            let fresh = ShortestPathTree(origin: index, originID: origin)
            engine.computeFull(fresh, in: graph, snapshot: snapshot, changes: &changes, reportChanges: false)
            Self.check(fresh, graph, expected, "seed \(seed) origin \(origin) fresh")
            // Recomputing a correct tree changes nothing.
            engine.computeFull(fresh, in: graph, snapshot: snapshot, changes: &changes, reportChanges: true)
            #expect(changes.isEmpty, "seed \(seed) origin \(origin)")
            Self.check(fresh, graph, expected, "seed \(seed) origin \(origin) again")
            // A kept tree whose eccentricity is far too small or too large: the guess fails or is loose.
            for misleading: Int32 in [1, 3, 100_000] {
                let tree = ShortestPathTree(origin: index, originID: origin)
                tree.resize(graph.capacity)
                tree.distance[0] = misleading
                engine.computeFull(tree, in: graph, snapshot: snapshot, changes: &changes, reportChanges: false)
                Self.check(tree, graph, expected, "seed \(seed) origin \(origin) hint \(misleading)")
            }
            // Without any hint (only the proven bound), and with the heap.
            for (useHint, forceHeap) in [(false, false), (false, true)] {
                let tree = ShortestPathTree(origin: index, originID: origin)
                engine.computeFull(
                    tree, in: graph, snapshot: snapshot, changes: &changes, reportChanges: false, useHint: useHint,
                    forceHeap: forceHeap)
                Self.check(tree, graph, expected, "seed \(seed) origin \(origin) hint \(useHint) heap \(forceHeap)")
            }
        }
        if !heavy { #expect(engine.hintMisses > 0 && engine.hintHits > 0, "both paths of the guess taken") }
    }

    @Test("a recompute reports exactly the parents that differ from a wrong kept tree")
    func reportsWrongParents() {
        let (graph, reference, ids) = Self.randomGraph(seed: 31, nodes: 40, links: 300, heavy: false)
        let snapshot = RoutingSnapshot(graph)
        let engine = PathEngine()
        let origin = ids[3]
        let index = graph.index(of: origin)!
        let tree = ShortestPathTree(origin: index, originID: origin)
        var changes: [RouteChange] = []
        engine.computeFull(tree, in: graph, snapshot: snapshot, changes: &changes, reportChanges: false)
        // Corrupt two parents.
        let expected = reference.tree(origin: origin)
        let victims = ids.filter { $0 != origin && expected.parent[$0] != nil }.prefix(2)
        for victim in victims { tree.parent[Int(graph.index(of: victim)!)] = index }
        engine.computeFull(tree, in: graph, snapshot: snapshot, changes: &changes, reportChanges: true)
        let reported = Set(changes.map(\.node))
        let corrupted = Set(victims.filter { expected.parent[$0] != origin })
        #expect(reported == corrupted)
        for change in changes {
            #expect(change.previous == origin)
            #expect(change.next == expected.parent[change.node])
        }
        Self.check(tree, graph, expected, "after repair")
    }
}
