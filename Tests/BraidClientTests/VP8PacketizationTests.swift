import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@testable import BraidClient

/// A packet as it would travel: header fields and the RTP payload.
struct WirePacket {
    var sequenceNumber: UInt16
    var timestamp: UInt32
    var marker: Bool
    var payload: ByteBuffer
}

/// Packetizes `frames` (first byte of each: bit 0 clear = keyframe, per RFC 6386 §9.1) into packets.
func packetize(
    _ frames: [[UInt8]], maximumPayloadSize: Int = 1200, firstSequence: UInt16 = 65_530
) -> [[WirePacket]] {
    var packetizer = VP8Packetizer(maximumPayloadSize: maximumPayloadSize, initialPictureID: 32_766)
    var scratch = ByteBuffer()
    var sequence = firstSequence
    return frames.enumerated().map { index, frame in
        var packets: [WirePacket] = []
        _ = packetizer.packetize(frame: ByteBuffer(bytes: frame), scratch: &scratch) { payload, last in
            packets.append(
                WirePacket(
                    sequenceNumber: sequence, timestamp: UInt32(index) &* 3000 &+ 0xFFFF_F000, marker: last,
                    payload: payload))
            sequence &+= 1
        }
        return packets
    }
}

/// A VP8 frame of `size` bytes: the first byte marks key (0x10) or delta (0x11), the rest a pattern.
func frame(size: Int, key: Bool, seed: UInt8) -> [UInt8] {
    [key ? 0x10 : 0x11] + (1..<size).map { UInt8(truncatingIfNeeded: $0) &+ seed }
}

@Suite("VP8 packetizer and frame assembler (RFC 7741)")
struct VP8PacketizationTests {
    @Test("A frame splits into near-equal payloads under the limit and reassembles byte for byte")
    func splitAndReassemble() throws {
        let data = frame(size: 3001, key: true, seed: 7)
        let packets = packetize([data])[0]
        #expect(packets.count == 3)
        #expect(packets.map(\.marker) == [false, false, true])
        var reassembled: [UInt8] = []
        var sizes: [Int] = []
        for (index, packet) in packets.enumerated() {
            #expect(packet.payload.readableBytes <= 1200)
            let vp8 = try VP8Payload(packet.payload)
            #expect(vp8.isStartOfFrame == (index == 0))
            #expect(vp8.descriptor.partitionIndex == 0)
            #expect(vp8.descriptor.pictureID == .long(32_766))
            sizes.append(vp8.data.readableBytes)
            reassembled += Array(vp8.data.readableBytesView)
        }
        #expect(reassembled == data)
        #expect(sizes.max()! - sizes.min()! <= 1)
        #expect(try VP8Payload(packets[0].payload).isKeyFrame)
    }

    @Test("PictureID wraps at 15 bits; TL0PICIDX advances on temporal layer 0")
    func pictureIDAndTemporalLayers() throws {
        var packetizer = VP8Packetizer(initialPictureID: 0x7FFF, initialTL0PicIndex: 255)
        var scratch = ByteBuffer()
        var descriptors: [VP8PayloadDescriptor] = []
        for tid: UInt8 in [0, 1, 0] {
            _ = packetizer.packetize(frame: ByteBuffer(bytes: [0x11, 1, 2]), temporalLayer: tid, scratch: &scratch) {
                payload, _ in
                descriptors.append(try! VP8Payload(payload).descriptor)
            }
        }
        #expect(descriptors.map { $0.pictureID?.value } == [0x7FFF, 0, 1])
        #expect(descriptors.map(\.tl0PicIndex) == [0, 0, 1])
        #expect(descriptors.map(\.temporalLayerIndex) == [0, 1, 0])
        #expect(packetizer.packetize(frame: ByteBuffer(), scratch: &scratch) { _, _ in } == 0)
    }

    static func run(
        _ packets: [WirePacket], assembler: inout VP8FrameAssembler, start: NIODeadline,
        step: TimeAmount = .milliseconds(1)
    ) -> [VP8FrameAssembler.Event] {
        var events: [VP8FrameAssembler.Event] = []
        var now = start
        for packet in packets {
            now = now + step
            assembler.insert(
                sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp, marker: packet.marker,
                payload: try! VP8Payload(packet.payload), now: now
            ) { events.append($0) }
        }
        return events
    }

    static func decodability(_ events: [VP8FrameAssembler.Event]) -> [Bool?] {
        events.map { event in
            if case .frame(let frame) = event { return frame.isDecodable }
            return nil
        }
    }

