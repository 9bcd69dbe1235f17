/// A 4-ary min-heap of node indices keyed by distance, with decrease-key, for Dijkstra.
///
/// Entries are packed as `distance << 32 | index` so that one integer comparison orders them (ties by
/// index, which only fixes the pop order: the trees themselves break ties by node id). A position table
/// lets a node's key be lowered in place, so the heap never holds a node twice and never grows past the
/// node count. Storage is allocated once per capacity and reused by every run: no allocation per
/// relaxation. Four children per node halve the depth of a binary heap, which pays off because a
/// Dijkstra run on a dense mesh lowers keys far more often than it pops.
final class IndexedHeap {
    private var entries: UnsafeMutablePointer<UInt64>
    /// Position of each node in `entries`, or -1.
    private var position: UnsafeMutablePointer<Int32>
    private(set) var capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        self.entries = .allocate(capacity: self.capacity)
        self.position = .allocate(capacity: self.capacity)
        self.position.initialize(repeating: -1, count: self.capacity)
    }

    deinit {
        self.entries.deallocate()
        self.position.deallocate()
    }

    /// Makes room for `capacity` nodes; the heap must be empty.
    func reserve(_ capacity: Int) {
        guard capacity > self.capacity else { return }
        self.entries.deallocate()
        self.position.deallocate()
        self.capacity = capacity
        self.entries = .allocate(capacity: capacity)
        self.position = .allocate(capacity: capacity)
        self.position.initialize(repeating: -1, count: capacity)
    }

    var isEmpty: Bool { self.count == 0 }

    /// Inserts `node` with `distance`, or lowers its key when it is already queued with a larger one.
    @inline(__always)
    func push(_ node: Int32, distance: Int32) {
        let entry = UInt64(UInt32(bitPattern: distance)) << 32 | UInt64(UInt32(bitPattern: node))
        var at = Int(self.position[Int(node)])
        if at < 0 {
            at = self.count
            self.count += 1
        } else if entry >= self.entries[at] {
            return
        }
        self.siftUp(entry, from: at)
    }

    /// Removes the node with the smallest distance.
    @inline(__always)
    func pop() -> (node: Int32, distance: Int32) {
        let top = self.entries[0]
        let node = Int32(truncatingIfNeeded: top)
        self.position[Int(node)] = -1
        self.count -= 1
        if self.count > 0 { self.siftDown(self.entries[self.count], from: 0) }
        return (node, Int32(truncatingIfNeeded: top >> 32))
    }

    /// Empties the heap (only needed when a run is abandoned half way).
    func removeAll() {
        for i in 0..<self.count { self.position[Int(Int32(truncatingIfNeeded: self.entries[i]))] = -1 }
        self.count = 0
    }

    @inline(__always)
    private func siftUp(_ entry: UInt64, from start: Int) {
        var at = start
        while at > 0 {
            let parent = (at - 1) >> 2
            let above = self.entries[parent]
            if above <= entry { break }
            self.entries[at] = above
            self.position[Int(Int32(truncatingIfNeeded: above))] = Int32(at)
            at = parent
        }
        self.entries[at] = entry
        self.position[Int(Int32(truncatingIfNeeded: entry))] = Int32(at)
    }

    @inline(__always)
    private func siftDown(_ entry: UInt64, from start: Int) {
        var at = start
        let count = self.count
        while true {
            let first = at << 2 + 1
            if first >= count { break }
            var best = first
            var bestEntry = self.entries[first]
            let last = min(first + 4, count)
            var child = first + 1
            while child < last {
                let candidate = self.entries[child]
                if candidate < bestEntry {
                    best = child
                    bestEntry = candidate
                }
                child += 1
            }
            if bestEntry >= entry { break }
            self.entries[at] = bestEntry
            self.position[Int(Int32(truncatingIfNeeded: bestEntry))] = Int32(at)
            at = best
        }
        self.entries[at] = entry
        self.position[Int(Int32(truncatingIfNeeded: entry))] = Int32(at)
    }
}
