// Parsing costs of the packets every datagram on the media port turns into. The malloc count of each
// benchmark is the claim under test: parsing allocates nothing.
import Benchmark
import BraidWire
import NIOCore

/// The extension IDs Chromium typically negotiates.
private let extensionMap = RTPHeaderExtensionMap([
    (id: 1, uri: RTPHeaderExtensionMap.audioLevelURI),
    (id: 2, uri: RTPHeaderExtensionMap.absSendTimeURI),
    (id: 3, uri: RTPHeaderExtensionMap.transportSequenceNumberURI),
    (id: 4, uri: RTPHeaderExtensionMap.midURI),
    (id: 10, uri: RTPHeaderExtensionMap.ridURI),
])

/// A 1200-byte-payload video packet with mid, rid, abs-send-time and transport-wide sequence number.
private func videoPacket() throws -> ByteBuffer {
    var extensions = RTPHeaderExtensionBuilder()
    try extensions.append(id: 4, bytes: Array("0".utf8))
    try extensions.append(id: 10, bytes: Array("h".utf8))
    try extensions.append(AbsSendTime(rawValue: 0x12_3456), id: 2)
    try extensions.append(TransportSequenceNumber(4242), id: 3)
    var buffer = ByteBuffer()
    try buffer.writeRTPPacket(
        RTPHeader(marker: true, payloadType: 96, sequenceNumber: 1000, timestamp: 90_000, ssrc: 0x1234_5678),
        extensions: extensions,
        payload: ByteBuffer(repeating: 0xAB, count: 1200)
    )
    return buffer
}

/// An ICE connectivity check as Chromium sends it: USERNAME, PRIORITY, ICE-CONTROLLING, USE-CANDIDATE,
/// MESSAGE-INTEGRITY and FINGERPRINT.
private func bindingRequest(key: STUNIntegrityKey) throws -> ByteBuffer {
    var buffer = ByteBuffer()
    var builder = STUNMessageBuilder(
        type: .bindingRequest,
        transactionID: STUNTransactionID.random(),
        into: &buffer
    )
    try builder.appendUsername("Jq8C:x4Hd", to: &buffer)
    try builder.appendPriority(1_853_824_767, to: &buffer)
    try builder.appendICEControlling(tieBreaker: 0x1122_3344_5566_7788, to: &buffer)
    try builder.appendUseCandidate(to: &buffer)
    try builder.appendMessageIntegrity(key: key, to: &buffer)
    try builder.appendFingerprint(to: &buffer)
    return buffer
}

/// A compound a browser sends a publisher-facing SFU: RR with two report blocks, SDES CNAME, a NACK, a PLI,
/// REMB and a transport-wide CC feedback for 40 packets (some lost, one large gap).
private func receiverCompound() throws -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.reserveCapacity(1500)
    let block = RTCPReportBlock(
        ssrc: 0x1234_5678, fractionLost: 12, cumulativeLost: 40, extendedHighestSequenceNumber: 70_000,
        jitter: 120, lastSenderReport: 0xAABB_CCDD, delaySinceLastSenderReport: 6553)
    try RTCPReceiverReport.write(senderSSRC: 1, reportBlocks: [block, block], into: &buffer)
    try RTCPSourceDescription.writeCNAME(ssrc: 1, cname: "x9Zk2mQp4LrT7vWb", into: &buffer)
    try RTCPGenericNACK.write(senderSSRC: 1, mediaSSRC: 0x1234_5678, lostSequenceNumbers: [100, 102, 117, 300], into: &buffer)
    try RTCPPictureLossIndication.write(senderSSRC: 1, mediaSSRC: 0x1234_5678, into: &buffer)
    try RTCPReceiverEstimatedMaximumBitrate.write(senderSSRC: 1, bitrate: 2_500_000, ssrcs: [0x1234_5678], into: &buffer)
    var arrivals: [Int64?] = []
    for index in 0..<40 {
        let onTime: Int64 = 1_000_000 + Int64(index) * 2_500
        arrivals.append(index % 7 == 3 ? nil : onTime + (index == 20 ? 80_000 : 0))
    }
    try RTCPTransportWideFeedback.write(
        senderSSRC: 1, mediaSSRC: 0x1234_5678, baseSequenceNumber: 65_520, feedbackPacketCount: 9,
        arrivals: arrivals, into: &buffer)
    return buffer
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        // 1000 packets per sample keeps the harness's own fixed cost (a handful of mallocs and the clock
        // reads per sample) out of the per-packet figures; results are shown per packet.
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000,
        // Allocations per packet are deterministic: the committed Thresholds/ hold each benchmark's p90 and
        // `benchmark thresholds check` fails on one malloc more (see README.md, "Regression check").
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )

    Benchmark("RTP parse header + typed extensions") { benchmark in
        let packet = try videoPacket()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let view = try RTPPacket(packet)
            blackHole(view.sequenceNumber &+ UInt16(truncatingIfNeeded: view.ssrc))
            blackHole(try view.transportSequenceNumber(extensionMap))
            blackHole(try view.absSendTime(extensionMap))
            blackHole(try view.mid(extensionMap)?.matches("0"))
            blackHole(view.payload.readableBytes)
        }
    }

    Benchmark("RTCP compound parse (RR, SDES, NACK, PLI, REMB, TWCC) and walk") { benchmark in
        let compound = try receiverCompound()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var checksum: Int64 = 0
            for packet in try RTCPCompoundPacket(compound) {
                switch packet {
                case .receiverReport(let report):
                    for block in report.reportBlocks { checksum &+= Int64(block.cumulativeLost) }
                case .genericNACK(let nack):
                    for sequence in nack.lostSequenceNumbers { checksum &+= Int64(sequence) }
                case .transportWideFeedback(let feedback):
                    for status in feedback.packets { checksum &+= status.arrivalOffset ?? 0 }
                case .receiverEstimatedMaximumBitrate(let remb):
                    checksum &+= Int64(truncatingIfNeeded: remb.bitrate)
                default:
                    checksum &+= 1
                }
            }
            blackHole(checksum)
        }
    }

    Benchmark("STUN parse + MESSAGE-INTEGRITY + FINGERPRINT") { benchmark in
        let key = STUNIntegrityKey(shortTermPassword: "r3Fh7kXqPz0aLm2Vd9sWbT4y")
        let request = try bindingRequest(key: key)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let message = try STUNMessage(parsing: request)
            try message.validateFingerprint()
            try message.validateIntegrity(key: key)
            blackHole(try message.username()?.equals("Jq8C:x4Hd"))
            blackHole(try message.priority())
        }
    }
}
