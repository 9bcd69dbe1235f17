import NIOCore

/// A validated, zero-copy view of one RTP packet.
///
/// [RFC 3550 §5.1](https://www.rfc-editor.org/rfc/rfc3550#section-5.1):
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|P|X|  CC   |M|     PT      |       sequence number         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                           timestamp                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           synchronization source (SSRC) identifier            |
/// +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
/// |            contributing source (CSRC) identifiers             |
/// |                             ....                              |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      defined by profile       |           length              |  (X = 1, §5.3.1)
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        header extension                       |
/// |                             ....                              |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                            payload                            |
/// |                             ....              +-+-+-+-+-+-+-+-+
/// |                                               | padding count |  (P = 1)
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// The initializer validates the whole structure once (version, lengths, padding and, for the
/// [RFC 8285](https://www.rfc-editor.org/rfc/rfc8285) profiles, every extension element) and records
/// offsets; the accessors then read fixed positions. Nothing is copied or allocated: ``payload`` and
/// extension values are `ByteBuffer` slices sharing the packet's storage.
///
/// The view also rewrites same-length fields in place (see `RTPPacket+Rewrite.swift`). Those mutate
/// ``buffer``; if the storage is shared with another `ByteBuffer` (for example a slice taken earlier)
/// the first write copies it, as for any `ByteBuffer`.
public struct RTPPacket: Sendable {
    /// The buffer holding the packet; the packet is its readable bytes at the time of parsing.
    @inlinable public var buffer: ByteBuffer { self.storage }
    @usableFromInline var storage: ByteBuffer

    /// Absolute index of the packet's first byte in ``buffer``.
    @usableFromInline let base: Int
    /// Total packet length in bytes, padding included.
    public let length: Int
    /// Bytes before the payload: fixed header, CSRCs and header extension.
    public let headerLength: Int
    /// Padding bytes at the end, the count byte included; 0 when the P bit is clear.
    public let paddingLength: Int
    /// Offset (from the packet start) of the extension's 4-byte profile/length word, or -1.
    @usableFromInline let extensionOffset: Int
    /// Length in bytes of the extension data that follows the profile/length word.
    @usableFromInline let extensionDataLength: Int

    /// Parses and validates the readable bytes of `buffer` as one RTP packet.
    ///
    /// - Throws: ``WireError`` with `.truncated` (shorter than its header), `.badVersion` (V ≠ 2),
    ///   `.badPadding` (pad count 0 or larger than the bytes after the header) or `.badExtension`
    ///   (an RFC 8285 element overruns its block).
    @inlinable
    public init(_ buffer: ByteBuffer) throws(WireError) {
        let base = buffer.readerIndex
        let length = buffer.readableBytes
        guard length >= 12, let first = buffer.getInteger(at: base, as: UInt8.self) else {
            throw WireError(.truncated, "RTP packet of \(length) bytes is shorter than the 12-byte fixed header")
        }
        guard first >> 6 == 2 else {
            throw WireError(.badVersion, "RTP version \(first >> 6), expected 2")
        }
        let csrcCount = Int(first & 0x0F)
        var headerLength = 12 + 4 * csrcCount
        guard headerLength <= length else {
            throw WireError(.truncated, "\(csrcCount) CSRCs need \(headerLength) bytes, packet has \(length)")
        }
        var extensionOffset = -1
        var extensionDataLength = 0
        if first & 0x10 != 0 {
            guard headerLength + 4 <= length,
                let (profile, words) = buffer.getMultipleIntegers(
                    at: base + headerLength, as: (UInt16, UInt16).self)
            else {
                throw WireError(.truncated, "header extension word missing after \(headerLength) header bytes")
            }
            extensionOffset = headerLength
            extensionDataLength = Int(words) * 4
            headerLength += 4 + extensionDataLength
            guard headerLength <= length else {
                throw WireError(
                    .truncated, "header extension of \(extensionDataLength) bytes overruns a \(length)-byte packet")
            }
            if let form = RTPHeaderExtension.Form(profile: profile) {
                // Walk every element once so iteration later can rely on the block being well formed.
                var cursor = base + extensionOffset + 4
                let end = cursor + extensionDataLength
                while try RTPHeaderExtension.nextElement(in: buffer, form: form, cursor: &cursor, end: end) != nil {}
            }
        }
        var paddingLength = 0
        if first & 0x20 != 0 {
            let count = Int(buffer.getInteger(at: base + length - 1, as: UInt8.self) ?? 0)
            guard count != 0 else {
                throw WireError(.badPadding, "P bit set but the padding count is 0")
            }
            guard count <= length - headerLength else {
                throw WireError(
                    .badPadding, "padding count \(count) exceeds the \(length - headerLength) bytes after the header")
            }
            paddingLength = count
        }
        self.storage = buffer
        self.base = base
        self.length = length
        self.headerLength = headerLength
        self.paddingLength = paddingLength
        self.extensionOffset = extensionOffset
        self.extensionDataLength = extensionDataLength
    }

