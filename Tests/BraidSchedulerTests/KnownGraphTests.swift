import BraidScheduler
import Testing

/// Small graphs whose routes can be worked out by hand.
@Suite("Routes on known graphs")
struct KnownGraphTests {
    static let a: MeshNodeID = 1
    static let b: MeshNodeID = 2
    static let c: MeshNodeID = 3
    static let d: MeshNodeID = 4

    /// Links in both directions with the same measurement.
    static func link(_ scheduler: MeshScheduler, _ x: MeshNodeID, _ y: MeshNodeID, rtt: Double, loss: Double = 0) {
        scheduler.updateLink(from: x, to: y, measurement: LinkMeasurement(rtt: rtt, loss: loss))
        scheduler.updateLink(from: y, to: x, measurement: LinkMeasurement(rtt: rtt, loss: loss))
    }

    @Test("a 150 ms direct link loses to two 20 ms hops")
    func detourThroughFastRelay() throws {
        let scheduler = MeshScheduler()
        Self.link(scheduler, Self.a, Self.c, rtt: 150)
        Self.link(scheduler, Self.a, Self.b, rtt: 20)
        Self.link(scheduler, Self.b, Self.c, rtt: 20)
        #expect(scheduler.nextHop(toward: Self.a, from: Self.c) == Self.b)
        #expect(scheduler.nextHop(toward: Self.a, from: Self.b) == Self.a)
        #expect(scheduler.nextHop(toward: Self.a, from: Self.a) == nil)
        let route = try #require(scheduler.path(from: Self.a, to: Self.c))
        #expect(route.nodes == [Self.a, Self.b, Self.c])
        #expect(route.cost == 2 * (10 + 3))  // rtt/2 + hop cost, twice
        #expect(route.latency == 20)
        // The reverse direction is its own tree.
        #expect(scheduler.path(from: Self.c, to: Self.a)?.nodes == [Self.c, Self.b, Self.a])
    }

    @Test("a 50 % lossy short link loses to a clean longer path")
    func lossyLinkAvoided() throws {
        let scheduler = MeshScheduler()
        Self.link(scheduler, Self.a, Self.c, rtt: 20, loss: 0.5)
        Self.link(scheduler, Self.a, Self.b, rtt: 150)
        Self.link(scheduler, Self.b, Self.c, rtt: 150)
        #expect(scheduler.path(from: Self.a, to: Self.c)?.nodes == [Self.a, Self.b, Self.c])
        // 1 % loss is cheap: the short link wins again.
        Self.link(scheduler, Self.a, Self.c, rtt: 20, loss: 0.01)
        #expect(scheduler.path(from: Self.a, to: Self.c)?.nodes == [Self.a, Self.c])
    }

    @Test("a detour saving a millisecond does not add a hop")
    func hopCost() {
        let scheduler = MeshScheduler()
        Self.link(scheduler, Self.a, Self.c, rtt: 40)
        Self.link(scheduler, Self.a, Self.b, rtt: 19)
        Self.link(scheduler, Self.b, Self.c, rtt: 19)
        #expect(scheduler.nextHop(toward: Self.a, from: Self.c) == Self.a)
    }

    @Test("a nearly saturated or draining relay is avoided when there is another way")
    func loadAndDraining() {
        let scheduler = MeshScheduler()
        Self.link(scheduler, Self.a, Self.b, rtt: 20)
        Self.link(scheduler, Self.b, Self.c, rtt: 20)
        Self.link(scheduler, Self.a, Self.d, rtt: 40)
        Self.link(scheduler, Self.d, Self.c, rtt: 40)
        #expect(scheduler.nextHop(toward: Self.a, from: Self.c) == Self.b)
        scheduler.updateNode(Self.b, state: MeshNodeState(load: 0.98))
        #expect(scheduler.nextHop(toward: Self.a, from: Self.c) == Self.d)
        scheduler.updateNode(Self.b, state: MeshNodeState(load: 0.1, isDraining: true))
        #expect(scheduler.nextHop(toward: Self.a, from: Self.c) == Self.d)
        // Still the way to the draining node itself.
        #expect(scheduler.nextHop(toward: Self.a, from: Self.b) == Self.a)
        scheduler.updateNode(Self.b, state: MeshNodeState(load: 0.1))
        #expect(scheduler.nextHop(toward: Self.a, from: Self.c) == Self.b)
        // A dead relay carries nothing, and the dead node is unreachable.
        scheduler.updateNode(Self.d, state: MeshNodeState(isAlive: false))
        scheduler.updateNode(Self.b, state: MeshNodeState(isAlive: false))
        #expect(scheduler.nextHop(toward: Self.a, from: Self.c) == nil)
        #expect(scheduler.path(from: Self.a, to: Self.b) == nil)
    }

    @Test("directed: costs are read in the direction media flows")
    func directedCosts() {
        let scheduler = MeshScheduler()
        // A→C is slow, C→A fast; B relays both ways at 20 ms.
        scheduler.updateLink(from: Self.a, to: Self.c, measurement: LinkMeasurement(rtt: 200))
        scheduler.updateLink(from: Self.c, to: Self.a, measurement: LinkMeasurement(rtt: 10))
        Self.link(scheduler, Self.a, Self.b, rtt: 20)
        Self.link(scheduler, Self.b, Self.c, rtt: 20)
        #expect(scheduler.nextHop(toward: Self.a, from: Self.c) == Self.b)  // A's media to C
        #expect(scheduler.nextHop(toward: Self.c, from: Self.a) == Self.c)  // C's media to A
    }

    @Test("equal-cost paths: the parent with the smaller node id wins, whatever the insertion order")
    func tieBreakByID() {
        for order in [[MeshNodeID(30), 20], [20, 30]] {
            let scheduler = MeshScheduler()
            for relay in order {
                Self.link(scheduler, 1, relay, rtt: 20)
                Self.link(scheduler, relay, 9, rtt: 20)
            }
            #expect(scheduler.nextHop(toward: 1, from: 9) == 20)
        }
    }

    @Test("distribution tree: one edge per link, pruned to the subscribers, parents first")
    func distributionTree() {
        let scheduler = MeshScheduler()
        // A→B 13, A→C 78, B→C 13, B→D 33, C→D 30 (the picture in MeshScheduler's documentation).
        scheduler.updateLink(from: 1, to: 2, measurement: LinkMeasurement(rtt: 20))
        scheduler.updateLink(from: 1, to: 3, measurement: LinkMeasurement(rtt: 150))
        scheduler.updateLink(from: 2, to: 3, measurement: LinkMeasurement(rtt: 20))
        scheduler.updateLink(from: 2, to: 4, measurement: LinkMeasurement(rtt: 60))
        scheduler.updateLink(from: 3, to: 4, measurement: LinkMeasurement(rtt: 54))
        scheduler.updateNode(5, state: MeshNodeState())  // no links: unreachable
        let both = scheduler.distributionTree(origin: 1, subscribers: [3, 4])
        #expect(both.edges == [MeshEdge(from: 1, to: 2), MeshEdge(from: 2, to: 3), MeshEdge(from: 2, to: 4)])
        #expect(both.unreachable.isEmpty)
        let one = scheduler.distributionTree(origin: 1, subscribers: [3, 5, 99])
        #expect(one.edges == [MeshEdge(from: 1, to: 2), MeshEdge(from: 2, to: 3)])
        #expect(one.unreachable == [5, 99])
        #expect(scheduler.distributionTree(origin: 1, subscribers: [1]).edges.isEmpty)
    }
}
