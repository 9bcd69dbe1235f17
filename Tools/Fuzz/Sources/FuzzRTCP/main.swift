// libFuzzer target for the RTCP parsers and builders of BraidWire.
//
// For every input: frame it as a compound, walk every field and iterator of every packet, then rebuild
// each typed packet with the public builders and check that the rebuilt bytes parse to the same values.
// A difference calls fatalError, which is how libFuzzer records a failing input.
import BraidWire
import NIOCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let input = ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: count))

    // The single-packet initialisers take the same input directly.
    _ = try? RTCPSenderReport(input)
    _ = try? RTCPReceiverReport(input)
    _ = try? RTCPSourceDescription(input)
    _ = try? RTCPGoodbye(input)
    _ = try? RTCPGenericNACK(input)
    _ = try? RTCPTransportWideFeedback(input)
    _ = try? RTCPPictureLossIndication(input)
    _ = try? RTCPFullIntraRequest(input)
    _ = try? RTCPReceiverEstimatedMaximumBitrate(input)

    guard let compound = try? RTCPCompoundPacket(input) else { return 0 }
    var packets = 0
    for packet in compound {
        packets += 1
        walk(packet)
        rebuildAndCompare(packet)
    }
    guard packets == compound.count else { fatalError("compound yielded \(packets) of \(compound.count) packets") }
    return 0
}

/// Reads every value so that any out-of-bounds access in an accessor or iterator is exercised.
func walk(_ packet: RTCPPacket) {
    var sink = 0
    switch packet {
    case .senderReport(let sr):
        sink &+= Int(sr.senderSSRC) &+ Int(truncatingIfNeeded: sr.ntpTimestamp) &+ Int(sr.rtpTimestamp)
        sink &+= Int(sr.packetCount) &+ Int(sr.octetCount)
        for block in sr.reportBlocks { sink &+= Int(block.cumulativeLost) &+ Int(block.jitter) }
    case .receiverReport(let rr):
        for block in rr.reportBlocks { sink &+= Int(block.ssrc) &+ Int(block.delaySinceLastSenderReport) }
    case .sourceDescription(let sdes):
        for chunk in sdes.chunks {
            sink &+= Int(chunk.ssrc)
            for item in chunk { sink &+= Int(item.type) &+ item.value.readableBytes }
        }
    case .goodbye(let bye):
        for ssrc in bye.ssrcs { sink &+= Int(ssrc) }
        sink &+= bye.reason?.readableBytes ?? 0
    case .genericNACK(let nack):
        for item in nack.items { sink &+= Int(item.packetID) }
        for lost in nack.lostSequenceNumbers { sink &+= Int(lost) }
    case .transportWideFeedback(let twcc):
        sink &+= Int(twcc.referenceTimeMicroseconds) &+ Int(twcc.feedbackPacketCount)
        var statuses = 0
        for status in twcc.packets {
            statuses += 1
            sink &+= Int(status.sequenceNumber) &+ Int(status.arrivalOffset ?? 0)
        }
        guard statuses == twcc.packetStatusCount else { fatalError("TWCC yielded \(statuses) statuses") }
    case .pictureLossIndication(let pli):
        sink &+= Int(pli.senderSSRC) &+ Int(pli.mediaSSRC)
    case .fullIntraRequest(let fir):
        for entry in fir.entries { sink &+= Int(entry.ssrc) &+ Int(entry.sequenceNumber) }
    case .receiverEstimatedMaximumBitrate(let remb):
        sink &+= Int(truncatingIfNeeded: remb.bitrate)
        for ssrc in remb.ssrcs { sink &+= Int(ssrc) }
    case .unknown(let unknown):
        sink &+= unknown.body.readableBytes
    case .malformed(let header, _):
        sink &+= Int(header.packetType)
    }
    blackHole(sink)
}

@inline(never)
func blackHole(_ value: Int) {
    if value == 0x7FFF_FFFF_FFFF_FFF1 { print("") }
}

func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

func check(_ condition: Bool, _ what: @autoclosure () -> String) {
    if !condition { fatalError("rebuilt RTCP differs: \(what())") }
}

