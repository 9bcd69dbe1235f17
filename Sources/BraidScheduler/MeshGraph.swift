/// One routable edge in an adjacency row: the node at the other end (`to` in an out-row, `from` in an
/// in-row, as a dense index) and the edge's weight in ms.
struct WeightedEdge: Sendable, Hashable {
    var node: Int32
    var weight: Int32
}

/// A stored link: the last measurement and the link part of the weight after hysteresis.
struct LinkRecord: Sendable {
    var measurement: LinkMeasurement
    var cost: Int32
}

/// How one edge's weight moved during a batch (`nil` = no such edge, an infinite weight).
struct EdgeDelta: Sendable {
    var from: Int32
    var to: Int32
    var old: Int32?
    var new: Int32?

    /// The edge got dearer or disappeared: trees using it must look again.
    var isIncrease: Bool {
        guard let old else { return false }
        guard let new else { return true }
        return new > old
    }

    /// The edge got cheaper or appeared: it may shorten someone's path.
    var isDecrease: Bool {
        guard let new else { return false }
        guard let old else { return true }
        return new < old
    }
}

/// The link-state graph on dense `Int32` indices.
///
/// A new node takes the slot of a removed one when there is one, so the per-tree arrays stay as long as
/// the cluster is large. Two views are kept: the stored links (every reported link, with its measurement) and the
/// routable adjacency (only links between live nodes, with their current weights) in per-node rows,
/// out-rows for Dijkstra and in-rows for re-attaching a cut-off subtree. Every change of a routable
/// weight is recorded as an ``EdgeDelta`` (coalesced per edge within a batch) for the trees to replay.
struct MeshGraph: Sendable {
    let policy: RoutePolicy
    /// Node id by index; stale for free slots.
    private(set) var ids: [MeshNodeID] = []
    /// False for free slots.
    private(set) var exists: [Bool] = []
    private(set) var indexOf: [MeshNodeID: Int32] = [:]
    private(set) var states: [MeshNodeState] = []
    /// The node part of the weight of every edge into the node, after hysteresis.
    private(set) var nodeCost: [Int32] = []
    /// Stored links by source index, keyed by destination index.
    private(set) var links: [[Int32: LinkRecord]] = []
    /// Sources of the stored links into each node.
    private var linkSources: [Set<Int32>] = []
    /// Routable edges out of each node.
    private(set) var outEdges: [[WeightedEdge]] = []
    /// Routable edges into each node.
    private(set) var inEdges: [[WeightedEdge]] = []
    private var freeSlots: [Int32] = []
    /// Slots of nodes removed in the current batch, freed by ``endBatch()``.
    private var releasedSlots: [Int32] = []
    /// Routable weight changes since ``endBatch()``, keyed by `from << 32 | to`.
    private var deltaIndex: [Int64: Int] = [:]
    private(set) var deltas: [EdgeDelta] = []

    init(policy: RoutePolicy) {
        self.policy = policy
    }

    /// Number of slots, the length every per-node array must have.
    var capacity: Int { self.ids.count }

    func index(of id: MeshNodeID) -> Int32? { self.indexOf[id] }

    // MARK: - Nodes

    /// The index of `id`, adding it (alive, unloaded, no links) when it is new.
    mutating func ensureNode(_ id: MeshNodeID) -> Int32 {
        if let index = self.indexOf[id] { return index }
        let state = MeshNodeState()
        let cost = self.policy.quantise(self.policy.nodeCost(load: state.load, isDraining: state.isDraining))
        let index: Int32
        // Removed and back in the same batch: the same slot, so the trees see its links change, not a
        // node leave and another arrive.
        if let released = self.releasedSlots.firstIndex(where: { self.ids[Int($0)] == id }) {
            index = self.releasedSlots.remove(at: released)
            let i = Int(index)
            self.exists[i] = true
            self.states[i] = state
            self.nodeCost[i] = cost
        } else if let free = self.freeSlots.popLast() {
            index = free
            let i = Int(free)
            self.ids[i] = id
            self.exists[i] = true
            self.states[i] = state
            self.nodeCost[i] = cost
        } else {
            index = Int32(self.ids.count)
            self.ids.append(id)
            self.exists.append(true)
            self.states.append(state)
            self.nodeCost.append(cost)
            self.links.append([:])
            self.linkSources.append([])
            self.outEdges.append([])
            self.inEdges.append([])
        }
        self.indexOf[id] = index
        return index
    }

