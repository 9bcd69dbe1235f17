import BraidWire
import NIOCore
import Testing

/// Parsing of hand-built packets, checked field by field against RFC 3550 §5.1.
@Suite struct RTPPacketTests {
    @Test func minimalHeader() throws {
        let packet = try RTPPacket(
            rtpBuffer([
                0x80, 0x60, 0x12, 0x34,  // V=2, P=0, X=0, CC=0; M=0, PT=96; seq 0x1234
                0xDE, 0xAD, 0xBE, 0xEF,  // timestamp
                0x11, 0x22, 0x33, 0x44,  // SSRC
                0x01, 0x02, 0x03,  // payload
            ]))
        #expect(packet.version == 2)
        #expect(!packet.hasPadding)
        #expect(!packet.hasExtension)
        #expect(packet.csrcCount == 0)
        #expect(!packet.marker)
        #expect(packet.payloadType == 96)
        #expect(packet.sequenceNumber == 0x1234)
        #expect(packet.timestamp == 0xDEAD_BEEF)
        #expect(packet.ssrc == 0x1122_3344)
        #expect(packet.csrcs.isEmpty)
        #expect(packet.headerExtension == nil)
        #expect(packet.headerLength == 12)
        #expect(packet.length == 15)
        #expect(packet.paddingLength == 0)
        #expect(packet.payloadLength == 3)
        #expect(rtpBytes(packet.payload) == [1, 2, 3])
        #expect(
            packet.header
                == RTPHeader(payloadType: 96, sequenceNumber: 0x1234, timestamp: 0xDEAD_BEEF, ssrc: 0x1122_3344))
    }

    @Test func markerAndCSRCs() throws {
        let packet = try RTPPacket(
            rtpBuffer([
                0x82, 0xEF, 0xFF, 0xFF,  // CC=2; M=1, PT=111; seq 65535
                0x00, 0x00, 0x00, 0x01,
                0x00, 0x00, 0x00, 0x02,
                0xAA, 0xAA, 0xAA, 0xAA,  // CSRC 1
                0xBB, 0xBB, 0xBB, 0xBB,  // CSRC 2
                0xFE,
            ]))
        #expect(packet.marker)
        #expect(packet.payloadType == 111)
        #expect(packet.sequenceNumber == 65535)
        #expect(packet.csrcCount == 2)
        #expect(Array(packet.csrcs) == [0xAAAA_AAAA, 0xBBBB_BBBB])
        #expect(packet.headerLength == 20)
        #expect(rtpBytes(packet.payload) == [0xFE])
    }

    @Test func paddingIsExcludedFromPayload() throws {
        let packet = try RTPPacket(
            rtpBuffer([
                0xA0, 0x60, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,  // P=1
                0xAA, 0xBB,  // payload
                0x00, 0x00, 0x03,  // 3 bytes of padding, count last
            ]))
        #expect(packet.hasPadding)
        #expect(packet.paddingLength == 3)
        #expect(rtpBytes(packet.payload) == [0xAA, 0xBB])
    }

    @Test func paddingOnlyPacket() throws {
        let packet = try RTPPacket(rtpBuffer([0xA0, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]))
        #expect(packet.paddingLength == 4)
        #expect(packet.payloadLength == 0)
        #expect(packet.payload.readableBytes == 0)
    }

    @Test func opaqueExtensionProfile() throws {
        let packet = try RTPPacket(
            rtpBuffer([
                0x90, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
                0xAB, 0xCD, 0x00, 0x01,  // profile 0xABCD, 1 word
                0x01, 0x02, 0x03, 0x04,
                0x99,
            ]))
        let ext = try #require(packet.headerExtension)
        #expect(ext.profile == 0xABCD)
        #expect(ext.form == nil)
        #expect(ext.dataLength == 4)
        #expect(rtpBytes(ext.data) == [1, 2, 3, 4])
        #expect(Array(ext.elements).isEmpty)
        #expect(packet.headerLength == 20)
        #expect(rtpBytes(packet.payload) == [0x99])
    }

    @Test func parsesFromNonZeroReaderIndex() throws {
        var buffer = rtpBuffer([0xFF, 0xFF, 0x80, 0x08, 0, 7, 0, 0, 0, 9, 0, 0, 0, 5, 0x42])
        buffer.moveReaderIndex(forwardBy: 2)
        let packet = try RTPPacket(buffer)
        #expect(packet.payloadType == 8)
        #expect(packet.sequenceNumber == 7)
        #expect(packet.timestamp == 9)
        #expect(packet.ssrc == 5)
        #expect(rtpBytes(packet.payload) == [0x42])
        #expect(packet.payloadIndex == 14)
        #expect(rtpBytes(packet.bytes).count == 13)
    }

    @Test func truncatedFixedHeader() {
        for length in 0..<12 {
            expectWireError(.truncated) { () throws(WireError) in
                try RTPPacket(rtpBuffer(Array(repeating: 0x80, count: length)))
            }
        }
    }

    @Test func badVersions() {
        for version: UInt8 in [0, 1, 3] {
            expectWireError(.badVersion) { () throws(WireError) in
                try RTPPacket(rtpBuffer([version << 6, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]))
            }
        }
    }

    @Test func csrcsBeyondPacket() {
        // CC = 15 needs 72 header bytes.
        expectWireError(.truncated) { () throws(WireError) in
            try RTPPacket(rtpBuffer([0x8F, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0] + Array(repeating: 0, count: 56)))
        }
        #expect(throws: Never.self) {
            try RTPPacket(rtpBuffer([0x8F, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0] + Array(repeating: 0, count: 60)))
        }
    }

    @Test func extensionWordMissingOrOverrunning() {
        let header: [UInt8] = [0x90, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        expectWireError(.truncated) { () throws(WireError) in try RTPPacket(rtpBuffer(header)) }
        expectWireError(.truncated) { () throws(WireError) in try RTPPacket(rtpBuffer(header + [0xBE, 0xDE, 0])) }
        expectWireError(.truncated) { () throws(WireError) in
            try RTPPacket(rtpBuffer(header + [0xBE, 0xDE, 0, 2, 0x10, 0xFF, 0, 0]))
        }
        expectWireError(.truncated) { () throws(WireError) in
            try RTPPacket(rtpBuffer(header + [0x12, 0x34, 0xFF, 0xFF]))
        }
    }

    @Test func badPadding() {
        let header: [UInt8] = [0xA0, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        // Count 0.
        expectWireError(.badPadding) { () throws(WireError) in try RTPPacket(rtpBuffer(header + [1, 2, 0])) }
        // Count larger than the bytes after the header.
        expectWireError(.badPadding) { () throws(WireError) in try RTPPacket(rtpBuffer(header + [1, 2, 4])) }
        // P set on a header-only packet: the last byte belongs to the SSRC.
        expectWireError(.badPadding) { () throws(WireError) in
            try RTPPacket(rtpBuffer([0xA0, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]))
        }
        // Padding may not eat into a header extension.
        expectWireError(.badPadding) { () throws(WireError) in
            try RTPPacket(rtpBuffer([0xB0, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 1, 0x10, 1, 0, 0, 2]))
        }
    }

    @Test func csrcsCollectionIndexes() throws {
        var bytes: [UInt8] = [0x8F, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
        for index in 0..<15 { bytes += [0, 0, 0, UInt8(index)] }
        let packet = try RTPPacket(rtpBuffer(bytes))
        #expect(Array(packet.csrcs) == (0..<15).map { UInt32($0) })
        #expect(packet.csrcs[14] == 14)
        #expect(packet.payloadLength == 0)
    }
}
