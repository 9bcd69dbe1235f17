import BraidScheduler
import Testing

@Suite("Client placement")
struct PlacementTests {
    static let frankfurt = MeshLocation(region: "eu-central", latitude: 50.11, longitude: 8.68)
    static let virginia = MeshLocation(region: "us-east", latitude: 38.9, longitude: -77.0)
    static let tokyo = MeshLocation(region: "ap-northeast", latitude: 35.68, longitude: 139.69)

    static func scheduler(_ nodes: [(MeshNodeID, MeshNodeState)]) -> MeshScheduler {
        let scheduler = MeshScheduler()
        for (id, state) in nodes { scheduler.updateNode(id, state: state) }
        return scheduler
    }

    static var world: MeshScheduler { scheduler([
        (1, MeshNodeState(location: frankfurt)), (2, MeshNodeState(location: virginia)),
        (3, MeshNodeState(location: tokyo)),
    ]) }

    @Test("measured RTTs decide when given")
    func byRTT() {
        let client = ClientPlacement(rtts: [1: 80, 2: 30, 3: 200], location: Self.frankfurt.withoutCoordinates)
        #expect(Self.world.placement(client: client) == 2)
        // Only measured nodes compete; unknown ids are ignored.
        #expect(Self.world.placement(client: ClientPlacement(rtts: [3: 200, 42: 1])) == 3)
        #expect(Self.world.placement(client: client, candidates: [1, 3]) == 1)
    }

    @Test("by region name")
    func byRegion() {
        let scheduler = Self.scheduler([
            (1, MeshNodeState(location: MeshLocation(region: "eu"))),
            (2, MeshNodeState(location: MeshLocation(region: "us"))),
        ])
        #expect(scheduler.placement(client: ClientPlacement(location: MeshLocation(region: "us"))) == 2)
        // Nothing known: the smallest id.
        #expect(scheduler.placement(client: ClientPlacement()) == 1)
    }

    @Test("by great-circle distance")
    func byCoordinates() {
        let paris = ClientPlacement(location: MeshLocation(latitude: 48.86, longitude: 2.35))
        let boston = ClientPlacement(location: MeshLocation(latitude: 42.36, longitude: -71.06))
        let seoul = ClientPlacement(location: MeshLocation(latitude: 37.57, longitude: 126.98))
        #expect(Self.world.placement(client: paris) == 1)
        #expect(Self.world.placement(client: boston) == 2)
        #expect(Self.world.placement(client: seoul) == 3)
        let km = ClientPlacement.greatCircleKilometres((48.86, 2.35), (50.11, 8.68))
        #expect(abs(km - 479) < 5)  // Paris–Frankfurt
    }

    @Test("loaded, draining and dead nodes are avoided")
    func avoidsBusyNodes() {
        let client = ClientPlacement(rtts: [1: 20, 2: 30, 3: 40])
        var scheduler = Self.scheduler([(1, MeshNodeState(load: 0.97)), (2, .init()), (3, .init())])
        #expect(scheduler.placement(client: client) == 2)
        scheduler = Self.scheduler([(1, MeshNodeState(isDraining: true)), (2, MeshNodeState(isAlive: false)), (3, .init())])
        #expect(scheduler.placement(client: client) == 3)
        // A draining node is still better than nothing.
        #expect(scheduler.placement(client: client, candidates: [1, 2]) == 1)
        #expect(scheduler.placement(client: client, candidates: [2]) == nil)
        // Light load does not outweigh 10 ms.
        scheduler = Self.scheduler([(1, MeshNodeState(load: 0.3)), (2, .init()), (3, .init())])
        #expect(scheduler.placement(client: client) == 1)
    }

    @Test("ties go to the smaller node id")
    func tieBreak() {
        let scheduler = Self.scheduler([(7, .init()), (5, .init()), (6, .init())])
        #expect(scheduler.placement(client: ClientPlacement(rtts: [7: 10, 6: 10, 5: 12])) == 6)
    }
}

extension MeshLocation {
    var withoutCoordinates: MeshLocation { MeshLocation(region: self.region) }
}
