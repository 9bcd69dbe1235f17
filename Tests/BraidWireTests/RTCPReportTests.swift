import BraidWire
import NIOCore
import Testing

@Suite struct RTCPReportTests {
    // RR (one block, cumulative lost = -1) followed by SDES with CNAME "abcd": the usual compound a
    // receiver-only endpoint sends. Hand-assembled from RFC 3550 §6.4.2 and §6.5.
    static let receiverCompound = """
        81 C9 00 07  11 22 33 44
        55 66 77 88  40 FF FF FF  00 01 02 03  00 00 00 10  AA BB CC DD  00 01 00 00
        81 CA 00 03  11 22 33 44  01 04 61 62  63 64 00 00
        """

    static let block = RTCPReportBlock(
        ssrc: 0x5566_7788, fractionLost: 0x40, cumulativeLost: -1, extendedHighestSequenceNumber: 0x0001_0203,
        jitter: 0x10, lastSenderReport: 0xAABB_CCDD, delaySinceLastSenderReport: 0x0001_0000)

    @Test func parsesReceiverReportAndSDESCompound() throws {
        let compound = try RTCPCompoundPacket(rtcpHex(Self.receiverCompound))
        #expect(compound.count == 2)
        var packets = compound.makeIterator()
        guard case .receiverReport(let rr) = packets.next() else {
            Issue.record("first packet is not an RR")
            return
        }
        #expect(rr.senderSSRC == 0x1122_3344)
        #expect(Array(rr.reportBlocks) == [Self.block])
        guard case .sourceDescription(let sdes) = packets.next() else {
            Issue.record("second packet is not SDES")
            return
        }
        let chunks = Array(sdes.chunks)
        #expect(chunks.count == 1)
        #expect(chunks[0].ssrc == 0x1122_3344)
        let items = Array(chunks[0])
        #expect(items.count == 1)
        #expect(items[0].type == RTCPSourceDescription.ItemType.cname)
        #expect(String(buffer: items[0].value) == "abcd")
        #expect(packets.next() == nil)
    }

    @Test func buildsReceiverReportAndSDESCompoundByteExact() throws {
        var builder = RTCPCompoundBuilder(buffer: ByteBufferAllocator().buffer(capacity: 100))
        try builder.appendReceiverReport(senderSSRC: 0x1122_3344, reportBlocks: [Self.block])
        try builder.appendCNAME(ssrc: 0x1122_3344, cname: "abcd")
        #expect(builder.byteCount == 48)
        #expect(rtcpBytes(builder.finish()) == rtcpBytes(rtcpHex(Self.receiverCompound)))
    }

    @Test func senderReportByteExactAndRoundTrip() throws {
        let expected = rtcpHex(
            """
            81 C8 00 0C  DE AD BE EF  E1 23 45 67  89 AB CD EF  00 00 0F A0  00 00 00 0A  00 00 03 E8
            55 66 77 88  40 FF FF FF  00 01 02 03  00 00 00 10  AA BB CC DD  00 01 00 00
            """)
        var buffer = ByteBufferAllocator().buffer(capacity: 52)
        try RTCPSenderReport.write(
            senderSSRC: 0xDEAD_BEEF, ntpTimestamp: 0xE123_4567_89AB_CDEF, rtpTimestamp: 4000, packetCount: 10,
            octetCount: 1000, reportBlocks: [Self.block], into: &buffer)
        #expect(rtcpBytes(buffer) == rtcpBytes(expected))

        let sr = try RTCPSenderReport(buffer)
        #expect(sr.senderSSRC == 0xDEAD_BEEF)
        #expect(sr.ntpTimestamp == 0xE123_4567_89AB_CDEF)
        #expect(sr.rtpTimestamp == 4000)
        #expect(sr.packetCount == 10)
        #expect(sr.octetCount == 1000)
        #expect(Array(sr.reportBlocks) == [Self.block])
    }

