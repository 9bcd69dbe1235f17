import BraidWire
import NIOCore
import Testing

@Suite struct RTCPPropertyTests {
    /// A valid compound holding one packet of every modelled type plus an APP packet.
    static func everyTypeCompound() throws -> ByteBuffer {
        var builder = RTCPCompoundBuilder(buffer: ByteBufferAllocator().buffer(capacity: 1500))
        let block = RTCPReportBlock(
            ssrc: 2, fractionLost: 3, cumulativeLost: -4, extendedHighestSequenceNumber: 5, jitter: 6,
            lastSenderReport: 7, delaySinceLastSenderReport: 8)
        try builder.appendSenderReport(
            senderSSRC: 1, ntpTimestamp: 0xE000_0000_8000_0000, rtpTimestamp: 9, packetCount: 10, octetCount: 11,
            reportBlocks: [block, block])
        try builder.appendReceiverReport(senderSSRC: 1, reportBlocks: [block])
        try builder.append { (buffer: inout ByteBuffer) throws(WireError) in
            let chunks: [(UInt32, [(UInt8, [UInt8])])] = [(1, [(1, Array("a@b".utf8)), (6, Array("braid".utf8))]), (2, [])]
            try RTCPSourceDescription.write(chunks: chunks, into: &buffer)
        }
        try builder.appendGenericNACK(senderSSRC: 1, mediaSSRC: 2, lostSequenceNumbers: [65534, 1, 2, 30])
        try builder.appendPictureLossIndication(senderSSRC: 1, mediaSSRC: 2)
        try builder.appendFullIntraRequest(senderSSRC: 1, entries: [.init(ssrc: 2, sequenceNumber: 3)])
        try builder.appendREMB(senderSSRC: 1, bitrate: 1_234_567, ssrcs: [2, 3])
        try builder.appendTransportWideFeedback(
            senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: 65530, feedbackPacketCount: 4,
            arrivals: [1_000_000, nil, 1_001_000, 1_200_000, 1_100_000, nil, nil, 1_100_250, 1_100_500])
        try builder.append { (buffer: inout ByteBuffer) throws(WireError) in
            buffer.writeBytes([0x80, 204, 0, 2, 0, 0, 0, 1, 0x41, 0x42, 0x43, 0x44])
        }
        try builder.append { (buffer: inout ByteBuffer) throws(WireError) in
            try RTCPGoodbye.write(ssrcs: [1], reason: Array("bye".utf8), into: &buffer)
        }
        return builder.finish()
    }

    @Test func everyTypeCompoundRebuildsToTheSameValues() throws {
        let compound = try RTCPCompoundPacket(Self.everyTypeCompound())
        #expect(compound.count == 10)
        for packet in compound {
            if case .malformed(_, let error) = packet { Issue.record("malformed: \(error)") }
            #expect(rtcpRebuildMismatch(packet) == nil)
        }
    }

    @Test func everyTruncationIsRejectedOrFramedAtAPacketBoundary() throws {
        let full = rtcpBytes(try Self.everyTypeCompound())
        // Packet boundaries of the full compound.
        var boundaries: Set<Int> = []
        var offset = 0
        for packet in try RTCPCompoundPacket(ByteBuffer(bytes: full)) {
            offset += packet.header.byteCount
            boundaries.insert(offset)
        }
        for length in 0..<full.count {
            let prefix = ByteBuffer(bytes: full[0..<length])
            if let compound = try? RTCPCompoundPacket(prefix) {
                #expect(boundaries.contains(length), "prefix of \(length) bytes parsed")
                rtcpWalk(compound)
            } else {
                #expect(!boundaries.contains(length), "prefix of \(length) bytes rejected")
            }
            // Each single packet truncated inside itself must throw, not trap.
            for packetStart in boundaries where packetStart < length {
                _ = try? RTCPCompoundPacket(ByteBuffer(bytes: full[packetStart..<length]))
            }
        }
    }

