import BraidWire

/// A record kept per sent packet under its 16-bit sequence number.
protocol SequencedRecord {
    /// The empty record (a slot never written).
    init()
    /// The packet's sequence number.
    var sequence: UInt16 { get }
    /// When it was recorded, in uptime nanoseconds; nil for the empty record.
    var recordedAt: UInt64? { get }
}

/// Per-packet records of one outgoing stream in a ring indexed by sequence number, that follows the
/// packet rate: it starts small and doubles, up to `maximumCapacity`, whenever a record younger than
/// `retention` would be overwritten. Used by the subscriber's sent-packet history and transport-wide
/// send history.
///
/// Written once per packet per subscriber, so its storage is a pointer held inline with the mask rather
/// than an array: an array's count and capacity live in the array's own header, a second cache line
/// to load (and miss, among hundreds of subscribers) before the record's. Noncopyable, so the storage
/// has one owner that frees it.
struct SequenceRing<Record: SequencedRecord>: ~Copyable {
    let maximumCapacity: Int
    /// Records younger than this (nanoseconds) are not overwritten while the ring can grow.
    let retention: UInt64
    private var records: UnsafeMutablePointer<Record>
    /// Capacity − 1 (capacities are powers of two).
    private var mask: Int

    /// Capacities are rounded up to powers of two, so every sequence number has one slot.
    init(initialCapacity: Int, maximumCapacity: Int, retentionNanoseconds: Int64) {
        func roundedUp(_ value: Int) -> Int {
            var rounded = 16
            while rounded < value { rounded <<= 1 }
            return rounded
        }
        self.maximumCapacity = roundedUp(maximumCapacity)
        self.retention = UInt64(max(0, retentionNanoseconds))
        let capacity = min(roundedUp(initialCapacity), self.maximumCapacity)
        self.records = Self.allocate(capacity)
        self.mask = capacity - 1
    }

    deinit {
        self.records.deinitialize(count: self.mask + 1)
        self.records.deallocate()
    }

    private static func allocate(_ capacity: Int) -> UnsafeMutablePointer<Record> {
        let records = UnsafeMutablePointer<Record>.allocate(capacity: capacity)
        records.initialize(repeating: Record(), count: capacity)
        return records
    }

    var capacity: Int { self.mask + 1 }

    var footprint: Int { self.capacity * MemoryLayout<Record>.stride }

    /// Stores `record` in its slot, growing first if that would overwrite a young record of another packet.
    mutating func insert(_ record: Record) {
        var index = Int(record.sequence) & self.mask
        let occupant = self.records[index]
        if let occupied = occupant.recordedAt, let now = record.recordedAt, occupant.sequence != record.sequence,
            now &- occupied < self.retention, self.capacity < self.maximumCapacity
        {
            let old = self.records
            let oldCapacity = self.capacity
            self.records = Self.allocate(oldCapacity * 2)
            self.mask = oldCapacity * 2 - 1
            for position in 0..<oldCapacity where old[position].recordedAt != nil {
                self.records[Int(old[position].sequence) & self.mask] = old[position]
            }
            old.deinitialize(count: oldCapacity)
            old.deallocate()
            index = Int(record.sequence) & self.mask
        }
        self.records[index] = record
    }

    /// Prefetches the slot of `sequence` (``CachePrefetch``).
    @inline(__always)
    func prefetch(_ sequence: UInt16) {
        CachePrefetch.address(UnsafeRawPointer(self.records + (Int(sequence) & self.mask)))
    }

    /// The record of `sequence`, if its slot still holds it.
    subscript(sequence: UInt16) -> Record? {
        let record = self.records[Int(sequence) & self.mask]
        guard record.recordedAt != nil, record.sequence == sequence else { return nil }
        return record
    }

    /// Changes the record of `sequence` in place, if its slot still holds it.
    mutating func update(_ sequence: UInt16, _ body: (inout Record) -> Void) {
        let index = Int(sequence) & self.mask
        guard self.records[index].recordedAt != nil, self.records[index].sequence == sequence else { return }
        body(&self.records[index])
    }
}
