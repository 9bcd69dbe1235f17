import BraidWire
import NIOCore
import Testing

/// Seeded random inputs and truncations: the parser must never trap, and must either parse a
/// self-consistent packet or throw a WireError.
@Suite struct RTPPropertyTests {
    static let map = RTPHeaderExtensionMap([
        (id: 1, uri: RTPHeaderExtensionMap.midURI),
        (id: 2, uri: RTPHeaderExtensionMap.ridURI),
        (id: 3, uri: RTPHeaderExtensionMap.repairedRIDURI),
        (id: 4, uri: RTPHeaderExtensionMap.absSendTimeURI),
        (id: 5, uri: RTPHeaderExtensionMap.transportSequenceNumberURI),
        (id: 6, uri: RTPHeaderExtensionMap.audioLevelURI),
        (id: 7, uri: RTPHeaderExtensionMap.absCaptureTimeURI),
    ])

    /// Walks everything a parsed packet exposes and checks its invariants.
    static func checkInvariants(_ packet: RTPPacket) {
        #expect(packet.version == 2)
        #expect(packet.headerLength + packet.payloadLength + packet.paddingLength == packet.length)
        #expect(packet.payloadLength >= 0)
        #expect(packet.payload.readableBytes == packet.payloadLength)
        #expect(packet.csrcs.count == packet.csrcCount)
        _ = packet.csrcs.reduce(0, ^)
        if let ext = packet.headerExtension {
            #expect(ext.data.readableBytes == ext.dataLength)
            for element in ext.elements {
                #expect(element.id != 0)
                #expect(element.valueOffset + element.length <= packet.headerLength)
            }
        }
        // Typed decodes either succeed or throw WireError (typed throws guarantees the error type).
        _ = try? packet.mid(map)
        _ = try? packet.rid(map)
        _ = try? packet.repairedRID(map)
        _ = try? packet.absSendTime(map)
        _ = try? packet.transportSequenceNumber(map)
        _ = try? packet.audioLevel(map)
        _ = try? packet.absCaptureTime(map)
    }

    @Test func randomBytesNeverTrap() {
        var random = SplitMix64(state: 0x5EED_0001)
        var parsed = 0
        for round in 0..<20_000 {
            let length = Int.random(in: 0...96, using: &random)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            // Bias most inputs towards version 2 and RFC 8285 profiles to reach deeper code.
            if length > 0, round % 4 != 0 { bytes[0] = 0x80 | (bytes[0] & 0x3F) }
            if length > 15, round % 3 == 0 {
                let csrcBytes = 4 * Int(bytes[0] & 0x0F)
                if 12 + csrcBytes + 2 <= length {
                    let profile: [UInt8] = round % 2 == 0 ? [0xBE, 0xDE] : [0x10, 0x00]
                    bytes[12 + csrcBytes] = profile[0]
                    bytes[12 + csrcBytes + 1] = profile[1]
                    bytes[0] |= 0x10
                }
            }
            do {
                let packet = try RTPPacket(rtpBuffer(bytes))
                Self.checkInvariants(packet)
                parsed += 1
            } catch {
                _ = error.code
            }
        }
        // The generator reaches both outcomes.
        #expect(parsed > 1000)
        #expect(parsed < 20_000)
    }