    // Reads at offsets validated by the initializer; the `?? 0` fallbacks are never taken.
    @inlinable func byte(_ offset: Int) -> UInt8 { self.storage.getInteger(at: self.base + offset) ?? 0 }
    @inlinable func uint16(_ offset: Int) -> UInt16 { self.storage.getInteger(at: self.base + offset) ?? 0 }
    @inlinable func uint32(_ offset: Int) -> UInt32 { self.storage.getInteger(at: self.base + offset) ?? 0 }

    /// The version field; always 2 for a parsed packet.
    @inlinable public var version: UInt8 { self.byte(0) >> 6 }
    /// The P bit: the packet ends with ``paddingLength`` bytes of padding.
    @inlinable public var hasPadding: Bool { self.byte(0) & 0x20 != 0 }
    /// The X bit: a header extension follows the CSRCs.
    @inlinable public var hasExtension: Bool { self.byte(0) & 0x10 != 0 }
    /// The CC field: number of CSRC identifiers (0–15).
    @inlinable public var csrcCount: Int { Int(self.byte(0) & 0x0F) }
    /// The M bit; for video, the last packet of a frame.
    @inlinable public var marker: Bool { self.byte(1) & 0x80 != 0 }
    /// The payload type (0–127).
    @inlinable public var payloadType: UInt8 { self.byte(1) & 0x7F }
    /// The 16-bit sequence number.
    @inlinable public var sequenceNumber: UInt16 { self.uint16(2) }
    /// The media timestamp.
    @inlinable public var timestamp: UInt32 { self.uint32(4) }
    /// The synchronization source.
    @inlinable public var ssrc: UInt32 { self.uint32(8) }

    /// The contributing sources, read on demand without allocating.
    @inlinable public var csrcs: CSRCs { CSRCs(packet: self) }

    /// The header extension block, when the X bit is set.
    @inlinable public var headerExtension: RTPHeaderExtension? {
        guard self.extensionOffset >= 0 else { return nil }
        return RTPHeaderExtension(
            buffer: self.storage,
            profile: self.uint16(self.extensionOffset),
            packetBase: self.base,
            dataOffset: self.extensionOffset + 4,
            dataLength: self.extensionDataLength)
    }

    /// Number of payload bytes (padding excluded).
    @inlinable public var payloadLength: Int { self.length - self.headerLength - self.paddingLength }

    /// The payload as a slice sharing the packet's storage (padding excluded).
    @inlinable public var payload: ByteBuffer {
        self.storage.getSlice(at: self.base + self.headerLength, length: self.payloadLength) ?? ByteBuffer()
    }

    /// Absolute index of the first payload byte in ``buffer``.
    @inlinable public var payloadIndex: Int { self.base + self.headerLength }

    /// The whole packet as a slice of ``buffer``.
    @inlinable public var bytes: ByteBuffer {
        self.storage.getSlice(at: self.base, length: self.length) ?? ByteBuffer()
    }

    /// The element with local identifier `id` in an RFC 8285 header extension, if present.
    @inlinable public func `extension`(id: UInt8) -> RTPHeaderExtension.Element? {
        self.headerExtension?.element(id: id)
    }

    /// The contributing source identifiers of a packet, as a random-access collection.
    public struct CSRCs: RandomAccessCollection, Sendable {
        @usableFromInline let packet: RTPPacket
        @inlinable init(packet: RTPPacket) { self.packet = packet }
        @inlinable public var startIndex: Int { 0 }
        @inlinable public var endIndex: Int { self.packet.csrcCount }
        @inlinable public subscript(position: Int) -> UInt32 {
            precondition(position >= 0 && position < self.endIndex, "CSRC index out of range")
            return self.packet.uint32(12 + 4 * position)
        }
    }
}
