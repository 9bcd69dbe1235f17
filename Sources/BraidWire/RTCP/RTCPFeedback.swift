public import NIOCore

// Common layout of every RTPFB/PSFB message, RFC 4585 §6.1
// (https://www.rfc-editor.org/rfc/rfc4585#section-6.1):
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |V=2|P|   FMT   |       PT      |          length               |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                  SSRC of packet sender                        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                  SSRC of media source                         |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// :            Feedback Control Information (FCI)                 :
// :                                                               :

/// Offset of the FCI from the packet start.
@usableFromInline
let rtcpFCIOffset = 12

extension RTCPPacketSlice {
    func requireFeedbackHeader(_ name: StaticString) throws(WireError) {
        guard self.bodyLength >= 8 else {
            throw WireError(.badLength, "\(name) needs sender and media SSRC, has \(self.bodyLength) bytes")
        }
    }
    var senderSSRC: UInt32 { self.bytes.rtcpU32(4) }
    var mediaSSRC: UInt32 { self.bytes.rtcpU32(8) }
    var fciLength: Int { self.bodyEnd - rtcpFCIOffset }
}

extension RTCPWriter {
    @usableFromInline
    static func writeFeedbackHeader(
        _ buffer: inout ByteBuffer,
        format: UInt8,
        packetType: UInt8,
        byteCount: Int,
        senderSSRC: UInt32,
        mediaSSRC: UInt32
    ) throws(WireError) {
        try Self.writeHeader(&buffer, count: format, packetType: packetType, byteCount: byteCount)
        buffer.writeInteger(senderSSRC)
        buffer.writeInteger(mediaSSRC)
    }
}

/// A generic NACK (RTPFB, PT 205, FMT 1).
///
/// [RFC 4585 §6.2.1](https://www.rfc-editor.org/rfc/rfc4585#section-6.2.1): the common feedback header,
/// then one or more FCI items:
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            PID                |             BLP               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// PID is a lost sequence number; bit i of BLP (least significant first) marks PID+i+1 as lost too.
public struct RTCPGenericNACK: Sendable {
    let packet: RTCPPacketSlice

    /// Parses one generic NACK that fills `buffer`'s readable bytes.
    public init(_ buffer: ByteBuffer) throws(WireError) { try self.init(RTCPPacketSlice(single: buffer)) }

    init(_ packet: RTCPPacketSlice) throws(WireError) {
        try packet.expect(type: RTCPPacketType.transportFeedback, format: RTCPFeedbackFormat.genericNACK, "NACK")
        try packet.requireFeedbackHeader("NACK")
        guard packet.fciLength >= 4, packet.fciLength % 4 == 0 else {
            throw WireError(.badLength, "NACK FCI of \(packet.fciLength) bytes is not a non-empty multiple of 4")
        }
        self.packet = packet
    }

    /// The packet's common header.
    public var header: RTCPHeader { self.packet.header }
    /// SSRC of the packet's sender.
    public var senderSSRC: UInt32 { self.packet.senderSSRC }
    /// SSRC of the media source the feedback is about.
    public var mediaSSRC: UInt32 { self.packet.mediaSSRC }
    /// The (PID, BLP) items.
    public var items: Items { Items(bytes: self.packet.bytes, count: self.packet.fciLength / 4) }
    /// Every sequence number the packet reports lost, in item order (wrapping at 65535).
    public var lostSequenceNumbers: LostSequenceNumbers { LostSequenceNumbers(items: self.items) }

    /// One FCI item.
    public struct Item: Hashable, Sendable {
        /// Packet ID: a lost sequence number.
        public var packetID: UInt16
        /// Bitmask of following lost packets: bit i set means `packetID &+ i &+ 1` is lost.
        public var lostBitmask: UInt16

        public init(packetID: UInt16, lostBitmask: UInt16) {
            self.packetID = packetID
            self.lostBitmask = lostBitmask
        }
    }

    /// The FCI items, read lazily.
    public struct Items: Sequence, Sendable {
        let bytes: ByteBuffer
        /// Number of elements.
        public let count: Int

