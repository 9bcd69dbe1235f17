import NIOCore

/// What a WebRTC subscriber slot sent, by output sequence number: for each packet, where it came from
/// (layer and origin sequence number in the producer's ``PacketStore``) and how it was rewritten
/// (timestamp, VP8 picture ids). A NACK is answered by reading the one stored copy back and rewriting it
/// the same way, so a slot keeps 32 bytes per packet instead of the packet.
///
/// A ring that follows the slot's packet rate: it starts at 128 entries and doubles, up to its
/// capacity, whenever an entry younger than the resend age would be overwritten.
struct SentPacketHistory {
    struct Entry {
        /// Output sequence number; with ``generation`` tells a live entry from a stale one.
        var sequenceNumber: UInt16 = 0
        var originSequenceNumber: UInt16 = 0
        var timestamp: UInt32 = 0
        /// Output VP8 PictureID, or −1 when the payload has none.
        var pictureID: Int32 = -1
        /// Output VP8 TL0PICIDX, or −1 when the payload has none.
        var tl0PicIndex: Int16 = -1
        var layer: UInt8 = 0
        /// Which attachment of the slot sent it (a refilled slot must not resend another track's packet).
        var generation: UInt8 = 0
        var sentAt: UInt64 = 0
        var lastResentAt: UInt64 = 0
    }

    /// The most entries it grows to.
    let capacity: Int
    /// Entries younger than this are not overwritten while the ring can grow.
    let retention: TimeAmount
    private var entries: ContiguousArray<Entry>

    init(capacity: Int, retention: TimeAmount) {
        var rounded = 16
        while rounded < capacity { rounded <<= 1 }
        self.capacity = rounded
        self.retention = retention
        self.entries = ContiguousArray(repeating: Entry(), count: min(128, rounded))
    }

    var footprint: Int { self.entries.count * MemoryLayout<Entry>.stride }

    mutating func record(_ entry: Entry) {
        var index = Int(entry.sequenceNumber) & (self.entries.count - 1)
        let occupant = self.entries[index]
        if occupant.sentAt != 0, occupant.sequenceNumber != entry.sequenceNumber,
            entry.sentAt &- occupant.sentAt < UInt64(self.retention.nanoseconds), self.entries.count < self.capacity
        {
            let old = self.entries
            self.entries = ContiguousArray(repeating: Entry(), count: old.count * 2)
            for kept in old where kept.sentAt != 0 {
                self.entries[Int(kept.sequenceNumber) & (self.entries.count - 1)] = kept
            }
            index = Int(entry.sequenceNumber) & (self.entries.count - 1)
        }
        self.entries[index] = entry
    }

    /// The entry of output packet `sequenceNumber` if it was sent by attachment `generation` within
    /// `maxAge` and not resent within `minimumResendInterval`.
    func lookup(
        _ sequenceNumber: UInt16, generation: UInt8, now: NIODeadline, maxAge: TimeAmount,
        minimumResendInterval: TimeAmount
    ) -> Entry? {
        let entry = self.entries[Int(sequenceNumber) & (self.entries.count - 1)]
        let now = now.uptimeNanoseconds
        guard entry.sentAt != 0, entry.sequenceNumber == sequenceNumber, entry.generation == generation,
            now &- entry.sentAt <= UInt64(maxAge.nanoseconds)
        else { return nil }
        if entry.lastResentAt != 0, now &- entry.lastResentAt < UInt64(max(0, minimumResendInterval.nanoseconds)) {
            return nil
        }
        return entry
    }

    mutating func markResent(_ sequenceNumber: UInt16, now: NIODeadline) {
        self.entries[Int(sequenceNumber) & (self.entries.count - 1)].lastResentAt = now.uptimeNanoseconds
    }
}
