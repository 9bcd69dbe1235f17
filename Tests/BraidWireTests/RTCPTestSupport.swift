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

/// A small deterministic generator (SplitMix64) so property tests are reproducible.
struct RTCPSeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

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
