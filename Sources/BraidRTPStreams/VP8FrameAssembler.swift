import BraidWire
import NIOCore

/// Groups received VP8 RTP packets into frames and decides, in order, whether each frame is complete
/// and decodable ([RFC 7741 §4](https://www.rfc-editor.org/rfc/rfc7741#section-4)).
///
/// A frame is the packets sharing one RTP timestamp; it is **complete** when its first packet (S = 1,
/// PID = 0), its last (marker) and every sequence number in between have arrived. Frames are released in
/// timestamp order:
///
/// - a complete frame at the head is released; it is **decodable** if it is a keyframe or every frame
///   since the last keyframe was released decodable and no sequence gap lies before it. A sequence gap
///   before a complete delta frame (a frame lost whole, perhaps being repaired) is waited for like an
///   incomplete frame;
/// - an incomplete head frame is given up (counted **lost**) once it has waited ``maximumWait`` (time for
///   NACK repair), once it has waited ``maximumWaitBeforeKeyframe`` while a later keyframe is complete (a
///   player that renders each frame at its own time still shows a frame repaired before the keyframe is
///   due), or when too many frames queue.
///
/// After a loss the decoder's reference chain is broken: later delta frames are released as not
/// decodable and ``needsKeyframe`` is set until a keyframe arrives. This is conservative with temporal
/// layers (losing a TL1 frame does not really break TL0), which only over-reports freezes.
///
/// Storage is fixed at creation (`capacity` pending frames, a 1024-slot duplicate filter): no heap
/// allocation per packet.
public struct VP8FrameAssembler: Sendable {
    /// A frame released in order.
    public struct Frame: Hashable, Sendable {
        /// The RTP timestamp.
        public var timestamp: UInt32
        /// Packets in the frame.
        public var packetCount: Int
        /// Whether it is a keyframe (P = 0 in the first packet's VP8 header).
        public var isKeyframe: Bool
        /// Whether a decoder holding every earlier released frame could decode it.
        public var isDecodable: Bool
        /// The TID from the descriptor, if any.
        public var temporalLayer: UInt8?
        /// The PictureID from the descriptor, if any.
        public var pictureID: UInt16?
        /// When the first packet of the frame arrived.
        public var firstPacketAt: NIODeadline
        /// When the frame was released.
        public var releasedAt: NIODeadline
        /// Sequence numbers of its first and last packet (the frame's packets are the range between).
        public var firstSequenceNumber: UInt16 = 0
        public var lastSequenceNumber: UInt16 = 0
    }

    /// What ``poll(now:_:)`` and ``insert(sequenceNumber:timestamp:marker:payload:now:_:)`` report.
    public enum Event: Hashable, Sendable {
        /// A complete frame, in timestamp order.
        case frame(Frame)
        /// A frame given up as incomplete (or lost whole, detected from a sequence gap).
        case lost(timestamp: UInt32?)
    }

    struct Pending: Sendable {
        var timestamp: Int64
        var firstSequence: Int64?
        var lastSequence: Int64?
        var lowestSequence: Int64
        var highestSequence: Int64
        var packets: Int
        var isKeyframe: Bool
        var temporalLayer: UInt8?
        var pictureID: UInt16?
        var firstPacketAt: NIODeadline

        var isComplete: Bool {
            guard let first = self.firstSequence, let last = self.lastSequence, last >= first else { return false }
            return Int64(self.packets) == last - first + 1
        }
    }

    /// How long an incomplete frame may wait for repair.
    public var maximumWait: TimeAmount
    /// How long an incomplete frame may wait for repair while a later keyframe is complete.
    public var maximumWaitBeforeKeyframe: TimeAmount
    let capacity: Int
    var pending: ContiguousArray<Pending>
    var seen: ContiguousArray<Int64>
    var sequences = SequenceNumberUnwrapper()
    var timestamps = TimestampUnwrapper()
    /// Last sequence number of the last released or given-up frame; nil when unknown.
    var lastReleasedSequence: Int64?
    var lastReleasedTimestamp: Int64?
    var chainBroken = true