    /// Sets a node's state; the weights of the edges into it follow (through hysteresis), and its edges
    /// appear or disappear when it comes alive or dies.
    mutating func updateNode(_ id: MeshNodeID, state: MeshNodeState) {
        let x = self.ensureNode(id)
        let i = Int(x)
        let wasAlive = self.states[i].isAlive
        let oldCost = self.nodeCost[i]
        let measured = self.policy.nodeCost(load: state.load, isDraining: state.isDraining)
        // Draining and undraining always take effect, whatever the hysteresis says.
        let stored: Int32? = state.isDraining == self.states[i].isDraining ? oldCost : nil
        self.states[i] = state
        self.nodeCost[i] = self.policy.filtered(stored: stored, measured: measured)
        if wasAlive != state.isAlive {
            for (to, _) in self.links[i] { self.refreshEdge(from: x, to: to) }
            for from in self.linkSources[i] { self.refreshEdge(from: from, to: x) }
        } else if oldCost != self.nodeCost[i] {
            for from in self.linkSources[i] { self.refreshEdge(from: from, to: x) }
        }
    }

    /// Removes a node and every link touching it. Its slot is reused after ``endBatch()``.
    mutating func removeNode(_ id: MeshNodeID) {
        guard let x = self.indexOf[id] else { return }
        let i = Int(x)
        for to in Array(self.links[i].keys) { self.removeLink(from: x, to: to) }
        for from in Array(self.linkSources[i]) { self.removeLink(from: from, to: x) }
        self.indexOf[id] = nil
        self.exists[i] = false
        self.releasedSlots.append(x)
    }

    // MARK: - Links

    /// Stores a measurement; the link's cost moves only past the hysteresis margin.
    mutating func updateLink(from: MeshNodeID, to: MeshNodeID, measurement: LinkMeasurement) {
        guard from != to else { return }
        let u = self.ensureNode(from)
        let v = self.ensureNode(to)
        let measured = self.policy.linkCost(measurement)
        let stored = self.links[Int(u)][v]?.cost
        let cost = self.policy.filtered(stored: stored, measured: measured)
        self.links[Int(u)][v] = LinkRecord(measurement: measurement, cost: cost)
        self.linkSources[Int(v)].insert(u)
        if stored != cost { self.refreshEdge(from: u, to: v) }
    }

    mutating func removeLink(from: MeshNodeID, to: MeshNodeID) {
        guard let u = self.indexOf[from], let v = self.indexOf[to] else { return }
        self.removeLink(from: u, to: v)
    }

    private mutating func removeLink(from u: Int32, to v: Int32) {
        guard self.links[Int(u)].removeValue(forKey: v) != nil else { return }
        self.linkSources[Int(v)].remove(u)
        self.refreshEdge(from: u, to: v)
    }

    /// The routable weight of u → v now: nil without a stored link or with a dead end.
    func weight(from u: Int32, to v: Int32) -> Int32? {
        guard let record = self.links[Int(u)][v], self.states[Int(u)].isAlive, self.states[Int(v)].isAlive
        else { return nil }
        // At least 1: a tree's parent is then always strictly closer to the origin, so ties broken by node
        // id can never close a loop.
        return max(1, record.cost + self.nodeCost[Int(v)] + self.policy.hopCost)
    }

    /// Brings the adjacency rows of u → v in line with ``weight(from:to:)`` and records the delta.
    private mutating func refreshEdge(from u: Int32, to v: Int32) {
        let new = self.weight(from: u, to: v)
        let old = Self.setWeight(&self.outEdges[Int(u)], node: v, weight: new)
        _ = Self.setWeight(&self.inEdges[Int(v)], node: u, weight: new)
        guard old != new else { return }
        let key = Int64(u) << 32 | Int64(v)
        if let at = self.deltaIndex[key] {
            self.deltas[at].new = new
        } else {
            self.deltaIndex[key] = self.deltas.count
            self.deltas.append(EdgeDelta(from: u, to: v, old: old, new: new))
        }
    }

    /// Sets (or with nil removes) the entry for `node` in a row; returns the previous weight.
    private static func setWeight(_ row: inout [WeightedEdge], node: Int32, weight: Int32?) -> Int32? {
        if let at = row.firstIndex(where: { $0.node == node }) {
            let old = row[at].weight
            if let weight {
                row[at].weight = weight
            } else {
                row.swapAt(at, row.count - 1)
                row.removeLast()
            }
            return old
        }
        if let weight { row.append(WeightedEdge(node: node, weight: weight)) }
        return nil
    }

    // MARK: - Batches

    /// The deltas of the batch that really changed a weight, and a fresh batch; slots of removed nodes
    /// become free for new nodes.
    mutating func endBatch() -> [EdgeDelta] {
        let result = self.deltas.filter { $0.old != $0.new }
        self.deltas.removeAll(keepingCapacity: true)
        self.deltaIndex.removeAll(keepingCapacity: true)
        self.freeSlots.append(contentsOf: self.releasedSlots)
        self.releasedSlots.removeAll()
        return result
    }
}
