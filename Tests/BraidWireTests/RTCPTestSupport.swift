import BraidWire
import NIOCore

/// Parses a hex string ("80 C8 00 06 ...", spaces ignored) into a buffer.
func rtcpHex(_ text: String) -> ByteBuffer {
    let digits = text.filter { !$0.isWhitespace }
    var bytes: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        bytes.append(UInt8(digits[index..<next], radix: 16)!)
        index = next
    }
    return ByteBuffer(bytes: bytes)
}

func rtcpBytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

/// Reads every field and walks every iterator of every packet; returns how many values it touched.
@discardableResult
func rtcpWalk(_ compound: RTCPCompoundPacket) -> Int {
    var touched = 0
    for packet in compound {
        touched += Int(packet.header.packetType)
        switch packet {
        case .senderReport(let sr):
            touched &+= Int(sr.senderSSRC) &+ Int(truncatingIfNeeded: sr.ntpTimestamp) &+ Int(sr.rtpTimestamp)
            touched &+= Int(sr.packetCount) &+ Int(sr.octetCount)
            for block in sr.reportBlocks { touched &+= Int(block.cumulativeLost) &+ Int(block.jitter) }
        case .receiverReport(let rr):
            touched &+= Int(rr.senderSSRC)
            for block in rr.reportBlocks { touched &+= Int(block.cumulativeLost) &+ Int(block.delaySinceLastSenderReport) }
        case .sourceDescription(let sdes):
            for chunk in sdes.chunks {
                touched &+= Int(chunk.ssrc)
                for item in chunk { touched &+= Int(item.type) &+ item.value.readableBytes }
            }
        case .goodbye(let bye):
            for ssrc in bye.ssrcs { touched &+= Int(ssrc) }
            touched &+= bye.reason?.readableBytes ?? 0
        case .genericNACK(let nack):
            touched &+= Int(nack.senderSSRC) &+ Int(nack.mediaSSRC)
            for item in nack.items { touched &+= Int(item.lostBitmask) }
            for lost in nack.lostSequenceNumbers { touched &+= Int(lost) }
        case .transportWideFeedback(let twcc):
            touched &+= Int(twcc.baseSequenceNumber) &+ Int(twcc.referenceTime) &+ Int(twcc.feedbackPacketCount)
            for status in twcc.packets { touched &+= Int(status.sequenceNumber) &+ Int(status.arrivalOffset ?? 0) }
        case .pictureLossIndication(let pli):
            touched &+= Int(pli.senderSSRC) &+ Int(pli.mediaSSRC)
        case .fullIntraRequest(let fir):
            for entry in fir.entries { touched &+= Int(entry.ssrc) &+ Int(entry.sequenceNumber) }
        case .receiverEstimatedMaximumBitrate(let remb):
            touched &+= Int(truncatingIfNeeded: remb.bitrate)
            for ssrc in remb.ssrcs { touched &+= Int(ssrc) }
        case .unknown(let unknown):
            touched &+= unknown.body.readableBytes
        case .malformed(_, let error):
            touched &+= error.reason.utf8.count
        }
    }
    return touched
}

