import NIOCore

/// The packets an XOR repair sender keeps, as the receiver will see them, and the XOR over the newest of
/// them that FlexFEC-03 and ULPFEC (RFC 5109) share: both XOR the protected packets' first two bytes,
/// their lengths minus the 12-byte fixed header and their timestamps into the repair's header, and
/// their bytes from 12 on into its payload, zero-padded to the longest.
///
/// Storage is one slab made in `init`; nothing is allocated per packet or per repair. A kept packet has
/// the data of the receiver's mutable header extensions (transport-wide sequence number, abs-send-time,
/// transmission offset: written after FEC is computed) zeroed, as libwebrtc zeroes them in its copies.
struct XORPacketWindow {
    /// Packets kept.
    let capacity: Int
    private let slotBytes: Int
    private var slab: [UInt8]
    private var sequenceNumbers: [UInt16]
    private var lengths: [Int]
    private var head = 0
    /// Packets kept in a run (each within `maximumGap` of the one before).
    private(set) var count = 0
    /// Kept since the last repair.
    var unprotected = 0
    /// Extension ids whose data the receiver zeroes (0: none).
    var mutableExtensionIDs: (UInt8, UInt8, UInt8)

    init(capacity: Int, maximumPacketSize: Int, mutableExtensionIDs: (UInt8, UInt8, UInt8)) {
        self.capacity = max(1, capacity)
        self.slotBytes = maximumPacketSize
        self.slab = [UInt8](repeating: 0, count: self.capacity * maximumPacketSize)
        self.sequenceNumbers = [UInt16](repeating: 0, count: self.capacity)
        self.lengths = [Int](repeating: 0, count: self.capacity)
        self.mutableExtensionIDs = mutableExtensionIDs
    }

    /// Bytes held.
    var footprint: Int { self.slab.count + self.capacity * 16 }

    /// Keeps a packet just sent (plain RTP, before SRTP). A sequence number not 1...`maximumGap` after
    /// the last one starts a new run; a packet too short or too long for a slot ends the run.
    mutating func add(_ packet: ByteBuffer, sequenceNumber: UInt16, maximumGap: UInt16) {
        let length = packet.readableBytes
        guard length >= 12, length <= self.slotBytes else {
            self.reset()
            return
        }
        if self.count > 0 {
            let gap = sequenceNumber &- self.sequenceNumbers[(self.head - 1 + self.capacity) % self.capacity]
            if gap == 0 || gap > maximumGap { self.reset() }
        }
        let base = self.head * self.slotBytes
        let ids = self.mutableExtensionIDs
        self.slab.withUnsafeMutableBytes { slab in
            let slot = UnsafeMutableRawBufferPointer(rebasing: slab[base..<(base + length)])
            packet.withUnsafeReadableBytes { bytes in slot.copyMemory(from: bytes) }
            zeroExtensionData(slot, ids: ids)
        }
        self.sequenceNumbers[self.head] = sequenceNumber
        self.lengths[self.head] = length
        self.head = (self.head + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)
        self.unprotected = min(self.unprotected + 1, self.capacity)
    }

    /// Forgets the kept packets.
    mutating func reset() {
        self.count = 0
        self.unprotected = 0
    }

    /// What a repair over the newest packets needs for its header: the XORed fields, the longest payload
    /// (the repair's payload length), the oldest covered sequence number and the mask (bit `i`: the packet
    /// `base + i`). At most `span` packets are covered, the newest `skippingNewest` kept ones left out, and
    /// only those less than `maximumOffset` after the oldest of them; nil when nothing is left to cover.
    struct Cover {
        var packets: Int
        /// The slot of the oldest covered packet.
        var oldest: Int
        var recoveryBytes: UInt16 = 0
        var lengthRecovery: UInt16 = 0
        var timestampRecovery: UInt32 = 0
        var longest = 0
        var base: UInt16
        var mask: UInt128 = 0
    }

    func cover(span: Int, skippingNewest skipped: Int = 0, maximumOffset: Int) -> Cover? {
        guard skipped >= 0 else { return nil }
        var covered = min(span, self.count - skipped)
        guard covered > 0 else { return nil }
        let end = (self.head - skipped + self.capacity) % self.capacity  // one past the newest covered
        let newest = self.sequenceNumbers[(end - 1 + self.capacity) % self.capacity]
        // Fewer packets when the run's gaps would push the oldest beyond the mask.
        while covered > 1,
            Int(newest &- self.sequenceNumbers[(end - covered + self.capacity) % self.capacity]) >= maximumOffset
        {
            covered -= 1
        }
        let oldest = (end - covered + self.capacity) % self.capacity
        var cover = Cover(packets: covered, oldest: oldest, base: self.sequenceNumbers[oldest])
        for step in 0..<covered {
            let slot = (oldest + step) % self.capacity
            let base = slot * self.slotBytes
            cover.recoveryBytes ^= UInt16(self.slab[base]) << 8 | UInt16(self.slab[base + 1])
            cover.lengthRecovery ^= UInt16(self.lengths[slot] - 12)
            for index in 4..<8 { cover.timestampRecovery ^= UInt32(self.slab[base + index]) << (8 * (7 - index)) }
            cover.longest = max(cover.longest, self.lengths[slot] - 12)
            cover.mask |= 1 << Int(self.sequenceNumbers[slot] &- cover.base)
        }
        return cover
    }

    /// Appends the XOR of `cover`'s packets' bytes from 12 on (`cover.longest` bytes) to `buffer`, and
    /// counts the packets as protected.
    mutating func writeXOR(of cover: Cover, into buffer: inout ByteBuffer) {
        let payloadOffset = buffer.writerIndex - buffer.readerIndex
        buffer.writeRepeatingByte(0, count: cover.longest)
        let oldest = cover.oldest
        buffer.withUnsafeMutableReadableBytes { out in
            let repair = UnsafeMutableRawBufferPointer(rebasing: out[payloadOffset...])
            self.slab.withUnsafeBytes { slab in
                for step in 0..<cover.packets {
                    let slot = (oldest + step) % self.capacity
                    let base = slot * self.slotBytes + 12
                    for index in 0..<(self.lengths[slot] - 12) { repair[index] ^= slab[base + index] }
                }
            }
        }
        self.unprotected = 0
    }
}
