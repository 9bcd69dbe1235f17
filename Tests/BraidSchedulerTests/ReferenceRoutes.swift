import BraidScheduler

/// A deliberately simple model of the mesh and an O(n²) Dijkstra over it: what the scheduler's
/// incremental trees are checked against.
struct ReferenceMesh {
    var policy: RoutePolicy
    var states: [MeshNodeID: MeshNodeState] = [:]
    var links: [MeshEdge: LinkMeasurement] = [:]

    /// The weight the policy gives `from` → `to` (no hysteresis: the tests run with margins of 0).
    func weight(_ edge: MeshEdge) -> Int? {
        guard let m = self.links[edge], let from = self.states[edge.from], let to = self.states[edge.to],
            from.isAlive, to.isAlive
        else { return nil }
        let link = Int(self.policy.quantise(self.policy.linkCost(m)))
        let node = Int(self.policy.quantise(self.policy.nodeCost(load: to.load, isDraining: to.isDraining)))
        return max(1, link + node + Int(self.policy.hopCost))
    }

    /// Every node's parent in `origin`'s tree (nil: the origin or unreachable) and distance.
    func tree(origin: MeshNodeID) -> (parent: [MeshNodeID: MeshNodeID], distance: [MeshNodeID: Int]) {
        var incoming: [MeshNodeID: [(MeshNodeID, Int)]] = [:]
        var outgoing: [MeshNodeID: [(MeshNodeID, Int)]] = [:]
        for edge in self.links.keys {
            guard let w = self.weight(edge) else { continue }
            incoming[edge.to, default: []].append((edge.from, w))
            outgoing[edge.from, default: []].append((edge.to, w))
        }
        var distance: [MeshNodeID: Int] = [:]
        guard self.states[origin] != nil else { return ([:], [:]) }
        distance[origin] = 0
        var done = Set<MeshNodeID>()
        while true {
            // The closest unsettled node, by scanning everything.
            var next: (MeshNodeID, Int)?
            for (node, d) in distance where !done.contains(node) {
                if next == nil || d < next!.1 { next = (node, d) }
            }
            guard let (x, dx) = next else { break }
            done.insert(x)
            for (to, w) in outgoing[x, default: []] where dx + w < distance[to] ?? .max {
                distance[to] = dx + w
            }
        }
        var parent: [MeshNodeID: MeshNodeID] = [:]
        for (node, d) in distance where node != origin {
            parent[node] = incoming[node, default: []]
                .filter { from, w in distance[from].map { $0 + w == d } ?? false }
                .map(\.0).min()
        }
        return (parent, distance)
    }
}
