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
struct SequenceRing<Record: SequencedRecord> {
    let maximumCapacity: Int
    /// Records younger than this (nanoseconds) are not overwritten while the ring can grow.
    let retention: UInt64
    private var records: ContiguousArray<Record>

    /// Capacities are rounded up to powers of two, so every sequence number has one slot.
    init(initialCapacity: Int, maximumCapacity: Int, retentionNanoseconds: Int64) {
        func roundedUp(_ value: Int) -> Int {
            var rounded = 16
            while rounded < value { rounded <<= 1 }
            return rounded
        }
        self.maximumCapacity = roundedUp(maximumCapacity)
        self.retention = UInt64(max(0, retentionNanoseconds))
        self.records = ContiguousArray(repeating: Record(), count: min(roundedUp(initialCapacity), self.maximumCapacity))
    }

    var footprint: Int { self.records.count * MemoryLayout<Record>.stride }

    /// Stores `record` in its slot, growing first if that would overwrite a young record of another packet.
    mutating func insert(_ record: Record) {
        var index = Int(record.sequence) & (self.records.count - 1)
        let occupant = self.records[index]
        if let occupied = occupant.recordedAt, let now = record.recordedAt, occupant.sequence != record.sequence,
            now &- occupied < self.retention, self.records.count < self.maximumCapacity
        {
            let old = self.records
            self.records = ContiguousArray(repeating: Record(), count: old.count * 2)
            for kept in old where kept.recordedAt != nil {
                self.records[Int(kept.sequence) & (self.records.count - 1)] = kept
            }
            index = Int(record.sequence) & (self.records.count - 1)
        }
        self.records[index] = record
    }

    /// The record of `sequence`, if its slot still holds it.
    subscript(sequence: UInt16) -> Record? {
        let record = self.records[Int(sequence) & (self.records.count - 1)]
        guard record.recordedAt != nil, record.sequence == sequence else { return nil }
        return record
    }

    /// Changes the record of `sequence` in place, if its slot still holds it.
    mutating func update(_ sequence: UInt16, _ body: (inout Record) -> Void) {
        let index = Int(sequence) & (self.records.count - 1)
        guard self.records[index].recordedAt != nil, self.records[index].sequence == sequence else { return }
        body(&self.records[index])
    }
}