        public struct Iterator: IteratorProtocol, Sendable {
            let bytes: ByteBuffer
            var offset = rtcpFCIOffset
            var remaining: Int

            public mutating func next() -> Item? {
                guard self.remaining > 0 else { return nil }
                self.remaining -= 1
                defer { self.offset += 4 }
                return Item(packetID: self.bytes.rtcpU16(self.offset), lostBitmask: self.bytes.rtcpU16(self.offset + 2))
            }
        }

        public func makeIterator() -> Iterator { Iterator(bytes: self.bytes, remaining: self.count) }
        public var underestimatedCount: Int { self.count }
    }

    /// The lost sequence numbers, expanded from the items without allocating.
    public struct LostSequenceNumbers: Sequence, Sendable {
        let items: Items

        public struct Iterator: IteratorProtocol, Sendable {
            var items: Items.Iterator
            var packetID: UInt16 = 0
            /// Bits still to report: bit 0 = PID itself, bit i+1 = BLP bit i.
            var pending: UInt32 = 0

            public mutating func next() -> UInt16? {
                while self.pending == 0 {
                    guard let item = self.items.next() else { return nil }
                    self.packetID = item.packetID
                    self.pending = UInt32(item.lostBitmask) << 1 | 1
                }
                let bit = self.pending.trailingZeroBitCount
                self.pending &= self.pending - 1
                return self.packetID &+ UInt16(bit)
            }
        }

        public func makeIterator() -> Iterator { Iterator(items: self.items.makeIterator()) }
    }

    /// Calls `body` with the fewest (PID, BLP) items that cover `lost`, which should be sorted in RTP
    /// order (each number after the previous one modulo 2^16); unsorted input is still covered, with
    /// more items. Duplicates are skipped.
    @inlinable
    static func packItems(_ lost: some Sequence<UInt16>, _ body: (Item) -> Void) {
        var current: Item? = nil
        for sequenceNumber in lost {
            if var item = current {
                let distance = sequenceNumber &- item.packetID
                if distance == 0 { continue }
                if distance <= 16 {
                    item.lostBitmask |= 1 << (distance - 1)
                    current = item
                    continue
                }
                body(item)
            }
            current = Item(packetID: sequenceNumber, lostBitmask: 0)
        }
        if let current { body(current) }
    }

    /// The number of FCI items ``write(senderSSRC:mediaSSRC:lostSequenceNumbers:into:)`` emits for `lost`.
    @inlinable
    public static func itemCount(lostSequenceNumbers lost: some Sequence<UInt16>) -> Int {
        var count = 0
        Self.packItems(lost) { _ in count += 1 }
        return count
    }

    /// Appends a NACK reporting `lostSequenceNumbers` (sorted in RTP order, wrap-around allowed) packed
    /// into the fewest (PID, BLP) items.
    /// - Throws: ``WireError/Code/badValue`` if the list is empty, ``WireError/Code/badLength`` if `buffer`
    ///   lacks the writable capacity.
    @inlinable
    public static func write(
        senderSSRC: UInt32,
        mediaSSRC: UInt32,
        lostSequenceNumbers lost: some Collection<UInt16>,
        into buffer: inout ByteBuffer
    ) throws(WireError) {
        let count = Self.itemCount(lostSequenceNumbers: lost)
        guard count > 0 else { throw WireError(.badValue, "a NACK needs at least one lost sequence number") }
        let size = rtcpFCIOffset + 4 * count
        try RTCPWriter.requireCapacity(buffer, size)
        try RTCPWriter.writeFeedbackHeader(
            &buffer, format: RTCPFeedbackFormat.genericNACK, packetType: RTCPPacketType.transportFeedback,
            byteCount: size, senderSSRC: senderSSRC, mediaSSRC: mediaSSRC)
        Self.packItems(lost) { item in
            buffer.writeInteger(item.packetID)
            buffer.writeInteger(item.lostBitmask)
        }
    }

