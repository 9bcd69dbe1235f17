public import NIOCore

/// A source description packet (PT 202).
///
/// [RFC 3550 §6.5](https://www.rfc-editor.org/rfc/rfc3550#section-6.5):
///
/// ```
///         0                   1                   2                   3
///         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// header |V=2|P|    SC   |  PT=SDES=202  |             length            |
///        +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
/// chunk  |                          SSRC/CSRC_1                          |
///   1    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///        |                           SDES items                          |
///        |                              ...                              |
///        +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
/// chunk  |                          SSRC/CSRC_2                          |
///   2    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///        |                           SDES items                          |
///        +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
///
/// item:   0                   1                   2                   3
///         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///        |    CNAME=1    |     length    | user and domain name        ...
///        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Each chunk's item list ends with one or more null octets (an END item, type 0) that pad the chunk to
/// the next 32-bit boundary. The whole packet is validated once in the initialiser; chunks and items
/// are then read lazily.
public struct RTCPSourceDescription: Sendable {
    let packet: RTCPPacketSlice

    /// Parses one SDES packet that fills `buffer`'s readable bytes.
    public init(_ buffer: ByteBuffer) throws(WireError) { try self.init(RTCPPacketSlice(single: buffer)) }

    init(_ packet: RTCPPacketSlice) throws(WireError) {
        try packet.expect(type: RTCPPacketType.sourceDescription, "SDES")
        var offset = RTCPHeader.size
        for _ in 0..<Int(packet.header.count) {
            offset = try Self.validateChunk(packet.bytes, at: offset, end: packet.bodyEnd)
        }
        guard offset == packet.bodyEnd else {
            throw WireError(.trailingBytes, "SDES has \(packet.bodyEnd - offset) bytes after its \(packet.header.count) chunks")
        }
        self.packet = packet
    }

    /// Returns the offset after the chunk at `start`, or throws if it is malformed.
    private static func validateChunk(_ bytes: ByteBuffer, at start: Int, end: Int) throws(WireError) -> Int {
        guard end - start >= 8 else { throw WireError(.truncated, "SDES chunk needs at least 8 bytes") }
        var offset = start + 4
        while true {
            guard offset < end else { throw WireError(.truncated, "SDES chunk has no END item") }
            let type = bytes.rtcpU8(offset)
            if type == 0 {
                // END plus padding up to the next 32-bit boundary; padding octets must be null too.
                let chunkEnd = (offset - start) / 4 * 4 + 4 + start
                guard chunkEnd <= end else { throw WireError(.truncated, "SDES chunk padding runs past the packet") }
                for index in offset..<chunkEnd where bytes.rtcpU8(index) != 0 {
                    throw WireError(.badPadding, "SDES chunk padding octet \(index) is not zero")
                }
                return chunkEnd
            }
            guard end - offset >= 2 else { throw WireError(.truncated, "SDES item header runs past the packet") }
            let length = Int(bytes.rtcpU8(offset + 1))
            guard end - offset - 2 >= length else {
                throw WireError(.badLength, "SDES item of \(length) bytes runs past the packet")
            }
            offset += 2 + length
        }
    }

    /// The packet's common header.
    public var header: RTCPHeader { self.packet.header }
    /// The chunks, one per source (the SC field counts them).
    public var chunks: Chunks { Chunks(bytes: self.packet.bytes, count: Int(self.packet.header.count)) }

    /// The chunks of an SDES packet.
    public struct Chunks: Sequence, Sendable {
        let bytes: ByteBuffer
        /// Number of elements.
        public let count: Int

        public struct Iterator: IteratorProtocol, Sendable {
            let bytes: ByteBuffer
            var offset = RTCPHeader.size
            var remaining: Int

            public mutating func next() -> Chunk? {
                guard self.remaining > 0 else { return nil }
                self.remaining -= 1
                let chunk = Chunk(bytes: self.bytes, start: self.offset)
                self.offset = chunk.end
                return chunk
            }
        }

        public func makeIterator() -> Iterator { Iterator(bytes: self.bytes, remaining: self.count) }
        public var underestimatedCount: Int { self.count }
    }

    /// One chunk: a source and its items.
    public struct Chunk: Sequence, Sendable {
        let bytes: ByteBuffer
        let start: Int

        /// The SSRC or CSRC the items describe.
        public var ssrc: UInt32 { self.bytes.rtcpU32(self.start) }

        /// Offset just past this chunk's padding (the chunk was validated, so this terminates in bounds).
        var end: Int {
            var offset = self.start + 4
            while self.bytes.rtcpU8(offset) != 0 { offset += 2 + Int(self.bytes.rtcpU8(offset + 1)) }
            return (offset - self.start) / 4 * 4 + 4 + self.start
        }

