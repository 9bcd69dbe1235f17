@testable import BraidMesh
import BraidSFU
import NIOCore
import Testing

func at(_ milliseconds: Int64) -> NIODeadline { .uptimeNanoseconds(UInt64(1_000_000_000 + milliseconds * 1_000_000)) }

/// Two mesh links joined by an in-memory wire with a one-way delay and a drop rule, driven by a manual
/// clock: no sockets, no sleeps.
final class Wire {
    struct InFlight {
        let deliverAt: NIODeadline
        let toB: Bool
        let bytes: ByteBuffer
    }
    var inFlight: [InFlight] = []
    var now = at(0)
    var oneWayDelay: TimeAmount = .milliseconds(10)
    /// Drop datagram number n (counted per direction, from 1) when it returns true.
    var dropAToB: (Int) -> Bool = { _ in false }
    var sentAToB = 0
    var a: MeshLink!
    var b: MeshLink!
    var atA: [RouterLinkMessage] = []
    var atB: [RouterLinkMessage] = []
    /// The loss A measured when the stream stopped (afterwards only a few probes cross).
    var lossWhileStreaming = 0.0

    init(
        secretA: [UInt8] = Array("cluster secret".utf8), secretB: [UInt8] = Array("cluster secret".utf8), epochA: UInt64 = 1_000,
        epochB: UInt64 = 2_000, configurationA: MeshLink.Configuration = .init()
    ) throws {
        self.a = try self.makeA(secret: secretA, epoch: epochA, configuration: configurationA)
        self.b = try MeshLink(
            local: NodeID(name: "b"), peer: NodeID(name: "a"), secret: secretB, epoch: epochB
        ) { [unowned self] bytes in
            self.inFlight.append(InFlight(deliverAt: self.now + self.oneWayDelay, toB: false, bytes: bytes))
        }
        self.b.onMessage = { [unowned self] in self.atB.append($0) }
    }

    func makeA(secret: [UInt8], epoch: UInt64, configuration: MeshLink.Configuration = .init()) throws -> MeshLink {
        let link = try MeshLink(
            local: NodeID(name: "a"), peer: NodeID(name: "b"), secret: secret, epoch: epoch, configuration: configuration
        ) {
            [unowned self] bytes in
            self.sentAToB += 1
            guard !self.dropAToB(self.sentAToB) else { return }
            self.inFlight.append(InFlight(deliverAt: self.now + self.oneWayDelay, toB: true, bytes: bytes))
        }
        link.onMessage = { [unowned self] in self.atA.append($0) }
        return link
    }

    /// Advances the clock in 5 ms steps to `milliseconds`, delivering what is due and ticking both links.
    func run(until milliseconds: Int64) {
        while self.now < at(milliseconds) {
            self.now = self.now + .milliseconds(5)
            let due = self.inFlight.filter { $0.deliverAt <= self.now }
            self.inFlight.removeAll { $0.deliverAt <= self.now }
            for datagram in due {
                if datagram.toB { self.b.receive(datagram.bytes, now: self.now) } else { self.a.receive(datagram.bytes, now: self.now) }
            }
            self.a.tick(now: self.now)
            self.b.tick(now: self.now)
        }
    }
}

/// A RouterLink media batch of `count` records of track `id`, layer 0, sequence numbers from `first`.
func mediaBatch(_ id: TrackID, first: UInt16, count: Int, payloadSize: Int = 200) -> ByteBuffer {
    var batch = ByteBuffer()
    for index in 0..<count {
        let packetLength = 12 + payloadSize
        batch.writeMultipleIntegers(id.origin.rawValue, id.number, UInt8(0), UInt8(0), UInt16(packetLength))
        batch.writeMultipleIntegers(UInt8(0x80), UInt8(96), first &+ UInt16(index), UInt32(0), UInt32(0x1234))
        batch.writeRepeatingByte(UInt8(index & 0xFF), count: payloadSize)
    }
    return batch
}

/// The RTP sequence numbers of every record in the media batches of `messages`.
func recordSequences(_ messages: [RouterLinkMessage]) -> [UInt16] {
    var sequences: [UInt16] = []
    for case .media(var batch) in messages {
        while batch.readableBytes >= 16 {
            let length = batch.getInteger(at: batch.readerIndex + 14, as: UInt16.self)!
            var record = batch.readSlice(length: 16 + Int(length))!
            record.moveReaderIndex(forwardBy: 16)
            sequences.append(record.getInteger(at: record.readerIndex + 2, as: UInt16.self)!)
        }
    }
    return sequences
}

@Suite struct MeshLinkTests {
    let track = TrackID(origin: NodeID(name: "a"), number: 7)

