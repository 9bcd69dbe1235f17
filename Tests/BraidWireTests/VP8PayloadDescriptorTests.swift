import BraidWire
import NIOCore
import Testing

/// RFC 7741 §4.2 payload descriptors, §4.3 keyframe detection, building and in-place rewriting.
@Suite struct VP8PayloadDescriptorTests {
    /// The shortest descriptor: X=0, S=1, PID=0, followed by an interframe payload header (P=1).
    @Test func singleByteDescriptor() throws {
        let vp8 = try VP8Payload(rtpBuffer([0x10, 0x01, 0xAA]))
        #expect(vp8.descriptorLength == 1)
        #expect(vp8.descriptor == VP8PayloadDescriptor(isStartOfPartition: true))
        #expect(vp8.isStartOfFrame)
        #expect(!vp8.isKeyFrame)
        #expect(rtpBytes(vp8.data) == [0x01, 0xAA])
    }

    /// Key frame start with a 15-bit PictureID (X=1 S=1; I=1; M=1 PictureID 4711), P=0 in the payload header.
    @Test func keyFrameWithLongPictureID() throws {
        let vp8 = try VP8Payload(rtpBuffer([0x90, 0x80, 0x92, 0x67, 0x50, 0x00]))
        #expect(vp8.descriptorLength == 4)
        #expect(vp8.descriptor.pictureID == .long(4711))
        #expect(vp8.descriptor.pictureID?.value == 4711)
        #expect(vp8.descriptor.tl0PicIndex == nil)
        #expect(vp8.isKeyFrame)
    }

    /// A reserved R bit is ignored: 0xD0 = X, R, S; 7-bit PictureID 17.
    @Test func reservedBitIgnored() throws {
        let vp8 = try VP8Payload(rtpBuffer([0xD0, 0x80, 0x11, 0x00]))
        #expect(vp8.descriptor.pictureID == .short(17))
        #expect(vp8.descriptor.isStartOfFrame)
        #expect(!vp8.descriptor.isNonReference)
        #expect(vp8.isKeyFrame)
    }

    /// Every optional field: I (7-bit), L, T and K.
    @Test func allOptionalFields() throws {
        let vp8 = try VP8Payload(rtpBuffer([0xB3, 0xF0, 0x11, 0x05, 0xB7, 0x01]))
        let d = vp8.descriptor
        #expect(d.isNonReference)
        #expect(d.isStartOfPartition)
        #expect(d.partitionIndex == 3)
        #expect(d.pictureID == .short(17))
        #expect(d.tl0PicIndex == 5)
        #expect(d.temporalLayerIndex == 2)  // 0xB7 = 10 1 10111
        #expect(d.isLayerSync)
        #expect(d.keyIndex == 23)
        #expect(vp8.descriptorLength == 5)
        #expect(!vp8.isStartOfFrame)  // PID 3
        #expect(!vp8.isKeyFrame)
    }

    @Test func temporalAndKeyIndexAreIndependent() throws {
        // K only: TID/Y bits present but ignored.
        let kOnly = try VP8PayloadDescriptor(rtpBuffer([0x90, 0x10, 0xFF]))
        #expect(kOnly.keyIndex == 31)
        #expect(kOnly.temporalLayerIndex == nil)
        #expect(!kOnly.isLayerSync)
        // T only: KEYIDX bits ignored.
        let tOnly = try VP8PayloadDescriptor(rtpBuffer([0x90, 0x20, 0x5F]))
        #expect(tOnly.temporalLayerIndex == 1)
        #expect(!tOnly.isLayerSync)
        #expect(tOnly.keyIndex == nil)
    }

    @Test func continuationPacketIsNotAKeyFrame() throws {
        // S=0: a later packet of the same partition; its first data byte happens to have P=0.
        let vp8 = try VP8Payload(rtpBuffer([0x00, 0x00]))
        #expect(!vp8.isStartOfFrame)
        #expect(!vp8.isKeyFrame)
    }