        public struct Iterator: IteratorProtocol, Sendable {
            let bytes: ByteBuffer
            var offset: Int

            public mutating func next() -> Item? {
                let type = self.bytes.rtcpU8(self.offset)
                guard type != 0 else { return nil }
                let length = Int(self.bytes.rtcpU8(self.offset + 1))
                let value = self.bytes.getSlice(at: self.offset + 2, length: length) ?? ByteBuffer()
                self.offset += 2 + length
                return Item(type: type, value: value)
            }
        }

        /// Iterates the items (END excluded).
        public func makeIterator() -> Iterator { Iterator(bytes: self.bytes, offset: self.start + 4) }
    }

    /// One SDES item: its type and a zero-copy slice of its value.
    public struct Item: Sendable {
        /// 1 CNAME, 2 NAME, 3 EMAIL, 4 PHONE, 5 LOC, 6 TOOL, 7 NOTE, 8 PRIV (see ``ItemType``).
        public var type: UInt8
        /// The value octets (UTF-8 text for the standard items).
        public var value: ByteBuffer
    }

    /// SDES item type numbers, [RFC 3550 §6.5](https://www.rfc-editor.org/rfc/rfc3550#section-6.5).
    public enum ItemType {
        public static let end: UInt8 = 0
        public static let cname: UInt8 = 1
        public static let name: UInt8 = 2
        public static let email: UInt8 = 3
        public static let phone: UInt8 = 4
        public static let location: UInt8 = 5
        public static let tool: UInt8 = 6
        public static let note: UInt8 = 7
        public static let priv: UInt8 = 8
    }

    /// The size of a chunk whose items have these value lengths.
    @inlinable
    static func chunkSize(itemValueLengths: some Sequence<Int>) -> Int {
        var itemBytes = 0
        for length in itemValueLengths { itemBytes += 2 + length }
        // SSRC, items, then at least one null octet, rounded up to 32 bits.
        return 4 + (itemBytes / 4 + 1) * 4
    }

    /// Appends an SDES packet with one chunk holding one CNAME item, which is what every RTCP compound
    /// report carries ([RFC 3550 §6.1](https://www.rfc-editor.org/rfc/rfc3550#section-6.1)).
    /// - Throws: ``WireError/Code/badValue`` if the CNAME exceeds 255 bytes, ``WireError/Code/badLength``
    ///   if `buffer` lacks the writable capacity.
    @inlinable
    public static func writeCNAME(ssrc: UInt32, cname: some StringProtocol, into buffer: inout ByteBuffer) throws(WireError) {
        try Self.write(chunks: CollectionOfOne((ssrc, CollectionOfOne((ItemType.cname, cname.utf8)))), into: &buffer)
    }

    /// Appends an SDES packet with the given chunks, each a source and its (type, value) items.
    ///
    /// Items of type 0 (END) cannot be written; values longer than 255 bytes and more than 31 chunks are
    /// rejected with ``WireError/Code/badValue``.
    @inlinable
    public static func write<Items: Collection, Value: Collection>(
        chunks: some Collection<(UInt32, Items)>,
        into buffer: inout ByteBuffer
    ) throws(WireError) where Items.Element == (UInt8, Value), Value.Element == UInt8 {
        guard chunks.count < 32 else { throw WireError(.badValue, "SDES carries at most 31 chunks") }
        var size = RTCPHeader.size
        for (_, items) in chunks {
            for (type, value) in items {
                guard type != 0 else { throw WireError(.badValue, "SDES item type 0 is END, not an item") }
                guard value.count <= 255 else { throw WireError(.badValue, "SDES item of \(value.count) bytes > 255") }
            }
            size += Self.chunkSize(itemValueLengths: items.lazy.map { $0.1.count })
        }
        try RTCPWriter.requireCapacity(buffer, size)
        try RTCPWriter.writeHeader(
            &buffer, count: UInt8(chunks.count), packetType: RTCPPacketType.sourceDescription, byteCount: size)
        for (ssrc, items) in chunks {
            let start = buffer.writerIndex
            buffer.writeInteger(ssrc)
            for (type, value) in items {
                buffer.writeInteger(type)
                buffer.writeInteger(UInt8(value.count))
                buffer.writeBytes(value)
            }
            let itemBytes = buffer.writerIndex - start - 4
            buffer.writeRepeatingByte(0, count: (itemBytes / 4 + 1) * 4 - itemBytes)
        }
    }
}