    /// Frames released complete.
    public private(set) var framesComplete = 0
    /// Frames released complete and decodable.
    public private(set) var framesDecodable = 0
    /// Complete keyframes released.
    public private(set) var keyframes = 0
    /// Frames given up or lost whole.
    public private(set) var framesLost = 0
    /// Packets ignored: duplicates, or older than the last released frame.
    public private(set) var packetsDiscarded = 0
    /// Set when the reference chain is broken; cleared by a decodable keyframe.
    public private(set) var needsKeyframe = true

    /// Creates an assembler.
    /// - Parameters:
    ///   - maximumWait: time an incomplete frame may wait (NACK repair needs about one RTT plus the
    ///     reordering delay).
    ///   - maximumWaitBeforeKeyframe: time it may wait while a later keyframe is complete (at most
    ///     `maximumWait`).
    ///   - capacity: frames held at most (the oldest is given up beyond it).
    public init(
        maximumWait: TimeAmount = .milliseconds(300), maximumWaitBeforeKeyframe: TimeAmount = .milliseconds(100),
        capacity: Int = 64
    ) {
        self.maximumWait = maximumWait
        self.maximumWaitBeforeKeyframe = min(maximumWait, maximumWaitBeforeKeyframe)
        self.capacity = max(4, capacity)
        self.pending = []
        // Storage comes with the first packet: a receiver keeps one assembler per track, and most never
        // see a VP8 packet (audio tracks; light subscribers, which count packets from headers).
        self.seen = []
    }

    /// Sequence numbers remembered for duplicate detection.
    static let seenWindow = 1024

    /// Adds one packet (an original or a repaired one with its original sequence number) and releases
    /// whatever became releasable.
    public mutating func insert(
        sequenceNumber: UInt16, timestamp: UInt32, marker: Bool, payload: VP8Payload, now: NIODeadline,
        _ emit: (Event) -> Void
    ) {
        let sequence = self.sequences.unwrap(sequenceNumber)
        if self.seen.isEmpty {
            self.seen = ContiguousArray(repeating: -1, count: Self.seenWindow)
            self.pending.reserveCapacity(self.capacity + 1)
        }
        let slot = Int(sequence & Int64(Self.seenWindow - 1))
        if self.seen[slot] == sequence {
            self.packetsDiscarded += 1
            return
        }
        if let last = self.lastReleasedSequence, sequence <= last {
            self.packetsDiscarded += 1
            return
        }
        let unwrappedTimestamp = self.timestamps.unwrap(timestamp)
        if let releasedTimestamp = self.lastReleasedTimestamp, unwrappedTimestamp <= releasedTimestamp {
            self.packetsDiscarded += 1
            return
        }
        self.seen[slot] = sequence
        let index: Int
        if let found = self.pending.firstIndex(where: { $0.timestamp == unwrappedTimestamp }) {
            index = found
        } else {
            let frame = Pending(
                timestamp: unwrappedTimestamp, firstSequence: nil, lastSequence: nil, lowestSequence: sequence,
                highestSequence: sequence, packets: 0, isKeyframe: false, temporalLayer: nil, pictureID: nil,
                firstPacketAt: now)
            // Keep timestamp order: frames nearly always arrive in order, so search from the end.
            var position = self.pending.count
            while position > 0, self.pending[position - 1].timestamp > unwrappedTimestamp { position -= 1 }
            self.pending.insert(frame, at: position)
            index = position
        }
        self.pending[index].packets += 1
        self.pending[index].lowestSequence = min(self.pending[index].lowestSequence, sequence)
        self.pending[index].highestSequence = max(self.pending[index].highestSequence, sequence)
        if payload.isStartOfFrame {
            self.pending[index].firstSequence = sequence
            self.pending[index].isKeyframe = payload.isKeyFrame
            self.pending[index].temporalLayer = payload.descriptor.temporalLayerIndex
            self.pending[index].pictureID = payload.descriptor.pictureID?.value
        }
        if marker { self.pending[index].lastSequence = sequence }
        self.poll(now: now, emit)
    }

