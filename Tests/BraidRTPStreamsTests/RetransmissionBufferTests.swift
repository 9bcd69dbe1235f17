import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@Suite struct RetransmissionBufferTests {
    @Test func storesAndResendsVerbatim() throws {
        var buffer = RetransmissionBuffer()
        let packet = try makePacket(sequenceNumber: 700, timestamp: 1234, payload: [1, 2, 3, 4, 5])
        let stored = buffer.store(packet, now: at(0))
        #expect(stored)
        #expect(buffer.contains(700, now: at(10)))
        #expect(!buffer.contains(701, now: at(10)))
        var out = ByteBufferAllocator().buffer(capacity: 1500)
        #expect(buffer.retransmit(700, now: at(10), into: &out) == .written(bytes: packet.length))
        #expect(bytes(out) == bytes(packet.bytes))
        #expect(buffer.retransmit(701, now: at(10), into: &out) == .notFound)
    }

    @Test func ringOverwritesTheOldestAndAgeExpires() throws {
        var buffer = RetransmissionBuffer(capacity: 16, maxAge: .seconds(1))
        #expect(buffer.capacity == 16)
        for sequence: UInt16 in 0...16 {
            buffer.store(try makePacket(sequenceNumber: sequence), now: at(Int64(sequence)))
        }
        var out = ByteBuffer()
        #expect(buffer.retransmit(0, now: at(20), into: &out) == .notFound)  // slot reused by 16
        #expect(buffer.retransmit(1, now: at(20), into: &out) == .written(bytes: 14))
        #expect(buffer.retransmit(16, now: at(1016), into: &out) == .written(bytes: 14))  // exactly 1 s old
        #expect(buffer.retransmit(15, now: at(1016), into: &out) == .expired)
        #expect(RetransmissionBuffer(capacity: 1000).capacity == 1024)
    }

    @Test func resendIsThrottledWithinTheInterval() throws {
        var buffer = RetransmissionBuffer(minimumResendInterval: .milliseconds(100))
        buffer.store(try makePacket(sequenceNumber: 5), now: at(0))
        var out = ByteBuffer()
        #expect(buffer.retransmit(5, now: at(10), into: &out) == .written(bytes: 14))
        #expect(buffer.retransmit(5, now: at(60), into: &out) == .throttled)
        #expect(buffer.retransmit(5, now: at(110), into: &out) == .written(bytes: 14))
        #expect(buffer.packetsRetransmitted == 2)
    }

    @Test func rtxEncapsulationBytes() throws {
        var buffer = RetransmissionBuffer(
            rtx: .init(ssrc: 0x2222_2222, payloadType: 97), initialRTXSequenceNumber: 500)
        // V=2 P=1 M=1 PT=96 seq 0x1234 ts 0xDEADBEEF SSRC 0x11111111, payload 01 02 03, 4 bytes padding.
        let original = try makePacket(
            sequenceNumber: 0x1234, timestamp: 0xDEAD_BEEF, ssrc: 0x1111_1111, marker: true, payload: [1, 2, 3],
            paddingLength: 4)
        #expect(bytes(original.bytes).count == 19)
        buffer.store(original, now: at(0))
        buffer.store(try makePacket(sequenceNumber: 0x1235, timestamp: 7, marker: false, payload: [9]), now: at(0))

        var out = ByteBuffer()
        #expect(buffer.retransmit(0x1234, now: at(1), into: &out) == .written(bytes: 17))
        // P cleared, M kept, PT 97, RTX seq 500 (0x01F4), timestamp kept, RTX SSRC, OSN 0x1234, payload.
        #expect(
            bytes(out) == [
                0x80, 0xE1, 0x01, 0xF4, 0xDE, 0xAD, 0xBE, 0xEF, 0x22, 0x22, 0x22, 0x22, 0x12, 0x34, 0x01, 0x02, 0x03,
            ])
        let rtx = try RTPPacket(out)
        #expect(rtx.payloadType == 97 && rtx.ssrc == 0x2222_2222 && !rtx.hasPadding && rtx.marker)

        out.clear()
        #expect(buffer.retransmit(0x1235, now: at(1), into: &out) == .written(bytes: 15))
        #expect(bytes(out) == [0x80, 0x61, 0x01, 0xF5, 0, 0, 0, 7, 0x22, 0x22, 0x22, 0x22, 0x12, 0x35, 0x09])
        #expect(buffer.nextRTXSequenceNumber == 502)
    }

    @Test func rtxKeepsCSRCsAndExtensions() throws {
        var extensions = RTPHeaderExtensionBuilder()
        try extensions.append(id: 3, bytes: [0xAB, 0xCD])
        var raw = ByteBuffer()
        try raw.writeRTPPacket(
            RTPHeader(payloadType: 96, sequenceNumber: 42, timestamp: 1, ssrc: 5), csrcs: [0x0C0C_0C0C],
            extensions: extensions, payload: ByteBuffer(bytes: [7, 8]))
        let original = try RTPPacket(raw)
        var buffer = RetransmissionBuffer(rtx: .init(ssrc: 6, payloadType: 97))
        buffer.store(original, now: at(0))
        var out = ByteBuffer()
        _ = buffer.retransmit(42, now: at(0), into: &out)
        let rtx = try RTPPacket(out)
        #expect(Array(rtx.csrcs) == [0x0C0C_0C0C])
        #expect(rtx.extension(id: 3).map { bytes($0.value) } == [0xAB, 0xCD])
        #expect(bytes(rtx.payload) == [0x00, 42, 7, 8])
    }

    @Test func answersANack() throws {
        var buffer = RetransmissionBuffer()
        for sequence: UInt16 in 65534...65535 {
            buffer.store(try makePacket(sequenceNumber: sequence), now: at(0))
        }
        for sequence: UInt16 in 0...3 {
            buffer.store(try makePacket(sequenceNumber: sequence), now: at(0))
        }
        var nackBytes = ByteBufferAllocator().buffer(capacity: 32)
        try RTCPGenericNACK.write(
            senderSSRC: 1, mediaSSRC: 0x1111_1111, lostSequenceNumbers: [65535, 1, 3, 9], into: &nackBytes)
        let nack = try RTCPGenericNACK(nackBytes)
        var scratch = ByteBufferAllocator().buffer(capacity: 1500)
        var resent: [UInt16] = []
        let count = buffer.answer(nack, now: at(5), scratch: &scratch) { packet in
            resent.append((try? RTPPacket(packet))?.sequenceNumber ?? 0)
        }
        #expect(count == 3)
        #expect(resent == [65535, 1, 3])
        // A repeated NACK within the interval is absorbed.
        #expect(buffer.answer(nack, now: at(20), scratch: &scratch) { _ in } == 0)
    }

    @Test func oversizedPacketsAreNotStored() throws {
        var buffer = RetransmissionBuffer(slotSize: 100)
        let big = buffer.store(try makePacket(sequenceNumber: 1, payload: Array(repeating: 0, count: 200)), now: at(0))
        #expect(!big)
        #expect(buffer.oversizedPackets == 1)
        #expect(!buffer.contains(1, now: at(0)))
        let fits = buffer.store(try makePacket(sequenceNumber: 2, payload: Array(repeating: 0, count: 88)), now: at(0))
        #expect(fits)
    }
}