/// A goodbye packet (PT 203).
///
/// [RFC 3550 §6.6](https://www.rfc-editor.org/rfc/rfc3550#section-6.6):
///
/// ```
///        0                   1                   2                   3
///        0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///       +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///       |V=2|P|    SC   |   PT=BYE=203  |             length            |
///       +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///       |                           SSRC/CSRC                           |
///       +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///       :                              ...                              :
///       +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
/// (opt) |     length    |               reason for leaving            ...
///       +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
public struct RTCPGoodbye: Sendable {
    let packet: RTCPPacketSlice

    /// Parses one BYE packet that fills `buffer`'s readable bytes.
    public init(_ buffer: ByteBuffer) throws(WireError) { try self.init(RTCPPacketSlice(single: buffer)) }

    init(_ packet: RTCPPacketSlice) throws(WireError) {
        try packet.expect(type: RTCPPacketType.goodbye, "BYE")
        let ssrcEnd = RTCPHeader.size + 4 * Int(packet.header.count)
        guard ssrcEnd <= packet.bodyEnd else {
            throw WireError(.badLength, "BYE with \(packet.header.count) sources does not fit \(packet.bodyLength) bytes")
        }
        if ssrcEnd < packet.bodyEnd {
            let length = Int(packet.bytes.rtcpU8(ssrcEnd))
            guard length + 1 <= packet.bodyEnd - ssrcEnd else {
                throw WireError(.badLength, "BYE reason of \(length) bytes runs past the packet")
            }
        }
        self.packet = packet
    }

    /// The packet's common header.
    public var header: RTCPHeader { self.packet.header }
    /// The sources that leave.
    public var ssrcs: RTCPSSRCList { RTCPSSRCList(bytes: self.packet.bytes, start: 4, count: Int(self.packet.header.count)) }
    /// The reason for leaving (UTF-8 text), if present.
    public var reason: ByteBuffer? {
        let ssrcEnd = RTCPHeader.size + 4 * Int(self.packet.header.count)
        guard ssrcEnd < self.packet.bodyEnd else { return nil }
        return self.packet.bytes.getSlice(at: ssrcEnd + 1, length: Int(self.packet.bytes.rtcpU8(ssrcEnd)))
    }

    /// Appends a BYE for `ssrcs` (at most 31) without a reason.
    @inlinable
    public static func write(ssrcs: some Collection<UInt32>, into buffer: inout ByteBuffer) throws(WireError) {
        try Self.write(ssrcs: ssrcs, reasonBytes: EmptyCollection<UInt8>(), hasReason: false, into: &buffer)
    }

    /// Appends a BYE for `ssrcs` (at most 31) with a reason of at most 255 bytes.
    @inlinable
    public static func write(
        ssrcs: some Collection<UInt32>,
        reason: some Collection<UInt8>,
        into buffer: inout ByteBuffer
    ) throws(WireError) {
        try Self.write(ssrcs: ssrcs, reasonBytes: reason, hasReason: true, into: &buffer)
    }

    @inlinable
    static func write(
        ssrcs: some Collection<UInt32>,
        reasonBytes: some Collection<UInt8>,
        hasReason: Bool,
        into buffer: inout ByteBuffer
    ) throws(WireError) {
        let count = ssrcs.count
        guard count < 32 else { throw WireError(.badValue, "BYE carries at most 31 sources, not \(count)") }
        let reasonLength = reasonBytes.count
        guard reasonLength <= 255 else { throw WireError(.badValue, "BYE reason of \(reasonLength) bytes > 255") }
        let reasonSize = hasReason ? (reasonLength + 1 + 3) / 4 * 4 : 0
        let size = RTCPHeader.size + 4 * count + reasonSize
        try RTCPWriter.requireCapacity(buffer, size)
        try RTCPWriter.writeHeader(&buffer, count: UInt8(count), packetType: RTCPPacketType.goodbye, byteCount: size)
        for ssrc in ssrcs { buffer.writeInteger(ssrc) }
        if hasReason {
            buffer.writeInteger(UInt8(reasonLength))
            buffer.writeBytes(reasonBytes)
            buffer.writeRepeatingByte(0, count: reasonSize - 1 - reasonLength)
        }
    }
}

/// A list of 32-bit SSRCs read lazily from a packet.
public struct RTCPSSRCList: Sequence, Sendable {
    let bytes: ByteBuffer
    let start: Int
    /// Number of elements.
    public let count: Int

    public struct Iterator: IteratorProtocol, Sendable {
        let bytes: ByteBuffer
        var offset: Int
        var remaining: Int

        public mutating func next() -> UInt32? {
            guard self.remaining > 0 else { return nil }
            self.remaining -= 1
            defer { self.offset += 4 }
            return self.bytes.rtcpU32(self.offset)
        }
    }

    public func makeIterator() -> Iterator { Iterator(bytes: self.bytes, offset: self.start, remaining: self.count) }
    public var underestimatedCount: Int { self.count }
}
