import BraidRTPStreams
import BraidWire
import NIOCore

/// Records the arrival time of every packet carrying a transport-wide sequence number and writes the
/// periodic transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01
/// §3.1, <https://datatracker.ietf.org/doc/html/draft-holmer-rmcat-transport-wide-cc-extensions-01>):
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
/// Each feedback reports every sequence number from the first not yet reported to the highest received
/// (lost ones as "not received"); BraidWire's builder does the chunk and delta encoding. Arrival times
/// live in a fixed ring indexed by the unwrapped sequence number: recording allocates nothing.
struct TransportFeedbackRecorder {
    /// Packets remembered between two feedback packets (sent every 100 ms): 10,000 packets/s.
    static let ringSize = 1024

    var unwrapper = SequenceNumberUnwrapper()
    var arrivals: ContiguousArray<Int64>
    var sequences: ContiguousArray<Int64>
    var nextToReport: Int64?
    var highest: Int64?
    var feedbackCount: UInt8 = 0
    var scratch: ContiguousArray<Int64?> = []

    init() {
        self.arrivals = ContiguousArray(repeating: 0, count: Self.ringSize)
        self.sequences = ContiguousArray(repeating: -1, count: Self.ringSize)
        self.scratch.reserveCapacity(Self.ringSize)
    }

    /// Records a packet's arrival in microseconds on the receiver's monotonic clock.
    mutating func record(_ sequenceNumber: UInt16, arrivalMicroseconds: Int64) {
        let sequence = self.unwrapper.unwrap(sequenceNumber)
        if let next = self.nextToReport, sequence < next { return }  // already reported as lost
        let slot = Int(sequence & Int64(Self.ringSize - 1))
        self.sequences[slot] = sequence
        self.arrivals[slot] = arrivalMicroseconds
        if self.nextToReport == nil { self.nextToReport = sequence }
        self.highest = max(self.highest ?? sequence, sequence)
    }

    /// Appends feedback packets for everything not yet reported; returns how many were written.
    mutating func write(senderSSRC: UInt32, mediaSSRC: UInt32, into builder: inout RTCPCompoundBuilder) -> Int {
        guard var next = self.nextToReport, let highest = self.highest, highest >= next else { return 0 }
        if highest - next >= Int64(Self.ringSize) { next = highest - Int64(Self.ringSize) + 1 }
        var written = 0
        while next <= highest, written < 4 {
            self.scratch.removeAll(keepingCapacity: true)
            var sequence = next
            while sequence <= highest {
                let slot = Int(sequence & Int64(Self.ringSize - 1))
                self.scratch.append(self.sequences[slot] == sequence ? self.arrivals[slot] : nil)
                sequence += 1
            }
            let result: RTCPTransportWideFeedback.WriteResult
            do {
                result = try builder.appendTransportWideFeedback(
                    senderSSRC: senderSSRC, mediaSSRC: mediaSSRC,
                    baseSequenceNumber: UInt16(truncatingIfNeeded: next), feedbackPacketCount: self.feedbackCount,
                    arrivals: self.scratch, maxPacketSize: 1000)
            } catch {
                break
            }
            self.feedbackCount &+= 1
            written += 1
            guard result.packetCount > 0 else { break }
            next += Int64(result.packetCount)
        }
        self.nextToReport = next
        return written
    }
}
