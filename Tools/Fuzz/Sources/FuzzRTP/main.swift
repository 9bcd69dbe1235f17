// libFuzzer target for the RTP view, RFC 8285 extensions, RED payloads (RFC 2198), the builder and the
// in-place rewriter.
//
// Any input must either be rejected with a WireError or parse into a packet whose every accessor works,
// and which rebuilds (verbatim extension block, and element by element) into a packet with the same
// fields. A mismatch calls fatalError: a crash is how libFuzzer reports a finding.
import BraidWire
import NIOCore

/// Negotiated IDs as a browser might use them, so typed decoders run on fuzzed element values.
private let oneByteMap = RTPHeaderExtensionMap([
    (id: 1, uri: RTPHeaderExtensionMap.midURI),
    (id: 2, uri: RTPHeaderExtensionMap.ridURI),
    (id: 3, uri: RTPHeaderExtensionMap.repairedRIDURI),
    (id: 4, uri: RTPHeaderExtensionMap.absSendTimeURI),
    (id: 5, uri: RTPHeaderExtensionMap.transportSequenceNumberURI),
    (id: 6, uri: RTPHeaderExtensionMap.audioLevelURI),
    (id: 7, uri: RTPHeaderExtensionMap.absCaptureTimeURI),
])

/// The same URIs on IDs only the two-byte form can carry.
private let twoByteMap = RTPHeaderExtensionMap([
    (id: 15, uri: RTPHeaderExtensionMap.midURI),
    (id: 16, uri: RTPHeaderExtensionMap.ridURI),
    (id: 100, uri: RTPHeaderExtensionMap.repairedRIDURI),
    (id: 200, uri: RTPHeaderExtensionMap.absSendTimeURI),
    (id: 254, uri: RTPHeaderExtensionMap.transportSequenceNumberURI),
    (id: 255, uri: RTPHeaderExtensionMap.audioLevelURI),
    (id: 8, uri: RTPHeaderExtensionMap.absCaptureTimeURI),
])

private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

private func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

private func decodeTyped(_ packet: RTPPacket, _ map: RTPHeaderExtensionMap) {
    _ = try? packet.mid(map)?.string
    _ = try? packet.rid(map)?.matches("h")
    _ = try? packet.repairedRID(map)
    _ = try? packet.absSendTime(map)?.seconds
    _ = try? packet.transportSequenceNumber(map)
    _ = try? packet.audioLevel(map)
    _ = try? packet.absCaptureTime(map)
}

private func elementList(_ packet: RTPPacket) -> [(UInt8, [UInt8])] {
    guard let ext = packet.headerExtension else { return [] }
    return ext.elements.map { ($0.id, bytes($0.value)) }
}

/// Checks that `rebuilt` carries the same header, CSRCs, payload and padding length as `packet`.
private func checkSameFields(_ packet: RTPPacket, _ rebuilt: RTPPacket, _ what: String) {
    check(rebuilt.header == packet.header, "\(what): header \(rebuilt.header) != \(packet.header)")
    check(Array(rebuilt.csrcs) == Array(packet.csrcs), "\(what): CSRCs differ")
    check(bytes(rebuilt.payload) == bytes(packet.payload), "\(what): payload differs")
    check(rebuilt.paddingLength == packet.paddingLength, "\(what): padding length differs")
}

/// The payload read as RED (RFC 2198): refused with a WireError, or parsed into blocks that lie inside it
/// and write back byte for byte.
private func checkRED(_ payload: ByteBuffer) {
    guard let red = try? REDPayload(payload) else { return }
    let total = red.redundant.reduce(red.primary.data.readableBytes) { $0 + 4 + $1.data.readableBytes } + 1
    check(total == payload.readableBytes, "RED blocks do not add up to the payload")
    var rewritten = ByteBuffer()
    REDPayload.write(
        primaryPayloadType: red.primary.payloadType, primary: red.primary.data, redundant: red.redundant,
        into: &rewritten)
    check(bytes(rewritten) == bytes(payload), "RED payload does not write back byte for byte")
}

