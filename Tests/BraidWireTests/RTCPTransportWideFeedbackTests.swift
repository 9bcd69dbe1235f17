import BraidWire
import NIOCore
import Testing

@Suite struct RTCPTransportWideFeedbackTests {
    typealias TWCC = RTCPTransportWideFeedback

    /// A feedback packet in the shape Chromium sends, assembled by hand: base sequence 65533 (so the
    /// numbers wrap), 20 statuses, reference time 0x123456, feedback count 7, then
    ///   chunk 0x2003  run length, symbol 1 (small delta), run 3
    ///   chunk 0xE190  two-bit vector: large, lost, small, large, small, lost, lost
    ///   chunk 0xAC10  one-bit vector: 1 0 1 1 0 0 0 0 0 1 (0 0 0 0 unused, beyond the status count)
    /// then 13 delta bytes (one of them 0x0FA0 = +1 s, one 0xFF38 = -50 ms) and one zero pad byte.
    static let captured = """
        8F CD 00 09  01 02 03 04  05 06 07 08
        FF FD 00 14  12 34 56 07
        20 03 E1 90  AC 10
        04 00 FF 0F A0 01 FF 38 28 02 03 04 05  00
        """

    /// (sequence number, arrival µs after the reference time or nil) for ``captured``.
    static let capturedStatuses: [(UInt16, Int64?)] = [
        (65533, 1000), (65534, 1000), (65535, 64750),
        (0, 1_064_750), (1, nil), (2, 1_065_000), (3, 1_015_000), (4, 1_025_000), (5, nil), (6, nil),
        (7, 1_025_500), (8, nil), (9, 1_026_250), (10, 1_027_250), (11, nil), (12, nil), (13, nil),
        (14, nil), (15, nil), (16, 1_028_500),
    ]

    @Test func parsesCapturedFeedback() throws {
        let compound = try RTCPCompoundPacket(rtcpHex(Self.captured))
        guard case .transportWideFeedback(let feedback) = Array(compound).first else {
            Issue.record("not parsed as TWCC")
            return
        }
        #expect(feedback.senderSSRC == 0x0102_0304)
        #expect(feedback.mediaSSRC == 0x0506_0708)
        #expect(feedback.baseSequenceNumber == 65533)
        #expect(feedback.packetStatusCount == 20)
        #expect(feedback.referenceTime == 0x12_3456)
        #expect(feedback.referenceTimeMicroseconds == 0x12_3456 * 64_000)
        #expect(feedback.feedbackPacketCount == 7)
        let statuses = Array(feedback.packets)
        #expect(statuses.map(\.sequenceNumber) == Self.capturedStatuses.map(\.0))
        #expect(statuses.map(\.arrivalOffset) == Self.capturedStatuses.map(\.1))
        #expect(statuses[3].status == .receivedLargeDelta)
        #expect(statuses[6].status == .receivedLargeDelta)
        #expect(statuses[5].status == .receivedSmallDelta)
        #expect(statuses[4].status == .notReceived)
    }

    @Test func rebuildingCapturedFeedbackKeepsEveryValue() throws {
        let original = try TWCC(rtcpHex(Self.captured))
        let base = original.referenceTimeMicroseconds
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        let result = try TWCC.write(
            senderSSRC: 0x0102_0304, mediaSSRC: 0x0506_0708, baseSequenceNumber: 65533,
            referenceTime: Int64(original.referenceTime), feedbackPacketCount: 7,
            arrivals: Self.capturedStatuses.map { $0.1.map { base + $0 } }, into: &buffer)
        #expect(result.packetCount == 20)
        #expect(result.stopReason == .complete)
        #expect(result.byteCount == buffer.readableBytes)
        let rebuilt = try TWCC(buffer)
        #expect(Array(rebuilt.packets) == Array(original.packets))
        #expect(rebuilt.referenceTime == original.referenceTime)
    }

    @Test func negativeReferenceTimeIsSignExtended() throws {
        let feedback = try TWCC(rtcpHex("8F CD 00 05 00 00 00 01 00 00 00 02 00 05 00 01 FF FF FE 00 20 01 01 00"))
        #expect(feedback.referenceTime == -2)
        #expect(feedback.referenceTimeMicroseconds == -128_000)
        #expect(Array(feedback.packets) == [.init(sequenceNumber: 5, status: .receivedSmallDelta, arrivalOffset: 250)])
    }