    @Test("Without loss every frame is complete and decodable, across sequence and timestamp wrap")
    func cleanStream() {
        let frames =
            [frame(size: 2500, key: true, seed: 1)] + (1..<6).map { frame(size: 900, key: false, seed: UInt8($0)) }
        var assembler = VP8FrameAssembler()
        let events = Self.run(packetize(frames).flatMap { $0 }, assembler: &assembler, start: .uptimeNanoseconds(0))
        #expect(Self.decodability(events) == [true, true, true, true, true, true])
        #expect(assembler.framesComplete == 6 && assembler.framesDecodable == 6 && assembler.keyframes == 1)
        #expect(assembler.framesLost == 0)
        #expect(!assembler.needsKeyframe)
    }

    @Test("A lost packet not repaired in time loses its frame and breaks the chain until the next keyframe")
    func lossBreaksChain() {
        let frames = [
            frame(size: 2500, key: true, seed: 1), frame(size: 2000, key: false, seed: 2),
            frame(size: 500, key: false, seed: 3), frame(size: 2500, key: true, seed: 4),
            frame(size: 500, key: false, seed: 5),
        ]
        var packets = packetize(frames)
        packets[1].removeLast()  // frame 1 loses its marker packet
        var assembler = VP8FrameAssembler(maximumWait: .milliseconds(100))
        var events = Self.run(Array(packets[0...2].joined()), assembler: &assembler, start: .uptimeNanoseconds(0))
        // Frame 0 released; frame 1 waits for repair and holds frame 2 back.
        #expect(Self.decodability(events) == [true])
        assembler.poll(now: .uptimeNanoseconds(0) + .milliseconds(500)) { events.append($0) }
        #expect(events.count == 3)
        if case .lost = events[1] {} else { Issue.record("frame 1 should be lost") }
        #expect(Self.decodability([events[2]]) == [false])
        #expect(assembler.needsKeyframe)
        events = Self.run(
            Array(packets[3...4].joined()), assembler: &assembler, start: .uptimeNanoseconds(1_000_000_000))
        #expect(Self.decodability(events) == [true, true])
        #expect(!assembler.needsKeyframe)
        #expect(assembler.framesLost == 1 && assembler.framesComplete == 4 && assembler.framesDecodable == 3)
    }

    @Test("A repaired packet completes its frame in time; duplicates are ignored")
    func repairAndDuplicates() {
        let frames = [frame(size: 2500, key: true, seed: 1), frame(size: 2500, key: false, seed: 2)]
        let packets = packetize(frames)
        var order = packets[0] + packets[1]
        let held = order.remove(at: 1)  // frame 0's middle packet arrives late (as a retransmission)
        order.append(held)
        order.append(held)  // and twice
        var assembler = VP8FrameAssembler()
        let events = Self.run(order, assembler: &assembler, start: .uptimeNanoseconds(0))
        #expect(Self.decodability(events) == [true, true])
        #expect(assembler.packetsDiscarded == 1)
    }

    @Test("A frame lost whole shows as a sequence gap, waited for in case it is repaired")
    func wholeFrameLost() {
        let frames = [
            frame(size: 2500, key: true, seed: 1), frame(size: 1500, key: false, seed: 2),
            frame(size: 200, key: false, seed: 3),
        ]
        let packets = packetize(frames)
        var assembler = VP8FrameAssembler(maximumWait: .milliseconds(100))
        var events = Self.run(packets[0] + packets[2], assembler: &assembler, start: .uptimeNanoseconds(0))
        #expect(Self.decodability(events) == [true])
        assembler.poll(now: .uptimeNanoseconds(0) + .milliseconds(500)) { events.append($0) }
        #expect(Self.decodability(events) == [true, nil, false])
        #expect(assembler.framesLost == 1)
        #expect(assembler.needsKeyframe)
    }

    @Test("A frame lost whole and repaired in time keeps the stream decodable")
    func wholeFrameRepaired() {
        let frames = (0..<4).map { frame(size: 300, key: $0 == 0, seed: UInt8($0)) }
        let packets = packetize(frames)
        var assembler = VP8FrameAssembler(maximumWait: .milliseconds(100))
        // Frame 1 (one packet) arrives after frames 2 and 3, as a NACK repair would.
        let events = Self.run(
            packets[0] + packets[2] + packets[3] + packets[1], assembler: &assembler, start: .uptimeNanoseconds(0))
        #expect(Self.decodability(events) == [true, true, true, true])
        #expect(assembler.framesLost == 0)
    }

