// Per-packet work of the forwarding core that comes next: the per-consumer rewrite and retransmission
// store, the publisher-side NACK generator, and one bandwidth-estimator update per TWCC feedback. Each
// claims no heap allocation in the steady state; the malloc counts here check that claim.
import Benchmark
import BraidCongestion
import BraidRTPStreams
import BraidWire
import NIOCore

private let transportSequenceID: UInt8 = 3
private let extensionMap = RTPHeaderExtensionMap([
    (id: Int(transportSequenceID), uri: RTPHeaderExtensionMap.transportSequenceNumberURI)
])

/// A 1200-byte-payload VP8 packet (descriptor with a 15-bit picture id and TL0PICIDX) carrying a
/// transport-wide sequence number.
private func publisherPacket(sequence: UInt16) throws -> ByteBuffer {
    var extensions = RTPHeaderExtensionBuilder()
    try extensions.append(TransportSequenceNumber(sequence), id: transportSequenceID)
    var payload = ByteBuffer()
    payload.writeBytes([0x90, 0xE0, 0x80 | 0x12, 0x34, 0x05, 0x00] as [UInt8])  // X,S; I,L,T; PID; TL0; TID
    payload.writeRepeatingByte(0xAB, count: 1194)
    var buffer = ByteBuffer()
    try buffer.writeRTPPacket(
        RTPHeader(marker: true, payloadType: 96, sequenceNumber: sequence, timestamp: 90_000, ssrc: 0xA1B2_C3D4),
        extensions: extensions,
        payload: payload
    )
    return buffer
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

    Benchmark("Forward to one consumer: copy, rewrite SSRC, seq, ts, VP8 ids and TWCC seq, store for NACK") { benchmark in
        let received = try RTPPacket(publisherPacket(sequence: 1000))
        var rewriter = RTPRewriter(outputSSRC: 0x0BAD_CAFE, clockRate: 90_000, rewritesVP8: true)
        var retransmissions = RetransmissionBuffer(capacity: 1024)
        var scratch = ByteBuffer()
        scratch.reserveCapacity(1500)
        var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var transportSequence: UInt16 = 0
        var inputSequence: UInt16 = 1000
        var input = received
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            // The publisher's next packet, as if just received.
            inputSequence &+= 1
            input.setSequenceNumber(inputSequence)
            now = now + .microseconds(700)

            scratch.clear()
            scratch.writeImmutableBuffer(input.bytes)
            var out = try RTPPacket(consume scratch)
            if try rewriter.rewrite(packet: &out, now: now) == .forward {
                transportSequence &+= 1
                try out.setTransportSequenceNumber(transportSequence, extensionMap)
                retransmissions.store(out, now: now)
            }
            blackHole(out.sequenceNumber)
            scratch = out.buffer
        }
    }

    Benchmark("NACK generator: receive with 1% loss, collect NACKs every 20 packets") { benchmark in
        var generator = NACKGenerator()
        var pending = ContiguousArray<UInt16>()
        pending.reserveCapacity(1000)
        var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var sequence: UInt16 = 0
        var count = 0
        // The missing list is reserved at the first gap (once per generator, not per packet): warm it up.
        _ = generator.packetReceived(sequenceNumber: 1, now: now)
        _ = generator.packetReceived(sequenceNumber: 3, now: now)
        _ = generator.packetReceived(sequenceNumber: 2, now: now)
        sequence = 3
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            sequence &+= 1
            count += 1
            now = now + .microseconds(700)
            if count % 100 == 50 { continue }  // lost
            blackHole(generator.packetReceived(sequenceNumber: sequence, now: now))
            if count % 20 == 0 {
                pending.removeAll(keepingCapacity: true)
                generator.pending(now: now, into: &pending)
                blackHole(pending.count)
            }
        }
    }

    Benchmark("Bandwidth estimator: one TWCC feedback of 100 packets") { benchmark in
        var estimator = BandwidthEstimator()
        var results = ContiguousArray<PacketResult>(
            repeating: PacketResult(sequenceNumber: 0, sendTimeUs: 0, size: 0, arrivalTimeUs: nil), count: 100)
        var sequence: UInt16 = 0
        var sendTime: Int64 = 1_000_000
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for index in results.indices {
                sequence &+= 1
                sendTime += 1_000
                let arrival: Int64? = sequence % 50 == 0 ? nil : sendTime + 20_000 + Int64(sequence % 7) * 100
                results[index] = PacketResult(
                    sequenceNumber: sequence, sendTimeUs: sendTime, size: 1200, arrivalTimeUs: arrival)
            }
            blackHole(estimator.onFeedback(results: results, now: sendTime + 25_000).bitrate)
        }
    }

    // What a lossy link's protection costs the node: at 50 % loss one repair goes out per media packet, and
    // at 1.4 Mbit/s the 200 ms window holds about 30 packets (a keyframe up to 64), each multiplied into
    // the repair symbol in GF(2⁸). Reported per repair.
    for sources in [30, 64] {
        Benchmark("Braid FEC: one repair over \(sources) packets of 1200 bytes (keep the packet, write the repair)") { benchmark in
            var encoder = SlidingWindowFECEncoder(capacity: 64, maximumPacketSize: 1500)
            var packet = ByteBuffer()
            packet.writeRepeatingByte(0x5A, count: 1212)
            var repair = ByteBuffer()
            repair.reserveCapacity(1600)
            var sequence: UInt16 = 0
            var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
            for _ in 0..<64 {
                sequence &+= 1
                encoder.add(packet, sequenceNumber: sequence, now: now)
            }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                sequence &+= 1
                now = now + .microseconds(700)
                packet.setInteger(sequence, at: 2)
                encoder.add(packet, sequenceNumber: sequence, now: now)
                repair.clear()
                blackHole(
                    encoder.writeRepair(now: now, maximumAge: .seconds(1), maximumSources: sources, into: &repair))
            }
        }
    }
}