    @Test func buildsTwoBitVectorByteExact() throws {
        // Received +2 ticks, lost, +400 ticks (large), -1 tick (large): symbols 1 0 2 2 in one two-bit
        // vector 0b11_01_00_10_10_00_00_00 = 0xD280; deltas 02, 01 90, FF FF; one pad byte.
        var buffer = ByteBufferAllocator().buffer(capacity: 28)
        let base: Int64 = 64_000
        let result = try TWCC.write(
            senderSSRC: 0x0102_0304, mediaSSRC: 0x0506_0708, baseSequenceNumber: 10, referenceTime: 1,
            feedbackPacketCount: 42, arrivals: [base + 500, nil, base + 100_500, base + 100_250], into: &buffer)
        #expect(result.packetCount == 4)
        #expect(result.stopReason == .complete)
        #expect(result.referenceTime == 1)
        #expect(result.byteCount == 28)
        #expect(
            rtcpBytes(buffer)
                == rtcpBytes(rtcpHex("8F CD 00 06 01 02 03 04 05 06 07 08 00 0A 00 04 00 00 01 2A D2 80 02 01 90 FF FF 00")))
    }

    @Test func buildsOneBitVectorAndRunLengthChunks() throws {
        // 14 packets alternating received/lost fit one one-bit vector: 1010 1010 1010 10 → 0xAAAA.
        var vector = ByteBufferAllocator().buffer(capacity: 64)
        let alternating: [Int64?] = (0..<14).map { $0 % 2 == 0 ? Int64($0) * 1000 : nil }
        try TWCC.write(
            senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 0, referenceTime: 0, feedbackPacketCount: 0,
            arrivals: alternating, into: &vector)
        #expect(vector.getInteger(at: 20, as: UInt16.self) == 0xAAAA)
        #expect(vector.readableBytes == 20 + 2 + 7 + 3)

        // 20 small deltas then 9000 lost: run(1, 20), run(0, 8191), run(0, 809).
        var runs = ByteBufferAllocator().buffer(capacity: 128)
        let arrivals: [Int64?] = (0..<20).map { Int64($0 + 1) * 250 } + Array(repeating: nil, count: 9000)
        let result = try TWCC.write(
            senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 65000, referenceTime: 0, feedbackPacketCount: 0,
            arrivals: arrivals, into: &runs)
        #expect(result.packetCount == 9020)
        #expect(runs.getInteger(at: 20, as: UInt16.self) == 0x2014)
        #expect(runs.getInteger(at: 22, as: UInt16.self) == 0x1FFF)
        #expect(runs.getInteger(at: 24, as: UInt16.self) == 809)
        #expect(runs.readableBytes == 48)
        let parsed = Array(try TWCC(runs).packets)
        #expect(parsed.count == 9020)
        #expect(parsed.last?.sequenceNumber == UInt16(truncatingIfNeeded: 65000 + 9019))
        #expect(parsed.prefix(20).map(\.arrivalOffset) == arrivals.prefix(20).map { $0 })
        #expect(parsed.dropFirst(20).allSatisfy { $0.status == .notReceived })
    }

    @Test func roundedDeltasAccumulateWithoutDrift() throws {
        // 1.1 ms spacing is 4.4 ticks: rounding each gap on its own would lose 0.4 tick per packet.
        let arrivals: [Int64?] = (0..<300).map { 5_000_000 + Int64($0) * 1100 }
        var buffer = ByteBufferAllocator().buffer(capacity: 1500)
        let result = try TWCC.write(
            senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 0, feedbackPacketCount: 0, arrivals: arrivals, into: &buffer)
        #expect(result.packetCount == 300)
        // The reference time is the first arrival rounded down to 64 ms.
        #expect(result.referenceTime == 5_000_000 / 64_000)
        let feedback = try TWCC(buffer)
        for (status, arrival) in zip(feedback.packets, arrivals) {
            let offset = try #require(status.arrivalOffset)
            #expect(abs(feedback.referenceTimeMicroseconds + offset - arrival!) <= 125)
        }
    }

    @Test func stopsAtOutOfRangeDeltaAndWhenFull() throws {
        // +9 s does not fit 16 signed ticks: the builder stops so the caller starts a new packet there.
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        let result = try TWCC.write(
            senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 7, feedbackPacketCount: 0,
            arrivals: [1_000, 2_000, 9_002_000, 9_003_000], into: &buffer)
        #expect(result.packetCount == 2)
        #expect(result.stopReason == .deltaOutOfRange)
        #expect(try TWCC(buffer).packetStatusCount == 2)

        // -8.2 s is out of range too; -8.19 s is the most negative delta that fits.
        var negative = ByteBufferAllocator().buffer(capacity: 64)
        let fits = try TWCC.write(
            senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 0, referenceTime: 200, feedbackPacketCount: 0,
            arrivals: [12_800_000, 12_800_000 - 8_191_750, 12_800_000 - 8_191_750 - 8_200_000], into: &negative)
        #expect(fits.packetCount == 2)
        #expect(fits.stopReason == .deltaOutOfRange)
        #expect(Array(try TWCC(negative).packets).map(\.arrivalOffset) == [0, -8_191_750])

        // A size cap: 20 fixed bytes + 2 per chunk + deltas, padded; 24 bytes leave room for one chunk
        // and two small deltas.
        var capped = ByteBufferAllocator().buffer(capacity: 64)
        let full = try TWCC.write(
            senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 0, referenceTime: 0, feedbackPacketCount: 0,
            arrivals: [250, 500, 750, 1000], maxPacketSize: 24, into: &capped)
        #expect(full.packetCount == 2)
        #expect(full.stopReason == .full)
        #expect(capped.readableBytes == 24)

        // 70000 lost packets exceed the 16-bit status count.
        var many = ByteBufferAllocator().buffer(capacity: 128)
        let limited = try TWCC.write(
            senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 0, referenceTime: 0, feedbackPacketCount: 0,
            arrivals: [Int64?](repeating: nil, count: 70000), into: &many)
        #expect(limited.packetCount == 65535)
        #expect(limited.stopReason == .statusCountLimit)
        #expect(try TWCC(many).packets.reduce(0) { count, _ in count + 1 } == 65535)
    }

    @Test func builderErrors() {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        let empty = #expect(throws: WireError.self) {
            try TWCC.write(senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 0, feedbackPacketCount: 0, arrivals: [Int64?](), into: &buffer)
        }
        #expect(empty?.code == .badValue)
        let far = #expect(throws: WireError.self) {
            try TWCC.write(
                senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 0, referenceTime: 0, feedbackPacketCount: 0,
                arrivals: [Int64.max], into: &buffer)
        }
        #expect(far?.code == .badValue)
        var tiny = ByteBufferAllocator().buffer(capacity: 8)
        let small = #expect(throws: WireError.self) {
            try TWCC.write(senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 0, feedbackPacketCount: 0, arrivals: [0], into: &tiny)
        }
        #expect(small?.code == .badLength)
        #expect(buffer.writerIndex == 0)
        #expect(tiny.writerIndex == 0)
    }

    @Test func malformedFeedback() {
        func code(_ text: String) -> WireError.Code? {
            do {
                _ = try TWCC(rtcpHex(text))
                return nil
            } catch { return error.code }
        }
        let head = "8F CD 00 05 00 00 00 01 00 00 00 02"
        // Baseline: one packet, run(1,1), one delta byte, two pad bytes.
        #expect(code("\(head) 00 00 00 01 00 00 00 00 20 01 05 00") == nil)
        // Status count 0.
        #expect(code("\(head) 00 00 00 00 00 00 00 00 20 01 05 00") == .badValue)
        // Status count 3 but the chunk covers 1 and no room for another chunk... the next "chunk" is the
        // delta byte plus padding (0x0500: run of 1280 lost), whose coverage leaves no bytes for deltas.
        #expect(code("\(head) 00 00 00 03 00 00 00 00 20 01 05 00") == .badLength)
        // Run-length with the reserved symbol 3, and with run 0.
        #expect(code("\(head) 00 00 00 01 00 00 00 00 60 01 05 00") == .badValue)
        #expect(code("\(head) 00 00 00 01 00 00 00 00 20 00 05 00") == .badValue)
        // Two-bit vector whose first symbol is 3.
        #expect(code("\(head) 00 00 00 01 00 00 00 00 F0 00 05 00") == .badValue)
        // Run of 3 large deltas needs 6 bytes; 2 remain.
        #expect(code("\(head) 00 00 00 03 00 00 00 00 40 03 05 00") == .badLength)
        // Too short for the fixed fields.
        #expect(code("8F CD 00 03 00 00 00 01 00 00 00 02 00 00 00 01") == .badLength)
        // A whole word after the deltas.
        #expect(code("8F CD 00 06 00 00 00 01 00 00 00 02 00 00 00 01 00 00 00 00 20 01 05 00 00 00 00 00") == .trailingBytes)
        // A vector's first symbol is reserved (3); symbols beyond the status count are neither checked
        // nor given deltas.
        #expect(code("\(head) 00 00 00 01 00 00 00 00 FF FC 05 00") == .badValue)
        #expect(code("\(head) 00 00 00 01 00 00 00 00 DF FC 05 00") == nil)
    }
}