    @Test func xBitWithNoOptionalFields() throws {
        let vp8 = try VP8Payload(rtpBuffer([0x90, 0x00, 0x00]))
        #expect(vp8.descriptorLength == 2)
        #expect(vp8.descriptor == VP8PayloadDescriptor(isStartOfPartition: true))
        #expect(vp8.isKeyFrame)
    }

    @Test func truncatedDescriptors() {
        let cases: [[UInt8]] = [
            [],  // empty
            [0x90],  // X without the control byte
            [0x90, 0x80],  // I without PictureID
            [0x90, 0x80, 0x80],  // M=1 without the second byte
            [0x90, 0x40],  // L without TL0PICIDX
            [0x90, 0x20],  // T without TID byte
            [0x90, 0x10],  // K without KEYIDX byte
            [0x90, 0xF0, 0x81, 0x02, 0x03],  // all fields, the T/K byte missing
        ]
        for bytes in cases {
            expectWireError(.truncated) { () throws(WireError) in try VP8PayloadDescriptor(rtpBuffer(bytes)) }
            expectWireError(.truncated) { () throws(WireError) in try VP8Payload(rtpBuffer(bytes)) }
        }
        // A complete descriptor with no VP8 data after it.
        expectWireError(.truncated) { () throws(WireError) in try VP8Payload(rtpBuffer([0x90, 0x80, 0x05])) }
        #expect(throws: Never.self) { try VP8PayloadDescriptor(rtpBuffer([0x90, 0x80, 0x05])) }
    }

    @Test func everyCombinationRoundTrips() throws {
        let pictureIDs: [VP8PayloadDescriptor.PictureID?] = [nil, .short(0), .short(127), .long(0), .long(0x7FFF)]
        let tl0s: [UInt8?] = [nil, 0, 255]
        let tids: [UInt8?] = [nil, 0, 3]
        let keyIndexes: [UInt8?] = [nil, 0, 31]
        var count = 0
        var buffer = ByteBuffer()
        for pictureID in pictureIDs {
            for tl0 in tl0s {
                for tid in tids {
                    for keyIndex in keyIndexes {
                        for partition: UInt8 in [0, 7] {
                            for flags in 0..<8 {
                                let descriptor = VP8PayloadDescriptor(
                                    isNonReference: flags & 1 != 0, isStartOfPartition: flags & 2 != 0,
                                    partitionIndex: partition, pictureID: pictureID, tl0PicIndex: tl0,
                                    temporalLayerIndex: tid, isLayerSync: tid != nil && flags & 4 != 0,
                                    keyIndex: keyIndex)
                                buffer.clear()
                                let written = try descriptor.write(into: &buffer)
                                #expect(written == descriptor.encodedLength)
                                buffer.writeInteger(UInt8(0x9C))  // a payload header byte with P=0
                                let vp8 = try VP8Payload(buffer)
                                #expect(vp8.descriptor == descriptor)
                                #expect(vp8.descriptorLength == written)
                                #expect(vp8.isKeyFrame == descriptor.isStartOfFrame)
                                count += 1
                            }
                        }
                    }
                }
            }
        }
        #expect(count == 5 * 3 * 3 * 3 * 2 * 8)
    }

    @Test func builderRejectsOutOfRangeFields() {
        var buffer = ByteBuffer()
        let bad: [VP8PayloadDescriptor] = [
            VP8PayloadDescriptor(isStartOfPartition: true, partitionIndex: 8),
            VP8PayloadDescriptor(isStartOfPartition: true, pictureID: .short(128)),
            VP8PayloadDescriptor(isStartOfPartition: true, pictureID: .long(0x8000)),
            VP8PayloadDescriptor(isStartOfPartition: true, temporalLayerIndex: 4),
            VP8PayloadDescriptor(isStartOfPartition: true, keyIndex: 32),
        ]
        for descriptor in bad {
            expectWireError(.badValue) { () throws(WireError) in try descriptor.write(into: &buffer) }
        }
    }

