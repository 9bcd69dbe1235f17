import BraidWire
import NIOCore
import Testing

/// Building packets, choosing the RFC 8285 form, and rewriting in place.
@Suite struct RTPBuilderTests {
    static let header = RTPHeader(
        marker: true, payloadType: 96, sequenceNumber: 0x1234, timestamp: 0xDEAD_BEEF, ssrc: 0x1122_3344)

    @Test func writesExactBytes() throws {
        var buffer = ByteBuffer()
        var extensions = RTPHeaderExtensionBuilder()
        try extensions.append(TransportSequenceNumber(0xABCD), id: 5)
        try extensions.append(AudioLevel(voiceActivity: true, level: 42), id: 6)
        let written = try buffer.writeRTPPacket(
            Self.header, csrcs: [0xCAFE_BABE], extensions: extensions, payload: rtpBuffer([1, 2, 3]), paddingLength: 4)
        #expect(
            rtpBytes(buffer) == [
                0xB1, 0xE0, 0x12, 0x34,  // V=2 P=1 X=1 CC=1; M=1 PT=96
                0xDE, 0xAD, 0xBE, 0xEF,
                0x11, 0x22, 0x33, 0x44,
                0xCA, 0xFE, 0xBA, 0xBE,
                0xBE, 0xDE, 0x00, 0x02,  // one-byte form, 2 words
                0x51, 0xAB, 0xCD, 0x60, 0xAA, 0x00, 0x00, 0x00,
                0x01, 0x02, 0x03,
                0x00, 0x00, 0x00, 0x04,
            ])
        #expect(written == buffer.readableBytes)
    }

    @Test func noExtensionsMeansNoXBit() throws {
        var buffer = ByteBuffer()
        try buffer.writeRTPPacket(Self.header, extensions: RTPHeaderExtensionBuilder(), payload: ByteBuffer())
        #expect(rtpBytes(buffer) == [0x80, 0xE0, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 0x11, 0x22, 0x33, 0x44])
    }

    @Test func choosesTwoByteFormWhenNeeded() throws {
        // ID 15, an ID over 14, an empty value, or a value over 16 bytes all need the two-byte form.
        let cases: [(UInt8, [UInt8])] = [(15, [1]), (200, [1]), (3, []), (3, Array(repeating: 9, count: 17))]
        for (id, value) in cases {
            var extensions = RTPHeaderExtensionBuilder()
            try extensions.append(id: 1, bytes: [0xAA])
            try extensions.append(id: id, bytes: value)
            #expect(extensions.form == .twoByte)
            var buffer = ByteBuffer()
            try buffer.writeRTPPacket(Self.header, extensions: extensions, payload: ByteBuffer())
            let packet = try RTPPacket(buffer)
            let ext = try #require(packet.headerExtension)
            #expect(ext.form == .twoByte)
            #expect(rtpBytes(try #require(packet.extension(id: id)).value) == value)
            #expect(rtpBytes(try #require(packet.extension(id: 1)).value) == [0xAA])
        }
        var small = RTPHeaderExtensionBuilder()
        try small.append(id: 14, bytes: Array(repeating: 1, count: 16))
        #expect(small.form == .oneByte)
        small.prefersTwoByteForm = true
        small.appBits = 0x5
        #expect(small.form == .twoByte)
        var buffer = ByteBuffer()
        try buffer.writeRTPPacket(Self.header, extensions: small, payload: ByteBuffer())
        #expect(try #require(try RTPPacket(buffer).headerExtension).profile == 0x1005)
    }

    @Test func builderRejectsBadElements() throws {
        var extensions = RTPHeaderExtensionBuilder()
        expectWireError(.badValue) { () throws(WireError) in try extensions.append(id: 0, bytes: [1]) }
        try extensions.append(id: 3, bytes: [1])
        expectWireError(.badValue) { () throws(WireError) in try extensions.append(id: 3, bytes: [2]) }
        expectWireError(.badLength) { () throws(WireError) in
            try extensions.append(id: 4, bytes: Array(repeating: 0, count: 256))
        }
        #expect(extensions.count == 1)
        try extensions.setRaw(profile: 0x1234, data: rtpBuffer([1, 2, 3, 4]))
        expectWireError(.badExtension) { () throws(WireError) in try extensions.append(id: 5, bytes: [1]) }
        expectWireError(.badLength) { () throws(WireError) in
            try extensions.setRaw(profile: 0x1234, data: rtpBuffer([1, 2, 3]))
        }
    }

    @Test func writerRejectsBadHeaders() {
        var buffer = ByteBuffer()
        expectWireError(.badValue) { () throws(WireError) in
            try buffer.writeRTPPacket(
                RTPHeader(payloadType: 128, sequenceNumber: 0, timestamp: 0, ssrc: 0), payload: ByteBuffer())
        }
        expectWireError(.badValue) { () throws(WireError) in
            try buffer.writeRTPPacket(Self.header, csrcs: Array(repeating: 1, count: 16), payload: ByteBuffer())
        }
        expectWireError(.badValue) { () throws(WireError) in
            try buffer.writeRTPPacket(Self.header, payload: ByteBuffer(), paddingLength: 256)
        }
        expectWireError(.badValue) { () throws(WireError) in
            try buffer.writeRTPPacket(Self.header, payload: ByteBuffer(), paddingLength: -1)
        }
        #expect(buffer.readableBytes == 0)
    }

    @Test func rawBlockIsForwardedVerbatim() throws {
        var extensions = RTPHeaderExtensionBuilder()
        try extensions.setRaw(profile: 0xABCD, data: rtpBuffer([9, 8, 7, 6, 5, 4, 3, 2]))
        var buffer = ByteBuffer()
        try buffer.writeRTPPacket(Self.header, extensions: extensions, payload: rtpBuffer([1]))
        let packet = try RTPPacket(buffer)
        let ext = try #require(packet.headerExtension)
        #expect(ext.profile == 0xABCD)
        #expect(rtpBytes(ext.data) == [9, 8, 7, 6, 5, 4, 3, 2])
    }

    /// Round trip over many combinations of every optional part.
    @Test func roundTripCombinations() throws {
        let csrcSets: [[UInt32]] = [[], [1], Array(1...15)]
        let payloads: [[UInt8]] = [[], [0xFF], Array(repeating: 0x42, count: 100)]
        let paddings = [0, 1, 7, 255]
        var extensionSets: [RTPHeaderExtensionBuilder] = [RTPHeaderExtensionBuilder()]
        var oneByte = RTPHeaderExtensionBuilder()
        try oneByte.append(try RTPStreamIdentifier("audio"), id: 1)
        try oneByte.append(AbsSendTime(rawValue: 0xABCDEF), id: 3)
        try oneByte.append(AbsCaptureTime(captureTimestamp: 7, estimatedCaptureClockOffset: -3), id: 14)
        extensionSets.append(oneByte)
        var twoByte = RTPHeaderExtensionBuilder()
        try twoByte.append(id: 100, bytes: Array(repeating: 1, count: 255))
        try twoByte.append(id: 2, bytes: [])
        extensionSets.append(twoByte)
        var raw = RTPHeaderExtensionBuilder()
        try raw.setRaw(profile: 0x0001, data: ByteBuffer())
        extensionSets.append(raw)

        var buffer = ByteBuffer()
        var count = 0
        for csrcs in csrcSets {
            for payload in payloads {
                for padding in paddings {
                    for (index, extensions) in extensionSets.enumerated() {
                        for marker in [false, true] {
                            let header = RTPHeader(
                                marker: marker, payloadType: UInt8(count % 128), sequenceNumber: UInt16(count),
                                timestamp: UInt32(count) &* 2_654_435_761, ssrc: ~UInt32(count))
                            buffer.clear()
                            let written = try buffer.writeRTPPacket(
                                header, csrcs: csrcs, extensions: extensions, payload: rtpBuffer(payload),
                                paddingLength: padding)
                            #expect(written == buffer.readableBytes)
                            let packet = try RTPPacket(buffer)
                            #expect(packet.header == header)
                            #expect(Array(packet.csrcs) == csrcs)
                            #expect(rtpBytes(packet.payload) == payload)
                            #expect(packet.paddingLength == padding)
                            #expect(packet.hasPadding == (padding > 0))
                            #expect(packet.hasExtension == (index != 0))
                            if index == 1 {
                                let map = RTPHeaderExtensionMap([
                                    (id: 1, uri: RTPHeaderExtensionMap.midURI),
                                    (id: 3, uri: RTPHeaderExtensionMap.absSendTimeURI),
                                    (id: 14, uri: RTPHeaderExtensionMap.absCaptureTimeURI),
                                ])
                                #expect(try packet.mid(map)?.matches("audio") == true)
                                #expect(try packet.absSendTime(map)?.rawValue == 0xABCDEF)
                                #expect(
                                    try packet.absCaptureTime(map)
                                        == AbsCaptureTime(captureTimestamp: 7, estimatedCaptureClockOffset: -3))
                            }
                            if index == 2 {
                                #expect(try #require(packet.extension(id: 100)).length == 255)
                                #expect(try #require(packet.extension(id: 2)).length == 0)
                            }
                            count += 1
                        }
                    }
                }
            }
        }
        #expect(count == 288)
    }

    @Test func reusedBufferAndBuilderDoNotReallocate() throws {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(2048)
        var extensions = RTPHeaderExtensionBuilder()
        try extensions.append(TransportSequenceNumber(1), id: 3)
        let payload = rtpBuffer(Array(repeating: 7, count: 1200))
        let capacity = buffer.capacity
        let address = buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        for sequence in 0..<100 as Range<UInt16> {
            buffer.clear()
            extensions.removeAll()
            try extensions.append(TransportSequenceNumber(sequence), id: 3)
            try buffer.writeRTPPacket(
                RTPHeader(payloadType: 96, sequenceNumber: sequence, timestamp: 0, ssrc: 1), extensions: extensions,
                payload: payload)
        }
        #expect(buffer.capacity == capacity)
        #expect(buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == address)
        #expect(try RTPPacket(buffer).sequenceNumber == 99)
    }

    // MARK: Rewriting

    static func sample() throws -> ByteBuffer {
        var extensions = RTPHeaderExtensionBuilder()
        try extensions.append(AbsSendTime(rawValue: 1), id: 2)
        try extensions.append(TransportSequenceNumber(7), id: 5)
        var buffer = ByteBuffer()
        try buffer.writeRTPPacket(
            Self.header, csrcs: [42], extensions: extensions, payload: rtpBuffer([1, 2, 3, 4]), paddingLength: 3)
        return buffer
    }

    @Test func rewritesHeaderFieldsInPlace() throws {
        var packet = try RTPPacket(try Self.sample())
        let before = rtpBytes(packet.bytes)
        packet.setSequenceNumber(0xFFFF)
        packet.setTimestamp(5)
        packet.setSSRC(0xABCD_EF01)
        packet.setMarker(false)
        try packet.setPayloadType(111)
        expectWireError(.badValue) { () throws(WireError) in try packet.setPayloadType(128) }
        let after = rtpBytes(packet.bytes)
        #expect(after.count == before.count)
        #expect(Array(after[12...]) == Array(before[12...]))  // CSRCs, extension, payload, padding untouched
        let reparsed = try RTPPacket(packet.buffer)
        #expect(
            reparsed.header
                == RTPHeader(marker: false, payloadType: 111, sequenceNumber: 0xFFFF, timestamp: 5, ssrc: 0xABCD_EF01))
        packet.setMarker(true)
        #expect(try RTPPacket(packet.buffer).marker)
        #expect(try RTPPacket(packet.buffer).payloadType == 111)
    }

    @Test func rewritesExtensionValuesInPlace() throws {
        var packet = try RTPPacket(try Self.sample())
        let map = RTPHeaderExtensionMap([
            (id: 2, uri: RTPHeaderExtensionMap.absSendTimeURI),
            (id: 5, uri: RTPHeaderExtensionMap.transportSequenceNumberURI),
        ])
        try packet.setTransportSequenceNumber(0xBEEF, map)
        try packet.setAbsSendTime(AbsSendTime(rawValue: 0xFEDCBA), map)
        let reparsed = try RTPPacket(packet.buffer)
        #expect(try reparsed.transportSequenceNumber(map)?.value == 0xBEEF)
        #expect(try reparsed.absSendTime(map)?.rawValue == 0xFEDCBA)
        #expect(rtpBytes(reparsed.payload) == [1, 2, 3, 4])

        try packet.setExtensionValue(id: 5, bytes: [0x00, 0x01])
        #expect(try RTPPacket(packet.buffer).transportSequenceNumber(map)?.value == 1)
        expectWireError(.badLength) { () throws(WireError) in try packet.setExtensionValue(id: 5, bytes: [1, 2, 3]) }
        expectWireError(.badExtension) { () throws(WireError) in try packet.setExtensionValue(id: 9, bytes: [1]) }
        expectWireError(.badExtension) { () throws(WireError) in
            try packet.setTransportSequenceNumber(1, RTPHeaderExtensionMap())
        }
        expectWireError(.badLength) { () throws(WireError) in
            try packet.setExtension(AbsCaptureTime(captureTimestamp: 0), id: 5)
        }
    }

    @Test func rewritingAUniquelyHeldBufferDoesNotCopy() throws {
        var packet = try RTPPacket(try Self.sample())
        let address = packet.buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let map = RTPHeaderExtensionMap([(id: 5, uri: RTPHeaderExtensionMap.transportSequenceNumberURI)])
        for number in 0..<1000 as Range<UInt16> {
            packet.setSequenceNumber(number)
            try packet.setTransportSequenceNumber(number, map)
        }
        #expect(packet.buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } == address)
    }

    @Test func rewritingASharedBufferLeavesTheOriginalAlone() throws {
        let original = try Self.sample()
        var packet = try RTPPacket(original)
        packet.setSequenceNumber(1)
        #expect(try RTPPacket(original).sequenceNumber == 0x1234)
        #expect(try RTPPacket(packet.buffer).sequenceNumber == 1)
    }
}
