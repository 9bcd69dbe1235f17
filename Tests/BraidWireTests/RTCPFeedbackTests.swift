import BraidWire
import NIOCore
import Testing

@Suite struct RTCPFeedbackTests {
    @Test func nackPacksWrappedSequenceNumbersByteExact() throws {
        // 65530 is the PID; 65535, 0 and 3 are 5, 6 and 9 after it (BLP bits 4, 5, 8 = 0x0130);
        // 20 is 26 after, so it opens a second item.
        var buffer = ByteBufferAllocator().buffer(capacity: 20)
        try RTCPGenericNACK.write(
            senderSSRC: 0x0102_0304, mediaSSRC: 0x0506_0708, lostSequenceNumbers: [65530, 65535, 0, 3, 20],
            into: &buffer)
        #expect(rtcpBytes(buffer) == rtcpBytes(rtcpHex("81 CD 00 04 01 02 03 04 05 06 07 08 FF FA 01 30 00 14 00 00")))
        let nack = try RTCPGenericNACK(buffer)
        #expect(nack.senderSSRC == 0x0102_0304)
        #expect(nack.mediaSSRC == 0x0506_0708)
        #expect(Array(nack.items) == [.init(packetID: 0xFFFA, lostBitmask: 0x0130), .init(packetID: 20, lostBitmask: 0)])
        #expect(Array(nack.lostSequenceNumbers) == [65530, 65535, 0, 3, 20])
    }

    @Test func nackItemBoundaries() {
        // PID + 16 is the last number an item can cover.
        #expect(RTCPGenericNACK.itemCount(lostSequenceNumbers: [1, 17]) == 1)
        #expect(RTCPGenericNACK.itemCount(lostSequenceNumbers: [1, 18]) == 2)
        #expect(RTCPGenericNACK.itemCount(lostSequenceNumbers: Array(0...16)) == 1)
        #expect(RTCPGenericNACK.itemCount(lostSequenceNumbers: Array(0...17)) == 2)
        #expect(RTCPGenericNACK.itemCount(lostSequenceNumbers: [65535, 15]) == 1)
        // Duplicates are skipped.
        #expect(RTCPGenericNACK.itemCount(lostSequenceNumbers: [4, 4, 4, 5]) == 1)
        #expect(RTCPGenericNACK.itemCount(lostSequenceNumbers: [UInt16]()) == 0)
    }

    @Test func nackRoundTripsRandomSortedSets() throws {
        var generator = SplitMix64(state: 42)
        for _ in 0..<500 {
            let start = UInt16.random(in: 0...UInt16.max, using: &generator)
            var lost: [UInt16] = []
            var next = start
            for _ in 0..<Int.random(in: 1...60, using: &generator) {
                lost.append(next)
                next &+= UInt16.random(in: 1...40, using: &generator)
            }
            var buffer = ByteBufferAllocator().buffer(capacity: 512)
            try RTCPGenericNACK.write(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: lost, into: &buffer)
            let nack = try RTCPGenericNACK(buffer)
            #expect(Array(nack.lostSequenceNumbers) == lost)
            // Greedy packing: each item starts at the first number its predecessor cannot reach.
            #expect(nack.items.count == RTCPGenericNACK.itemCount(lostSequenceNumbers: lost))
            var minimum = 0
            var pid: UInt16? = nil
            for number in lost where pid.map({ number &- $0 > 16 }) ?? true {
                minimum += 1
                pid = number
            }
            #expect(nack.items.count == minimum)
        }
    }