    @Test func senderReportIgnoresProfileExtensions() throws {
        // SR without blocks plus 8 bytes of profile-specific extension.
        let sr = try RTCPSenderReport(
            rtcpHex("80 C8 00 08  00 00 00 01  00 00 00 02 00 00 00 03  00 00 00 04  00 00 00 05  00 00 00 06  CA FE BA BE  CA FE BA BE"))
        #expect(sr.ntpTimestamp == 0x0000_0002_0000_0003)
        #expect(Array(sr.reportBlocks).isEmpty)
        #expect(sr.octetCount == 6)
    }

    @Test func cumulativeLostIsSigned24Bit() throws {
        var blocks: [RTCPReportBlock] = []
        for lost: Int32 in [0, 1, -1, 0x7F_FFFF, -0x80_0000, 12_345_678, -9_000_000] {
            blocks.append(RTCPReportBlock(
                ssrc: 1, fractionLost: 0, cumulativeLost: lost, extendedHighestSequenceNumber: 0, jitter: 0,
                lastSenderReport: 0, delaySinceLastSenderReport: 0))
        }
        var buffer = ByteBufferAllocator().buffer(capacity: 200)
        try RTCPReceiverReport.write(senderSSRC: 9, reportBlocks: blocks, into: &buffer)
        let parsed = try RTCPReceiverReport(buffer).reportBlocks.map(\.cumulativeLost)
        // Out-of-range values clamp to the 24-bit limits instead of wrapping.
        #expect(parsed == [0, 1, -1, 0x7F_FFFF, -0x80_0000, 0x7F_FFFF, -0x80_0000])
        // -1 is encoded as 0xFFFFFF, -2^23 as 0x800000.
        #expect(buffer.getInteger(at: 8 + 24 * 2 + 4, as: UInt32.self) == 0x00FF_FFFF)
        #expect(buffer.getInteger(at: 8 + 24 * 4 + 4, as: UInt32.self) == 0x0080_0000)
    }