/// Rebuilds a typed packet with the builders and checks the result parses to the same values.
func rebuildAndCompare(_ packet: RTCPPacket) {
    var capacity = 2 * packet.header.byteCount + 64
    if case .transportWideFeedback(let twcc) = packet {
        capacity = 24 + 2 * (twcc.packetStatusCount / 7 + 1) + 2 * twcc.packetStatusCount
    }
    var out = ByteBufferAllocator().buffer(capacity: capacity)
    do {
        switch packet {
        case .senderReport(let sr):
            let blocks = Array(sr.reportBlocks)
            try RTCPSenderReport.write(
                senderSSRC: sr.senderSSRC, ntpTimestamp: sr.ntpTimestamp, rtpTimestamp: sr.rtpTimestamp,
                packetCount: sr.packetCount, octetCount: sr.octetCount, reportBlocks: blocks, into: &out)
            let again = try RTCPSenderReport(out)
            check(
                again.senderSSRC == sr.senderSSRC && again.ntpTimestamp == sr.ntpTimestamp
                    && again.rtpTimestamp == sr.rtpTimestamp && again.packetCount == sr.packetCount
                    && again.octetCount == sr.octetCount && Array(again.reportBlocks) == blocks, "SR")
        case .receiverReport(let rr):
            let blocks = Array(rr.reportBlocks)
            try RTCPReceiverReport.write(senderSSRC: rr.senderSSRC, reportBlocks: blocks, into: &out)
            let again = try RTCPReceiverReport(out)
            check(again.senderSSRC == rr.senderSSRC && Array(again.reportBlocks) == blocks, "RR")
        case .sourceDescription(let sdes):
            let chunks = sdes.chunks.map { chunk in (chunk.ssrc, chunk.map { ($0.type, bytes($0.value)) }) }
            try RTCPSourceDescription.write(chunks: chunks, into: &out)
            let again = try RTCPSourceDescription(out).chunks.map { chunk in
                (chunk.ssrc, chunk.map { ($0.type, bytes($0.value)) })
            }
            check(again.count == chunks.count, "SDES chunk count")
            for (a, b) in zip(again, chunks) {
                check(a.0 == b.0 && a.1.map(\.0) == b.1.map(\.0) && a.1.map(\.1) == b.1.map(\.1), "SDES chunk")
            }
        case .goodbye(let bye):
            let ssrcs = Array(bye.ssrcs)
            if let reason = bye.reason {
                try RTCPGoodbye.write(ssrcs: ssrcs, reason: bytes(reason), into: &out)
            } else {
                try RTCPGoodbye.write(ssrcs: ssrcs, into: &out)
            }
            let again = try RTCPGoodbye(out)
            check(Array(again.ssrcs) == ssrcs && again.reason.map(bytes) == bye.reason.map(bytes), "BYE")
        case .genericNACK(let nack):
            let items = Array(nack.items)
            try RTCPGenericNACK.write(senderSSRC: nack.senderSSRC, mediaSSRC: nack.mediaSSRC, items: items, into: &out)
            let again = try RTCPGenericNACK(out)
            check(
                again.senderSSRC == nack.senderSSRC && again.mediaSSRC == nack.mediaSSRC && Array(again.items) == items,
                "NACK items")
            let lost = Array(nack.lostSequenceNumbers)
            var packed = ByteBufferAllocator().buffer(capacity: 12 + 4 * lost.count)
            try RTCPGenericNACK.write(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: lost, into: &packed)
            check(Set(try RTCPGenericNACK(packed).lostSequenceNumbers) == Set(lost), "NACK packing")
        case .transportWideFeedback(let twcc):
            let statuses = Array(twcc.packets)
            let base = twcc.referenceTimeMicroseconds
            let result = try RTCPTransportWideFeedback.write(
                senderSSRC: twcc.senderSSRC, mediaSSRC: twcc.mediaSSRC, baseSequenceNumber: twcc.baseSequenceNumber,
                referenceTime: Int64(twcc.referenceTime), feedbackPacketCount: twcc.feedbackPacketCount,
                arrivals: statuses.map { $0.arrivalOffset.map { base + $0 } }, into: &out)
            check(result.packetCount == statuses.count && result.stopReason == .complete, "TWCC stopped early")
            let again = try RTCPTransportWideFeedback(out)
            check(
                again.baseSequenceNumber == twcc.baseSequenceNumber && again.referenceTime == twcc.referenceTime
                    && again.feedbackPacketCount == twcc.feedbackPacketCount
                    && again.packets.map(\.sequenceNumber) == statuses.map(\.sequenceNumber)
                    && again.packets.map(\.arrivalOffset) == statuses.map(\.arrivalOffset), "TWCC")
        case .pictureLossIndication(let pli):
            try RTCPPictureLossIndication.write(senderSSRC: pli.senderSSRC, mediaSSRC: pli.mediaSSRC, into: &out)
            let again = try RTCPPictureLossIndication(out)
            check(again.senderSSRC == pli.senderSSRC && again.mediaSSRC == pli.mediaSSRC, "PLI")
        case .fullIntraRequest(let fir):
            let entries = Array(fir.entries)
            try RTCPFullIntraRequest.write(senderSSRC: fir.senderSSRC, entries: entries, into: &out)
            let again = try RTCPFullIntraRequest(out)
            check(again.senderSSRC == fir.senderSSRC && Array(again.entries) == entries, "FIR")
        case .receiverEstimatedMaximumBitrate(let remb):
            let ssrcs = Array(remb.ssrcs)
            try RTCPReceiverEstimatedMaximumBitrate.write(
                senderSSRC: remb.senderSSRC, bitrate: remb.bitrate, ssrcs: ssrcs, into: &out)
            let again = try RTCPReceiverEstimatedMaximumBitrate(out)
            check(again.senderSSRC == remb.senderSSRC && again.bitrate == remb.bitrate && Array(again.ssrcs) == ssrcs, "REMB")
        case .unknown, .malformed:
            return
        }
    } catch {
        fatalError("rebuilding a parsed RTCP packet threw \(error)")
    }
}
