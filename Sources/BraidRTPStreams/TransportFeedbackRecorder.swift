public import BraidWire
public import NIOCore

/// Receive side of transport-wide congestion control: remembers when each transport-wide sequence number
/// arrived and reports them in feedback packets
/// ([draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1][twcc]):
///
/// [twcc]: https://datatracker.ietf.org/doc/html/draft-holmer-rmcat-transport-wide-cc-extensions-01#section-3.1
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|P|  FMT=15 |    PT=205     |           length              |
/// |                     SSRC of packet sender                     |
/// |                      SSRC of media source                     |
/// |      base sequence number     |      packet status count      |
/// |                 reference time                | fb pkt. count |
/// |          packet chunk         |         packet chunk          |
/// .                    recv delta   ...                           .
/// ```
///
/// The node's forwarding core keeps one per publisher and BraidClient one per subscriber: Chromium's own
/// bandwidth estimator runs on this feedback and enables its higher simulcast layers only when the
/// estimate allows them, so a peer that negotiated transport-cc needs it every ~100 ms.
///
/// Each report covers every sequence number from the first not yet reported to the highest received,
/// lost ones (a leading run included, as libwebrtc's `RemoteEstimatorProxy` does) as "not received";
/// BraidWire's `RTCPTransportWideFeedback` builder does the chunk and delta encoding and takes the
/// reference time from the first received arrival. A packet that arrives after its number was reported is
/// ignored: the report cannot be taken back.
///
/// Allocated by this: a ring of arrival times indexed by the unwrapped sequence number and the arrival
/// list handed to the builder, both sized once in `init`; recording and reporting allocate nothing
/// afterwards.
public struct TransportFeedbackRecorder: Sendable {
    /// Sequence numbers remembered between two reports (a power of two). At the usual 100 ms between
    /// reports, 4096 covers 40,000 packets/s.
    public let capacity: Int
    /// Largest feedback packet written, in bytes.
    public let maximumPacketSize: Int
    private var sequences: ContiguousArray<Int64>
    private var arrivals: ContiguousArray<Int64>
    private var unwrapper = SequenceNumberUnwrapper()
    /// First sequence number not yet reported, and the highest recorded.
    private var nextToReport: Int64?
    private var highest: Int64?
    private var feedbackCount: UInt8 = 0
    private var report: ContiguousArray<Int64?>

    /// A recorder for at most `capacity` unreported sequence numbers (rounded up to a power of two,
    /// at least 16), writing feedback packets of at most `maximumPacketSize` bytes.
    public init(capacity: Int = 4096, maximumPacketSize: Int = 1200) {
        var size = 16
        while size < capacity, size < 1 << 20 { size <<= 1 }
        self.capacity = size
        self.maximumPacketSize = maximumPacketSize
        self.sequences = ContiguousArray(repeating: -1, count: size)
        self.arrivals = ContiguousArray(repeating: 0, count: size)
        self.report = ContiguousArray()
        self.report.reserveCapacity(size)
    }

    /// Records the arrival of transport-wide sequence number `sequence`, in microseconds on the receiver's
    /// monotonic clock.
    public mutating func record(_ sequence: UInt16, arrivalMicroseconds: Int64) {
        let extended = self.unwrapper.unwrap(sequence)
        if let next = self.nextToReport, extended < next { return }  // already reported (as lost)
        let slot = Int(extended & Int64(self.capacity - 1))
        self.sequences[slot] = extended
        self.arrivals[slot] = arrivalMicroseconds
        if self.nextToReport == nil { self.nextToReport = extended }
        if extended > (self.highest ?? .min) { self.highest = extended }
    }

    /// Records the arrival of `sequence` at `arrival` on the event loop's clock.
    public mutating func record(_ sequence: UInt16, arrival: NIODeadline) {
        self.record(sequence, arrivalMicroseconds: Int64(truncatingIfNeeded: arrival.uptimeNanoseconds / 1000))
    }

    /// Writes feedback for everything not yet reported, each packet alone in `scratch` (cleared first),
    /// calling `send` once per packet (usually once); at most `maximumPackets` packets, the rest waits for
    /// the next call. Returns how many packets were sent.
    @discardableResult
    public mutating func flush(
        senderSSRC: UInt32, mediaSSRC: UInt32, maximumPackets: Int = .max, scratch: inout ByteBuffer,
        send: (ByteBuffer) -> Void
    ) -> Int {
        let maximumPacketSize = self.maximumPacketSize
        return self.emit(maximumPackets: maximumPackets) { (base, count, arrivals) throws(WireError) in
            scratch.clear()
            let result = try RTCPTransportWideFeedback.write(
                senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, baseSequenceNumber: base,
                feedbackPacketCount: count, arrivals: arrivals, maxPacketSize: maximumPacketSize, into: &scratch)
            send(scratch)
            return result
        }
    }

    /// Appends feedback for everything not yet reported to a compound packet, at most `maximumPackets`
    /// packets (the rest waits for the next call). Returns how many packets were appended.
    @discardableResult
    public mutating func write(
        senderSSRC: UInt32, mediaSSRC: UInt32, maximumPackets: Int = 4, into builder: inout RTCPCompoundBuilder
    ) -> Int {
        let maximumPacketSize = self.maximumPacketSize
        return self.emit(maximumPackets: maximumPackets) { (base, count, arrivals) throws(WireError) in
            try builder.appendTransportWideFeedback(
                senderSSRC: senderSSRC, mediaSSRC: mediaSSRC, baseSequenceNumber: base, feedbackPacketCount: count,
                arrivals: arrivals, maxPacketSize: maximumPacketSize)
        }
    }

    /// Builds the arrival list from the first unreported number to the highest and hands it to
    /// `writePacket` until it is all reported or `maximumPackets` were written. A packet that cannot be
    /// written (no room left) ends the call; its numbers are reported next time.
    private mutating func emit(
        maximumPackets: Int,
        writePacket: (UInt16, UInt8, ArraySlice<Int64?>) throws(WireError) -> RTCPTransportWideFeedback.WriteResult
    ) -> Int {
        guard var start = self.nextToReport, let highest = self.highest, highest >= start else { return 0 }
        // Older numbers than the ring holds are no longer known: report from what is left.
        start = max(start, highest - Int64(self.capacity) + 1)
        self.report.removeAll(keepingCapacity: true)
        for sequence in start...highest {
            let slot = Int(sequence & Int64(self.capacity - 1))
            self.report.append(self.sequences[slot] == sequence ? self.arrivals[slot] : nil)
        }
        var offset = 0
        var written = 0
        while offset < self.report.count, written < maximumPackets {
            let base = UInt16(truncatingIfNeeded: start + Int64(offset))
            let result: RTCPTransportWideFeedback.WriteResult
            do {
                result = try writePacket(base, self.feedbackCount, self.report[offset...])
            } catch {
                break
            }
            // The builder throws rather than write an empty packet, so every packet reports at least one.
            self.feedbackCount &+= 1
            written += 1
            offset += max(1, result.packetCount)
        }
        self.nextToReport = start + Int64(offset)
        return written
    }
}
