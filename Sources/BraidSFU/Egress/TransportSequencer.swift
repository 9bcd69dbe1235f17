import BraidCongestion
import BraidWire
import NIOCore

/// The send side of transport-wide congestion control for one peer
/// (draft-holmer-rmcat-transport-wide-cc-extensions-01): one sequence counter for every packet sent to
/// the peer, retransmissions included, and what was sent under each number, so that the peer's
/// feedback becomes packet results for the bandwidth estimator. A fixed ring, allocated once.
struct TransportSequencer {
    static let capacity = 8192
    /// The number the next packet gets.
    private(set) var next: UInt16 = 1
    private var sequences: ContiguousArray<Int32>
    private var sendTimes: ContiguousArray<Int64>
    private var sizes: ContiguousArray<Int32>

    init() {
        self.sequences = ContiguousArray(repeating: -1, count: Self.capacity)
        self.sendTimes = ContiguousArray(repeating: 0, count: Self.capacity)
        self.sizes = ContiguousArray(repeating: 0, count: Self.capacity)
    }

    /// Records that the packet numbered ``next`` left at `sendTime` with `size` bytes, and moves on.
    mutating func sent(size: Int, sendTime: NIODeadline) {
        let sequence = self.next
        let slot = Int(sequence) & (Self.capacity - 1)
        self.sequences[slot] = Int32(sequence)
        self.sendTimes[slot] = sendTime.microseconds
        self.sizes[slot] = Int32(clamping: size)
        self.next &+= 1
    }

    func lookup(_ sequence: UInt16) -> (sendTimeUs: Int64, size: Int)? {
        let slot = Int(sequence) & (Self.capacity - 1)
        guard self.sequences[slot] == Int32(sequence) else { return nil }
        return (self.sendTimes[slot], Int(self.sizes[slot]))
    }

    /// Turns one feedback message into packet results (appended to `results`, cleared first).
    func results(
        for feedback: RTCPTransportWideFeedback, into results: inout ContiguousArray<PacketResult>
    ) {
        results.removeAll(keepingCapacity: true)
        let reference = feedback.referenceTimeMicroseconds
        for status in feedback.packets {
            guard let sent = self.lookup(status.sequenceNumber) else { continue }
            guard results.count < Self.capacity else { break }
            results.append(
                PacketResult(
                    sequenceNumber: status.sequenceNumber, sendTimeUs: sent.sendTimeUs, size: sent.size,
                    arrivalTimeUs: status.arrivalOffset.map { reference + $0 }))
        }
    }
}