    @Test("A stream that starts after its keyframe's first packets waits for them to be repaired")
    func keyframeStartRepaired() {
        // The receiver's first packets arrive after the keyframe's: its packets come later, as repairs.
        let frames = [frame(size: 2500, key: true, seed: 1), frame(size: 300, key: false, seed: 2), frame(size: 300, key: false, seed: 3)]
        let packets = packetize(frames)
        let start = NIODeadline.uptimeNanoseconds(0)
        var assembler = VP8FrameAssembler(maximumWait: .milliseconds(300))
        var events = Self.run(packets[0].suffix(1) + packets[1] + packets[2], assembler: &assembler, start: start)
        #expect(events.isEmpty)  // the complete deltas wait for the keyframe before them
        events += Self.run(Array(packets[0].dropLast()), assembler: &assembler, start: start + .milliseconds(60))
        #expect(Self.decodability(events) == [true, true, true])
        #expect(assembler.framesLost == 0 && !assembler.needsKeyframe)

        // Never repaired: after the wait the deltas go, undecodable, and a keyframe is needed.
        var unrepaired = VP8FrameAssembler(maximumWait: .milliseconds(300))
        var later = Self.run(packets[1] + packets[2], assembler: &unrepaired, start: start)
        unrepaired.poll(now: start + .milliseconds(400)) { later.append($0) }
        #expect(Self.decodability(later) == [false, false])
        #expect(unrepaired.needsKeyframe)
    }

    @Test("A frame being repaired is waited for a while even when a later keyframe is complete")
    func repairBeforeKeyframe() {
        // Key, delta (lost whole, repaired 60 ms later), key.
        let frames = [frame(size: 300, key: true, seed: 1), frame(size: 300, key: false, seed: 2), frame(size: 300, key: true, seed: 3)]
        let packets = packetize(frames)
        let start = NIODeadline.uptimeNanoseconds(0)
        var assembler = VP8FrameAssembler(maximumWait: .milliseconds(300), maximumWaitBeforeKeyframe: .milliseconds(100))
        var events = Self.run(packets[0] + packets[2], assembler: &assembler, start: start)
        #expect(Self.decodability(events) == [true])  // the keyframe waits for the gap before it
        events += Self.run(packets[1], assembler: &assembler, start: start + .milliseconds(60))
        #expect(Self.decodability(events) == [true, true, true])
        #expect(assembler.framesLost == 0)

        // Not repaired: the keyframe goes after the shorter wait, the gap counted lost.
        var unrepaired = VP8FrameAssembler(maximumWait: .milliseconds(300), maximumWaitBeforeKeyframe: .milliseconds(100))
        var later = Self.run(packets[0] + packets[2], assembler: &unrepaired, start: start)
        unrepaired.poll(now: start + .milliseconds(50)) { later.append($0) }
        #expect(Self.decodability(later) == [true])
        unrepaired.poll(now: start + .milliseconds(110)) { later.append($0) }
        #expect(Self.decodability(later) == [true, nil, true])
        #expect(unrepaired.framesLost == 1 && !unrepaired.needsKeyframe)
    }

    @Test("Random loss with late repair: frames are released in order, never twice, and losses are counted")
    func randomLossAccounting() {
        var generator = SplitMix64(seed: 99)
        var frames: [[UInt8]] = []
        for index in 0..<120 {
            frames.append(frame(size: index % 30 == 0 ? 6000 : 1300, key: index % 30 == 0, seed: UInt8(index & 0xFF)))
        }
        var delivered: [WirePacket] = []
        var repaired: [WirePacket] = []
        for packet in packetize(frames).joined() {
            if generator.next() % 10 == 0 {
                // 10% loss; half of those come back as repairs two frames later.
                if generator.next() % 2 == 0 { repaired.append(packet) }
            } else {
                delivered.append(packet)
            }
            if delivered.count % 5 == 0, !repaired.isEmpty { delivered.append(repaired.removeFirst()) }
        }
        var assembler = VP8FrameAssembler(maximumWait: .milliseconds(50))
        var events = Self.run(delivered, assembler: &assembler, start: .uptimeNanoseconds(0), step: .milliseconds(3))
        assembler.poll(now: .uptimeNanoseconds(0) + .seconds(100)) { events.append($0) }
        let timestamps = events.compactMap { event -> UInt32? in
            if case .frame(let frame) = event { return frame.timestamp &- 0xFFFF_F000 }
            return nil
        }
        #expect(timestamps.count == assembler.framesComplete)
        #expect(timestamps == timestamps.sorted() && Set(timestamps).count == timestamps.count)
        // A gap that swallowed several whole frames counts once, so the sum may fall a little short.
        #expect(assembler.framesComplete + assembler.framesLost <= 120)
        #expect(assembler.framesComplete + assembler.framesLost >= 100)
        #expect(assembler.framesLost > 0)
        #expect(assembler.framesDecodable < assembler.framesComplete)
        #expect(assembler.keyframes >= 1)
    }
}
