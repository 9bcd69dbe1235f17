/// Where an edge function (audio mix, transcode, composite…) should run in the mesh.
///
/// A function consumes its room's input tracks (published somewhere in the mesh, pulled over relay
/// links like any subscription) and publishes output tracks that the room's subscribers play. Its output
/// is what people hear and see, so it runs as close to them as possible:
///
/// ```
///   score(c) = distance(c) + nodeCost(load(c))          smallest wins; dead or draining c never
///
///   distance(c) = Σ w(n)·d(c → n) / Σ w(n)   over the nodes n with subscribers in the room (w = how many)
///               = Σ w(o)·d(o → c) / Σ w(o)   else, over the origins o of the inputs  (w = inputs there)
///               = 0                          else (nothing known: the asked node, see ties)
///   ties (whole ms): the input distance, then the asked node, then the smaller node id
/// ```
///
/// `d(u → v)` is the one-way latency of the route media takes from u to v (``MeshScheduler/path(from:to:)``)
/// plus ``RoutePolicy/hopCost`` per hop, ms; 0 from a node to itself; ``unreachableDistance`` when there is
/// no route. Not the route's full cost: that includes the load penalty of the node it enters, which would
/// count a busy consumer node's load against every candidate but itself (and so favour it). Direction matters: outputs flow from the function to the subscribers, inputs
/// from their origins to the function.
///
/// Why consumers first, inputs only second: an output is adapted per subscriber (layers for a transcode,
/// one mix-minus per participant), and the delay between the function and its listeners is what they
/// perceive as the function's own; where mixing N inputs into one, running near the listeners also keeps
/// the per-listener outputs off the relay links. With no subscriber yet (a function started before the
/// room fills), the inputs decide; with neither, the asked node keeps it (the behaviour of a single node).
///
/// The load term is ``RoutePolicy/nodeCost(load:isDraining:)``'s `L/(1 − L)` curve, the one routes and
/// client placement use: a node at 0.5 load costs 5 ms, at 0.9 45 ms, so a busy node loses to one a few
/// ms further away but not to one across an ocean.
///
/// Pure: the caller passes the node states and a distance function (``MeshScheduler/placement(function:candidates:)``
/// passes its routes).
public struct FunctionPlacement: Sendable, Hashable {
    /// Nodes with subscribers in the function's room, and how many each has.
    public var consumers: [MeshNodeID: Int]
    /// Nodes where the function's inputs are published, and how many inputs each.
    public var inputs: [MeshNodeID: Int]
    /// The node the request came to: ties go to it (so a single node, or a mesh that knows nothing,
    /// behaves as before placement existed).
    public var requester: MeshNodeID?
    /// Nodes not to choose (e.g. the node a function is moving away from), besides dead and draining ones.
    public var excluded: Set<MeshNodeID>
    /// The distance counted for a consumer or input that a candidate cannot reach, ms.
    public var unreachableDistance: Double = 1_000

    public init(
        consumers: [MeshNodeID: Int] = [:], inputs: [MeshNodeID: Int] = [:], requester: MeshNodeID? = nil,
        excluded: Set<MeshNodeID> = []
    ) {
        self.consumers = consumers
        self.inputs = inputs
        self.requester = requester
        self.excluded = excluded
    }

    /// One candidate's score, for logs and tests.
    public struct Score: Sendable, Hashable {
        public var node: MeshNodeID
        /// Whole ms: distance plus load penalty.
        public var total: Int
        /// Whole ms: the inputs' distance (the first tie-breaker).
        public var inputDistance: Int
    }

    /// The candidates that may run a function, each with its score, best first. Dead, draining and
    /// excluded nodes are left out.
    public func ranking(
        among pool: [(id: MeshNodeID, state: MeshNodeState)], policy: RoutePolicy,
        distance: (_ from: MeshNodeID, _ to: MeshNodeID) -> Double?
    ) -> [Score] {
        func measure(_ from: MeshNodeID, _ to: MeshNodeID) -> Double {
            from == to ? 0 : (distance(from, to).map { max($0, 0) } ?? self.unreachableDistance)
        }
        func weighted(_ weights: [MeshNodeID: Int], _ term: (MeshNodeID) -> Double) -> Double {
            var sum = 0.0
            var total = 0
            for (node, weight) in weights where weight > 0 {
                sum += Double(weight) * term(node)
                total += weight
            }
            return total > 0 ? sum / Double(total) : 0
        }
        var scores: [Score] = []
        for (id, state) in pool where state.isAlive && !state.isDraining && !self.excluded.contains(id) {
            let input = weighted(self.inputs) { measure($0, id) }
            let primary = self.consumers.values.contains { $0 > 0 } ? weighted(self.consumers) { measure(id, $0) } : input
            let total = primary + policy.nodeCost(load: state.load, isDraining: false)
            scores.append(Score(node: id, total: Int(policy.quantise(total)), inputDistance: Int(policy.quantise(input))))
        }
        let requester = self.requester
        return scores.sorted {
            ($0.total, $0.inputDistance, $0.node == requester ? 0 : 1, $0.node)
                < ($1.total, $1.inputDistance, $1.node == requester ? 0 : 1, $1.node)
        }
    }

    /// The node to run the function on, or nil when no candidate is alive and not draining.
    public func choose(
        among pool: [(id: MeshNodeID, state: MeshNodeState)], policy: RoutePolicy,
        distance: (_ from: MeshNodeID, _ to: MeshNodeID) -> Double?
    ) -> MeshNodeID? {
        self.ranking(among: pool, policy: policy, distance: distance).first?.node
    }
}

extension MeshScheduler {
    /// The node an edge function should run on (see ``FunctionPlacement``), among `candidates` (every
    /// known node when nil), with the routes' costs as distances. Nil when no candidate is alive and
    /// not draining.
    public func placement(function: FunctionPlacement, candidates: Set<MeshNodeID>? = nil) -> MeshNodeID? {
        self.functionRanking(function, candidates: candidates).first?.node
    }

    /// Every eligible candidate with its score, best first.
    public func functionRanking(_ function: FunctionPlacement, candidates: Set<MeshNodeID>? = nil) -> [FunctionPlacement.Score] {
        var pool: [(id: MeshNodeID, state: MeshNodeState)] = []
        for id in self.nodes where candidates?.contains(id) ?? true {
            if let state = self.state(of: id) { pool.append((id, state)) }
        }
        return function.ranking(among: pool, policy: self.policy) { from, to in
            self.path(from: from, to: to).map { $0.latency + Double(self.policy.hopCost) * Double($0.nodes.count - 1) }
        }
    }
}
