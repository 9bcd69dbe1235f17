import BraidWire
import NIOCore
import Testing

/// RFC 8285 element parsing and the typed extension values.
@Suite struct RTPHeaderExtensionTests {
    static let fixedHeader: [UInt8] = [0x90, 0x60, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]

    static func packet(extension block: [UInt8], payload: [UInt8] = [0x55]) throws(WireError) -> RTPPacket {
        try RTPPacket(rtpBuffer(fixedHeader + block + payload))
    }

    /// The one-byte-header example of RFC 8285 §4.2: three elements and two padding bytes in 3 words.
    @Test func oneByteFormRFCExample() throws {
        let packet = try Self.packet(extension: [
            0xBE, 0xDE, 0x00, 0x03,
            0x10, 0xAA,  // ID 1, L=0: 1 byte
            0x21, 0xBB, 0xBB,  // ID 2, L=1: 2 bytes
            0x00, 0x00,  // padding
            0x33, 0xCC, 0xCC, 0xCC, 0xCC,  // ID 3, L=3: 4 bytes
        ])
        let ext = try #require(packet.headerExtension)
        #expect(ext.profile == 0xBEDE)
        #expect(ext.form == .oneByte)
        #expect(ext.appBits == 0)
        let elements = Array(ext.elements)
        #expect(elements.map(\.id) == [1, 2, 3])
        #expect(elements.map { rtpBytes($0.value) } == [[0xAA], [0xBB, 0xBB], [0xCC, 0xCC, 0xCC, 0xCC]])
        #expect(elements.map(\.valueOffset) == [17, 19, 24])
        #expect(rtpBytes(try #require(packet.extension(id: 2)).value) == [0xBB, 0xBB])
        #expect(packet.extension(id: 4) == nil)
        #expect(rtpBytes(packet.payload) == [0x55])
    }

    /// The two-byte-header example of RFC 8285 §4.3: a zero-length element, padding, appbits.
    @Test func twoByteFormRFCExample() throws {
        let packet = try Self.packet(extension: [
            0x10, 0x07, 0x00, 0x03,  // 0x100 + appbits 0x7
            0x01, 0x00,  // ID 1, length 0
            0x02, 0x01, 0xBB,  // ID 2, length 1
            0x00,  // padding
            0x03, 0x04, 0xCC, 0xCC, 0xCC, 0xCC,  // ID 3, length 4
        ])
        let ext = try #require(packet.headerExtension)
        #expect(ext.form == .twoByte)
        #expect(ext.appBits == 7)
        let elements = Array(ext.elements)
        #expect(elements.map(\.id) == [1, 2, 3])
        #expect(elements.map(\.length) == [0, 1, 4])
        #expect(rtpBytes(elements[2].value) == [0xCC, 0xCC, 0xCC, 0xCC])
    }

    @Test func twoByteFormLargeIDAndValue() throws {
        var block: [UInt8] = [0x10, 0x00, 0x00, 0x41]  // 65 words = 260 bytes
        block += [200, 255] + Array(repeating: 0x5A, count: 255) + [0, 0, 0]
        let packet = try Self.packet(extension: block)
        let element = try #require(packet.extension(id: 200))
        #expect(element.length == 255)
        #expect(element.value.readableBytesView.allSatisfy { $0 == 0x5A })
    }

    /// RFC 8285 §4.2: ID 15 ends processing; what follows is ignored even if it would be malformed.
    @Test func id15StopsParsing() throws {
        let packet = try Self.packet(
            extension: [0xBE, 0xDE, 0x00, 0x02, 0x10, 0x01, 0xF0, 0x5F, 0xFF, 0xFF, 0xFF, 0xFF])
        let ext = try #require(packet.headerExtension)
        #expect(Array(ext.elements).map(\.id) == [1])
    }