    /// Every strict prefix of a valid packet either parses (cut after the header) or throws `.truncated` /
    /// `.badExtension` (cut inside the header) or `.badPadding` (P set and the last byte is no valid count).
    @Test func everyTruncationOfValidPackets() throws {
        var extensions = RTPHeaderExtensionBuilder()
        try extensions.append(try RTPStreamIdentifier("0"), id: 1)
        try extensions.append(AudioLevel(voiceActivity: true, level: 30), id: 6)
        var twoByte = RTPHeaderExtensionBuilder()
        try twoByte.append(id: 40, bytes: Array(repeating: 3, count: 30))
        let header = RTPHeader(payloadType: 100, sequenceNumber: 1, timestamp: 2, ssrc: 3)

        var samples: [(ByteBuffer, hasPadding: Bool)] = []
        for (builder, padding) in [(extensions, 0), (twoByte, 0), (extensions, 5), (RTPHeaderExtensionBuilder(), 0)] {
            var buffer = ByteBuffer()
            try buffer.writeRTPPacket(
                header, csrcs: [9, 8], extensions: builder, payload: rtpBuffer(Array(1...20)), paddingLength: padding)
            samples.append((buffer, padding > 0))
        }
        for (buffer, hasPadding) in samples {
            let full = try RTPPacket(buffer)
            for cut in 0..<buffer.readableBytes {
                let prefix = try #require(buffer.getSlice(at: 0, length: cut))
                do {
                    let packet = try RTPPacket(prefix)
                    Self.checkInvariants(packet)
                    #expect(cut >= full.headerLength)
                    #expect(packet.headerLength == full.headerLength)
                    // With P set, whatever byte the cut leaves last is read as the pad count.
                    #expect(packet.paddingLength == (hasPadding ? Int(rtpBytes(prefix)[cut - 1]) : 0))
                    #expect(
                        rtpBytes(packet.payload)
                            == Array(rtpBytes(prefix)[full.headerLength..<(cut - packet.paddingLength)]))
                    #expect(rtpBytes(full.payload).starts(with: rtpBytes(packet.payload)))
                } catch {
                    if cut < full.headerLength {
                        #expect(error.code == .truncated || error.code == .badExtension, "\(error)")
                    } else {
                        #expect(hasPadding && error.code == .badPadding, "\(error)")
                    }
                }
            }
        }
    }

    /// Random packets built, parsed, and compared field by field.
    @Test func randomRoundTrips() throws {
        var random = SplitMix64(state: 0x5EED_0002)
        var buffer = ByteBuffer()
        var extensions = RTPHeaderExtensionBuilder()
        for _ in 0..<3000 {
            let header = RTPHeader(
                marker: Bool.random(using: &random), payloadType: UInt8.random(in: 0...127, using: &random),
                sequenceNumber: UInt16.random(in: 0...UInt16.max, using: &random),
                timestamp: UInt32.random(in: 0...UInt32.max, using: &random),
                ssrc: UInt32.random(in: 0...UInt32.max, using: &random))
            let csrcs = (0..<Int.random(in: 0...15, using: &random)).map { _ in
                UInt32.random(in: 0...UInt32.max, using: &random)
            }
            extensions.removeAll()
            var expected: [(UInt8, [UInt8])] = []
            let twoByte = Bool.random(using: &random)
            var ids = Array(1...(twoByte ? 255 : 14) as ClosedRange<UInt8>)
            ids.shuffle(using: &random)
            for id in ids.prefix(Int.random(in: 0...6, using: &random)) {
                let length = twoByte ? Int.random(in: 0...40, using: &random) : Int.random(in: 1...16, using: &random)
                let value = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                try extensions.append(id: id, bytes: value)
                expected.append((id, value))
            }
            let payload = (0..<Int.random(in: 0...64, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
            let padding = Bool.random(using: &random) ? 0 : Int.random(in: 1...255, using: &random)

            buffer.clear()
            try buffer.writeRTPPacket(
                header, csrcs: csrcs, extensions: extensions, payload: rtpBuffer(payload), paddingLength: padding)
            let packet = try RTPPacket(buffer)
            #expect(packet.header == header)
            #expect(Array(packet.csrcs) == csrcs)
            #expect(rtpBytes(packet.payload) == payload)
            #expect(packet.paddingLength == padding)
            let elements = packet.headerExtension.map { Array($0.elements) } ?? []
            #expect(elements.map(\.id) == expected.map(\.0))
            #expect(elements.map { rtpBytes($0.value) } == expected.map(\.1))
            if !expected.isEmpty, !twoByte {
                #expect(packet.headerExtension?.form == .oneByte)
            }
        }
    }
}