/// Rebuilds a parsed packet with the public builders, parses the result and compares every value.
/// Returns a description of the first difference, or nil when the values survive the round trip.
/// (The fuzz target `FuzzRTCP` performs the same check.)
func rtcpRebuildMismatch(_ packet: RTCPPacket) -> String? {
    var capacity = 2 * packet.header.byteCount + 64
    if case .transportWideFeedback(let twcc) = packet {
        // Worst case for the greedy encoder: a chunk per 7 statuses and a 2-byte delta each.
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
            guard again.senderSSRC == sr.senderSSRC, again.ntpTimestamp == sr.ntpTimestamp,
                again.rtpTimestamp == sr.rtpTimestamp, again.packetCount == sr.packetCount,
                again.octetCount == sr.octetCount, Array(again.reportBlocks) == blocks
            else { return "SR differs" }
        case .receiverReport(let rr):
            let blocks = Array(rr.reportBlocks)
            try RTCPReceiverReport.write(senderSSRC: rr.senderSSRC, reportBlocks: blocks, into: &out)
            let again = try RTCPReceiverReport(out)
            guard again.senderSSRC == rr.senderSSRC, Array(again.reportBlocks) == blocks else { return "RR differs" }
        case .sourceDescription(let sdes):
            let chunks = sdes.chunks.map { chunk in (chunk.ssrc, chunk.map { ($0.type, rtcpBytes($0.value)) }) }
            try RTCPSourceDescription.write(chunks: chunks, into: &out)
            let again = try RTCPSourceDescription(out).chunks.map { chunk in
                (chunk.ssrc, chunk.map { ($0.type, rtcpBytes($0.value)) })
            }
            guard again.count == chunks.count else { return "SDES chunk count differs" }
            for (a, b) in zip(again, chunks) {
                guard a.0 == b.0, a.1.map(\.0) == b.1.map(\.0), a.1.map(\.1) == b.1.map(\.1) else {
                    return "SDES chunk differs"
                }
            }
        case .goodbye(let bye):
            let ssrcs = Array(bye.ssrcs)
            if let reason = bye.reason {
                try RTCPGoodbye.write(ssrcs: ssrcs, reason: rtcpBytes(reason), into: &out)
            } else {
                try RTCPGoodbye.write(ssrcs: ssrcs, into: &out)
            }
            let again = try RTCPGoodbye(out)
            guard Array(again.ssrcs) == ssrcs, again.reason.map(rtcpBytes) == bye.reason.map(rtcpBytes) else {
                return "BYE differs"
            }
        case .genericNACK(let nack):
            let items = Array(nack.items)
            try RTCPGenericNACK.write(senderSSRC: nack.senderSSRC, mediaSSRC: nack.mediaSSRC, items: items, into: &out)
            let again = try RTCPGenericNACK(out)
            guard again.senderSSRC == nack.senderSSRC, again.mediaSSRC == nack.mediaSSRC, Array(again.items) == items
            else { return "NACK items differ" }
            // Re-packing the lost numbers covers exactly the same set.
            let lost = Array(nack.lostSequenceNumbers)
            var packed = ByteBufferAllocator().buffer(capacity: 12 + 4 * lost.count)
            try RTCPGenericNACK.write(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: lost, into: &packed)
            guard Set(try RTCPGenericNACK(packed).lostSequenceNumbers) == Set(lost) else { return "NACK packing differs" }
        case .transportWideFeedback(let twcc):
            let statuses = Array(twcc.packets)
            let base = twcc.referenceTimeMicroseconds
            let result = try RTCPTransportWideFeedback.write(
                senderSSRC: twcc.senderSSRC, mediaSSRC: twcc.mediaSSRC, baseSequenceNumber: twcc.baseSequenceNumber,
                referenceTime: Int64(twcc.referenceTime), feedbackPacketCount: twcc.feedbackPacketCount,
                arrivals: statuses.map { $0.arrivalOffset.map { base + $0 } }, into: &out)
            guard result.packetCount == statuses.count, result.stopReason == .complete else {
                return "TWCC rebuild stopped after \(result.packetCount) of \(statuses.count): \(result.stopReason)"
            }
            let again = try RTCPTransportWideFeedback(out)
            guard again.baseSequenceNumber == twcc.baseSequenceNumber, again.referenceTime == twcc.referenceTime,
                again.feedbackPacketCount == twcc.feedbackPacketCount, again.senderSSRC == twcc.senderSSRC,
                again.mediaSSRC == twcc.mediaSSRC,
                again.packets.map(\.sequenceNumber) == statuses.map(\.sequenceNumber),
                again.packets.map(\.arrivalOffset) == statuses.map(\.arrivalOffset)
            else { return "TWCC differs" }
        case .pictureLossIndication(let pli):
            try RTCPPictureLossIndication.write(senderSSRC: pli.senderSSRC, mediaSSRC: pli.mediaSSRC, into: &out)
            let again = try RTCPPictureLossIndication(out)
            guard again.senderSSRC == pli.senderSSRC, again.mediaSSRC == pli.mediaSSRC else { return "PLI differs" }
        case .fullIntraRequest(let fir):
            let entries = Array(fir.entries)
            try RTCPFullIntraRequest.write(senderSSRC: fir.senderSSRC, entries: entries, into: &out)
            let again = try RTCPFullIntraRequest(out)
            guard again.senderSSRC == fir.senderSSRC, Array(again.entries) == entries else { return "FIR differs" }
        case .receiverEstimatedMaximumBitrate(let remb):
            let ssrcs = Array(remb.ssrcs)
            try RTCPReceiverEstimatedMaximumBitrate.write(
                senderSSRC: remb.senderSSRC, bitrate: remb.bitrate, ssrcs: ssrcs, into: &out)
            let again = try RTCPReceiverEstimatedMaximumBitrate(out)
            guard again.senderSSRC == remb.senderSSRC, again.bitrate == remb.bitrate, Array(again.ssrcs) == ssrcs
            else { return "REMB differs" }
        case .unknown, .malformed:
            return nil
        }
    } catch {
        return "rebuild threw \(error)"
    }
    return nil
}
