// The router's forward step end to end: one publisher packet in, one rebuilt and rewritten packet out to
// each of N subscribers (payload type, mid/abs-send-time/transport-wide extensions rebuilt, SSRC,
// sequence number, timestamp, VP8 picture id and TL0PICIDX rewritten, stored for retransmission). The
// forwarding core claims no heap allocation per packet in the steady state; the malloc counts check it.
import Benchmark
import BraidSFU
import BraidWire
import NIOCore

/// Counts what it is given and drops it, as a transport that protects into its own buffer would.
private final class CountingTransport: MediaTransport {
    var packets = 0
    var bytes = 0
    func sendRTP(_ packet: ByteBuffer) {
        self.packets += 1
        self.bytes += packet.readableBytes
    }
    func sendRTCP(_ packet: ByteBuffer) {}
}

private let publisherExtensions = RTPExtensionIDs(mid: 1, rid: 2, absSendTime: 4, transportWideSequence: 5)
private let subscriberExtensions = RTPExtensionIDs(mid: 9, absSendTime: 10, transportWideSequence: 11)

/// A 1200-byte-payload VP8 packet with mid, abs-send-time and transport-wide sequence number.
private func publisherPacket(sequence: UInt16, keyframe: Bool) throws -> ByteBuffer {
    var extensions = RTPHeaderExtensionBuilder()
    try extensions.append(id: 1, bytes: Array("0".utf8))
    try extensions.append(AbsSendTime(rawValue: 0x12345), id: 4)
    try extensions.append(TransportSequenceNumber(sequence), id: 5)
    var payload = ByteBuffer()
    payload.writeBytes([0x90, 0xC0, 0x80 | 0x12, 0x34, 0x05] as [UInt8])  // X,S; I,L; 15-bit PID; TL0
    payload.writeInteger(UInt8(keyframe ? 0x50 : 0x51))  // VP8 frame tag: P = 0 for a key frame
    payload.writeRepeatingByte(0xAB, count: 1194)
    var buffer = ByteBuffer()
    try buffer.writeRTPPacket(
        RTPHeader(marker: true, payloadType: 96, sequenceNumber: sequence, timestamp: 90_000, ssrc: 0xA1B2_C3D4),
        extensions: extensions, payload: payload)
    return buffer
}

/// The published VP8 track.
private let benchmarkTrack = PublishedTrackDescription(
    mid: "0", kind: .video, trackID: "cam", streamID: "s", codecName: "VP8", payloadType: 96, clockRate: 90_000,
    ssrcs: [0xA1B2_C3D4], feedback: RTCPFeedbackSupport(nack: true, pli: true, transportCC: true))

/// `count` WebRTC subscribers with one video slot each (RTX, NACK, PLI, transport-cc).
private func addSubscribers(_ count: Int, to router: SFURouter, now: NIODeadline) -> [CountingTransport] {
    let transports = (0..<count).map { _ in CountingTransport() }
    for (index, transport) in transports.enumerated() {
        let slot = SubscriberSlotDescription(
            mid: "v", kind: .video, payloadType: 100, clockRate: 90_000, rtxPayloadType: 101,
            ssrc: 0x1000 + UInt32(index), rtxSSRC: 0x2000 + UInt32(index),
            feedback: RTCPFeedbackSupport(nack: true, pli: true, transportCC: true))
        router.addSubscriber(
            room: "bench", peerID: "sub\(index)",
            description: SubscriberDescription(extensions: subscriberExtensions, slots: [slot]),
            transport: transport, now: now)
    }
    return transports
}

