@testable import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

/// The per-packet paths must not allocate. These tests pin the mechanism that guarantees it: the
/// storage reserved in `init` keeps its address (no reallocation, no copy-on-write) through thousands
/// of packets, and the caller's reused buffers keep theirs.
@Suite struct SteadyStateStorageTests {
    @Test func retransmissionBufferStorageIsNeverReallocated() throws {
        var buffer = RetransmissionBuffer(capacity: 64, rtx: .init(ssrc: 2, payloadType: 97))
        let bytesAddress = buffer.bytes.withUnsafeBufferPointer { $0.baseAddress }
        let slotsAddress = buffer.slots.withUnsafeBufferPointer { $0.baseAddress }
        var scratch = ByteBufferAllocator().buffer(capacity: 1500)
        let scratchCapacity = scratch.capacity
        // One packet reused as the source: only its sequence number changes.
        var packet = try makePacket(sequenceNumber: 0, payload: Array(repeating: 7, count: 1000))
        for sequence in 0..<5000 {
            packet.setSequenceNumber(UInt16(truncatingIfNeeded: sequence))
            buffer.store(packet, now: at(Int64(sequence)))
            scratch.clear()
            _ = buffer.retransmit(UInt16(truncatingIfNeeded: sequence &- 10), now: at(Int64(sequence)), into: &scratch)
        }
        #expect(buffer.bytes.withUnsafeBufferPointer { $0.baseAddress } == bytesAddress)
        #expect(buffer.slots.withUnsafeBufferPointer { $0.baseAddress } == slotsAddress)
        #expect(scratch.capacity == scratchCapacity)
        #expect(buffer.packetsRetransmitted == 4990)
    }

    @Test func nackGeneratorMissingListIsNeverReallocated() {
        var generator = NACKGenerator()
        var out = ContiguousArray<UInt16>()
        var sequence: UInt16 = 0
        // No storage until the first gap: a stream that never loses a packet costs no missing list.
        for step in 0..<100 {
            sequence &+= 1
            _ = generator.packetReceived(sequenceNumber: sequence, now: at(Int64(step)))
        }
        #expect(generator.missing.capacity == 0)
        var address: UnsafePointer<NACKGenerator.Entry>?
        for step in 100..<20_100 {
            sequence &+= (step % 5 == 0 ? 4 : 1)
            _ = generator.packetReceived(sequenceNumber: sequence, now: at(Int64(step)))
            generator.pending(now: at(Int64(step)), into: &out)
            // Reserved once, at the first gap; the same storage from then on.
            let current = generator.missing.withUnsafeBufferPointer { $0.baseAddress }
            if address == nil { address = current }
            #expect(current == address)
        }
        #expect(generator.missing.capacity >= 1000)
    }

    @Test func rewriterWritesIntoTheCallersStorage() throws {
        var rewriter = RTPRewriter(outputSSRC: 9, clockRate: 90000, rewritesVP8: true)
        var scratch = ByteBufferAllocator().buffer(capacity: 1500)
        let source = try makePacket(sequenceNumber: 0, payload: try vp8Payload(pictureID: 1, tl0: 1))
        var address: UnsafeRawPointer?
        for step in 0..<1000 {
            // The pattern of `RTPPacket+Rewrite.swift`: copy into the consumer's scratch, rewrite, take it back.
            scratch.clear()
            scratch.writeImmutableBuffer(source.bytes)
            var packet = try RTPPacket(consume scratch)
            packet.setSequenceNumber(UInt16(step))
            _ = try rewriter.rewrite(packet: &packet, now: at(Int64(step)))
            scratch = packet.buffer
            packet = try makePacket(sequenceNumber: 0)  // drop the view's reference to the storage
            let current = scratch.withUnsafeReadableBytes { UnsafeRawPointer($0.baseAddress) }
            if address == nil { address = current }
            #expect(current == address)
        }
    }
}
