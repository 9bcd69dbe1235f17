import BraidRTPStreams
import BraidWire
import NIOCore
import Testing

@Suite struct TransportFeedbackRecorderTests {
    /// The feedback packets in `buffers`.
    func parse(_ buffers: [ByteBuffer]) throws -> [RTCPTransportWideFeedback] {
        try buffers.flatMap { buffer in
            try RTCPCompoundPacket(buffer).compactMap { packet -> RTCPTransportWideFeedback? in
                guard case .transportWideFeedback(let feedback) = packet else { return nil }
                return feedback
            }
        }
    }

    @Test func reportsEveryNumberOnceLossesIncludedAcrossReports() throws {
        var recorder = TransportFeedbackRecorder()
        var scratch = ByteBufferAllocator().buffer(capacity: 1500)
        var sent: [ByteBuffer] = []
        for sequence: UInt16 in [10, 11, 13] { recorder.record(sequence, arrival: at(Int64(sequence))) }
        var counts: [Int] = []
        counts.append(recorder.flush(senderSSRC: 1, mediaSSRC: 2, scratch: &scratch) { sent.append($0) })
        // 14 and 15 are lost right after the report: the next one starts with them, as not received.
        for sequence: UInt16 in [16, 17] { recorder.record(sequence, arrival: at(Int64(sequence))) }
        recorder.record(12, arrival: at(30))  // too late: 12 was reported lost
        counts.append(recorder.flush(senderSSRC: 1, mediaSSRC: 2, scratch: &scratch) { sent.append($0) })
        counts.append(recorder.flush(senderSSRC: 1, mediaSSRC: 2, scratch: &scratch) { sent.append($0) })
        #expect(counts == [1, 1, 0])
        let feedback = try self.parse(sent)
        #expect(feedback.map(\.baseSequenceNumber) == [10, 14])
        #expect(feedback.map(\.feedbackPacketCount) == [0, 1])
        #expect(feedback[0].packets.map { $0.arrivalOffset != nil } == [true, true, false, true])
        #expect(feedback[1].packets.map(\.sequenceNumber) == [14, 15, 16, 17])
        #expect(feedback[1].packets.map { $0.arrivalOffset != nil } == [false, false, true, true])
        let lastOffset = try #require(Array(feedback[1].packets).last?.arrivalOffset)
        let reported = lastOffset + feedback[1].referenceTimeMicroseconds
        #expect(reported == Int64(at(17).uptimeNanoseconds / 1000))
    }

    @Test func aCappedReportLeavesTheRestForTheNextCall() throws {
        var recorder = TransportFeedbackRecorder(capacity: 1000, maximumPacketSize: 100)
        #expect(recorder.capacity == 1024)
        // Every other packet lost, 1.5 ms apart: 2-bit chunks, many packets of at most 100 bytes.
        for sequence in stride(from: 0, to: 400, by: 2) {
            recorder.record(UInt16(sequence), arrivalMicroseconds: Int64(sequence) * 750)
        }
        var builder = RTCPCompoundBuilder(buffer: ByteBufferAllocator().buffer(capacity: 1500))
        let written = recorder.write(senderSSRC: 1, mediaSSRC: 2, maximumPackets: 2, into: &builder)
        #expect(written == 2)
        let first = try self.parse([builder.finish()])
        var scratch = ByteBufferAllocator().buffer(capacity: 1500)
        var sent: [ByteBuffer] = []
        let rest = recorder.flush(senderSSRC: 1, mediaSSRC: 2, scratch: &scratch) { sent.append($0) }
        let second = try self.parse(sent)
        #expect(rest == second.count && rest > 1)
        let all = first + second
        #expect(all.allSatisfy { $0.packetStatusCount > 0 })
        let numbers = all.flatMap { $0.packets.map(\.sequenceNumber) }
        #expect(numbers == (0..<399).map(UInt16.init))
        #expect(all.map(\.feedbackPacketCount) == (0..<all.count).map(UInt8.init))
    }
}