    @Test func messagesCrossInPackedAuthenticatedDatagrams() throws {
        let wire = try Wire()
        wire.a.send(.media(mediaBatch(self.track, first: 100, count: 20)), now: wire.now)
        wire.a.send(.keyframe(self.track, layer: 1), now: wire.now)
        wire.a.flush(now: wire.now)
        wire.b.send(.wantLayers(self.track, .layer(0)), now: wire.now)
        wire.b.send(.layerRates(self.track, [300_000, 0]), now: wire.now)
        wire.b.flush(now: wire.now)
        wire.run(until: 50)
        #expect(recordSequences(wire.atB) == Array(100..<120))
        // 20 records of 228 bytes plus headers: several to a 1,400-byte datagram.
        #expect(wire.a.counters.datagramsSent < 10)
        #expect(wire.atB.contains { if case .keyframe(self.track, 1) = $0 { true } else { false } })
        #expect(wire.atA.contains { if case .wantLayers(self.track, .layer(0)) = $0 { true } else { false } })
        #expect(wire.atA.contains { if case .layerRates(self.track, [300_000, 0]) = $0 { true } else { false } })
        #expect(wire.a.isUp && wire.b.isUp)
        #expect(wire.b.counters.rejected == 0)
    }

    @Test func aNodeWithTheWrongCredentialIsRefusedAndCounted() throws {
        let wire = try Wire(secretB: Array("another secret".utf8))
        wire.a.send(.media(mediaBatch(self.track, first: 1, count: 3)), now: wire.now)
        wire.a.flush(now: wire.now)
        wire.run(until: 500)
        #expect(wire.atB.isEmpty)
        #expect(wire.atA.isEmpty)
        #expect(wire.b.counters.rejected > 0)
        #expect(wire.a.counters.rejected > 0)
        #expect(!wire.a.isUp && !wire.b.isUp)
    }

    @Test func probesMeasureRTTAndTheLinkGoesDownWhenSilent() throws {
        let wire = try Wire()
        wire.oneWayDelay = .milliseconds(20)
        wire.run(until: 2_000)
        let rtt = try #require(wire.a.measurements.rtt)
        #expect(abs(rtt.nanoseconds - 40_000_000) <= 5_000_000)
        #expect(wire.a.isUp)
        // B falls silent: A notices within deadAfter plus a probe interval.
        wire.dropAToB = { _ in false }
        var downAt: NIODeadline?
        wire.a.onStateChange = { up in if !up { downAt = wire.now } }
        let silencedAt = wire.now
        let b = wire.b!
        wire.b = try MeshLink(local: NodeID(name: "b"), peer: NodeID(name: "x"), secret: [1], epoch: 1) { _ in }
        _ = b
        wire.run(until: 3_500)
        let down = try #require(downAt)
        #expect(down - silencedAt <= .milliseconds(1_300))
        #expect(wire.a.counters.downs == 1)
    }

    @Test func lostDatagramsAreRepairedHopByHop() throws {
        let wire = try Wire()
        wire.run(until: 500)
        // A third of what A sends is lost at random (seeded), retransmissions included.
        var random = SplitMix64(seed: 7)
        wire.dropAToB = { _ in random.nextUnit() < 0.33 }
        for round in 0..<50 {
            wire.a.send(.media(mediaBatch(self.track, first: UInt16(round * 5), count: 5, payloadSize: 1_000)), now: wire.now)
            wire.a.flush(now: wire.now)
            wire.run(until: 500 + Int64(round + 1) * 20)
        }
        wire.run(until: 3_000)
        let received = Set(recordSequences(wire.atB))
        // Without repair about 167 would arrive; six NACKs leave about 0.33^7 of them missing.
        #expect(received.count >= 249)
        #expect(wire.b.counters.repaired > 0)
        #expect(wire.a.counters.retransmissionsSent > 0)
        // The loss A measures is that of first transmissions: about a third.
        #expect(wire.a.measurements.loss > 0.15)
    }

    /// A steady stream (five 1,000-byte records every 20 ms) for 4 s over a link losing a third of A's
    /// datagrams, repairs and retransmissions included; returns the wire once everything settled.
    func lossyStream(fec: Bool, peerDecodesRepairs: Bool = true) throws -> Wire {
        var configuration = MeshLink.Configuration()
        if !fec { configuration.repairMargin = 0 }
        let wire = try Wire(configurationA: configuration)
        wire.a.peerDecodesRepairs = peerDecodesRepairs
        var random = SplitMix64(seed: 11)
        wire.dropAToB = { _ in random.nextUnit() < 0.33 }
        for round in 0..<200 {
            wire.a.send(.media(mediaBatch(self.track, first: UInt16(round * 5), count: 5, payloadSize: 1_000)), now: wire.now)
            wire.a.flush(now: wire.now)
            wire.run(until: Int64(round + 1) * 20)
        }
        wire.lossWhileStreaming = wire.a.measurements.loss
        wire.run(until: 6_000)
        return wire
    }