    /// Releases complete frames and gives up stale ones; call it on a timer too, so a frame whose
    /// repair never comes is given up without waiting for more packets.
    public mutating func poll(now: NIODeadline, _ emit: (Event) -> Void) {
        while let head = self.pending.first {
            // A complete frame after a sequence gap may still be preceded by a frame whose packets were all
            // lost and are being repaired: wait for them like for an incomplete frame (unless it is a
            // keyframe and the chain is broken anyway).
            var gapBefore = false
            if let last = self.lastReleasedSequence, let first = head.firstSequence {
                gapBefore = first != last + 1
            } else if self.lastReleasedTimestamp == nil, !head.isKeyframe {
                // The stream starts with a frame that is not a keyframe: the keyframe before it lost its
                // packets and may still be repaired (a sender starts a receiver's video at a keyframe).
                gapBefore = true
            }
            if head.isComplete, !gapBefore || (head.isKeyframe && self.chainBroken) {
                self.pending.removeFirst()
                self.release(head, now: now, emit)
                continue
            }
            // A complete keyframe (this one or a later one) needs nothing older: the wait is shorter.
            let waited = now - head.firstPacketAt
            let keyframeReady =
                (head.isComplete && head.isKeyframe) || self.pending.dropFirst().contains { $0.isKeyframe && $0.isComplete }
            let giveUp =
                waited >= self.maximumWait || self.pending.count > self.capacity
                || (keyframeReady && waited >= self.maximumWaitBeforeKeyframe)
            guard giveUp else { break }
            self.pending.removeFirst()
            if head.isComplete {
                // The gap was not repaired in time: `release` counts the missing frame as lost.
                self.release(head, now: now, emit)
                continue
            }
            self.framesLost += 1
            self.chainBroken = true
            self.needsKeyframe = true
            // The next frame cannot be checked for a gap against an unknown end: skip that check once.
            self.lastReleasedSequence = nil
            self.lastReleasedTimestamp = head.timestamp
            emit(.lost(timestamp: UInt32(truncatingIfNeeded: head.timestamp)))
        }
    }

    private mutating func release(_ frame: Pending, now: NIODeadline, _ emit: (Event) -> Void) {
        let first = frame.firstSequence ?? frame.lowestSequence
        if let last = self.lastReleasedSequence, first != last + 1 {
            // Packets between the previous frame and this one never arrived: a whole frame was lost.
            self.framesLost += 1
            self.chainBroken = true
            emit(.lost(timestamp: nil))
        }
        if frame.isKeyframe { self.chainBroken = false }
        let decodable = !self.chainBroken
        if !decodable { self.needsKeyframe = true }
        if frame.isKeyframe { self.needsKeyframe = false }
        self.framesComplete += 1
        if decodable { self.framesDecodable += 1 }
        if frame.isKeyframe { self.keyframes += 1 }
        self.lastReleasedSequence = frame.lastSequence
        self.lastReleasedTimestamp = frame.timestamp
        emit(
            .frame(
                Frame(
                    timestamp: UInt32(truncatingIfNeeded: frame.timestamp), packetCount: frame.packets,
                    isKeyframe: frame.isKeyframe, isDecodable: decodable, temporalLayer: frame.temporalLayer,
                    pictureID: frame.pictureID, firstPacketAt: frame.firstPacketAt, releasedAt: now,
                    firstSequenceNumber: UInt16(truncatingIfNeeded: first),
                    lastSequenceNumber: UInt16(truncatingIfNeeded: frame.lastSequence ?? frame.highestSequence))))
    }
}
