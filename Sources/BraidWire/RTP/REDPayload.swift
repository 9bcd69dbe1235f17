public import NIOCore

/// A RED payload: redundant audio data ([RFC 2198 §3](https://www.rfc-editor.org/rfc/rfc2198#section-3)).
///
/// ```
///  0                   1                    2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |1|   block PT  |  timestamp offset         |   block length    |  one per redundant block
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |0|   block PT  |                                                  the primary's, last
/// +-+-+-+-+-+-+-+-+
/// | redundant block data ... (in header order) | primary data ...  |
/// ```
///
/// A redundant block's timestamp is the packet's minus the 14-bit offset; its length is 10 bits, so a
/// block is at most 1023 bytes and at most 16383 clock ticks old. The primary data is whatever follows
/// the redundant blocks. Parsing checks that every header and block lies inside the payload.
public struct REDPayload: Sendable {
    /// One block: its payload type, how far it lies behind the packet's timestamp, and its bytes (a slice
    /// of the parsed buffer).
    public struct Block: Sendable {
        /// Payload type of the block's encoding.
        public var payloadType: UInt8
        /// Timestamp offset behind the RTP timestamp (0 for the primary).
        public var timestampOffset: UInt16
        /// The block's data.
        public var data: ByteBuffer

        public init(payloadType: UInt8, timestampOffset: UInt16, data: ByteBuffer) {
            self.payloadType = payloadType
            self.timestampOffset = timestampOffset
            self.data = data
        }
    }

    /// Longest redundant block the header can describe.
    public static let maximumBlockLength = 0x3FF
    /// Largest timestamp offset the header can describe.
    public static let maximumTimestampOffset: UInt16 = 0x3FFF

    /// Redundant blocks, oldest first as senders write them (header order).
    public var redundant: [Block]
    /// The primary block (timestamp offset 0).
    public var primary: Block

    /// Parses the readable bytes of `payload`.
    /// - Throws: ``WireError`` when a header or a block runs past the end.
    public init(_ payload: ByteBuffer) throws(WireError) {
        var headers: [(payloadType: UInt8, offset: UInt16, length: Int)] = []
        var cursor = payload.readerIndex
        let end = payload.writerIndex
        while true {
            guard let first = payload.getInteger(at: cursor, as: UInt8.self) else {
                throw WireError(.truncated, "RED payload ends before its primary block header")
            }
            if first & 0x80 == 0 {
                cursor += 1
                break
            }
            guard let word = payload.getInteger(at: cursor, as: UInt32.self) else {
                throw WireError(.truncated, "RED redundant block header cut short")
            }
            headers.append((UInt8(word >> 24) & 0x7F, UInt16((word >> 10) & 0x3FFF), Int(word & 0x3FF)))
            cursor += 4
        }
        let primaryType = payload.getInteger(at: cursor - 1, as: UInt8.self)! & 0x7F
        var blocks: [Block] = []
        blocks.reserveCapacity(headers.count)
        for header in headers {
            guard let data = payload.getSlice(at: cursor, length: header.length) else {
                throw WireError(.badLength, "RED block of \(header.length) bytes runs past the payload")
            }
            blocks.append(Block(payloadType: header.payloadType, timestampOffset: header.offset, data: data))
            cursor += header.length
        }
        self.redundant = blocks
        self.primary = Block(
            payloadType: primaryType, timestampOffset: 0, data: payload.getSlice(at: cursor, length: end - cursor)!)
    }

    /// Writes a RED payload: `redundant` blocks (oldest first, each with its offset behind the packet's
    /// timestamp) and the primary. Blocks the header cannot describe (longer than
    /// ``maximumBlockLength``, offset 0 or above ``maximumTimestampOffset``) must be left out by the caller.
    /// Returns the bytes written. Nothing is allocated if `buffer` has room.
    @discardableResult
    public static func write(
        primaryPayloadType: UInt8, primary: ByteBuffer, redundant: some Collection<Block>, into buffer: inout ByteBuffer
    ) -> Int {
        var written = 0
        for block in redundant {
            written += buffer.writeInteger(
                Self.redundantHeader(
                    payloadType: block.payloadType, timestampOffset: block.timestampOffset,
                    length: block.data.readableBytes))
        }
        written += buffer.writeInteger(primaryPayloadType & 0x7F)
        for block in redundant { written += buffer.writeImmutableBuffer(block.data) }
        written += buffer.writeImmutableBuffer(primary)
        return written
    }

    /// Wraps the RTP packet in `buffer` (readable bytes; `headerLength` bytes of header, then its payload,
    /// no padding) in RED in place, with its payload as the only block: the one-byte primary header
    /// (F = 0, the media payload type) goes between header and payload, and the RTP header takes
    /// `redPayloadType`, marker kept. This is how video travels when ULPFEC repairs share its stream
    /// (RFC 5109 §9). Moves the payload by one byte; nothing is allocated if `buffer` has room.
    public static func wrapPrimaryOnly(_ buffer: inout ByteBuffer, headerLength: Int, redPayloadType: UInt8) {
        let length = buffer.readableBytes
        guard headerLength >= 12, headerLength <= length else { return }
        buffer.writeInteger(UInt8(0))
        buffer.withUnsafeMutableReadableBytes { bytes in
            let mediaPayloadType = bytes[1] & 0x7F
            let payload = bytes.baseAddress! + headerLength
            (payload + 1).copyMemory(from: payload, byteCount: length - headerLength)  // memmove: overlapping
            bytes[headerLength] = mediaPayloadType
            bytes[1] = bytes[1] & 0x80 | redPayloadType & 0x7F
        }
    }

    /// The 4-byte header of a redundant block (F = 1).
    @inlinable
    public static func redundantHeader(payloadType: UInt8, timestampOffset: UInt16, length: Int) -> UInt32 {
        precondition(
            length >= 0 && length <= Self.maximumBlockLength && timestampOffset <= Self.maximumTimestampOffset,
            "RED block out of range")
        return UInt32(0x8000_0000) | UInt32(payloadType & 0x7F) << 24 | UInt32(timestampOffset) << 10 | UInt32(length)
    }
}