    @Test func nackErrors() {
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        let empty = #expect(throws: WireError.self) {
            try RTCPGenericNACK.write(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: [UInt16](), into: &buffer)
        }
        #expect(empty?.code == .badValue)
        // No FCI, and an FCI that is not a multiple of 4.
        let noFCI = #expect(throws: WireError.self) { _ = try RTCPGenericNACK(rtcpHex("81 CD 00 02 00 00 00 01 00 00 00 02")) }
        #expect(noFCI?.code == .badLength)
        let odd = #expect(throws: WireError.self) {
            _ = try RTCPGenericNACK(rtcpHex("A1 CD 00 04 00 00 00 01 00 00 00 02 00 01 00 00 00 00 00 02"))
        }
        #expect(odd?.code == .badLength)
        // Too short for the two SSRCs.
        let short = #expect(throws: WireError.self) { _ = try RTCPGenericNACK(rtcpHex("81 CD 00 01 00 00 00 01")) }
        #expect(short?.code == .badLength)
    }

    @Test func pliByteExactAndRoundTrip() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 12)
        try RTCPPictureLossIndication.write(senderSSRC: 0xAABB_CCDD, mediaSSRC: 0x1122_3344, into: &buffer)
        #expect(rtcpBytes(buffer) == rtcpBytes(rtcpHex("81 CE 00 02 AA BB CC DD 11 22 33 44")))
        let pli = try RTCPPictureLossIndication(buffer)
        #expect(pli.senderSSRC == 0xAABB_CCDD)
        #expect(pli.mediaSSRC == 0x1122_3344)
    }

    @Test func firByteExactAndRoundTrip() throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 28)
        let entries: [RTCPFullIntraRequest.Entry] = [.init(ssrc: 0x0A0B_0C0D, sequenceNumber: 7), .init(ssrc: 5, sequenceNumber: 255)]
        try RTCPFullIntraRequest.write(senderSSRC: 0x0102_0304, entries: entries, into: &buffer)
        #expect(
            rtcpBytes(buffer)
                == rtcpBytes(rtcpHex("84 CE 00 06 01 02 03 04 00 00 00 00 0A 0B 0C 0D 07 00 00 00 00 00 00 05 FF 00 00 00")))
        let fir = try RTCPFullIntraRequest(buffer)
        #expect(fir.senderSSRC == 0x0102_0304)
        #expect(fir.mediaSSRC == 0)
        #expect(Array(fir.entries) == entries)
        // An FCI of 4 bytes is not a whole entry.
        let error = #expect(throws: WireError.self) {
            _ = try RTCPFullIntraRequest(rtcpHex("84 CE 00 03 00 00 00 01 00 00 00 00 00 00 00 05"))
        }
        #expect(error?.code == .badLength)
    }

    @Test func rembByteExact() throws {
        // 1,000,000 bps needs 20 bits: exponent 2, mantissa 250,000 (0x3D090).
        var buffer = ByteBufferAllocator().buffer(capacity: 24)
        try RTCPReceiverEstimatedMaximumBitrate.write(senderSSRC: 0x0102_0304, bitrate: 1_000_000, ssrcs: [0xABCD_EF01], into: &buffer)
        #expect(rtcpBytes(buffer) == rtcpBytes(rtcpHex("8F CE 00 05 01 02 03 04 00 00 00 00 52 45 4D 42 01 0B D0 90 AB CD EF 01")))
        let remb = try RTCPReceiverEstimatedMaximumBitrate(buffer)
        #expect(remb.exponent == 2)
        #expect(remb.mantissa == 250_000)
        #expect(remb.bitrate == 1_000_000)
        #expect(Array(remb.ssrcs) == [0xABCD_EF01])
    }

    @Test func rembEncodingPicksSmallestExponentAndNeverOverflows() throws {
        #expect(RTCPReceiverEstimatedMaximumBitrate.encode(bitrate: 0) == (0, 0))
        #expect(RTCPReceiverEstimatedMaximumBitrate.encode(bitrate: 0x3_FFFF) == (0, 0x3_FFFF))
        #expect(RTCPReceiverEstimatedMaximumBitrate.encode(bitrate: 0x4_0000) == (1, 0x2_0000))
        #expect(RTCPReceiverEstimatedMaximumBitrate.encode(bitrate: UInt64.max) == (46, 0x3_FFFF))
        var generator = SplitMix64(state: 7)
        for _ in 0..<2000 {
            let bitrate = UInt64.random(in: 0...UInt64.max, using: &generator) >> UInt64.random(in: 0...63, using: &generator)
            let (exponent, mantissa) = RTCPReceiverEstimatedMaximumBitrate.encode(bitrate: bitrate)
            #expect(mantissa <= 0x3_FFFF)
            let decoded = UInt64(mantissa) << UInt64(exponent)
            // Rounded down, and within one mantissa step of the input.
            #expect(decoded <= bitrate)
            #expect(bitrate - decoded < (UInt64(1) << UInt64(exponent)))
            var buffer = ByteBufferAllocator().buffer(capacity: 20)
            try RTCPReceiverEstimatedMaximumBitrate.write(senderSSRC: 1, bitrate: bitrate, ssrcs: [UInt32](), into: &buffer)
            #expect(try RTCPReceiverEstimatedMaximumBitrate(buffer).bitrate == decoded)
        }
    }

    @Test func rembErrors() {
        // Exponent 63 with a non-zero mantissa overflows 64 bits.
        let overflow = #expect(throws: WireError.self) {
            _ = try RTCPReceiverEstimatedMaximumBitrate(rtcpHex("8F CE 00 04 00 00 00 01 00 00 00 00 52 45 4D 42 00 FF FF FF"))
        }
        #expect(overflow?.code == .badValue)
        // Num SSRC 2 with one SSRC present.
        let count = #expect(throws: WireError.self) {
            _ = try RTCPReceiverEstimatedMaximumBitrate(
                rtcpHex("8F CE 00 05 00 00 00 01 00 00 00 00 52 45 4D 42 02 00 00 01 00 00 00 09"))
        }
        #expect(count?.code == .badLength)
        // Wrong identifier.
        let identifier = #expect(throws: WireError.self) {
            _ = try RTCPReceiverEstimatedMaximumBitrate(rtcpHex("8F CE 00 04 00 00 00 01 00 00 00 00 52 45 4D 43 00 00 00 01"))
        }
        #expect(identifier?.code == .unsupportedType)
    }
}