private func fuzz(_ input: ByteBuffer) {
    let packet: RTPPacket
    do {
        packet = try RTPPacket(input)
    } catch {
        _ = error.code
        return
    }

    // Walk every accessor.
    check(packet.version == 2, "version \(packet.version)")
    check(packet.headerLength + packet.payloadLength + packet.paddingLength == packet.length, "lengths do not add up")
    check(packet.payload.readableBytes == packet.payloadLength, "payload slice length")
    check(packet.csrcs.count == packet.csrcCount, "CSRC count")
    _ = packet.csrcs.reduce(0, ^)
    _ = (packet.marker, packet.payloadType, packet.sequenceNumber, packet.timestamp, packet.ssrc, packet.hasPadding)
    if let ext = packet.headerExtension {
        _ = (ext.profile, ext.form, ext.appBits)
        check(ext.data.readableBytes == ext.dataLength, "extension data length")
        for element in ext.elements {
            check(element.id != 0, "element with ID 0")
            check(element.valueOffset + element.length <= packet.headerLength, "element outside the header")
            check(packet.extension(id: element.id) != nil, "lookup of a present ID failed")
        }
    }
    decodeTyped(packet, oneByteMap)
    decodeTyped(packet, twoByteMap)
    checkRED(packet.payload)

    var output = ByteBuffer()
    output.reserveCapacity(packet.length + 64)

    // Rebuild 1: extension block copied verbatim. The result must equal the input except the padding
    // bytes before the count, which the builder zeroes.
    var verbatim = RTPHeaderExtensionBuilder()
    if let ext = packet.headerExtension {
        do {
            try verbatim.setRaw(profile: ext.profile, data: ext.data)
        } catch {
            fatalError("a parsed extension block was refused by the builder: \(error)")
        }
    }
    do {
        try output.writeRTPPacket(
            packet.header, csrcs: packet.csrcs, extensions: verbatim, payload: packet.payload,
            paddingLength: packet.paddingLength)
        let rebuilt = try RTPPacket(output)
        checkSameFields(packet, rebuilt, "verbatim rebuild")
        check(
            bytes(output).prefix(packet.headerLength + packet.payloadLength)
                == bytes(packet.bytes).prefix(packet.headerLength + packet.payloadLength),
            "verbatim rebuild differs before the padding")
        check(rebuilt.headerExtension?.profile == packet.headerExtension?.profile, "profile differs")
    } catch {
        fatalError("verbatim rebuild failed: \(error)")
    }

    // Rebuild 2: element by element, when the block is RFC 8285 and has no repeated ID.
    if let ext = packet.headerExtension, ext.form != nil {
        var builder = RTPHeaderExtensionBuilder()
        var ok = true
        for element in ext.elements {
            do {
                try builder.append(id: element.id, value: element.value)
            } catch {
                check(error.code == .badValue, "unexpected builder error \(error)")  // a repeated ID
                ok = false
                break
            }
        }
        if ok {
            output.clear()
            do {
                try output.writeRTPPacket(
                    packet.header, csrcs: packet.csrcs, extensions: builder, payload: packet.payload,
                    paddingLength: packet.paddingLength)
                let rebuilt = try RTPPacket(output)
                checkSameFields(packet, rebuilt, "element rebuild")
                let before = elementList(packet)
                let after = elementList(rebuilt)
                check(before.map(\.0) == after.map(\.0), "element IDs differ")
                check(before.map(\.1) == after.map(\.1), "element values differ")
            } catch {
                fatalError("element rebuild failed: \(error)")
            }
        }
    }

    // Rewrite a private copy in place and check that exactly the rewritten fields changed.
    var copy = ByteBuffer()
    copy.writeImmutableBuffer(packet.bytes)
    guard var rewritten = try? RTPPacket(copy) else { fatalError("a copy of a valid packet does not parse") }
    rewritten.setSequenceNumber(~packet.sequenceNumber)
    rewritten.setTimestamp(~packet.timestamp)
    rewritten.setSSRC(~packet.ssrc)
    rewritten.setMarker(!packet.marker)
    do {
        try rewritten.setPayloadType(127 - packet.payloadType)
    } catch {
        fatalError("setPayloadType refused a valid type: \(error)")
    }
    var expectedElements = elementList(packet)
    if let first = expectedElements.first {
        let flipped = first.1.map { ~$0 }
        do {
            try rewritten.setExtensionValue(id: first.0, bytes: flipped)
        } catch {
            fatalError("rewriting a present element failed: \(error)")
        }
        // Every element sharing the first ID is the one found by lookup: only the first changes.
        expectedElements[0].1 = flipped
    }
    guard let reparsed = try? RTPPacket(rewritten.buffer) else { fatalError("rewritten packet does not parse") }
    check(reparsed.sequenceNumber == ~packet.sequenceNumber, "sequence number rewrite")
    check(reparsed.timestamp == ~packet.timestamp, "timestamp rewrite")
    check(reparsed.ssrc == ~packet.ssrc, "SSRC rewrite")
    check(reparsed.marker == !packet.marker, "marker rewrite")
    check(reparsed.payloadType == 127 - packet.payloadType, "payload type rewrite")
    check(bytes(reparsed.payload) == bytes(packet.payload), "payload changed by a rewrite")
    let actual = elementList(reparsed)
    check(actual.map(\.0) == expectedElements.map(\.0), "rewrite changed element IDs")
    check(actual.map(\.1) == expectedElements.map(\.1), "rewrite changed the wrong element value")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start, count >= 0 else { return 0 }
    fuzz(ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: count)))
    return 0
}
