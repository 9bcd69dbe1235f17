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
struct TransportSequencer {
    static let initialCapacity = 256
    static let maximumCapacity = 8192
    /// How long a send record must survive: feedback comes every 100 ms, late ones within a second.
    static let retention = TimeAmount.seconds(2)

    struct Entry {
        var sequence: Int32 = -1
        var size: Int32 = 0
        var sendTimeUs: Int64 = 0
    }

    /// The number the next packet gets.
    private(set) var next: UInt16 = 1
    private var entries: ContiguousArray<Entry>

    init() {
        self.entries = ContiguousArray(repeating: Entry(), count: Self.initialCapacity)
    }

    var footprint: Int { self.entries.count * MemoryLayout<Entry>.stride }

    /// Records that the packet numbered ``next`` left at `sendTime` with `size` bytes, and moves on.
    mutating func sent(size: Int, sendTime: NIODeadline) {
        let sequence = self.next
        let now = sendTime.microseconds
        var slot = Int(sequence) & (self.entries.count - 1)
        let occupant = self.entries[slot]
        if occupant.sequence >= 0, now - occupant.sendTimeUs < Self.retention.nanoseconds / 1000,
            self.entries.count < Self.maximumCapacity
        {
            self.grow()
            slot = Int(sequence) & (self.entries.count - 1)
        }
        self.entries[slot] = Entry(sequence: Int32(sequence), size: Int32(clamping: size), sendTimeUs: now)
        self.next &+= 1
    }

    func lookup(_ sequence: UInt16) -> (sendTimeUs: Int64, size: Int)? {
        let entry = self.entries[Int(sequence) & (self.entries.count - 1)]
        guard entry.sequence == Int32(sequence) else { return nil }
        return (entry.sendTimeUs, Int(entry.size))
    }

    private mutating func grow() {
        let old = self.entries
        self.entries = ContiguousArray(repeating: Entry(), count: old.count * 2)
        for entry in old where entry.sequence >= 0 {
            self.entries[Int(entry.sequence) & (self.entries.count - 1)] = entry
        }
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

/// Scratch space every subscriber of a router uses in turn (they all run on its event loop): the packet
/// results of one feedback message, up to 8192 of them (320 KB), kept once per router, not per peer.
final class FeedbackScratch {
    var results = ContiguousArray<PacketResult>()

    init() {
        self.results.reserveCapacity(TransportSequencer.maximumCapacity)
    }
}