    /// Appends a NACK with exactly these items (as received, for forwarding or re-encoding).
    @inlinable
    public static func write(
        senderSSRC: UInt32,
        mediaSSRC: UInt32,
        items: some Collection<Item>,
        into buffer: inout ByteBuffer
    ) throws(WireError) {
        guard !items.isEmpty else { throw WireError(.badValue, "a NACK needs at least one item") }
        let size = rtcpFCIOffset + 4 * items.count
        try RTCPWriter.requireCapacity(buffer, size)
        try RTCPWriter.writeFeedbackHeader(
            &buffer, format: RTCPFeedbackFormat.genericNACK, packetType: RTCPPacketType.transportFeedback,
            byteCount: size, senderSSRC: senderSSRC, mediaSSRC: mediaSSRC)
        for item in items {
            buffer.writeInteger(item.packetID)
            buffer.writeInteger(item.lostBitmask)
        }
    }
}

/// A picture loss indication (PSFB, PT 206, FMT 1).
///
/// [RFC 4585 §6.3.1](https://www.rfc-editor.org/rfc/rfc4585#section-6.3.1): the common feedback header
/// and no FCI.
///
/// ```
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|P| FMT=1   |    PT=206     |          length=2             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  SSRC of packet sender                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  SSRC of media source                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Like libwebrtc, bytes after the two SSRCs are tolerated and ignored.
public struct RTCPPictureLossIndication: Sendable {
    let packet: RTCPPacketSlice

    /// Parses one PLI that fills `buffer`'s readable bytes.
    public init(_ buffer: ByteBuffer) throws(WireError) { try self.init(RTCPPacketSlice(single: buffer)) }

    init(_ packet: RTCPPacketSlice) throws(WireError) {
        try packet.expect(type: RTCPPacketType.payloadFeedback, format: RTCPFeedbackFormat.pictureLossIndication, "PLI")
        try packet.requireFeedbackHeader("PLI")
        self.packet = packet
    }

    /// The packet's common header.
    public var header: RTCPHeader { self.packet.header }
    /// SSRC of the packet's sender.
    public var senderSSRC: UInt32 { self.packet.senderSSRC }
    /// SSRC of the media source the feedback is about.
    public var mediaSSRC: UInt32 { self.packet.mediaSSRC }

    /// Size of a PLI in bytes.
    public static let size = 12

    /// Appends a PLI asking `mediaSSRC`'s sender for a new keyframe.
    public static func write(senderSSRC: UInt32, mediaSSRC: UInt32, into buffer: inout ByteBuffer) throws(WireError) {
        try RTCPWriter.requireCapacity(buffer, Self.size)
        try RTCPWriter.writeFeedbackHeader(
            &buffer, format: RTCPFeedbackFormat.pictureLossIndication, packetType: RTCPPacketType.payloadFeedback,
            byteCount: Self.size, senderSSRC: senderSSRC, mediaSSRC: mediaSSRC)
    }
}

/// A full intra request (PSFB, PT 206, FMT 4).
///
/// [RFC 5104 §4.3.1](https://www.rfc-editor.org/rfc/rfc5104#section-4.3.1): the common feedback header
/// (media source SSRC unused, 0) followed by one or more FCI entries:
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                              SSRC                             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Seq nr.       |    Reserved                                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
public struct RTCPFullIntraRequest: Sendable {
    let packet: RTCPPacketSlice

    /// Parses one FIR that fills `buffer`'s readable bytes.
    public init(_ buffer: ByteBuffer) throws(WireError) { try self.init(RTCPPacketSlice(single: buffer)) }

    init(_ packet: RTCPPacketSlice) throws(WireError) {
        try packet.expect(type: RTCPPacketType.payloadFeedback, format: RTCPFeedbackFormat.fullIntraRequest, "FIR")
        try packet.requireFeedbackHeader("FIR")
        guard packet.fciLength >= 8, packet.fciLength % 8 == 0 else {
            throw WireError(.badLength, "FIR FCI of \(packet.fciLength) bytes is not a non-empty multiple of 8")
        }
        self.packet = packet
    }

