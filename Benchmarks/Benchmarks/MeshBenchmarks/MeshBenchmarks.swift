// A relay link's per-packet cost: media records of 1200-byte RTP packets through one MeshLink to another
// in memory (pack, seal with SRTP AES-GCM, keep for retransmission; open, replay check, gap tracking,
// frame parsing, hand-off as a RouterLink batch). No sockets: what a relay node's CPU spends per packet
// and link on top of forwarding.
import Benchmark
import BraidMesh
import BraidSFU
import NIOCore

private let track = TrackID(origin: NodeID(name: "a"), number: 1)

/// One RouterLink batch of `count` records of 1200-byte RTP packets.
private func batch(count: Int, first: UInt16) -> ByteBuffer {
    var buffer = ByteBufferAllocator().buffer(capacity: count * 1240)
    for index in 0..<count {
        buffer.writeMultipleIntegers(track.origin.rawValue, track.number, UInt8(0), UInt8(0), UInt16(1212))
        buffer.writeMultipleIntegers(UInt8(0x80), UInt8(96), first &+ UInt16(index), UInt32(0), UInt32(0x1234))
        buffer.writeRepeatingByte(0xAB, count: 1200)
    }
    return buffer
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        // Allocations per packet are deterministic: the committed Thresholds/ hold each benchmark's p90 and
        // `benchmark thresholds check` fails on one malloc more (see README.md, "Regression check").
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )

    Benchmark("Mesh relay 1200 B record (seal+open, one datagram each)") { benchmark in
        var receiving: MeshLink?
        let secret = Array("benchmark cluster secret".utf8)
        let sending = try MeshLink(local: NodeID(name: "a"), peer: NodeID(name: "b"), secret: secret, epoch: 1) {
            datagram in
            receiving?.receive(datagram, now: .uptimeNanoseconds(1_000_000_000))
        }
        receiving = try MeshLink(local: NodeID(name: "b"), peer: NodeID(name: "a"), secret: secret, epoch: 2) { _ in }
        var delivered = 0
        receiving?.onMessage = { message in
            if case .media(let records) = message { delivered += records.readableBytes }
        }
        // Batches of 8 records, as a read batch of a busy publisher produces them.
        let batches = (0..<64).map { batch(count: 8, first: UInt16($0 * 8)) }
        let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        benchmark.startMeasurement()
        for iteration in benchmark.scaledIterations where iteration % 8 == 0 {
            sending.send(.media(batches[(iteration / 8) % batches.count]), now: now)
            sending.flush(now: now)
        }
        benchmark.stopMeasurement()
        blackHole(delivered)
    }
}
