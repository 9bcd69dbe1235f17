import BraidRTPStreams
import BraidWire
import NIOCore

/// Receive side of transport-wide congestion control: remembers when each transport-wide sequence number
/// arrived and reports them in feedback packets
/// ([draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1][twcc]; the wire format is drawn on
/// BraidWire's `RTCPTransportWideFeedback`).
///
/// [twcc]: https://datatracker.ietf.org/doc/html/draft-holmer-rmcat-transport-wide-cc-extensions-01#section-3.1
///
/// Chromium's own bandwidth estimator runs on this feedback and enables its higher simulcast layers only
/// when the estimate allows them, so a publisher that negotiated transport-cc needs it every ~100 ms.
///
/// Allocated by this: a ring of arrival times and the arrival list handed to the builder, both sized once
/// in `init`; recording and flushing allocate nothing afterwards.
struct TransportFeedbackRecorder {
    static let capacity = 4096
    private var sequences: ContiguousArray<Int64>
    private var arrivals: ContiguousArray<Int64>
    private var unwrapper = SequenceNumberUnwrapper()
    /// First sequence number not yet reported, and the highest recorded.
    private var nextToReport: Int64?
    private var highest: Int64?
    private var feedbackCount: UInt8 = 0
    private var report: ContiguousArray<Int64?>

    init() {
        self.sequences = ContiguousArray(repeating: -1, count: Self.capacity)
        self.arrivals = ContiguousArray(repeating: 0, count: Self.capacity)
        self.report = ContiguousArray()
        self.report.reserveCapacity(Self.capacity)
    }

    /// Records the arrival of transport-wide sequence number `sequence`.
    mutating func record(_ sequence: UInt16, arrival: NIODeadline) {
        let extended = self.unwrapper.unwrap(sequence)
        let slot = Int(extended & Int64(Self.capacity - 1))
        self.sequences[slot] = extended
        self.arrivals[slot] = arrival.microseconds
        if self.nextToReport == nil { self.nextToReport = extended }
        if extended > (self.highest ?? .min) { self.highest = extended }
    }

    /// Writes feedback for every sequence number from the last report up to the highest one recorded,
    /// calling `send` once per RTCP packet (usually one).
    mutating func flush(
        senderSSRC: UInt32, mediaSSRC: UInt32, scratch: inout ByteBuffer, send: (ByteBuffer) -> Void
    ) {
        guard var start = self.nextToReport, let highest = self.highest, highest >= start else { return }
        // Older numbers than the ring holds are no longer known: report from what is left.
        start = max(start, highest - Int64(Self.capacity) + 1)
        self.report.removeAll(keepingCapacity: true)
        for sequence in start...highest {
            let slot = Int(sequence & Int64(Self.capacity - 1))
            self.report.append(self.sequences[slot] == sequence ? self.arrivals[slot] : nil)
        }
        // Feedback starts at a received packet (a leading run of losses has no reference time to hang on).
        var offset = 0
        while offset < self.report.count, self.report[offset] == nil { offset += 1 }
        while offset < self.report.count {
            scratch.clear()
            let base = UInt16(truncatingIfNeeded: start + Int64(offset))
            let result: RTCPTransportWideFeedback.WriteResult
            do {
                result = try RTCPTransportWideFeedback.write(
                    senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, baseSequenceNumber: base,
                    feedbackPacketCount: self.feedbackCount, arrivals: self.report[offset...],
                    maxPacketSize: 1200, into: &scratch)
            } catch {
                break
            }
            guard result.packetCount > 0 else { break }
            self.feedbackCount &+= 1
            send(scratch)
            offset += result.packetCount
        }
        self.nextToReport = highest + 1
    }
}
