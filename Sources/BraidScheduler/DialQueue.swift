/// Dial's bucket queue: a monotone priority queue of node numbers keyed by small integer distances, with
/// decrease-key, for Dijkstra with integer edge weights of at most `span`.
///
/// Buckets form a ring of `mask + 1 > span` slots, each the head of a doubly linked list threaded through
/// `next`/`prev` (one link pair per node, so a node is queued at most once and a decrease-key is an O(1)
/// unlink and relink). Dijkstra only ever queues keys in `[cursor, cursor + span]`, where `cursor` is the
/// last key popped, so the ring never holds two different keys in one slot. Popping advances `cursor` to
/// the next non-empty slot: O(1) amortised per unit of distance, cheaper than any comparison heap when
/// weights are bounded. Nodes of one key come out in no particular order; the trees do not depend on it.
///
/// ``upperBound()`` is the largest key still queued (or `cursor` when empty): once every reachable node
/// has been queued, no node's final distance exceeds it, which lets ``PathEngine`` stop reading a
/// weight-sorted adjacency row early.
///
/// A value type over storage owned by ``DialStorage``, so that a run keeps its counters in registers and
/// pays no exclusivity check per operation. The queue must be empty at the end of a run (Dijkstra pops
/// it empty); storage is then ready for the next run with no clearing.
struct DialQueue {
    /// First node of each bucket, -1 when empty.
    let head: UnsafeMutablePointer<Int32>
    let next: UnsafeMutablePointer<Int32>
    /// Previous node in the bucket, -1 for the first.
    let prev: UnsafeMutablePointer<Int32>
    let mask: Int
    private(set) var cursor: UInt32 = 0
    /// At least the largest queued key: the largest key inserted, lowered lazily by ``upperBound()``.
    private var top: UInt32 = 0
    private(set) var count = 0

    init(_ storage: DialStorage) {
        self.head = storage.head
        self.next = storage.next
        self.prev = storage.prev
        self.mask = storage.bucketCount - 1
    }

    var isEmpty: Bool { self.count == 0 }

    /// Queues `node` (not queued now) with `key`, `cursor ≤ key ≤ cursor + span`.
    @inline(__always)
    mutating func insert(_ node: Int32, key: UInt32) {
        self.link(node, bucket: Int(key) & self.mask)
        self.count += 1
        if key > self.top { self.top = key }
    }

    /// Moves a queued `node` from key `old` to `new` (`cursor ≤ new < old`).
    @inline(__always)
    mutating func decrease(_ node: Int32, from old: UInt32, to new: UInt32) {
        self.unlink(node, bucket: Int(old) & self.mask)
        self.link(node, bucket: Int(new) & self.mask)
    }

    /// Removes a node with the smallest key; the queue must not be empty.
    @inline(__always)
    mutating func popMin() -> (node: Int32, key: UInt32) {
        var bucket = Int(self.cursor) & self.mask
        while self.head[bucket] < 0 {
            self.cursor &+= 1
            bucket = Int(self.cursor) & self.mask
        }
        let node = self.head[bucket]
        self.unlink(node, bucket: bucket)
        self.count -= 1
        return (node, self.cursor)
    }

    /// Empties the queue (for a run abandoned half way), leaving the storage ready for the next run.
    mutating func removeAll() {
        while self.count > 0 { _ = self.popMin() }
    }

    /// The largest queued key, or `cursor` when the queue is empty.
    @inline(__always)
    mutating func upperBound() -> UInt32 {
        while self.top > self.cursor && self.head[Int(self.top) & self.mask] < 0 { self.top &-= 1 }
        return max(self.top, self.cursor)
    }

    @inline(__always)
    private func link(_ node: Int32, bucket: Int) {
        let first = self.head[bucket]
        self.next[Int(node)] = first
        self.prev[Int(node)] = -1
        if first >= 0 { self.prev[Int(first)] = node }
        self.head[bucket] = node
    }

    @inline(__always)
    private func unlink(_ node: Int32, bucket: Int) {
        let before = self.prev[Int(node)]
        let after = self.next[Int(node)]
        if before >= 0 { self.next[Int(before)] = after } else { self.head[bucket] = after }
        if after >= 0 { self.prev[Int(after)] = before }
    }
}

/// The raw memory of a ``DialQueue`` (and of the run using it): allocated once for a node count and a
/// bucket count, reused by every run of one engine, replaced when a larger one is needed.
final class DialStorage {
    let nodeCapacity: Int
    /// A power of two.
    let bucketCount: Int
    let head: UnsafeMutablePointer<Int32>
    let next: UnsafeMutablePointer<Int32>
    let prev: UnsafeMutablePointer<Int32>
    /// Per node: tentative then final distance, and parent, of the run.
    let distance: UnsafeMutablePointer<UInt32>
    let parent: UnsafeMutablePointer<Int32>
    /// Room for one row's worth of edge positions.
    let gather: UnsafeMutablePointer<Int32>
    /// Where a run leaves the values it loads only to warm the cache, so that the loads stay.
    var sink: UInt64 = 0

    /// Storage for `nodes` nodes and edge weights up to `span`.
    init(nodes: Int, span: UInt32) {
        var buckets = 1
        while buckets <= Int(span) { buckets <<= 1 }
        self.nodeCapacity = max(nodes, 1)
        self.bucketCount = buckets
        self.head = .allocate(capacity: buckets)
        self.head.initialize(repeating: -1, count: buckets)
        self.next = .allocate(capacity: self.nodeCapacity)
        self.next.initialize(repeating: -1, count: self.nodeCapacity)
        self.prev = .allocate(capacity: self.nodeCapacity)
        self.prev.initialize(repeating: -1, count: self.nodeCapacity)
        self.distance = .allocate(capacity: self.nodeCapacity)
        self.distance.initialize(repeating: .max, count: self.nodeCapacity)
        self.parent = .allocate(capacity: self.nodeCapacity)
        self.parent.initialize(repeating: -1, count: self.nodeCapacity)
        self.gather = .allocate(capacity: self.nodeCapacity)
    }

    /// Whether this storage serves `nodes` nodes and weights up to `span`.
    func fits(nodes: Int, span: UInt32) -> Bool {
        nodes <= self.nodeCapacity && Int(span) < self.bucketCount
    }

    deinit {
        self.head.deallocate()
        self.next.deallocate()
        self.prev.deallocate()
        self.distance.deallocate()
        self.parent.deallocate()
        self.gather.deallocate()
    }
}