private func forwardBenchmark(subscribers: Int) -> (Benchmark) throws -> Void {
    { benchmark in
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let router = SFURouter(
            wallClock: WallClock(referenceDeadline: start, referenceUnixNanoseconds: 1_700_000_000_000_000_000))
        let publisher = router.addPublisher(
            room: "bench", peerID: "pub",
            description: PublisherDescription(extensions: publisherExtensions, tracks: [benchmarkTrack]),
            transport: CountingTransport(), now: start)
        let transports = addSubscribers(subscribers, to: router, now: start)
        var now = start
        var sequence: UInt16 = 1000
        // Warm-up: a keyframe starts every consumer, then enough packets to size every reused buffer.
        publisher.receiveRTP(try publisherPacket(sequence: sequence, keyframe: true), now: now)
        var packet = try RTPPacket(publisherPacket(sequence: sequence, keyframe: false))
        for _ in 0..<2000 {
            sequence &+= 1
            now = now + .microseconds(700)
            packet.setSequenceNumber(sequence)
            publisher.receiveRTP(packet.buffer, now: now)
        }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            sequence &+= 1
            now = now + .microseconds(700)
            packet.setSequenceNumber(sequence)
            publisher.receiveRTP(packet.buffer, now: now)
        }
        benchmark.stopMeasurement()
        blackHole(transports.reduce(0) { $0 + $1.packets })
    }
}

/// A publisher on one router, N subscribers on another, joined by a RouterLink whose messages are
/// delivered synchronously (the node hands them to the other event loop): per publisher packet, one
/// origin-form copy appended to the batch, the batch handed over, ingested by the mirror (parsed, stored)
/// and fanned out there.
private func crossLoopBenchmark(subscribers: Int) -> (Benchmark) throws -> Void {
    { benchmark in
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let clock = WallClock(referenceDeadline: start, referenceUnixNanoseconds: 1_700_000_000_000_000_000)
        let origin = SFURouter(wallClock: clock, shard: 0, shards: 2)
        let other = SFURouter(wallClock: clock, shard: 1, shards: 2)
        nonisolated(unsafe) var toOther: RouterLinkMessage?
        nonisolated(unsafe) var toOrigin: [RouterLinkMessage] = []
        let originLink = origin.link(name: "loop-1") { toOther = $0 }
        let otherLink = other.link(name: "loop-0") { toOrigin.append($0) }
        func pump(now: NIODeadline) {
            origin.flushLinks()
            if let message = toOther.take() { otherLink.receive(message, now: now) }
            while !toOrigin.isEmpty {
                let messages = toOrigin
                toOrigin.removeAll(keepingCapacity: true)
                for message in messages { originLink.receive(message, now: now) }
                origin.flushLinks()
                if let message = toOther.take() { otherLink.receive(message, now: now) }
            }
        }
        let publisher = origin.addPublisher(
            room: "bench", peerID: "pub",
            description: PublisherDescription(extensions: publisherExtensions, tracks: [benchmarkTrack]),
            transport: CountingTransport(), now: start)
        pump(now: start)
        let transports = addSubscribers(subscribers, to: other, now: start)
        pump(now: start)
        var now = start
        var sequence: UInt16 = 1000
        publisher.receiveRTP(try publisherPacket(sequence: sequence, keyframe: true), now: now)
        pump(now: now)
        var packet = try RTPPacket(publisherPacket(sequence: sequence, keyframe: false))
        for _ in 0..<2000 {
            sequence &+= 1
            now = now + .microseconds(700)
            packet.setSequenceNumber(sequence)
            publisher.receiveRTP(packet.buffer, now: now)
            pump(now: now)
        }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            sequence &+= 1
            now = now + .microseconds(700)
            packet.setSequenceNumber(sequence)
            publisher.receiveRTP(packet.buffer, now: now)
            pump(now: now)
        }
        benchmark.stopMeasurement()
        blackHole(transports.reduce(0) { $0 + $1.packets })
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        // 1000 packets per sample, reported per packet (see WireBenchmarks).
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000,
        // Allocations per packet are deterministic: the committed Thresholds/ hold each benchmark's p90 and
        // `benchmark thresholds check` fails on one malloc more (see README.md, "Regression check").
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )
    Benchmark("SFU forward step, 1 publisher packet to 1 subscriber", closure: forwardBenchmark(subscribers: 1))
    Benchmark("SFU forward step, 1 publisher packet to 10 subscribers", closure: forwardBenchmark(subscribers: 10))
    Benchmark(
        "SFU forward across event loops (RouterLink), 1 packet to 1 subscriber on the other loop",
        closure: crossLoopBenchmark(subscribers: 1))
}