    /// The packet's common header.
    public var header: RTCPHeader { self.packet.header }
    /// SSRC of the packet's sender.
    public var senderSSRC: UInt32 { self.packet.senderSSRC }
    /// Unused by FIR; senders set it to 0.
    public var mediaSSRC: UInt32 { self.packet.mediaSSRC }
    /// The FCI entries, one per media sender asked for a refresh.
    public var entries: Entries { Entries(bytes: self.packet.bytes, count: self.packet.fciLength / 8) }

    /// One FIR request: the media sender asked for a decoder refresh, and the request's sequence number.
    public struct Entry: Hashable, Sendable {
        /// The media sender that should send a decoder refresh point.
        public var ssrc: UInt32
        /// Incremented by the requester for each new request (retransmissions repeat it).
        public var sequenceNumber: UInt8

        public init(ssrc: UInt32, sequenceNumber: UInt8) {
            self.ssrc = ssrc
            self.sequenceNumber = sequenceNumber
        }
    }

    /// The FIR entries, read lazily.
    public struct Entries: Sequence, Sendable {
        let bytes: ByteBuffer
        /// Number of elements.
        public let count: Int

        public struct Iterator: IteratorProtocol, Sendable {
            let bytes: ByteBuffer
            var offset = rtcpFCIOffset
            var remaining: Int

            public mutating func next() -> Entry? {
                guard self.remaining > 0 else { return nil }
                self.remaining -= 1
                defer { self.offset += 8 }
                return Entry(ssrc: self.bytes.rtcpU32(self.offset), sequenceNumber: self.bytes.rtcpU8(self.offset + 4))
            }
        }

        public func makeIterator() -> Iterator { Iterator(bytes: self.bytes, remaining: self.count) }
        public var underestimatedCount: Int { self.count }
    }

    /// Appends a FIR with `entries` (at least one); the media source SSRC field is written as 0.
    @inlinable
    public static func write(
        senderSSRC: UInt32,
        entries: some Collection<Entry>,
        into buffer: inout ByteBuffer
    ) throws(WireError) {
        guard !entries.isEmpty else { throw WireError(.badValue, "a FIR needs at least one entry") }
        let size = rtcpFCIOffset + 8 * entries.count
        try RTCPWriter.requireCapacity(buffer, size)
        try RTCPWriter.writeFeedbackHeader(
            &buffer, format: RTCPFeedbackFormat.fullIntraRequest, packetType: RTCPPacketType.payloadFeedback,
            byteCount: size, senderSSRC: senderSSRC, mediaSSRC: 0)
        for entry in entries {
            buffer.writeInteger(entry.ssrc)
            buffer.writeInteger(UInt32(entry.sequenceNumber) << 24)
        }
    }
}

/// A receiver estimated maximum bitrate message (PSFB, PT 206, FMT 15, identifier "REMB").
///
/// [draft-alvestrand-rmcat-remb-03 §2.2](https://datatracker.ietf.org/doc/html/draft-alvestrand-rmcat-remb-03#section-2.2):
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|P| FMT=15  |   PT=206      |             length            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  SSRC of packet sender                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  SSRC of media source                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Unique identifier 'R' 'E' 'M' 'B'                            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Num SSRC     | BR Exp    |  BR Mantissa                      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   SSRC feedback                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  ...                                                          |
/// ```
///
/// Bitrate in bits per second = mantissa << exponent.
public struct RTCPReceiverEstimatedMaximumBitrate: Sendable {
    let packet: RTCPPacketSlice

    /// "REMB" in ASCII.
    public static let identifier: UInt32 = 0x5245_4D42

    /// Parses one REMB that fills `buffer`'s readable bytes.
    public init(_ buffer: ByteBuffer) throws(WireError) { try self.init(RTCPPacketSlice(single: buffer)) }

