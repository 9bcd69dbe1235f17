public import NIOCore

/// One reception report block, carried by SR and RR packets.
///
/// [RFC 3550 §6.4.1](https://www.rfc-editor.org/rfc/rfc3550#section-6.4.1):
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
/// |                 SSRC_1 (SSRC of first source)                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | fraction lost |       cumulative number of packets lost       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           extended highest sequence number received           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      interarrival jitter                      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         last SR (LSR)                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                   delay since last SR (DLSR)                  |
/// +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
/// ```
public struct RTCPReportBlock: Hashable, Sendable {
    /// Size of a report block in bytes.
    public static let size = 24
    /// The source this block reports on.
    public var ssrc: UInt32
    /// Fraction of packets lost since the previous report, as a fixed-point number over 256.
    public var fractionLost: UInt8
    /// Cumulative packets lost: a 24-bit SIGNED value (duplicates can make it negative).
    /// Builders clamp it to -8388608...8388607.
    public var cumulativeLost: Int32
    /// Cycles count (high 16 bits) and highest sequence number received (low 16 bits).
    public var extendedHighestSequenceNumber: UInt32
    /// Interarrival jitter in RTP timestamp units.
    public var jitter: UInt32
    /// Middle 32 bits of the NTP timestamp of the last SR received from this source (0 if none).
    public var lastSenderReport: UInt32
    /// Delay since that SR, in units of 1/65536 s.
    public var delaySinceLastSenderReport: UInt32

    public init(
        ssrc: UInt32,
        fractionLost: UInt8,
        cumulativeLost: Int32,
        extendedHighestSequenceNumber: UInt32,
        jitter: UInt32,
        lastSenderReport: UInt32,
        delaySinceLastSenderReport: UInt32
    ) {
        self.ssrc = ssrc
        self.fractionLost = fractionLost
        self.cumulativeLost = cumulativeLost
        self.extendedHighestSequenceNumber = extendedHighestSequenceNumber
        self.jitter = jitter
        self.lastSenderReport = lastSenderReport
        self.delaySinceLastSenderReport = delaySinceLastSenderReport
    }

    init(reading buffer: ByteBuffer, at index: Int) {
        self.ssrc = buffer.rtcpU32(index)
        let lossWord = buffer.rtcpU32(index + 4)
        self.fractionLost = UInt8(truncatingIfNeeded: lossWord >> 24)
        // Sign-extend the 24-bit field: shift it to the top, then arithmetic-shift back.
        self.cumulativeLost = Int32(bitPattern: lossWord << 8) >> 8
        self.extendedHighestSequenceNumber = buffer.rtcpU32(index + 8)
        self.jitter = buffer.rtcpU32(index + 12)
        self.lastSenderReport = buffer.rtcpU32(index + 16)
        self.delaySinceLastSenderReport = buffer.rtcpU32(index + 20)
    }

    @inlinable
    func write(to buffer: inout ByteBuffer) {
        let lost = UInt32(bitPattern: min(max(self.cumulativeLost, -0x80_0000), 0x7F_FFFF)) & 0xFF_FFFF
        buffer.writeInteger(self.ssrc)
        buffer.writeInteger(UInt32(self.fractionLost) << 24 | lost)
        buffer.writeInteger(self.extendedHighestSequenceNumber)
        buffer.writeInteger(self.jitter)
        buffer.writeInteger(self.lastSenderReport)
        buffer.writeInteger(self.delaySinceLastSenderReport)
    }
}

/// The report blocks of an SR or RR, read lazily from the packet bytes.
public struct RTCPReportBlocks: Sequence, Sendable {
    let bytes: ByteBuffer
    let start: Int
    /// Number of blocks (the RC field).
    public let count: Int

    public struct Iterator: IteratorProtocol, Sendable {
        let bytes: ByteBuffer
        var offset: Int
        var remaining: Int

        public mutating func next() -> RTCPReportBlock? {
            guard self.remaining > 0 else { return nil }
            self.remaining -= 1
            defer { self.offset += RTCPReportBlock.size }
            return RTCPReportBlock(reading: self.bytes, at: self.offset)
        }
    }

    public func makeIterator() -> Iterator { Iterator(bytes: self.bytes, offset: self.start, remaining: self.count) }
    public var underestimatedCount: Int { self.count }
}

/// A sender report (PT 200).
///
/// [RFC 3550 §6.4.1](https://www.rfc-editor.org/rfc/rfc3550#section-6.4.1):
///
/// ```
///         0                   1                   2                   3
///         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// header |V=2|P|    RC   |   PT=SR=200   |             length            |
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///        |                         SSRC of sender                        |
///        +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
/// sender |              NTP timestamp, most significant word             |
/// info   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///        |             NTP timestamp, least significant word             |
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///        |                         RTP timestamp                         |
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///        |                     sender's packet count                     |
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///        |                      sender's octet count                     |
///        +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
/// report |                 report block 1 ... RC (24 bytes each)         |
///        +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
///        |                  profile-specific extensions                  |
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Profile-specific extensions are skipped.
public struct RTCPSenderReport: Sendable {
    let packet: RTCPPacketSlice

    /// Parses one SR that fills `buffer`'s readable bytes.
    public init(_ buffer: ByteBuffer) throws(WireError) { try self.init(RTCPPacketSlice(single: buffer)) }

    init(_ packet: RTCPPacketSlice) throws(WireError) {
        try packet.expect(type: RTCPPacketType.senderReport, "SR")
        let needed = 24 + Int(packet.header.count) * RTCPReportBlock.size
        guard packet.bodyLength >= needed else {
            throw WireError(.badLength, "SR with \(packet.header.count) blocks needs \(needed) bytes, has \(packet.bodyLength)")
        }
        self.packet = packet
    }

