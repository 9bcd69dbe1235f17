import BraidScheduler
import Testing

@Suite("Function placement")
struct FunctionPlacementTests {
    /// The mesh test's triangle: A-B and B-C 20 ms RTT, A-C 150 ms, both directions.
    static func triangle(loads: [MeshNodeID: Double] = [:], draining: Set<MeshNodeID> = [], dead: Set<MeshNodeID> = [])
        -> MeshScheduler
    {
        let scheduler = MeshScheduler()
        for id: MeshNodeID in [1, 2, 3] {
            scheduler.updateNode(
                id, state: MeshNodeState(load: loads[id] ?? 0, isAlive: !dead.contains(id), isDraining: draining.contains(id)))
        }
        for (a, b, rtt) in [(1, 2, 20.0), (2, 3, 20.0), (1, 3, 150.0)] as [(MeshNodeID, MeshNodeID, Double)] {
            scheduler.updateLink(from: a, to: b, measurement: LinkMeasurement(rtt: rtt))
            scheduler.updateLink(from: b, to: a, measurement: LinkMeasurement(rtt: rtt))
        }
        return scheduler
    }

    @Test("runs where the subscribers are, whichever node was asked")
    func nearestConsumers() {
        let mesh = Self.triangle()
        // Inputs on A (1), subscribers on B (2), asked on A: B.
        #expect(mesh.placement(function: FunctionPlacement(consumers: [2: 3], inputs: [1: 2], requester: 1)) == 2)
        // Subscribers on A and C in equal numbers: every node averages 13 ms (B 13 to each, A 0 and 26
        // via B): the asked node.
        #expect(mesh.placement(function: FunctionPlacement(consumers: [1: 1, 3: 1], requester: 3)) == 3)
        // Most subscribers on C: C.
        #expect(mesh.placement(function: FunctionPlacement(consumers: [1: 1, 3: 5], requester: 1)) == 3)
    }

    @Test("without subscribers, near the inputs; with nothing known, the asked node")
    func inputsThenRequester() {
        let mesh = Self.triangle()
        #expect(mesh.placement(function: FunctionPlacement(inputs: [3: 1], requester: 1)) == 3)
        #expect(mesh.placement(function: FunctionPlacement(requester: 2)) == 2)
        #expect(mesh.placement(function: FunctionPlacement(requester: 3)) == 3)
        // No requester (a move): the smallest id.
        #expect(mesh.placement(function: FunctionPlacement()) == 1)
        // Zero-weight consumers count as none.
        #expect(mesh.placement(function: FunctionPlacement(consumers: [3: 0], inputs: [1: 1], requester: 2)) == 1)
    }

    @Test("equal consumer distance: the inputs break the tie")
    func inputTieBreak() {
        // Subscribers on B only; the candidates A and C are equally far from B. Inputs on C: C.
        let mesh = Self.triangle()
        let placement = FunctionPlacement(consumers: [2: 1], inputs: [3: 1], requester: 1, excluded: [2])
        #expect(mesh.placement(function: placement) == 3)
    }

    @Test("a loaded node loses to a slightly farther one, not to a far one")
    func loadPenalty() {
        // B at 0.9 load costs 45 ms: A and C (10 ms + 3 ms hop from B's subscribers) win.
        let busy = Self.triangle(loads: [2: 0.9])
        #expect(busy.placement(function: FunctionPlacement(consumers: [2: 1], requester: 2)) != 2)
        // B at 0.5 costs 5 ms, less than the 13 ms (10 ms + hop) to reach B from A.
        let half = Self.triangle(loads: [2: 0.5])
        #expect(half.placement(function: FunctionPlacement(consumers: [2: 1], requester: 1)) == 2)
        let ranking = half.functionRanking(FunctionPlacement(consumers: [2: 1], requester: 1))
        #expect(ranking.first.map { [$0.node, UInt64($0.total)] } == [2, 5])
    }

    @Test("never a draining, dead or excluded node")
    func eligibility() {
        #expect(Self.triangle(draining: [2]).placement(function: FunctionPlacement(consumers: [2: 4], requester: 2)) != 2)
        #expect(Self.triangle(dead: [2]).placement(function: FunctionPlacement(consumers: [2: 4], requester: 2)) != 2)
        let moved = Self.triangle().placement(function: FunctionPlacement(consumers: [2: 4], excluded: [2]))
        #expect(moved == 1)  // A and C tie (10 ms + hop from B): the smaller id
        let none = Self.triangle(draining: [1], dead: [2, 3]).placement(function: FunctionPlacement(requester: 1))
        #expect(none == nil)
        #expect(Self.triangle().placement(function: FunctionPlacement(), candidates: [3]) == 3)
    }

    @Test("unreachable consumers count a fixed distance; the pure form takes any distance function")
    func unreachable() {
        let pool: [(id: MeshNodeID, state: MeshNodeState)] = [(1, MeshNodeState()), (2, MeshNodeState())]
        // 2 cannot reach 9 at all; 1 reaches it in 40 ms.
        let placement = FunctionPlacement(consumers: [9: 1], requester: 2)
        let chosen = placement.choose(among: pool, policy: RoutePolicy()) { from, _ in from == 1 ? 40 : nil }
        #expect(chosen == 1)
        // Both unreachable: equal, the asked node.
        #expect(placement.choose(among: pool, policy: RoutePolicy()) { _, _ in nil } == 2)
        // Negative distances (bad input) count as 0 rather than winning.
        #expect(placement.choose(among: pool, policy: RoutePolicy()) { from, _ in from == 1 ? -500 : 0 } == 2)
    }
}
