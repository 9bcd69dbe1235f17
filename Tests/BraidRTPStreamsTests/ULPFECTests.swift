import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@Suite struct ULPFECTests {
    static let ssrc = FlexFECTests.ssrc

    static func encoder(capacity: Int = 16) -> ULPFECEncoder {
        ULPFECEncoder(capacity: capacity, maximumPacketSize: 1500, mutableExtensionIDs: (2, 3, 0))
    }

    @Test func headerLayoutFollowsRFC5109() throws {
        // Short mask (L = 0): packets SN base + 0 and + 2.
        let short = ULPFECHeader(
            recoveryBytes: 0x1234, sequenceNumberBase: 0x0102, timestampRecovery: 0xA0B0_C0D0, lengthRecovery: 0x10,
            protectionLength: 0x20, mask: 0b101)
        var buffer = ByteBuffer()
        short.write(into: &buffer)
        #expect(
            Array(buffer.readableBytesView) == [
                0x12, 0x34, 0x01, 0x02, 0xA0, 0xB0, 0xC0, 0xD0, 0x00, 0x10, 0x00, 0x20, 0b1010_0000, 0x00,
            ])
        #expect(short.length == 14)
        // Long mask (L = 1, the second bit of byte 0): offset 20 is bit 4 of the third mask byte; the
        // recovery bits keep E and L clear whatever was XORed into them.
        let long = ULPFECHeader(
            recoveryBytes: 0xFFFF, sequenceNumberBase: 9, timestampRecovery: 0, lengthRecovery: 0, protectionLength: 0,
            mask: 1 << 20 | 1)
        buffer.clear()
        long.write(into: &buffer)
        #expect(
            Array(buffer.readableBytesView) == [
                0x7F, 0xFF, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x00, 0x08, 0x00, 0x00, 0x00,
            ])
        #expect(long.length == 18)
        #expect(long.offsets == [0, 20])
        #expect(try ULPFECHeader(buffer) == long)
    }

    @Test func malformedHeadersAreRefused() {
        func parse(_ bytes: [UInt8]) -> Bool { (try? ULPFECHeader(ByteBuffer(bytes: bytes))) != nil }
        let valid: [UInt8] = [0, 0x60, 0, 1, 0, 0, 0, 0, 0, 2, 0, 2, 0x80, 0, 0xAA, 0xBB]
        #expect(parse(valid))
        #expect(!parse(Array(valid.prefix(13))))  // shorter than the header
        #expect(!parse(Array(valid.prefix(15))))  // protection length beyond the payload
        var extended = valid
        extended[0] |= 0x80  // E bit
        #expect(!parse(extended))
        var empty = valid
        empty[12] = 0  // mask protects nothing
        #expect(!parse(empty))
        var long = valid
        long[0] |= 0x40  // L = 1 needs four more mask bytes
        #expect(!parse(long))
    }

    /// Two packets XORed by hand into the repair the encoder must write (RFC 5109 §7.3, §8).
    @Test func aRepairIsTheXOROfItsPacketsByHand() throws {
        let a: [UInt8] = [0x80, 0x60, 0x00, 0x0A, 0x00, 0x00, 0x10, 0x00, 0x12, 0x34, 0x56, 0x78, 0xAA, 0xBB, 0xCC]
        let b: [UInt8] = [0x80, 0xE0, 0x00, 0x0C, 0x00, 0x00, 0x10, 0x01, 0x12, 0x34, 0x56, 0x78, 0x0F]
        var encoder = ULPFECEncoder(capacity: 4, maximumPacketSize: 1500)
        encoder.add(ByteBuffer(bytes: a), sequenceNumber: 10)
        encoder.add(ByteBuffer(bytes: b), sequenceNumber: 12)  // 11 was a repair
        var repair = ByteBuffer()
        #expect(encoder.writeRepair(span: 2, into: &repair))
        #expect(
            Array(repair.readableBytesView) == [
                0x00, 0x80,  // (0x80 ^ 0x80) & 0x3F, 0x60 ^ 0xE0
                0x00, 0x0A,  // SN base
                0x00, 0x00, 0x00, 0x01,  // 0x1000 ^ 0x1001
                0x00, 0x02,  // length recovery: 3 ^ 1
                0x00, 0x03,  // protection length: the longest payload
                0b1010_0000, 0x00,  // offsets 0 and 2
                0xAA ^ 0x0F, 0xBB, 0xCC,
            ])
        // Packet 12 lost: the repair and packet 10 give it back.
        var decoder = ULPFECDecoder(ssrc: 0x1234_5678)
        decoder.received(ByteBuffer(bytes: a), sequenceNumber: 10)
        let result = decoder.repairReceived(repair)
        let rebuilt = try #require(result)
        #expect(Array(rebuilt.readableBytesView) == b)
    }

    @Test func everySingleLossOfARunWithGapsIsRebuiltByteForByte() throws {
        for span in [1, 2, 4, 10, 24] {
            for lostIndex in 0..<span {
                var encoder = Self.encoder(capacity: 48)
                var decoder = ULPFECDecoder(ssrc: Self.ssrc)
                var number: UInt16 = 65_520  // crosses the wrap
                var sent: [UInt16: ByteBuffer] = [:]
                for index in 0..<span {
                    let packet = FlexFECTests.packet(number, seed: UInt64(span * 100 + index))
                    encoder.add(packet, sequenceNumber: number)
                    sent[number] = packet
                    if index != lostIndex { decoder.received(FlexFECTests.zeroed(packet), sequenceNumber: number) }
                    number &+= index % 3 == 2 ? 2 : 1  // a repair of the stream took a number now and then
                }
                var repair = ByteBuffer()
                #expect(encoder.writeRepair(span: span, into: &repair))
                let header = try ULPFECHeader(repair)
                #expect(header.offsets.count == span)
                let result = decoder.repairReceived(repair)
                let rebuilt = try #require(result, "span \(span), lost \(lostIndex)")
                let lost = try RTPPacket(rebuilt).sequenceNumber
                #expect(rebuilt == FlexFECTests.zeroed(try #require(sent[lost])))
            }
        }
    }

    @Test func aRunSpreadBeyondTheMaskIsCutAndALongGapEndsIt() throws {
        var encoder = Self.encoder(capacity: 48)
        for index in 0..<30 { encoder.add(FlexFECTests.packet(UInt16(index * 2), seed: 1), sequenceNumber: UInt16(index * 2)) }
        var repair = ByteBuffer()
        #expect(encoder.writeRepair(span: 30, into: &repair))
        let header = try ULPFECHeader(repair)
        // 24 packets two numbers apart fit in 48 numbers (offsets 0...46); the oldest six do not.
        #expect(header.offsets == Array(stride(from: 0, through: 46, by: 2)))
        #expect(header.sequenceNumberBase == 12)
        #expect(header.length == 18)
        // A gap of more than four numbers starts a new run.
        encoder.add(FlexFECTests.packet(100, seed: 1), sequenceNumber: 100)
        #expect(encoder.count == 1)
        repair.clear()
        #expect(encoder.writeRepair(span: 4, into: &repair))
        #expect(try ULPFECHeader(repair).offsets == [0])
    }

    @Test func forgedRepairsAreCountedAndNeverInventAPacket() {
        var decoder = ULPFECDecoder(ssrc: Self.ssrc)
        decoder.received(FlexFECTests.packet(1, seed: 3), sequenceNumber: 1)
        // Claims packet 1 and 2 with a protection length shorter than packet 1's payload.
        var forged = ByteBuffer()
        ULPFECHeader(
            recoveryBytes: 0, sequenceNumberBase: 1, timestampRecovery: 0, lengthRecovery: 4, protectionLength: 4,
            mask: 0b11
        ).write(into: &forged)
        forged.writeBytes([1, 2, 3, 4])
        #expect(decoder.repairReceived(forged) == nil)
        #expect(decoder.repairReceived(ByteBuffer(bytes: [0xFF, 0xFF])) == nil)
        #expect(decoder.repairsDiscarded == 2)
    }
}
