@testable import BraidSFU
import BraidWire
import NIOCore
import Testing

/// The ring behind a slot's sent-packet history and the transport-wide send history.
@Suite struct SequenceRingTests {
    struct Record: SequencedRecord {
        var sequence: UInt16 = 0
        var recordedAt: UInt64?
        var value = 0
    }

    @Test func keepsOneRecordPerSlotAndForgetsOverwrittenOnes() {
        var ring = SequenceRing<Record>(initialCapacity: 16, maximumCapacity: 16, retentionNanoseconds: 0)
        #expect(ring.capacity == 16)
        for number in 0..<20 {
            ring.insert(Record(sequence: UInt16(number), recordedAt: UInt64(number + 1), value: number * 10))
        }
        // 16 and up took the slots of 0...3; nothing else moved.
        #expect(ring[0] == nil && ring[3] == nil)
        #expect(ring[4]?.value == 40 && ring[19]?.value == 190)
        #expect(ring[20] == nil)
        ring.update(19) { $0.value = 7 }
        ring.update(3) { $0.value = 7 }  // not held: nothing happens
        #expect(ring[19]?.value == 7 && ring[3] == nil)
    }

    @Test func growsInsteadOfOverwritingAYoungRecordAndKeepsEveryRecord() {
        var ring = SequenceRing<Record>(initialCapacity: 16, maximumCapacity: 64, retentionNanoseconds: 1_000)
        // 40 records 1 ns apart, all younger than the retention: the ring doubles twice, to 64.
        for number in 0..<40 {
            ring.insert(Record(sequence: UInt16(truncatingIfNeeded: 65_530 + number), recordedAt: UInt64(10 + number), value: number))
        }
        #expect(ring.capacity == 64)
        for number in 0..<40 { #expect(ring[UInt16(truncatingIfNeeded: 65_530 + number)]?.value == number) }
        // At the maximum a young record is overwritten after all.
        for number in 40..<70 {
            ring.insert(Record(sequence: UInt16(truncatingIfNeeded: 65_530 + number), recordedAt: UInt64(10 + number), value: number))
        }
        #expect(ring.capacity == 64)
        #expect(ring[UInt16(truncatingIfNeeded: 65_535)] == nil && ring[UInt16(truncatingIfNeeded: 65_530 + 69)]?.value == 69)
        #expect(ring.footprint == 64 * MemoryLayout<Record>.stride)
    }

    @Test func anOldRecordIsOverwrittenWithoutGrowing() {
        var ring = SequenceRing<Record>(initialCapacity: 16, maximumCapacity: 64, retentionNanoseconds: 1_000)
        ring.insert(Record(sequence: 1, recordedAt: 1, value: 1))
        ring.insert(Record(sequence: 17, recordedAt: 5_000, value: 17))
        #expect(ring.capacity == 16)
        #expect(ring[1] == nil && ring[17]?.value == 17)
    }
}

/// A producer delivers to its consumers in groups, each group's state prefetched first: every consumer
/// still gets every packet of its layer, in order, whatever the group boundaries.
@Suite struct FanOutTests {
    @Test func everyOneOfFortySubscribersGetsEveryPacketInOrder() throws {
        let router = SFURouter(wallClock: testWallClock)
        let publisher = router.addPublisher(
            room: "r", peerID: "pub",
            description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack(rids: [])]),
            transport: RecordingTransport(), now: at(0))
        // 40 subscribers: two whole groups of 16 and a partial one.
        let count = TrackProducer.prefetchGroup * 2 + 8
        let transports = (0..<count).map { _ in RecordingTransport() }
        for (index, transport) in transports.enumerated() {
            router.addSubscriber(
                room: "r", peerID: "sub\(index)",
                description: SubscriberDescription(
                    extensions: subscriberIDs, slots: [videoSlot(ssrc: 0x1000 + UInt32(index), rtxSSRC: nil)]),
                transport: transport, now: at(0))
        }
        var source = SimulcastSource()
        for step in 0..<5 {
            publisher.receiveRTP(source.frame(layer: 0, keyframe: step == 0, withRID: false), now: at(Int64(step)))
        }
        for (index, transport) in transports.enumerated() {
            let packets = transport.rtpPackets
            #expect(packets.count == 5, "subscriber \(index)")
            #expect(packets.allSatisfy { $0.ssrc == 0x1000 + UInt32(index) })
            let numbers = packets.map(\.sequenceNumber)
            #expect(zip(numbers, numbers.dropFirst()).allSatisfy { $1 == $0 &+ 1 }, "subscriber \(index)")
        }
    }
}
