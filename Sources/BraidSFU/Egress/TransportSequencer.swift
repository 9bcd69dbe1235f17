import BraidCongestion
import BraidWire
import NIOCore

/// The send side of transport-wide congestion control for one peer
/// (draft-holmer-rmcat-transport-wide-cc-extensions-01): one sequence counter for every packet sent to
/// the peer, retransmissions included, and what was sent under each number, so that the peer's
/// feedback becomes packet results for the bandwidth estimator.
///
/// A ring that follows the packet rate: it starts at 256 entries and doubles (up to 8192) whenever an
/// entry younger than ``retention`` would be overwritten, so a 100 packets/s subscriber keeps 4 KB.
struct TransportSequencer: ~Copyable {
    static let initialCapacity = 256
    static let maximumCapacity = 8192
    /// How long a send record must survive: feedback comes every 100 ms, late ones within a second.
    static let retention = TimeAmount.seconds(2)

    struct Entry: SequencedRecord {
        var sequence: UInt16 = 0
        var size: Int32 = 0
        /// Send time in uptime microseconds; 0 for an empty slot.
        var sendTimeUs: Int64 = 0

        var recordedAt: UInt64? { self.sendTimeUs == 0 ? nil : UInt64(self.sendTimeUs) * 1000 }
    }

    /// The number the next packet gets.
    private(set) var next: UInt16 = 1
    private var ring = SequenceRing<Entry>(
        initialCapacity: TransportSequencer.initialCapacity, maximumCapacity: TransportSequencer.maximumCapacity,
        retentionNanoseconds: TransportSequencer.retention.nanoseconds)

    var footprint: Int { self.ring.footprint }

    /// Prefetches the entry the next packet takes (``CachePrefetch``).
    func prefetchNext() {
        self.ring.prefetch(self.next)
    }

    /// Records that the packet numbered ``next`` left at `sendTime` with `size` bytes, and moves on.
    mutating func sent(size: Int, sendTime: NIODeadline) {
        self.ring.insert(
            Entry(sequence: self.next, size: Int32(clamping: size), sendTimeUs: max(1, sendTime.microseconds)))
        self.next &+= 1
    }

    func lookup(_ sequence: UInt16) -> (sendTimeUs: Int64, size: Int)? {
        self.ring[sequence].map { ($0.sendTimeUs, Int($0.size)) }
    }

    /// Turns one feedback message into packet results (appended to `results`, cleared first).
    func results(
        for feedback: RTCPTransportWideFeedback, into results: inout ContiguousArray<PacketResult>
    ) {
        results.removeAll(keepingCapacity: true)
        let reference = feedback.referenceTimeMicroseconds
        for status in feedback.packets {
            guard let sent = self.lookup(status.sequenceNumber) else { continue }
            guard results.count < Self.maximumCapacity else { break }
            results.append(
                PacketResult(
                    sequenceNumber: status.sequenceNumber, sendTimeUs: sent.sendTimeUs, size: sent.size,
                    arrivalTimeUs: status.arrivalOffset.map { reference + $0 }))
        }
    }
}