    /// The packet's common header.
    public var header: RTCPHeader { self.packet.header }
    /// SSRC of the packet's sender.
    public var senderSSRC: UInt32 { self.packet.bytes.rtcpU32(4) }
    /// The 64-bit NTP timestamp (seconds since 1900 in the high word, fraction in the low word).
    public var ntpTimestamp: UInt64 {
        UInt64(self.packet.bytes.rtcpU32(8)) << 32 | UInt64(self.packet.bytes.rtcpU32(12))
    }
    /// The RTP timestamp that corresponds to ``ntpTimestamp`` on the media clock.
    public var rtpTimestamp: UInt32 { self.packet.bytes.rtcpU32(16) }
    /// RTP data packets sent since the stream started.
    public var packetCount: UInt32 { self.packet.bytes.rtcpU32(20) }
    /// Payload octets sent since the stream started.
    public var octetCount: UInt32 { self.packet.bytes.rtcpU32(24) }
    /// The reception report blocks (RC of them).
    public var reportBlocks: RTCPReportBlocks {
        RTCPReportBlocks(bytes: self.packet.bytes, start: 28, count: Int(self.packet.header.count))
    }

    /// Bytes an SR with `blockCount` report blocks occupies.
    public static func size(blockCount: Int) -> Int { 28 + blockCount * RTCPReportBlock.size }

    /// Appends an SR at `buffer`'s writer index. Inlinable so that it is specialised for the caller's
    /// collection type: unspecialised generic iteration allocates.
    /// - Throws: ``WireError/Code/badValue`` for more than 31 blocks, ``WireError/Code/badLength`` if `buffer`
    ///   lacks the writable capacity (the builder never grows it).
    @inlinable
    public static func write(
        senderSSRC: UInt32,
        ntpTimestamp: UInt64,
        rtpTimestamp: UInt32,
        packetCount: UInt32,
        octetCount: UInt32,
        reportBlocks: some Collection<RTCPReportBlock>,
        into buffer: inout ByteBuffer
    ) throws(WireError) {
        let count = reportBlocks.count
        guard count < 32 else { throw WireError(.badValue, "SR carries at most 31 report blocks, not \(count)") }
        let size = Self.size(blockCount: count)
        try RTCPWriter.requireCapacity(buffer, size)
        try RTCPWriter.writeHeader(&buffer, count: UInt8(count), packetType: RTCPPacketType.senderReport, byteCount: size)
        buffer.writeInteger(senderSSRC)
        buffer.writeInteger(ntpTimestamp)
        buffer.writeInteger(rtpTimestamp)
        buffer.writeInteger(packetCount)
        buffer.writeInteger(octetCount)
        for block in reportBlocks { block.write(to: &buffer) }
    }
}

/// A receiver report (PT 201).
///
/// [RFC 3550 §6.4.2](https://www.rfc-editor.org/rfc/rfc3550#section-6.4.2):
///
/// ```
///         0                   1                   2                   3
///         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// header |V=2|P|    RC   |   PT=RR=201   |             length            |
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///        |                     SSRC of packet sender                     |
///        +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
/// report |                 report block 1 ... RC (24 bytes each)         |
///        +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
///        |                  profile-specific extensions                  |
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
public struct RTCPReceiverReport: Sendable {
    let packet: RTCPPacketSlice

    /// Parses one RR that fills `buffer`'s readable bytes.
    public init(_ buffer: ByteBuffer) throws(WireError) { try self.init(RTCPPacketSlice(single: buffer)) }

    init(_ packet: RTCPPacketSlice) throws(WireError) {
        try packet.expect(type: RTCPPacketType.receiverReport, "RR")
        let needed = 4 + Int(packet.header.count) * RTCPReportBlock.size
        guard packet.bodyLength >= needed else {
            throw WireError(.badLength, "RR with \(packet.header.count) blocks needs \(needed) bytes, has \(packet.bodyLength)")
        }
        self.packet = packet
    }

    /// The packet's common header.
    public var header: RTCPHeader { self.packet.header }
    /// SSRC of the packet's sender.
    public var senderSSRC: UInt32 { self.packet.bytes.rtcpU32(4) }
    /// The reception report blocks (RC of them).
    public var reportBlocks: RTCPReportBlocks {
        RTCPReportBlocks(bytes: self.packet.bytes, start: 8, count: Int(self.packet.header.count))
    }

    /// Bytes an RR with `blockCount` report blocks occupies.
    public static func size(blockCount: Int) -> Int { 8 + blockCount * RTCPReportBlock.size }

    /// Appends an RR at `buffer`'s writer index (an empty RR is what a receiver with nothing to report sends).
    @inlinable
    public static func write(
        senderSSRC: UInt32,
        reportBlocks: some Collection<RTCPReportBlock>,
        into buffer: inout ByteBuffer
    ) throws(WireError) {
        let count = reportBlocks.count
        guard count < 32 else { throw WireError(.badValue, "RR carries at most 31 report blocks, not \(count)") }
        let size = Self.size(blockCount: count)
        try RTCPWriter.requireCapacity(buffer, size)
        try RTCPWriter.writeHeader(
            &buffer, count: UInt8(count), packetType: RTCPPacketType.receiverReport, byteCount: size)
        buffer.writeInteger(senderSSRC)
        for block in reportBlocks { block.write(to: &buffer) }
    }
}
