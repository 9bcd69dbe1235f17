import BraidScheduler
import Testing

/// What a mutation reports: exactly the (origin, node) pairs whose parent moved.
@Suite("Route change reporting")
struct ChangeReportingTests {
    /// Every node's parent in every active origin's tree.
    static func parents(_ scheduler: MeshScheduler) -> [MeshEdge: MeshNodeID?] {
        var result: [MeshEdge: MeshNodeID?] = [:]
        for origin in scheduler.activeOrigins {
            for node in scheduler.nodes where node != origin {
                result[MeshEdge(from: origin, to: node)] = scheduler.nextHop(toward: origin, from: node)
            }
        }
        return result
    }

    /// The changes `before` → `after` implies, sorted like the scheduler's.
    static func diff(_ before: [MeshEdge: MeshNodeID?], _ after: [MeshEdge: MeshNodeID?]) -> [RouteChange] {
        after.compactMap { pair, next -> RouteChange? in
            guard let previous = before[pair], previous != next else { return nil }
            return RouteChange(origin: pair.from, node: pair.to, previous: previous, next: next)
        }.sorted { ($0.origin, $0.node) < ($1.origin, $1.node) }
    }

    /// Two origins, 1 and 3, on a ring of 1–6 with a shortcut 1–4 (RTTs in ms, both directions; weights
    /// are rtt/2 + 3):
    /// ```
    ///   1 ─20─ 2 ─20─ 3 ─20─ 4 ─20─ 5 ─20─ 6 ─20─ 1      1 ─10─ 4
    /// ```
    static func ring() -> MeshScheduler {
        let scheduler = MeshScheduler()
        for i in MeshNodeID(1)...6 {
            KnownGraphTests.link(scheduler, i, i % 6 + 1, rtt: 20)
        }
        KnownGraphTests.link(scheduler, 1, 4, rtt: 10)
        scheduler.setActiveOrigins([1, 3])
        return scheduler
    }

    @Test("an RTT change reroutes only the pairs whose parent moves, and reports exactly them")
    func linkChange() {
        let scheduler = Self.ring()
        #expect(scheduler.nextHop(toward: 1, from: 4) == 1)
        #expect(scheduler.nextHop(toward: 1, from: 3) == 4)  // 8 + 13 < 13 + 13
        #expect(scheduler.nextHop(toward: 1, from: 5) == 4)
        #expect(scheduler.nextHop(toward: 3, from: 1) == 4)  // uses 4 → 1, not 1 → 4
        let before = Self.parents(scheduler)
        // 1 → 4 gets slow: in 1's tree 3, 4 and 5 pull another way; 3's tree does not use 1 → 4.
        let changes = scheduler.updateLink(from: 1, to: 4, measurement: LinkMeasurement(rtt: 120))
        #expect(
            changes == [
                RouteChange(origin: 1, node: 3, previous: 4, next: 2),
                RouteChange(origin: 1, node: 4, previous: 1, next: 3),  // 3 and 5 tie at 39: smaller id
                RouteChange(origin: 1, node: 5, previous: 4, next: 6),
            ])
        #expect(changes == Self.diff(before, Self.parents(scheduler)))
        // And back: the same pairs, the other way.
        let back = scheduler.updateLink(from: 1, to: 4, measurement: LinkMeasurement(rtt: 10))
        #expect(back == changes.map { RouteChange(origin: $0.origin, node: $0.node, previous: $0.next, next: $0.previous) })
        #expect(Self.parents(scheduler) == before)
        #expect(scheduler.recomputeAll().isEmpty)
    }

    @Test("probe noise inside the hysteresis margin changes no weight and no route")
    func hysteresis() {
        let scheduler = Self.ring()
        let before = Self.parents(scheduler)
        let weight = scheduler.weight(from: 1, to: 4)
        for rtt in [10.0, 16, 4, 19, 1, 14] {  // one-way 0.5…9.5 ms around 5: within 5 ms
            #expect(scheduler.updateLink(from: 1, to: 4, measurement: LinkMeasurement(rtt: rtt)).isEmpty)
            #expect(scheduler.weight(from: 1, to: 4) == weight)
        }
        // Same for load: 0 → 0.3 moves the penalty by ~2 ms.
        #expect(scheduler.updateNode(4, state: MeshNodeState(load: 0.3)).isEmpty)
        #expect(Self.parents(scheduler) == before)
        // Past the margin it moves.
        #expect(!scheduler.updateLink(from: 1, to: 4, measurement: LinkMeasurement(rtt: 40)).isEmpty)
    }

    @Test("a removed node reroutes what crossed it and nothing else")
    func nodeRemoval() {
        let scheduler = Self.ring()
        let before = Self.parents(scheduler)
        let changes = scheduler.removeNode(4)
        let after = Self.parents(scheduler)
        // Exactly the nodes of the two trees whose parent was 4 (they crossed it) moved.
        let crossed = before.filter { $0.value == 4 }.keys.sorted { ($0.from, $0.to) < ($1.from, $1.to) }
        #expect(changes.map { MeshEdge(from: $0.origin, to: $0.node) } == crossed)
        #expect(changes.allSatisfy { $0.previous == 4 && $0.next != nil })
        #expect(changes == Self.diff(before, after))
        #expect(!scheduler.nodes.contains(4))
        #expect(scheduler.recomputeAll().isEmpty)
        // The removed origin's tree goes with it.
        scheduler.removeNode(3)
        #expect(scheduler.activeOrigins == [1])
    }

    @Test("a link removal and a dead node report unreachable nodes with a nil parent")
    func unreachable() {
        let scheduler = MeshScheduler()
        scheduler.updateLink(from: 1, to: 2, measurement: LinkMeasurement(rtt: 10))
        scheduler.updateLink(from: 2, to: 3, measurement: LinkMeasurement(rtt: 10))
        scheduler.activate(origin: 1)
        #expect(
            scheduler.removeLink(from: 2, to: 3) == [RouteChange(origin: 1, node: 3, previous: 2, next: nil)])
        #expect(
            scheduler.updateNode(2, state: MeshNodeState(isAlive: false))
                == [RouteChange(origin: 1, node: 2, previous: 1, next: nil)])
        #expect(
            scheduler.updateNode(2, state: MeshNodeState())
                == [RouteChange(origin: 1, node: 2, previous: nil, next: 1)])
    }
}