    @Test func sdesWithSeveralChunksAndItemsRoundTrips() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 400)
        let chunks: [(UInt32, [(UInt8, [UInt8])])] = [
            (7, [(1, Array("user@host".utf8)), (6, Array("braid".utf8))]),
            (8, []),
            (9, [(8, [1, 0x41]), (2, Array(repeating: 0x5A, count: 255))]),
        ]
        try RTCPSourceDescription.write(chunks: chunks, into: &buffer)
        #expect(buffer.readableBytes % 4 == 0)
        let sdes = try RTCPSourceDescription(buffer)
        #expect(sdes.header.count == 3)
        let parsed = sdes.chunks.map { chunk in (chunk.ssrc, chunk.map { ($0.type, rtcpBytes($0.value)) }) }
        #expect(parsed.count == 3)
        for (got, want) in zip(parsed, chunks) {
            #expect(got.0 == want.0)
            #expect(got.1.map(\.0) == want.1.map(\.0))
            #expect(got.1.map(\.1) == want.1.map(\.1))
        }
        // An empty chunk is SSRC + one word of END/padding.
        #expect(rtcpBytes(buffer)[28..<36] == [0, 0, 0, 8, 0, 0, 0, 0])
        #expect(buffer.readableBytes == 4 + 24 + 8 + 268)
    }

    @Test func goodbyeByteExactAndRoundTrip() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 16)
        try RTCPGoodbye.write(ssrcs: [0x0102_0304], reason: Array("done".utf8), into: &buffer)
        #expect(rtcpBytes(buffer) == rtcpBytes(rtcpHex("81 CB 00 03  01 02 03 04  04 64 6F 6E  65 00 00 00")))
        let bye = try RTCPGoodbye(buffer)
        #expect(Array(bye.ssrcs) == [0x0102_0304])
        #expect(bye.reason.map { String(buffer: $0) } == "done")

        var plain = ByteBufferAllocator().buffer(capacity: 12)
        try RTCPGoodbye.write(ssrcs: [1, 2], into: &plain)
        #expect(rtcpBytes(plain) == rtcpBytes(rtcpHex("82 CB 00 02  00 00 00 01  00 00 00 02")))
        let parsed = try RTCPGoodbye(plain)
        #expect(Array(parsed.ssrcs) == [1, 2])
        #expect(parsed.reason == nil)
    }

    @Test func compoundFramingErrors() {
        func code(_ text: String) -> WireError.Code? {
            do {
                _ = try RTCPCompoundPacket(rtcpHex(text))
                return nil
            } catch {
                return error.code
            }
        }
        #expect(code("") == .truncated)
        #expect(code("80 C9 00") == .truncated)
        // Version 1.
        #expect(code("40 C9 00 01 00 00 00 01") == .badVersion)
        // Length says 3 words, only 2 present.
        #expect(code("80 C9 00 02 00 00 00 01") == .truncated)
        // A valid RR followed by 3 stray bytes.
        #expect(code("80 C9 00 01 00 00 00 01 80 C9 00") == .truncated)
        // Padding bit on the first of two packets.
        #expect(code("A0 C9 00 01 00 00 00 04 80 C9 00 01 00 00 00 01") == .badPadding)
        // Padding count 0, and padding longer than the packet body.
        #expect(code("A0 C9 00 01 00 00 00 00") == .badPadding)
        #expect(code("A0 C9 00 01 00 00 00 05") == .badPadding)
        // A valid compound whose last packet is padded: the RR body loses its last 4 bytes.
        #expect(code("80 C9 00 01 00 00 00 01 A0 C9 00 02 00 00 00 07 00 00 00 04") == nil)
    }

    @Test func paddedLastPacketExposesBodyWithoutPadding() throws {
        // RR (sender 7) with 4 bytes of padding after its SSRC; with a NACK item that would be garbage.
        let compound = try RTCPCompoundPacket(rtcpHex("A0 C9 00 02 00 00 00 07 00 00 00 04"))
        guard case .receiverReport(let rr) = Array(compound).first else {
            Issue.record("expected an RR")
            return
        }
        #expect(rr.senderSSRC == 7)
        #expect(rr.reportBlocks.count == 0)
    }

    @Test func malformedBodiesAreReportedPerPacket() throws {
        // RR claiming one block with none present, then a good PLI.
        let compound = try RTCPCompoundPacket(
            rtcpHex("81 C9 00 01 00 00 00 01  81 CE 00 02 00 00 00 01 00 00 00 02"))
        let packets = Array(compound)
        #expect(packets.count == 2)
        guard case .malformed(let header, let error) = packets[0] else {
            Issue.record("expected a malformed RR")
            return
        }
        #expect(header.packetType == RTCPPacketType.receiverReport)
        #expect(error.code == .badLength)
        guard case .pictureLossIndication(let pli) = packets[1] else {
            Issue.record("expected a PLI")
            return
        }
        #expect(pli.mediaSSRC == 2)
    }

    @Test func malformedSDESAndBYE() {
        func sdesCode(_ text: String) -> WireError.Code? {
            do {
                _ = try RTCPSourceDescription(rtcpHex(text))
                return nil
            } catch { return error.code }
        }
        // Item length 9 runs past the packet.
        #expect(sdesCode("81 CA 00 03 00 00 00 01 01 09 61 62 63 64 00 00") == .badLength)
        // No END octet before the packet ends.
        #expect(sdesCode("81 CA 00 02 00 00 00 01 01 02 61 62") == .truncated)
        // SC = 2 with one chunk.
        #expect(sdesCode("82 CA 00 02 00 00 00 01 00 00 00 00") == .truncated)
        // Non-zero padding after END.
        #expect(sdesCode("81 CA 00 02 00 00 00 01 00 00 07 00") == .badPadding)
        // A whole extra word after the chunks.
        #expect(sdesCode("81 CA 00 03 00 00 00 01 00 00 00 00 00 00 00 00") == .trailingBytes)
        #expect(sdesCode("81 CA 00 02 00 00 00 01 00 00 00 00") == nil)

        #expect(throws: WireError.self) { _ = try RTCPGoodbye(rtcpHex("82 CB 00 01 00 00 00 01")) }
        // Reason length 8 with 3 bytes left.
        let error = #expect(throws: WireError.self) { _ = try RTCPGoodbye(rtcpHex("81 CB 00 02 00 00 00 01 08 61 62 63")) }
        #expect(error?.code == .badLength)
        // Wrong packet type for the view.
        let typeError = #expect(throws: WireError.self) { _ = try RTCPSenderReport(rtcpHex("80 C9 00 01 00 00 00 01")) }
        #expect(typeError?.code == .unsupportedType)
    }

    @Test func unknownTypesAreYieldedNotFatal() throws {
        // APP (PT 204, subtype 3, name "TEST", 4 bytes data), then an XR, then a PSFB FMT 15 that is not REMB.
        let compound = try RTCPCompoundPacket(
            rtcpHex(
                """
                83 CC 00 03 00 00 00 09 54 45 53 54 01 02 03 04
                80 CF 00 01 00 00 00 09
                8F CE 00 03 00 00 00 01 00 00 00 00 41 42 43 44
                """))
        let packets = Array(compound)
        #expect(packets.count == 3)
        guard case .unknown(let app) = packets[0], case .unknown(let xr) = packets[1],
            case .unknown(let afb) = packets[2]
        else {
            Issue.record("expected three unknown packets")
            return
        }
        #expect(app.packetType == RTCPPacketType.application)
        #expect(app.header.count == 3)
        #expect(rtcpBytes(app.body) == [0, 0, 0, 9, 0x54, 0x45, 0x53, 0x54, 1, 2, 3, 4])
        #expect(xr.packetType == RTCPPacketType.extendedReport)
        #expect(afb.body.readableBytes == 12)
    }

    @Test func buildersNeverGrowTheBuffer() throws {
        var small = ByteBufferAllocator().buffer(capacity: 16)
        let capacity = small.capacity
        let error = #expect(throws: WireError.self) {
            try RTCPReceiverReport.write(senderSSRC: 1, reportBlocks: [Self.block], into: &small)
        }
        #expect(error?.code == .badLength)
        #expect(small.writerIndex == 0)
        #expect(small.capacity == capacity)

        // The compound builder leaves earlier packets intact when a later one does not fit.
        var builder = RTCPCompoundBuilder(buffer: ByteBufferAllocator().buffer(capacity: 20))
        let fits = builder.buffer.capacity / RTCPPictureLossIndication.size
        for index in 0..<fits { try builder.appendPictureLossIndication(senderSSRC: UInt32(index), mediaSSRC: 2) }
        #expect(throws: WireError.self) { try builder.appendPictureLossIndication(senderSSRC: 3, mediaSSRC: 4) }
        #expect(builder.byteCount == fits * RTCPPictureLossIndication.size)
        #expect(try RTCPCompoundPacket(builder.finish()).count == fits)
    }

    @Test func compoundWithEveryTypeRoundTrips() throws {
        var builder = RTCPCompoundBuilder(buffer: ByteBufferAllocator().buffer(capacity: 1200))
        try builder.appendSenderReport(
            senderSSRC: 1, ntpTimestamp: 2, rtpTimestamp: 3, packetCount: 4, octetCount: 5, reportBlocks: [Self.block])
        try builder.appendCNAME(ssrc: 1, cname: "cname")
        try builder.appendGenericNACK(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: [5, 6, 40])
        try builder.appendPictureLossIndication(senderSSRC: 1, mediaSSRC: 2)
        try builder.appendFullIntraRequest(senderSSRC: 1, entries: [.init(ssrc: 2, sequenceNumber: 9)])
        try builder.appendREMB(senderSSRC: 1, bitrate: 2_500_000, ssrcs: [2, 3])
        try builder.appendTransportWideFeedback(
            senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 100, feedbackPacketCount: 0,
            arrivals: [1_000_000, nil, 1_002_000])
        try builder.appendGoodbye(ssrcs: [1])
        let compound = try RTCPCompoundPacket(builder.finish())
        let kinds = compound.map { packet -> String in
            switch packet {
            case .senderReport: "SR"
            case .receiverReport: "RR"
            case .sourceDescription: "SDES"
            case .goodbye: "BYE"
            case .genericNACK: "NACK"
            case .transportWideFeedback: "TWCC"
            case .pictureLossIndication: "PLI"
            case .fullIntraRequest: "FIR"
            case .receiverEstimatedMaximumBitrate: "REMB"
            case .unknown: "unknown"
            case .malformed: "malformed"
            }
        }
        #expect(kinds == ["SR", "SDES", "NACK", "PLI", "FIR", "REMB", "TWCC", "BYE"])
    }
}