    init(_ packet: RTCPPacketSlice) throws(WireError) {
        try packet.expect(type: RTCPPacketType.payloadFeedback, format: RTCPFeedbackFormat.applicationLayer, "REMB")
        guard Self.isREMB(packet) else { throw WireError(.unsupportedType, "PSFB FMT 15 without the REMB identifier") }
        let count = Int(packet.bytes.rtcpU8(16))
        guard packet.fciLength == 8 + 4 * count else {
            throw WireError(.badLength, "REMB with \(count) SSRCs needs \(8 + 4 * count) FCI bytes, has \(packet.fciLength)")
        }
        let word = packet.bytes.rtcpU32(16)
        let exponent = (word >> 18) & 0x3F
        let mantissa = UInt64(word & 0x3_FFFF)
        // A 6-bit exponent can shift an 18-bit mantissa past 64 bits; such a bitrate is meaningless.
        guard (mantissa << exponent) >> exponent == mantissa else {
            throw WireError(.badValue, "REMB bitrate \(mantissa) << \(exponent) overflows 64 bits")
        }
        self.packet = packet
    }

    /// Whether a PSFB FMT 15 packet carries the REMB identifier.
    static func isREMB(_ packet: RTCPPacketSlice) -> Bool {
        packet.fciLength >= 8 && packet.bytes.rtcpU32(rtcpFCIOffset) == Self.identifier
    }

    /// The packet's common header.
    public var header: RTCPHeader { self.packet.header }
    /// SSRC of the packet's sender.
    public var senderSSRC: UInt32 { self.packet.senderSSRC }
    /// Always 0 for REMB.
    public var mediaSSRC: UInt32 { self.packet.mediaSSRC }
    /// The 6-bit exponent of the bitrate.
    public var exponent: UInt8 { UInt8(truncatingIfNeeded: (self.packet.bytes.rtcpU32(16) >> 18) & 0x3F) }
    /// The 18-bit mantissa of the bitrate.
    public var mantissa: UInt32 { self.packet.bytes.rtcpU32(16) & 0x3_FFFF }
    /// The estimated maximum bitrate in bits per second.
    public var bitrate: UInt64 { UInt64(self.mantissa) << UInt64(self.exponent) }
    /// The media sources the estimate applies to.
    public var ssrcs: RTCPSSRCList {
        RTCPSSRCList(bytes: self.packet.bytes, start: 20, count: Int(self.packet.bytes.rtcpU8(16)))
    }

    /// The exponent and mantissa that encode `bitrate`: the smallest exponent whose mantissa fits 18 bits.
    /// The mantissa is rounded down, so the encoded value never exceeds the estimate.
    public static func encode(bitrate: UInt64) -> (exponent: UInt8, mantissa: UInt32) {
        // bit width minus 18, never negative; at most 64 - 18 = 46, so it fits 6 bits.
        let exponent = max(0, (UInt64.bitWidth - bitrate.leadingZeroBitCount) - 18)
        return (UInt8(exponent), UInt32(truncatingIfNeeded: bitrate >> UInt64(exponent)))
    }

    /// Appends a REMB of `bitrate` bits/s for `ssrcs` (at most 255).
    @inlinable
    public static func write(
        senderSSRC: UInt32,
        bitrate: UInt64,
        ssrcs: some Collection<UInt32>,
        into buffer: inout ByteBuffer
    ) throws(WireError) {
        let count = ssrcs.count
        guard count <= 255 else { throw WireError(.badValue, "REMB carries at most 255 SSRCs, not \(count)") }
        let size = rtcpFCIOffset + 8 + 4 * count
        try RTCPWriter.requireCapacity(buffer, size)
        try RTCPWriter.writeFeedbackHeader(
            &buffer, format: RTCPFeedbackFormat.applicationLayer, packetType: RTCPPacketType.payloadFeedback,
            byteCount: size, senderSSRC: senderSSRC, mediaSSRC: 0)
        let (exponent, mantissa) = Self.encode(bitrate: bitrate)
        buffer.writeInteger(Self.identifier)
        buffer.writeInteger(UInt32(count) << 24 | UInt32(exponent) << 18 | mantissa)
        for ssrc in ssrcs { buffer.writeInteger(ssrc) }
    }
}
