import BraidScheduler
import Testing

/// SplitMix64: a small seeded generator, so failures replay.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random graphs under random mutations: after every batch the incrementally updated trees must equal
/// the reference Dijkstra's, and the reported changes must be exactly the parents that moved.
@Suite("Incremental updates equal a full recompute")
struct IncrementalEquivalenceTests {
    /// No hysteresis, so the reference can compute weights from the measurements alone.
    static var policy: RoutePolicy {
        var policy = RoutePolicy()
        policy.hysteresisMilliseconds = 0
        policy.hysteresisFraction = 0
        return policy
    }

    struct Run {
        var random: SplitMix64
        var scheduler: MeshScheduler
        var reference = ReferenceMesh(policy: IncrementalEquivalenceTests.policy)
        var origins: Set<MeshNodeID> = []
        let nodeCount: Int

        init(seed: UInt64, nodes: Int, concurrency: Int) {
            self.random = SplitMix64(state: seed)
            self.scheduler = MeshScheduler(policy: IncrementalEquivalenceTests.policy, concurrency: concurrency)
            self.nodeCount = nodes
        }

        /// Node ids are scattered so that index order and id order differ.
        func id(_ i: Int) -> MeshNodeID { MeshNodeID((i * 7919) % 1009 + 1) }

        mutating func randomMeasurement() -> LinkMeasurement {
            // Even RTTs from a small range make equal-cost paths (ties) common.
            let rtt = Double(2 * Int.random(in: 2...30, using: &self.random))
            let loss = Int.random(in: 0..<10, using: &self.random) == 0 ? 0.05 : 0
            return LinkMeasurement(rtt: rtt, loss: loss)
        }

        mutating func randomChange() -> MeshChange {
            let from = self.id(Int.random(in: 0..<self.nodeCount, using: &self.random))
            var to = self.id(Int.random(in: 0..<self.nodeCount, using: &self.random))
            if to == from { to = self.id((Int.random(in: 0..<self.nodeCount, using: &self.random))) }
            let existing = self.reference.links.keys.filter { $0.from != $0.to }
            switch Int.random(in: 0..<100, using: &self.random) {
            case 0..<45 where !existing.isEmpty:  // re-measure an existing link
                let edge = existing.randomElement(using: &self.random)!
                return .link(from: edge.from, to: edge.to, self.randomMeasurement())
            case 0..<70:
                return .link(from: from, to: to, self.randomMeasurement())
            case 70..<82 where !existing.isEmpty:
                let edge = existing.randomElement(using: &self.random)!
                return .removeLink(from: edge.from, to: edge.to)
            case 82..<94:
                let load = [0, 0.2, 0.5, 0.9, 0.97].randomElement(using: &self.random)!
                return .node(
                    from,
                    MeshNodeState(
                        load: load, isAlive: Int.random(in: 0..<6, using: &self.random) != 0,
                        isDraining: Int.random(in: 0..<8, using: &self.random) == 0))
            default:
                return .removeNode(from)
            }
        }

        mutating func apply(_ change: MeshChange) {
            switch change {
            case .node(let id, let state): self.reference.states[id] = state
            case .removeNode(let id):
                guard self.reference.states[id] != nil else { return }
                self.reference.states[id] = nil
                self.reference.links = self.reference.links.filter { $0.key.from != id && $0.key.to != id }
                self.origins.remove(id)
            case .link(let from, let to, let measurement):
                guard from != to else { return }
                if self.reference.states[from] == nil { self.reference.states[from] = MeshNodeState() }
                if self.reference.states[to] == nil { self.reference.states[to] = MeshNodeState() }
                self.reference.links[MeshEdge(from: from, to: to)] = measurement
            case .removeLink(let from, let to): self.reference.links[MeshEdge(from: from, to: to)] = nil
            }
        }

        typealias Trees = [MeshNodeID: (parent: [MeshNodeID: MeshNodeID], distance: [MeshNodeID: Int])]

        /// The reference trees of the active origins.
        func referenceTrees() -> Trees {
            Dictionary(uniqueKeysWithValues: self.origins.map { ($0, self.reference.tree(origin: $0)) })
        }

        /// Every (origin, node) parent in `trees`.
        func parents(_ trees: Trees) -> [MeshEdge: MeshNodeID?] {
            var result: [MeshEdge: MeshNodeID?] = [:]
            for (origin, tree) in trees {
                for node in self.reference.states.keys where node != origin {
                    result[MeshEdge(from: origin, to: node)] = tree.parent[node]
                }
            }
            return result
        }

        /// Compares every active tree with the reference: parents and path costs.
        func check(_ trees: Trees, _ context: Comment) {
            #expect(Set(self.scheduler.activeOrigins) == self.origins, context)
            #expect(Set(self.scheduler.nodes) == Set(self.reference.states.keys), context)
            for (origin, tree) in trees {
                for node in self.reference.states.keys where node != origin {
                    let hop = self.scheduler.nextHop(toward: origin, from: node)
                    #expect(hop == tree.parent[node], "\(context): \(origin)→\(node)")
                    #expect(self.scheduler.path(from: origin, to: node)?.cost == tree.distance[node], context)
                }
            }
        }
    }

    @Test("single mutations and batches on random graphs", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func randomized(seed: UInt64) {
        // Even seeds split batches touching 8 or more trees over 2 threads.
        var run = Run(seed: seed, nodes: 40, concurrency: seed % 2 == 0 ? 2 : 1)
        // About 4 out-links per node to start.
        var initial: [MeshChange] = []
        for _ in 0..<160 { initial.append(run.randomChange()) }
        for change in initial { run.apply(change) }
        run.scheduler.apply(initial)
        let candidates = run.scheduler.nodes
        run.origins = Set(candidates.shuffled(using: &run.random).prefix(12))
        run.scheduler.setActiveOrigins(run.origins)
        run.check(run.referenceTrees(), "seed \(seed) initial")

        for step in 0..<200 {
            // Mostly single changes; every 10th step a batch (a probe round), sometimes a large one.
            let size = step % 10 == 9 ? (step % 30 == 29 ? 60 : 6) : 1
            var batch: [MeshChange] = []
            for _ in 0..<size { batch.append(run.randomChange()) }
            let before = run.parents(run.referenceTrees())
            for change in batch { run.apply(change) }
            let reported = run.scheduler.apply(batch)
            let afterTrees = run.referenceTrees()
            let after = run.parents(afterTrees)
            // A node that appeared counts as having had no parent; a removed one is not reported.
            let expected = after.compactMap { pair, next -> RouteChange? in
                let previous = before[pair] ?? nil
                guard previous != next else { return nil }
                return RouteChange(origin: pair.from, node: pair.to, previous: previous, next: next)
            }.sorted { ($0.origin, $0.node) < ($1.origin, $1.node) }
            #expect(reported == expected, "seed \(seed) step \(step): \(batch)")
            run.check(afterTrees, "seed \(seed) step \(step)")
            // Now and then a new origin joins (computed from scratch) or one leaves.
            if step % 25 == 0, let origin = run.scheduler.nodes.randomElement(using: &run.random) {
                if run.origins.contains(origin) {
                    run.origins.remove(origin)
                    run.scheduler.deactivate(origin: origin)
                } else {
                    run.origins.insert(origin)
                    run.scheduler.activate(origin: origin)
                }
            }
        }
        #expect(run.scheduler.recomputeAll().isEmpty)
        #expect(run.scheduler.recomputeAll(concurrency: 2).isEmpty)
        run.check(run.referenceTrees(), "seed \(seed) after recompute")
    }
}
