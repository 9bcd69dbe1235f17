public import BraidWire
public import NIOCore

/// Sender-side store of recently sent packets, answering NACKs with retransmissions.
///
/// Each outgoing stream keeps the last ``capacity`` packets as sent (after rewriting, before SRTP) in
/// fixed-size slots of one preallocated byte array; a packet's slot is its sequence number modulo the
/// capacity, so storing and looking up are O(1). A packet older than ``maxAge`` is treated as gone
/// (mediasoup keeps ≤ 2 s video / 1 s audio; libwebrtc about 1 s). The same packet is not resent twice
/// within ``minimumResendInterval`` (set it to the RTT estimate): a receiver that NACKs again before
/// our first answer could reach it would otherwise double the repair traffic.
///
/// Retransmissions are written either verbatim (same SSRC and sequence number) or RTX-encapsulated,
/// [RFC 4588 §4](https://www.rfc-editor.org/rfc/rfc4588#section-4):
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         RTP Header                            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            OSN                |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               |
/// |                  Original RTP Packet Payload                  |
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// The RTX header is the original's (CSRCs, extensions, marker and timestamp kept) with the RTX
/// payload type, the RTX SSRC and the RTX stream's own sequence number; the original padding is
/// stripped (P cleared).
///
/// Ownership: one buffer per outgoing stream, owned by the consumer on its event loop. Allocated by
/// this: `capacity × slotSize` bytes plus `capacity` slot records, once, in `init`. Passed by argument:
/// the packets to store (copied in), `now`, and the caller's output buffer. Storing copies into an
/// existing slot and retransmitting copies out of it, so neither allocates (the output `ByteBuffer`
/// must already have the capacity, which a reused scratch buffer does after the first packet).
public struct RetransmissionBuffer: Sendable {
    /// RTX parameters of the stream (RFC 4588), from the SDP `rtx` payload type and FID group.
    public struct RTX: Sendable, Hashable {
        /// SSRC of the RTX stream.
        public var ssrc: UInt32
        /// The RTX payload type paired (`apt=`) with the media payload type.
        public var payloadType: UInt8

        public init(ssrc: UInt32, payloadType: UInt8) {
            self.ssrc = ssrc
            self.payloadType = payloadType
        }
    }

    /// What happened to one requested sequence number.
    public enum RetransmitResult: Sendable, Hashable {
        /// The packet was written; `bytes` is its length.
        case written(bytes: Int)
        /// Never stored, or overwritten by a newer packet.
        case notFound
        /// Stored longer ago than ``maxAge``.
        case expired
        /// Sent again less than ``minimumResendInterval`` ago.
        case throttled
    }

    struct Slot: Sendable {
        var occupied = false
        var sequenceNumber: UInt16 = 0
        var length = 0
        var headerLength = 0
        var paddingLength = 0
        var storedAt = NIODeadline.uptimeNanoseconds(0)
        var lastSentAt: NIODeadline?
        /// Times it was asked for and answered (resent or repaired).
        var answers = 0
    }

    /// Number of slots (a power of two, so every sequence number has one slot).
    public let capacity: Int
    /// Largest packet stored; larger ones are counted in ``oversizedPackets`` and not stored.
    public let slotSize: Int
    /// Packets older than this are not retransmitted.
    public var maxAge: TimeAmount
    /// The same packet is not resent again within this interval (set it to the RTT estimate).
    public var minimumResendInterval: TimeAmount
    /// RTX encapsulation, or nil to resend packets verbatim.
    public var rtx: RTX?
    /// Sequence number of the next RTX packet (the RTX stream's own sequence space).
    public var nextRTXSequenceNumber: UInt16

    var slots: ContiguousArray<Slot>
    var bytes: ContiguousArray<UInt8>

    /// Packets not stored because they exceed ``slotSize``.
    public private(set) var oversizedPackets = 0
    /// Packets retransmitted.
    public private(set) var packetsRetransmitted = 0

    /// Creates a buffer.
    /// - Parameters:
    ///   - capacity: packets kept, rounded up to a power of two in 16...32768 (default 1024).
    ///   - slotSize: bytes per packet, at most (default 1500).
    ///   - maxAge: 1 s suits video, 500 ms audio.
    ///   - minimumResendInterval: the RTT estimate (default 100 ms).
    ///   - rtx: RTX parameters, or nil for verbatim retransmission.
    ///   - initialRTXSequenceNumber: first RTX sequence number (RFC 3550 suggests a random start).
    public init(
        capacity: Int = 1024, slotSize: Int = 1500, maxAge: TimeAmount = .seconds(1),
        minimumResendInterval: TimeAmount = .milliseconds(100), rtx: RTX? = nil,
        initialRTXSequenceNumber: UInt16 = 0
    ) {
        var rounded = 16
        while rounded < min(max(capacity, 16), 32_768) { rounded <<= 1 }
        self.capacity = rounded
        self.slotSize = max(12, min(slotSize, 65_535))
        self.maxAge = maxAge
        self.minimumResendInterval = minimumResendInterval
        self.rtx = rtx
        self.nextRTXSequenceNumber = initialRTXSequenceNumber
        self.slots = ContiguousArray(repeating: Slot(), count: rounded)
        self.bytes = ContiguousArray(repeating: 0, count: rounded * self.slotSize)
    }