    @Test func repairsFollowTheMeasuredLossAndRebuildMostLossesWithoutARoundTrip() throws {
        let protected = try self.lossyStream(fec: true)
        let plain = try self.lossyStream(fec: false)
        for wire in [protected, plain] {
            let sequences = recordSequences(wire.atB)
            // Everything arrives once: a rebuilt datagram's retransmission is dropped, not delivered again.
            #expect(sequences.count == Set(sequences).count)
            #expect(Set(sequences).count >= 995)
        }
        #expect(plain.a.counters.repairsSent == 0)
        #expect(plain.b.counters.recoveredByFEC == 0)
        // Repairs start once B's probe replies show the loss (about a second in), about one per datagram.
        #expect(protected.a.counters.repairsSent > 100)
        #expect(protected.b.counters.repairsReceived > 0)
        #expect(protected.b.counters.recoveredByFEC > 50)
        // The loss A is told of counts rebuilt datagrams as lost: the repairs stay sized for a third.
        #expect(protected.lossWhileStreaming > 0.2)
        // Most losses no longer wait for a NACK, and the NACKs that come are answered with fresh repairs over
        // the missing span rather than copies (only what the encoder no longer keeps is retransmitted).
        #expect(protected.a.counters.repairRounds > 20)
        #expect(protected.a.counters.roundRepairs >= protected.a.counters.repairRounds)
        #expect(protected.a.counters.retransmissionsSent * 5 < plain.a.counters.retransmissionsSent)
        #expect(plain.a.counters.repairRounds == 0)
        #expect(protected.b.counters.nacksSent < plain.b.counters.nacksSent)
        // Probes and replies that came in a retransmitted or rebuilt datagram are not timed: B's RTT is the
        // wire's 20 ms, not that plus a repair's delay.
        for wire in [protected, plain] {
            #expect(wire.b.counters.staleProbes > 0)
            #expect(try #require(wire.b.measurements.rtt) < .milliseconds(25))
        }
    }

    @Test func aPeerThatDoesNotDecodeRepairsGetsNone() throws {
        // An older node in the mesh (its cluster record lists no "fec-repairs") would take repairs for data.
        let wire = try self.lossyStream(fec: true, peerDecodesRepairs: false)
        #expect(wire.a.counters.repairsSent == 0)
        #expect(wire.b.counters.repairsReceived == 0)
        #expect(wire.a.counters.retransmissionsSent > 100)
        #expect(Set(recordSequences(wire.atB)).count >= 995)
    }

    @Test func aRestartedPeerIsAcceptedAndItsOldRunIsNot() throws {
        let wire = try Wire()
        wire.a.send(.keyframe(self.track, layer: 0), now: wire.now)
        wire.a.flush(now: wire.now)
        wire.run(until: 100)
        #expect(wire.atB.count == 1)
        // Capture a datagram of the first run, then restart A with a later epoch.
        var captured: ByteBuffer?
        let oldA = wire.a!
        let capture = try MeshLink(local: NodeID(name: "a"), peer: NodeID(name: "b"), secret: Array("cluster secret".utf8), epoch: 1_000) { captured = $0 }
        _ = oldA
        wire.a = try wire.makeA(secret: Array("cluster secret".utf8), epoch: 5_000)
        wire.a.send(.keyframe(self.track, layer: 2), now: wire.now)
        wire.a.flush(now: wire.now)
        wire.run(until: 200)
        #expect(wire.atB.contains { if case .keyframe(self.track, 2) = $0 { true } else { false } })
        capture.send(.keyframe(self.track, layer: 3), now: wire.now)
        capture.flush(now: wire.now)
        let rejectedBefore = wire.b.counters.rejected
        #expect(!wire.b.receive(try #require(captured), now: wire.now))
        #expect(wire.b.counters.rejected == rejectedBefore + 1)
        #expect(!wire.atB.contains { if case .keyframe(self.track, 3) = $0 { true } else { false } })
    }

    @Test func framesRoundTripAndBadFramesAreErrors() throws {
        let frames: [MeshFrame] = [
            .wantLayers(self.track, [.layer(0), .layer(2)]), .keyframe(self.track, layer: 1),
            .layerRates(self.track, [1, 2, 3]), .probe(id: 9, sentAt: 123), .probeReply(id: 9, echoedSentAt: 123, expected: 5, gaps: 1),
            .nack([1, 2, 99]),
        ]
        var buffer = ByteBuffer()
        for frame in frames { frame.write(into: &buffer) }
        var decoded: [MeshFrame] = []
        while buffer.readableBytes > 0 { if let frame = try MeshFrame.read(from: &buffer) { decoded.append(frame) } }
        #expect(decoded == frames)
        var truncated = ByteBuffer(bytes: [2, 0, 16, 1, 2])
        #expect(throws: MeshFrame.DecodingError.truncated) { try MeshFrame.read(from: &truncated) }
        var wrongLength = ByteBuffer(bytes: [3, 0, 2, 1, 2])
        #expect(throws: MeshFrame.DecodingError.malformed(type: 3)) { try MeshFrame.read(from: &wrongLength) }
        var unknown = ByteBuffer(bytes: [200, 0, 1, 9])
        #expect(try MeshFrame.read(from: &unknown) == nil)
        #expect(unknown.readableBytes == 0)
    }
}
