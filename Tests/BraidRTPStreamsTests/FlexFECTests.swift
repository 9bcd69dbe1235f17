import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@Suite struct FlexFECTests {
    static let ssrc: UInt32 = 0x1234_5678

    /// An RTP packet under `ssrc` with a one-byte extension block (abs-send-time id 2, transport-wide
    /// sequence id 3, audio-level-like id 5) and a payload of a length of its own; marker on even numbers.
    static func packet(_ sequence: UInt16, seed: UInt64) -> ByteBuffer {
        var generator = SeededGenerator(seed: seed &+ UInt64(sequence))
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt8(0x90))  // V=2, X=1
        buffer.writeInteger(UInt8((sequence % 2 == 0 ? 0x80 : 0) | 96))
        buffer.writeInteger(sequence)
        buffer.writeInteger(UInt32(truncatingIfNeeded: generator.next()))
        buffer.writeInteger(Self.ssrc)
        buffer.writeInteger(UInt16(0xBEDE))
        buffer.writeInteger(UInt16(3))  // 12 bytes of elements
        buffer.writeBytes([0x22, generator.byte(), generator.byte(), generator.byte()])  // id 2, 3 bytes
        buffer.writeBytes([0x31, generator.byte(), generator.byte()])  // id 3, 2 bytes
        buffer.writeBytes([0x50, generator.byte(), 0, 0, 0])  // id 5, 1 byte, padding
        let payload = 1 + Int(generator.next() % 1100)
        buffer.writeBytes((0..<payload).map { _ in generator.byte() })
        return buffer
    }

    /// `packet` as the receiver's FEC decoder keeps it: abs-send-time and transport-wide sequence data zeroed.
    static func zeroed(_ packet: ByteBuffer) -> ByteBuffer {
        var bytes = Array(packet.readableBytesView)
        for index in [17, 18, 19, 21, 22] { bytes[index] = 0 }
        return ByteBuffer(bytes: bytes)
    }

    static func encoder(capacity: Int = 16) -> FlexFECEncoder {
        FlexFECEncoder(capacity: capacity, maximumPacketSize: 1500, mutableExtensionIDs: (2, 3, 0))
    }

    @Test func headerLayoutFollowsDraft03() throws {
        // Mask bits 0 and 14: the 20-byte header, k0 set.
        var buffer = ByteBuffer()
        FlexFECHeader(
            recoveryBytes: 0xFFFF, lengthRecovery: 0x0102, timestampRecovery: 0x0A0B_0C0D, protectedSSRC: Self.ssrc,
            sequenceNumberBase: 0xFFFE, mask: 1 | 1 << 14
        ).write(into: &buffer)
        #expect(Array(buffer.readableBytesView) == [
            0x3F, 0xFF, 0x01, 0x02, 0x0A, 0x0B, 0x0C, 0x0D, 0x01, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78,
            0xFF, 0xFE, 0xC0, 0x01,
        ])
        // Bits 15 and 45: 24 bytes, k0 = 0, k1 = 1.
        buffer.clear()
        FlexFECHeader(
            recoveryBytes: 0, lengthRecovery: 0, timestampRecovery: 0, protectedSSRC: 1, sequenceNumberBase: 7,
            mask: 1 << 15 | 1 << 45
        ).write(into: &buffer)
        #expect(buffer.readableBytes == 24)
        #expect(Array(buffer.readableBytesView.suffix(6)) == [0x00, 0x00, 0xC0, 0x00, 0x00, 0x01])
        // Bits 46 and 108: 32 bytes, k2 = 1.
        buffer.clear()
        FlexFECHeader(
            recoveryBytes: 0, lengthRecovery: 0, timestampRecovery: 0, protectedSSRC: 1, sequenceNumberBase: 7,
            mask: 1 << 46 | 1 << 108
        ).write(into: &buffer)
        #expect(buffer.readableBytes == 32)
        #expect(Array(buffer.readableBytesView.suffix(14)) == [0, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x01])
    }

    @Test func headerRoundTripsEveryMaskSize() throws {
        var generator = SeededGenerator(seed: 3)
        for highest in [0, 7, 14, 15, 30, 45, 46, 80, 108] {
            let mask = (UInt128(generator.next()) << 64 | UInt128(generator.next())) & ((1 << highest) - 1) | 1 << highest
            let header = FlexFECHeader(
                recoveryBytes: 0x1234, lengthRecovery: 99, timestampRecovery: 5, protectedSSRC: 42,
                sequenceNumberBase: 65_530, mask: mask)
            var buffer = ByteBuffer()
            header.write(into: &buffer)
            buffer.writeBytes([1, 2, 3])
            #expect(try FlexFECHeader(buffer) == header)
            #expect(header.offsets.last == highest)
        }
    }

    @Test func malformedHeadersAreRefused() {
        var good = ByteBuffer()
        FlexFECHeader(
            recoveryBytes: 0, lengthRecovery: 0, timestampRecovery: 0, protectedSSRC: 1, sequenceNumberBase: 7, mask: 1 << 20
        ).write(into: &good)
        let bytes = Array(good.readableBytesView)
        func parse(_ changed: [UInt8]) -> Bool { (try? FlexFECHeader(ByteBuffer(bytes: changed))) != nil }
        #expect(parse(bytes))
        for length in 0..<bytes.count { #expect(!parse(Array(bytes.prefix(length))), "cut to \(length)") }
        var retransmission = bytes
        retransmission[0] |= 0x80
        #expect(!parse(retransmission))
        var fixed = bytes
        fixed[0] |= 0x40
        #expect(!parse(fixed))
        var twoSSRCs = bytes
        twoSSRCs[8] = 2
        #expect(!parse(twoSSRCs))
        var noFinalK = bytes + [UInt8](repeating: 0, count: 8)
        noFinalK[20] &= 0x7F
        #expect(!parse(noFinalK))
        var empty = bytes
        empty[20] = 0x80
        for index in 21..<24 { empty[index] = 0 }
        #expect(!parse(empty))
    }

    @Test func extensionDataIsZeroedAsTheReceiverDoes() {
        var encoder = Self.encoder()
        var decoder = FlexFECDecoder(ssrc: Self.ssrc)
        let packets = (0..<2).map { Self.packet(500 + UInt16($0), seed: 1) }
        for (index, packet) in packets.enumerated() { encoder.add(packet, sequenceNumber: 500 + UInt16(index)) }
        var repair = ByteBuffer()
        #expect(encoder.writeRepair(protecting: Self.ssrc, span: 2, into: &repair))
        decoder.received(Self.zeroed(packets[0]), sequenceNumber: 500)
        let rebuilt = decoder.repairReceived(repair)
        #expect(rebuilt == Self.zeroed(packets[1]))
        // Audio level (id 5) and the payload are protected as sent.
        #expect(rebuilt?.getInteger(at: 24, as: UInt8.self) == packets[1].getInteger(at: 24, as: UInt8.self))
    }

    @Test func everySingleLossOfEverySpanIsRebuiltByteForByte() {
        for span in 1...16 {
            for lost in 0..<span {
                var encoder = Self.encoder()
                var decoder = FlexFECDecoder(ssrc: Self.ssrc)
                let first: UInt16 = 65_530  // spans cross the sequence number wrap
                let packets = (0..<span).map { Self.packet(first &+ UInt16($0), seed: UInt64(span)) }
                for (index, packet) in packets.enumerated() {
                    encoder.add(packet, sequenceNumber: first &+ UInt16(index))
                    if index != lost { decoder.received(Self.zeroed(packet), sequenceNumber: first &+ UInt16(index)) }
                }
                var repair = ByteBuffer()
                #expect(encoder.writeRepair(protecting: Self.ssrc, span: span, into: &repair))
                #expect(decoder.repairReceived(repair) == Self.zeroed(packets[lost]), "span \(span), lost \(lost)")
            }
        }
    }

    @Test func twoLossesAreNotRebuiltAndNothingIsInvented() {
        var encoder = Self.encoder()
        var decoder = FlexFECDecoder(ssrc: Self.ssrc)
        for index in 0..<4 {
            let packet = Self.packet(UInt16(index), seed: 4)
            encoder.add(packet, sequenceNumber: UInt16(index))
            if index < 2 { decoder.received(Self.zeroed(packet), sequenceNumber: UInt16(index)) }
        }
        var repair = ByteBuffer()
        #expect(encoder.writeRepair(protecting: Self.ssrc, span: 4, into: &repair))
        #expect(decoder.repairReceived(repair) == nil)
        // A repair covers only packets kept in a row: a gap in sequence numbers starts over.
        encoder.add(Self.packet(9, seed: 4), sequenceNumber: 9)
        #expect(encoder.count == 1)
        repair.clear()
        #expect(encoder.writeRepair(protecting: Self.ssrc, span: 4, into: &repair))
        #expect((try? FlexFECHeader(repair))?.offsets == [0])
        #expect((try? FlexFECHeader(repair))?.sequenceNumberBase == 9)
    }

    @Test func repairsForAnotherStreamOrCorruptedAreDiscarded() {
        var encoder = Self.encoder()
        var decoder = FlexFECDecoder(ssrc: Self.ssrc)
        let packets = (0..<3).map { Self.packet(UInt16($0), seed: 6) }
        for (index, packet) in packets.enumerated() { encoder.add(packet, sequenceNumber: UInt16(index)) }
        decoder.received(Self.zeroed(packets[0]), sequenceNumber: 0)
        decoder.received(Self.zeroed(packets[1]), sequenceNumber: 1)
        var repair = ByteBuffer()
        #expect(encoder.writeRepair(protecting: 0xDEAD, span: 3, into: &repair))
        #expect(decoder.repairReceived(repair) == nil)
        #expect(decoder.repairsDiscarded == 1)
        // A length recovery beyond the repair's payload is refused, not read past.
        repair.clear()
        #expect(encoder.writeRepair(protecting: Self.ssrc, span: 3, into: &repair))
        repair.setInteger(UInt16(0xFFFF), at: 2)
        #expect(decoder.repairReceived(repair) == nil)
        #expect(decoder.repairsDiscarded == 2)
    }
}
