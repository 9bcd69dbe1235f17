import BraidWire
import NIOCore

/// The one stored copy of a layer's recent packets, shared by every consumer of the track for
/// retransmissions (a consumer keeps positions into it, see `SentPacketHistory`).
///
/// Packets are stored in their ``OriginForm``: a packet that arrived as RTX is stored as the media packet
/// it repairs (media SSRC, payload type and sequence number, OSN removed), padding stripped. A slot is
/// the sequence number modulo the capacity, so storing and finding are O(1).
///
/// Memory follows the stream: the ring starts small and doubles (up to ``maximumCapacity``) whenever a
/// packet younger than ``maxAge`` would be overwritten, so a 40 packets/s audio layer keeps 64 slots and
/// a 1.5 Mbit/s video layer a few hundred. Everything is freed with the producer.
struct PacketStore {
    struct Slot {
        var sequenceNumber: UInt16 = 0
        var length: Int32 = 0
        /// Uptime nanoseconds when stored; 0: empty.
        var storedAt: UInt64 = 0
    }

    /// Packets older than this are not served.
    let maxAge: TimeAmount
    /// Largest packet stored.
    let slotSize: Int
    let maximumCapacity: Int
    private(set) var capacity: Int
    private var slots: ContiguousArray<Slot>
    private var bytes: ContiguousArray<UInt8>
    /// Packets too large to store.
    private(set) var oversizedPackets = 0

    init(initialCapacity: Int, maximumCapacity: Int, slotSize: Int, maxAge: TimeAmount) {
        var capacity = 16
        while capacity < initialCapacity { capacity <<= 1 }
        self.capacity = capacity
        self.maximumCapacity = max(capacity, maximumCapacity)
        self.slotSize = slotSize
        self.maxAge = maxAge
        // Allocated with the first packet: a track nobody sends or nobody pulls costs nothing.
        self.slots = []
        self.bytes = []
    }

    /// Bytes held (for the memory figures of the dashboard and benchmarks).
    var footprint: Int { self.bytes.count + self.slots.count * MemoryLayout<Slot>.stride }

    /// Stores a packet in origin form (see ``OriginForm``).
    mutating func store(_ packet: OriginForm, now: NIODeadline) {
        let length = packet.length
        guard length <= self.slotSize else {
            self.oversizedPackets += 1
            return
        }
        if self.slots.isEmpty {
            self.slots = ContiguousArray(repeating: Slot(), count: self.capacity)
            self.bytes = ContiguousArray(repeating: 0, count: self.capacity * self.slotSize)
        }
        let sequenceNumber = packet.sequenceNumber
        var index = Int(sequenceNumber) & (self.capacity - 1)
        let occupant = self.slots[index]
        if occupant.storedAt != 0, occupant.sequenceNumber != sequenceNumber,
            now.uptimeNanoseconds &- occupant.storedAt < UInt64(self.maxAge.nanoseconds),
            self.capacity < self.maximumCapacity
        {
            self.grow()
            index = Int(sequenceNumber) & (self.capacity - 1)
        }
        let offset = index * self.slotSize
        self.bytes.withUnsafeMutableBytes { destination in
            packet.write(to: UnsafeMutableRawBufferPointer(rebasing: destination[offset..<(offset + length)]))
        }
        self.slots[index] = Slot(sequenceNumber: sequenceNumber, length: Int32(length), storedAt: now.uptimeNanoseconds)
    }

    /// Appends the stored packet `sequenceNumber` to `buffer`; false when it was never stored, was
    /// overwritten, or is older than ``maxAge``.
    func read(_ sequenceNumber: UInt16, now: NIODeadline, into buffer: inout ByteBuffer) -> Bool {
        guard !self.slots.isEmpty else { return false }
        let index = Int(sequenceNumber) & (self.capacity - 1)
        let slot = self.slots[index]
        guard slot.storedAt != 0, slot.sequenceNumber == sequenceNumber,
            now.uptimeNanoseconds &- slot.storedAt <= UInt64(self.maxAge.nanoseconds)
        else { return false }
        let offset = index * self.slotSize
        self.bytes.withUnsafeBytes { stored in
            _ = buffer.writeBytes(UnsafeRawBufferPointer(rebasing: stored[offset..<(offset + Int(slot.length))]))
        }
        return true
    }

    /// Doubles the ring, keeping every stored packet.
    private mutating func grow() {
        let old = (slots: self.slots, bytes: self.bytes, capacity: self.capacity)
        self.capacity *= 2
        self.slots = ContiguousArray(repeating: Slot(), count: self.capacity)
        self.bytes = ContiguousArray(repeating: 0, count: self.capacity * self.slotSize)
        for index in 0..<old.capacity where old.slots[index].storedAt != 0 {
            let slot = old.slots[index]
            let target = Int(slot.sequenceNumber) & (self.capacity - 1)
            self.slots[target] = slot
            let from = index * self.slotSize
            let to = target * self.slotSize
            self.bytes.withUnsafeMutableBytes { destination in
                old.bytes.withUnsafeBytes { source in
                    UnsafeMutableRawBufferPointer(rebasing: destination[to..<(to + Int(slot.length))])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[from..<(from + Int(slot.length))]))
                }
            }
        }
    }
}