    @Test func oneByteIDZeroIsAOneBytePadding() throws {
        // 0x05 has ID 0 and L=5; it is skipped as one byte, as libwebrtc does.
        let packet = try Self.packet(extension: [0xBE, 0xDE, 0x00, 0x01, 0x05, 0x21, 0x01, 0x02])
        let elements = Array(try #require(packet.headerExtension).elements)
        #expect(elements.map(\.id) == [2])
        #expect(rtpBytes(elements[0].value) == [1, 2])
    }

    @Test func elementsOverrunningTheBlock() {
        // One-byte: ID 1 claims 16 bytes in a 4-byte block.
        expectWireError(.badExtension) { () throws(WireError) in
            try Self.packet(extension: [0xBE, 0xDE, 0x00, 0x01, 0x1F, 0, 0, 0])
        }
        // One-byte: the last byte is an element header with no room for its value.
        expectWireError(.badExtension) { () throws(WireError) in
            try Self.packet(extension: [0xBE, 0xDE, 0x00, 0x01, 0x00, 0x00, 0x00, 0x10])
        }
        // Two-byte: ID with no length byte.
        expectWireError(.badExtension) { () throws(WireError) in
            try Self.packet(extension: [0x10, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05])
        }
        // Two-byte: length 3 with 2 bytes left.
        expectWireError(.badExtension) { () throws(WireError) in
            try Self.packet(extension: [0x10, 0x00, 0x00, 0x01, 0x05, 0x03, 0xAA, 0xBB])
        }
    }

    @Test func emptyRFC8285Block() throws {
        let packet = try Self.packet(extension: [0xBE, 0xDE, 0x00, 0x00])
        let ext = try #require(packet.headerExtension)
        #expect(ext.dataLength == 0)
        #expect(Array(ext.elements).isEmpty)
    }

    // MARK: Typed values

    static let map = RTPHeaderExtensionMap([
        (id: 1, uri: RTPHeaderExtensionMap.midURI),
        (id: 2, uri: RTPHeaderExtensionMap.ridURI),
        (id: 3, uri: RTPHeaderExtensionMap.repairedRIDURI),
        (id: 4, uri: RTPHeaderExtensionMap.absSendTimeURI),
        (id: 5, uri: RTPHeaderExtensionMap.transportSequenceNumberURI),
        (id: 6, uri: RTPHeaderExtensionMap.audioLevelURI),
        (id: 7, uri: RTPHeaderExtensionMap.absCaptureTimeURI),
        (id: 8, uri: "urn:example:unknown"),
    ])

    @Test func mapRegistration() {
        let map = Self.map
        #expect(map.mid == 1 && map.rid == 2 && map.repairedRID == 3 && map.absSendTime == 4)
        #expect(map.transportSequenceNumber == 5 && map.audioLevel == 6 && map.absCaptureTime == 7)
        #expect(map.id(for: RTPHeaderExtensionMap.audioLevelURI) == 6)
        #expect(map.id(for: "urn:example:unknown") == nil)
        var other = RTPHeaderExtensionMap()
        let rejectedZero = other.register(id: 0, uri: RTPHeaderExtensionMap.midURI)
        let rejectedLarge = other.register(id: 256, uri: RTPHeaderExtensionMap.midURI)
        let rejectedUnknown = other.register(id: 3, uri: "urn:example:unknown")
        #expect(!rejectedZero && !rejectedLarge && !rejectedUnknown)
        #expect(other == RTPHeaderExtensionMap())
        let accepted = other.register(id: 255, uri: RTPHeaderExtensionMap.midURI)
        #expect(accepted)
        #expect(other.mid == 255)
    }

    @Test func decodesEveryKnownExtension() throws {
        let packet = try Self.packet(extension: [
            0xBE, 0xDE, 0x00, 0x09,
            0x11, 0x61, 0x30,  // mid "a0"
            0x22, 0x68, 0x69, 0x67,  // rid "hig"
            0x30, 0x6C,  // repaired rid "l"
            0x42, 0x12, 0x34, 0x56,  // abs-send-time 0x123456
            0x51, 0xAB, 0xCD,  // transport-wide seq 0xABCD
            0x60, 0xAA,  // audio level V=1, 42 dBov
            0x7F, 1, 2, 3, 4, 5, 6, 7, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0x80, 0, 0, 0,  // abs-capture-time + offset
            0x00,
        ])
        let map = Self.map
        let mid = try #require(try packet.mid(map))
        #expect(mid.matches("a0"))
        #expect(!mid.matches("a"))
        #expect(mid.string == "a0")
        #expect(try packet.rid(map)?.string == "hig")
        #expect(try packet.repairedRID(map)?.string == "l")
        #expect(try packet.absSendTime(map) == AbsSendTime(rawValue: 0x12_3456))
        #expect(try packet.transportSequenceNumber(map) == TransportSequenceNumber(0xABCD))
        #expect(try packet.audioLevel(map) == AudioLevel(voiceActivity: true, level: 42))
        let capture = try #require(try packet.absCaptureTime(map))
        #expect(capture.captureTimestamp == 0x0102_0304_0506_0708)
        // 0xFFFFFFFF_80000000 as signed Q32.32 is -0.5 s.
        #expect(capture.estimatedCaptureClockOffset == -0x8000_0000)
    }

    @Test func absentOrUnmappedExtensionsAreNil() throws {
        let packet = try Self.packet(extension: [0xBE, 0xDE, 0x00, 0x01, 0x51, 0x00, 0x07, 0x00])
        #expect(try packet.transportSequenceNumber(Self.map)?.value == 7)
        #expect(try packet.mid(Self.map) == nil)
        #expect(try packet.transportSequenceNumber(RTPHeaderExtensionMap()) == nil)
        let plain = try RTPPacket(rtpBuffer([0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]))
        #expect(try plain.audioLevel(Self.map) == nil)
    }

    @Test func wrongLengthsAreBadExtension() throws {
        // Each known ID with a value one byte too long or too short.
        let cases: [(UInt8, [UInt8])] = [
            (0x41, [1, 2]),  // abs-send-time of 2 bytes
            (0x43, [1, 2, 3, 4]),  // abs-send-time of 4 bytes
            (0x50, [1]),  // transport seq of 1 byte
            (0x52, [1, 2, 3]),  // transport seq of 3 bytes
            (0x61, [1, 2]),  // audio level of 2 bytes
            (0x76, [1, 2, 3, 4, 5, 6, 7]),  // abs-capture-time of 7 bytes
            (0x78, [1, 2, 3, 4, 5, 6, 7, 8, 9]),  // abs-capture-time of 9 bytes
        ]
        for (head, value) in cases {
            var block: [UInt8] = [head] + value
            while block.count % 4 != 0 { block.append(0) }
            let packet = try Self.packet(extension: [0xBE, 0xDE, 0x00, UInt8(block.count / 4)] + block)
            expectWireError(.badExtension) { () throws(WireError) in
                _ = try packet.absSendTime(Self.map)
                _ = try packet.transportSequenceNumber(Self.map)
                _ = try packet.audioLevel(Self.map)
                _ = try packet.absCaptureTime(Self.map)
            }
        }
        // An empty MID, possible only in the two-byte form.
        let empty = try Self.packet(extension: [0x10, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00])
        expectWireError(.badExtension) { () throws(WireError) in try empty.mid(Self.map) }
    }

    @Test func absSendTimeConversions() {
        // 1.5 s as NTP UQ32.32 is 0x1_8000_0000; bits 14-37 give 1.5 * 2^18.
        #expect(AbsSendTime(ntpTimestamp: 0x1_8000_0000).rawValue == 393_216)
        #expect(AbsSendTime(microseconds: 1_500_000).rawValue == 393_216)
        #expect(AbsSendTime(rawValue: 393_216).seconds == 1.5)
        // Wraps at 64 s.
        #expect(AbsSendTime(microseconds: 65_500_000).rawValue == 393_216)
        #expect(AbsSendTime(ntpTimestamp: 65 << 32 | 0x8000_0000).rawValue == 393_216)
        #expect(AbsSendTime(rawValue: 0xFF12_3456).rawValue == 0x12_3456)
    }

    @Test func audioLevelClampsAndEncodes() {
        #expect(AudioLevel(voiceActivity: false, level: 200).level == 127)
        var buffer = ByteBuffer()
        let written = AudioLevel(voiceActivity: true, level: 127).write(to: &buffer, at: 0)
        #expect(written == 1)
        buffer.moveWriterIndex(forwardBy: written)
        #expect(rtpBytes(buffer) == [0xFF])
    }

    @Test func streamIdentifierValidation() throws {
        #expect(throws: WireError.self) { try RTPStreamIdentifier("") }
        #expect(throws: WireError.self) { try RTPStreamIdentifier(String(repeating: "x", count: 256)) }
        #expect(try RTPStreamIdentifier("q").string == "q")
    }
}
