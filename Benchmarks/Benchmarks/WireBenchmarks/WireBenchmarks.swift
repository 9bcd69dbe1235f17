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

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        maxDuration: .seconds(2),
        maxIterations: 10_000_000
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