    /// Copies `packet` (as sent) into its slot, replacing whatever was there.
    /// - Returns: false when the packet exceeds ``slotSize`` and was not stored.
    @discardableResult
    public mutating func store(_ packet: RTPPacket, now: NIODeadline) -> Bool {
        guard packet.length <= self.slotSize else {
            self.oversizedPackets += 1
            return false
        }
        let index = Int(packet.sequenceNumber) & (self.capacity - 1)
        let offset = index * self.slotSize
        // `bytes` is a slice sharing the packet's storage (a retain, no copy or allocation).
        let source = packet.bytes
        self.bytes.withUnsafeMutableBytes { destination in
            source.withUnsafeReadableBytes { readable in
                UnsafeMutableRawBufferPointer(rebasing: destination[offset..<(offset + readable.count)])
                    .copyMemory(from: readable)
            }
        }
        self.slots[index] = Slot(
            occupied: true, sequenceNumber: packet.sequenceNumber, length: packet.length,
            headerLength: packet.headerLength, paddingLength: packet.paddingLength, storedAt: now, lastSentAt: nil)
        return true
    }

    /// Records that stored packet `sequenceNumber` is answered another way than by ``retransmit(_:now:into:)``
    /// (a repair round of FEC covering it), with the same limits: nil when it is not held, too old, or was
    /// answered within ``minimumResendInterval`` (a duplicate NACK). Returns how many times it had been
    /// answered before: the repair round it is in.
    public mutating func markAnswered(_ sequenceNumber: UInt16, now: NIODeadline) -> Int? {
        let index = Int(sequenceNumber) & (self.capacity - 1)
        var slot = self.slots[index]
        guard slot.occupied, slot.sequenceNumber == sequenceNumber, now - slot.storedAt <= self.maxAge else { return nil }
        if let lastSent = slot.lastSentAt, now - lastSent < self.minimumResendInterval { return nil }
        let before = slot.answers
        slot.lastSentAt = now
        slot.answers += 1
        self.slots[index] = slot
        return before
    }

    /// Whether a packet with `sequenceNumber` is stored and not older than ``maxAge``.
    public func contains(_ sequenceNumber: UInt16, now: NIODeadline) -> Bool {
        let slot = self.slots[Int(sequenceNumber) & (self.capacity - 1)]
        return slot.occupied && slot.sequenceNumber == sequenceNumber && now - slot.storedAt <= self.maxAge
    }

    /// Writes the stored packet `sequenceNumber` to `buffer` (appended at its writer index), verbatim or
    /// RTX-encapsulated per ``rtx``, and marks it sent at `now`.
    public mutating func retransmit(
        _ sequenceNumber: UInt16, now: NIODeadline, into buffer: inout ByteBuffer
    ) -> RetransmitResult {
        let index = Int(sequenceNumber) & (self.capacity - 1)
        var slot = self.slots[index]
        guard slot.occupied, slot.sequenceNumber == sequenceNumber else { return .notFound }
        guard now - slot.storedAt <= self.maxAge else { return .expired }
        if let lastSent = slot.lastSentAt, now - lastSent < self.minimumResendInterval { return .throttled }
        slot.lastSentAt = now
        slot.answers += 1
        self.slots[index] = slot
        self.packetsRetransmitted += 1
        let offset = index * self.slotSize
        let written = self.bytes.withUnsafeBytes { stored -> Int in
            let packet = UnsafeRawBufferPointer(rebasing: stored[offset..<(offset + slot.length)])
            guard let rtx = self.rtx else {
                buffer.writeBytes(packet)
                return slot.length
            }
            let payloadLength = slot.length - slot.headerLength - slot.paddingLength
            let total = slot.headerLength + 2 + payloadLength
            buffer.reserveCapacity(minimumWritableBytes: total)
            let start = buffer.writerIndex
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: packet[0..<slot.headerLength]))
            // Patch the copied header: P cleared (padding stripped), RTX payload type, sequence, SSRC.
            buffer.setInteger(packet[0] & ~0x20, at: start)
            buffer.setInteger(packet[1] & 0x80 | rtx.payloadType & 0x7F, at: start + 1)
            buffer.setInteger(self.nextRTXSequenceNumber, at: start + 2)
            buffer.setInteger(rtx.ssrc, at: start + 8)
            buffer.writeInteger(sequenceNumber)
            buffer.writeBytes(
                UnsafeRawBufferPointer(rebasing: packet[slot.headerLength..<(slot.headerLength + payloadLength)]))
            return total
        }
        if self.rtx != nil { self.nextRTXSequenceNumber &+= 1 }
        return .written(bytes: written)
    }

    /// Answers a generic NACK: for each sequence number it reports, writes the retransmission into
    /// `scratch` (cleared first) and calls `send` with it; numbers that cannot be resent are skipped.
    /// - Returns: how many packets were sent.
    @discardableResult
    public mutating func answer<Failure: Error>(
        _ nack: RTCPGenericNACK, now: NIODeadline, scratch: inout ByteBuffer,
        send: (inout ByteBuffer) throws(Failure) -> Void
    ) throws(Failure) -> Int {
        var sent = 0
        for sequenceNumber in nack.lostSequenceNumbers {
            scratch.clear()
            if case .written = self.retransmit(sequenceNumber, now: now, into: &scratch) {
                try send(&scratch)
                sent += 1
            }
        }
        return sent
    }
}
