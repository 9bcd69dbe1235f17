import BraidWire
import NIOCore
import Testing

@Suite struct REDPayloadTests {
    /// RFC 2198 §3's example packet: one redundant LPC block (PT 7, 14 bytes) and a DVI4 primary (PT 5,
    /// 84 bytes). The RFC's figure gives no offset value; 160 (one 20 ms frame at 8 kHz) is used here.
    static let lpc = [UInt8](repeating: 0x4C, count: 14)
    static let dvi4 = [UInt8](repeating: 0xD4, count: 84)
    static var example: [UInt8] {
        let header = UInt32(0x8000_0000) | 7 << 24 | 160 << 10 | 14
        return [UInt8(header >> 24), UInt8(header >> 16 & 0xFF), UInt8(header >> 8 & 0xFF), UInt8(header & 0xFF), 5]
            + Self.lpc + Self.dvi4
    }

    @Test func parsesTheRFCExample() throws {
        let payload = try REDPayload(ByteBuffer(bytes: Self.example))
        #expect(payload.redundant.count == 1)
        let block = try #require(payload.redundant.first)
        #expect(block.payloadType == 7)
        #expect(block.timestampOffset == 160)
        #expect(Array(block.data.readableBytesView) == Self.lpc)
        #expect(payload.primary.payloadType == 5)
        #expect(payload.primary.timestampOffset == 0)
        #expect(Array(payload.primary.data.readableBytesView) == Self.dvi4)
    }

    @Test func writesWhatItParses() throws {
        let blocks = [
            REDPayload.Block(payloadType: 111, timestampOffset: 1920, data: ByteBuffer(bytes: [1, 2, 3])),
            REDPayload.Block(payloadType: 111, timestampOffset: 960, data: ByteBuffer(bytes: [])),
            REDPayload.Block(payloadType: 111, timestampOffset: 0x3FFF, data: ByteBuffer(bytes: [UInt8](repeating: 9, count: 1023))),
        ]
        var buffer = ByteBuffer()
        let written = REDPayload.write(
            primaryPayloadType: 111, primary: ByteBuffer(bytes: [7, 7]), redundant: blocks, into: &buffer)
        #expect(written == buffer.readableBytes)
        #expect(written == 3 * 4 + 1 + 3 + 0 + 1023 + 2)
        let parsed = try REDPayload(buffer)
        #expect(parsed.redundant.map(\.timestampOffset) == [1920, 960, 0x3FFF])
        #expect(parsed.redundant.map(\.data.readableBytes) == [3, 0, 1023])
        #expect(Array(parsed.primary.data.readableBytesView) == [7, 7])
        // The RFC example round-trips byte for byte.
        let example = try REDPayload(ByteBuffer(bytes: Self.example))
        var rewritten = ByteBuffer()
        REDPayload.write(
            primaryPayloadType: example.primary.payloadType, primary: example.primary.data,
            redundant: example.redundant, into: &rewritten)
        #expect(Array(rewritten.readableBytesView) == Self.example)
    }

    /// Every prefix of a valid payload either parses (the cut falls inside the primary data) or throws.
    @Test func aPacketWrappedAsTheOnlyBlockKeepsItsHeaderAndMarker() throws {
        // Header with one extension word (16 bytes), marker set, PT 96, then a three-byte payload.
        var bytes: [UInt8] = [0x90, 0xE0, 0x00, 0x07, 0, 0, 0, 9, 0, 0, 0, 1, 0xBE, 0xDE, 0x00, 0x01]
        bytes += [0x10, 0xAB, 0x00, 0x00, 0x01, 0x02, 0x03]
        var buffer = ByteBuffer(bytes: bytes)
        REDPayload.wrapPrimaryOnly(&buffer, headerLength: 20, redPayloadType: 116)
        var expected = bytes
        expected[1] = 0x80 | 116
        expected.insert(96, at: 20)  // F = 0, block PT 96
        #expect(Array(buffer.readableBytesView) == expected)
        let packet = try RTPPacket(buffer)
        let red = try REDPayload(packet.payload)
        #expect(red.redundant.isEmpty && red.primary.payloadType == 96)
        #expect(Array(red.primary.data.readableBytesView) == [1, 2, 3])
    }

    @Test func truncatedPayloadsAreRefusedNotTrapped() throws {
        let full = Self.example
        for length in 0..<full.count {
            let prefix = ByteBuffer(bytes: full.prefix(length))
            if length >= 4 + 1 + 14 {
                let parsed = try REDPayload(prefix)
                #expect(parsed.primary.data.readableBytes == length - 19)
            } else {
                #expect(throws: WireError.self) { try REDPayload(prefix) }
            }
        }
        // A block length pointing past the end.
        #expect(throws: WireError.self) { try REDPayload(ByteBuffer(bytes: [0x80 | 111, 0, 0, 0xFF, 111, 1, 2])) }
        // Only F = 1 headers, no primary header.
        #expect(throws: WireError.self) { try REDPayload(ByteBuffer(bytes: [0x80 | 111, 0, 0, 0])) }
    }
}