    @Test func rewritesKeepingPictureIDWidth() throws {
        var buffer = rtpBuffer([0x90, 0xC0, 0xFF, 0xFF, 0x07, 0x9D])  // 15-bit PictureID 0x7FFF, TL0PICIDX 7
        try VP8PayloadDescriptor.rewrite(pictureID: 0x8005, tl0PicIndex: 200, in: &buffer, at: 0)
        var d = try VP8PayloadDescriptor(buffer)
        #expect(d.pictureID == .long(5))
        #expect(d.tl0PicIndex == 200)
        #expect(rtpBytes(buffer).last == 0x9D)

        buffer = rtpBuffer([0x90, 0xC0, 0x7F, 0x07, 0x9D])  // 7-bit PictureID 127
        try VP8PayloadDescriptor.rewrite(pictureID: 130, in: &buffer, at: 0)
        d = try VP8PayloadDescriptor(buffer)
        #expect(d.pictureID == .short(2))
        #expect(d.tl0PicIndex == 7)
        #expect(VP8PayloadDescriptor.PictureID.short(100).withValue(300) == .short(44))
        #expect(VP8PayloadDescriptor.PictureID.long(1).withValue(0xFFFF) == .long(0x7FFF))

        buffer = rtpBuffer([0x10, 0x9D])
        expectWireError(.badValue) { () throws(WireError) in
            try VP8PayloadDescriptor.rewrite(pictureID: 1, in: &buffer, at: 0)
        }
        buffer = rtpBuffer([0x90, 0x80, 0x01, 0x9D])
        expectWireError(.badValue) { () throws(WireError) in
            try VP8PayloadDescriptor.rewrite(tl0PicIndex: 1, in: &buffer, at: 0)
        }
    }

    @Test func rewritesInsideAnRTPPacket() throws {
        var payload = ByteBuffer()
        try VP8PayloadDescriptor(isStartOfPartition: true, pictureID: .long(100), tl0PicIndex: 9, temporalLayerIndex: 0)
            .write(into: &payload)
        payload.writeBytes([0x9C, 0x01, 0x2A])
        var buffer = ByteBuffer()
        try buffer.writeRTPPacket(
            RTPHeader(payloadType: 96, sequenceNumber: 1, timestamp: 2, ssrc: 3), payload: payload, paddingLength: 2)
        var packet = try RTPPacket(buffer)
        try packet.rewriteVP8Descriptor(pictureID: 101, tl0PicIndex: 10)
        let vp8 = try VP8Payload(try RTPPacket(packet.buffer).payload)
        #expect(vp8.descriptor.pictureID == .long(101))
        #expect(vp8.descriptor.tl0PicIndex == 10)
        #expect(vp8.isKeyFrame)

        // A descriptor cut short by the payload end must not be completed from the padding bytes.
        var short = ByteBuffer()
        try short.writeRTPPacket(
            RTPHeader(payloadType: 96, sequenceNumber: 1, timestamp: 2, ssrc: 3), payload: rtpBuffer([0x90, 0x80]),
            paddingLength: 3)
        var shortPacket = try RTPPacket(short)
        expectWireError(.truncated) { () throws(WireError) in try shortPacket.rewriteVP8Descriptor(pictureID: 1) }
        #expect(rtpBytes(shortPacket.buffer) == rtpBytes(short))
    }

    @Test func randomBytesNeverTrap() {
        var random = SplitMix64(state: 0x5EED_0003)
        var parsed = 0
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...8, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
            do {
                let vp8 = try VP8Payload(rtpBuffer(bytes))
                #expect(vp8.descriptorLength + vp8.data.readableBytes == bytes.count)
                #expect(vp8.data.readableBytes >= 1)
                parsed += 1
            } catch {
                #expect(error.code == .truncated)
            }
        }
        #expect(parsed > 1000)
    }

    @Test func everyTruncation() throws {
        let full: [UInt8] = [0xB0, 0xF0, 0x92, 0x67, 0x05, 0xB7, 0x9C]
        for cut in 0..<full.count {
            expectWireError(.truncated) { () throws(WireError) in try VP8Payload(rtpBuffer(Array(full.prefix(cut)))) }
        }
        #expect(try VP8Payload(rtpBuffer(full)).descriptorLength == 6)
    }
}
