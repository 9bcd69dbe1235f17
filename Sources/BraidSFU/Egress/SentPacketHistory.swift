import BraidWire
import NIOCore

/// What a WebRTC subscriber slot sent, by output sequence number: for each packet, where it came from
/// (layer and origin sequence number in the producer's ``PacketStore``) and how it was rewritten
/// (timestamp, VP8 picture ids). A NACK is answered by reading the one stored copy back and rewriting it
/// the same way, so a slot keeps 32 bytes per packet instead of the packet.
///
/// A ring that follows the slot's packet rate: it starts at 128 entries and doubles, up to its
/// capacity, whenever an entry younger than the resend age would be overwritten.
struct SentPacketHistory: ~Copyable {
    struct Entry {
        /// Output sequence number; with ``generation`` tells a live entry from a stale one.
        var sequenceNumber: UInt16 = 0
        var originSequenceNumber: UInt16 = 0
        var timestamp: UInt32 = 0
        /// Output VP8 PictureID (15 bits), or −1 when the payload has none.
        var pictureID: Int16 = -1
        /// Output VP8 TL0PICIDX, or −1 when the payload has none.
        var tl0PicIndex: Int16 = -1
        var layer: UInt8 = 0
        /// Which attachment of the slot sent it (a refilled slot must not resend another track's packet).
        var generation: UInt8 = 0
        /// Times it was resent (saturating): a packet asked for again was lost again.
        var resends: UInt8 = 0
        var sentAt: UInt64 = 0
        var lastResentAt: UInt64 = 0
    }


    private var ring: SequenceRing<Entry>

    /// - Parameters:
    ///   - capacity: the most entries it grows to.
    ///   - retention: entries younger than this are not overwritten while the ring can grow.
    init(capacity: Int, retention: TimeAmount) {
        self.ring = SequenceRing(initialCapacity: 128, maximumCapacity: capacity, retentionNanoseconds: retention.nanoseconds)
    }

    var footprint: Int { self.ring.footprint }

    /// Prefetches the entry `sequenceNumber` would take (``CachePrefetch``).
    func prefetch(_ sequenceNumber: UInt16) {
        self.ring.prefetch(sequenceNumber)
    }

    mutating func record(_ entry: Entry) {
        self.ring.insert(entry)
    }

    /// The entry of output packet `sequenceNumber` if it was sent by attachment `generation` within
    /// `maxAge` and not resent within `minimumResendInterval`.
    func lookup(
        _ sequenceNumber: UInt16, generation: UInt8, now: NIODeadline, maxAge: TimeAmount,
        minimumResendInterval: TimeAmount
    ) -> Entry? {
        let now = now.uptimeNanoseconds
        guard let entry = self.ring[sequenceNumber], entry.generation == generation,
            now &- entry.sentAt <= UInt64(maxAge.nanoseconds)
        else { return nil }
        if entry.lastResentAt != 0, now &- entry.lastResentAt < UInt64(max(0, minimumResendInterval.nanoseconds)) {
            return nil
        }
        return entry
    }

    mutating func markResent(_ sequenceNumber: UInt16, now: NIODeadline) {
        self.ring.update(sequenceNumber) {
            $0.lastResentAt = now.uptimeNanoseconds
            $0.resends &+= $0.resends < .max ? 1 : 0
        }
    }
}

extension SentPacketHistory.Entry: SequencedRecord {
    var sequence: UInt16 { self.sequenceNumber }
    var recordedAt: UInt64? { self.sentAt == 0 ? nil : self.sentAt }
}