    @Test func randomBytesNeverCrash() {
        var generator = SplitMix64(state: 0xB4A1D)
        var framed = 0
        for _ in 0..<20_000 {
            var bytes = (0..<Int.random(in: 0...160, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            // Bias half the cases towards plausible headers so parsing gets past the first checks.
            if bytes.count >= 4, Bool.random(using: &generator) {
                bytes[0] = 0x80 | (bytes[0] & 0x3F)
                bytes[1] = UInt8.random(in: 200...207, using: &generator)
                let words = (bytes.count / 4) - 1
                bytes[2] = 0
                bytes[3] = UInt8(truncatingIfNeeded: words)
            }
            guard let compound = try? RTCPCompoundPacket(ByteBuffer(bytes: bytes)) else { continue }
            framed += 1
            rtcpWalk(compound)
            for packet in compound {
                if let mismatch = rtcpRebuildMismatch(packet) { Issue.record("\(mismatch) for \(bytes)") }
            }
        }
        #expect(framed > 1000)
    }

    @Test func mutatedValidCompoundsNeverCrashAndRebuild() throws {
        let original = rtcpBytes(try Self.everyTypeCompound())
        var generator = SplitMix64(state: 99)
        var typedPackets = 0
        for _ in 0..<5_000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            guard let compound = try? RTCPCompoundPacket(ByteBuffer(bytes: bytes)) else { continue }
            rtcpWalk(compound)
            for packet in compound {
                switch packet {
                case .unknown, .malformed: break
                default: typedPackets += 1
                }
                if let mismatch = rtcpRebuildMismatch(packet) { Issue.record("\(mismatch) for \(bytes)") }
            }
        }
        #expect(typedPackets > 2_500)
    }

    @Test func transportFeedbackSplitsLongRandomHistories() throws {
        var generator = SplitMix64(state: 2024)
        for _ in 0..<100 {
            // Arrival times with small gaps, losses, reordering (negative deltas) and multi-second stalls.
            var arrivals: [Int64?] = []
            var clock = Int64.random(in: 0...1_000_000_000, using: &generator)
            for _ in 0..<Int.random(in: 1...3000, using: &generator) {
                switch Int.random(in: 0..<100, using: &generator) {
                case 0..<15: arrivals.append(nil)
                case 15..<18: clock += Int64.random(in: 8_000_000...12_000_000, using: &generator)
                case 18..<25: clock -= Int64.random(in: 0...30_000, using: &generator)
                default: clock += Int64.random(in: 0...20_000, using: &generator)
                }
                if arrivals.count < 1 || arrivals.last != nil || Bool.random(using: &generator) {
                    arrivals.append(clock)
                }
            }
            // Encode it all, packet after packet, as a feedback sender would.
            var next = 0
            var sequence = UInt16.random(in: 0...UInt16.max, using: &generator)
            var packets = 0
            while next < arrivals.count {
                var buffer = ByteBufferAllocator().buffer(capacity: 1200)
                let result = try RTCPTransportWideFeedback.write(
                    senderSSRC: 1, mediaSSRC: 2, baseSequenceNumber: sequence, feedbackPacketCount: UInt8(packets & 0xFF),
                    arrivals: arrivals[next...], into: &buffer)
                #expect(result.byteCount <= 1200)
                #expect(result.stopReason != .complete || next + result.packetCount == arrivals.count)
                let feedback = try RTCPTransportWideFeedback(buffer)
                #expect(feedback.packetStatusCount == result.packetCount)
                // Checked in bulk: one #expect per packet would dominate the run time.
                var wrong = 0
                for (status, arrival) in zip(feedback.packets, arrivals[next...]) {
                    if status.sequenceNumber != sequence { wrong += 1 }
                    sequence &+= 1
                    if let arrival {
                        if let offset = status.arrivalOffset {
                            if abs(feedback.referenceTimeMicroseconds + offset - arrival) > 125 { wrong += 1 }
                        } else {
                            wrong += 1
                        }
                    } else if status.status != .notReceived {
                        wrong += 1
                    }
                }
                #expect(wrong == 0)
                next += result.packetCount
                packets += 1
            }
        }
    }
}
