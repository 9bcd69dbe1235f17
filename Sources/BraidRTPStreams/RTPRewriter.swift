public import BraidWire
public import NIOCore

/// Per-consumer rewriting of forwarded RTP packets so that a subscriber sees one continuous stream.
///
/// An SFU consumer forwards packets from a source that can change under it (a simulcast layer switch,
/// a publisher that restarts) and skips some packets (temporal layers above the target, padding). The
/// subscriber must still see one SSRC with continuous sequence numbers, increasing timestamps and, for
/// VP8, continuous PictureID/TL0PICIDX ([RFC 7741 §4.2](https://www.rfc-editor.org/rfc/rfc7741#section-4.2)),
/// or its jitter buffer NACKs phantom losses and its decoder sees a broken reference chain. The ideas
/// are those of mediasoup's `SeqManager` and `SimulcastConsumer` (WEBRTC-NOTES §4):
///
/// - **SSRC**: every output packet carries ``outputSSRC``.
/// - **Sequence numbers**: output = input + offset. ``drop(sequenceNumber:)`` removes an input number
///   from the output space (later packets shift down by one), so skipped packets leave no gap;
///   ``insert()`` numbers an extra packet (an audio repeat, a ULPFEC repair) and shifts later packets up.
///   The last 64 renumberings are remembered so that a packet reordered around one still maps to its own
///   number; a packet older than the oldest one remembered is discarded.
/// - **Source switch**: a packet with another SSRC than the current source, or the first packet after
///   ``markSourceChange()``, starts a new source. Its output number is the last output + 1, or + 2 when
///   the last forwarded packet lacked the marker bit (its frame is incomplete: the receiver must see a
///   gap rather than a frame that silently continues, as mediasoup does since its issue #408). Packets
///   of the new source older than its first forwarded one are discarded. Switch only on a keyframe.
/// - **Timestamps**: output = input + offset; on a switch the offset is re-based so that the first
///   output timestamp is the last output timestamp + the wall-clock time elapsed since that packet was
///   forwarded × the clock rate, and at least + 1. This keeps timestamps increasing and roughly in step
///   with real time; it does not align the two sources by their SR NTP clocks (mediasoup's finer method),
///   so lip sync across a switch may be off by up to a frame interval.
/// - **VP8**: PictureID and TL0PICIDX continue from the last output values (+1 on a switch); each keeps
///   the width it has on the wire (7 or 15 bits), and differences are taken modulo the input's width.
///
/// Ownership: one rewriter per consumer (subscriber m-section), owned on its event loop. It is a value of
/// fixed size: the renumbering ring is a 64-entry array created in `init`; rewriting a packet allocates nothing
/// while the caller's packet buffer is uniquely referenced (see `RTPPacket+Rewrite.swift` in BraidWire).
public struct RTPRewriter: Sendable {
    /// Whether a packet was rewritten for sending.
    public enum Decision: Sendable, Hashable {
        /// Rewritten in place: send it.
        case forward
        /// Belongs to the current source before the point it was switched to: do not send.
        case discard
    }

    /// SSRC written into every output packet.
    public let outputSSRC: UInt32
    /// RTP clock rate of the media, in Hz.
    public let clockRate: UInt32
    /// Rewrite the VP8 payload descriptor (PictureID, TL0PICIDX).
    public let rewritesVP8: Bool

    var sourceSSRC: UInt32?
    var resyncPending = true
    var unwrapper = SequenceNumberUnwrapper()
    /// Input numbers of the current source below this are discarded.
    var sourceBase: Int64 = 0
    /// Output = input + offset (− the renumberings above the input, for reordered packets).
    var sequenceOffset: Int64 = 0
    /// Highest output number sent, and whether that packet had the marker bit.
    var lastOutputSequence: Int64?
    var lastOutputMarker = true
    var timestampOffset: UInt32 = 0
    var lastOutputTimestamp: UInt32?
    var lastOutputTime: NIODeadline?
    var lastInputPictureID: UInt16?
    var lastOutputPictureID: UInt16?
    var lastInputTL0: UInt8?
    var lastOutputTL0: UInt8?

    /// One renumbering: every input below `position` (extended) was numbered with `shift` added to the
    /// offset that later inputs get (+1 for a drop, −1 for an insert).
    struct Renumbering {
        var position: Int64
        var shift: Int64
    }
    /// Ring of the last renumberings, capacity fixed at init.
    var renumberings: ContiguousArray<Renumbering>
    var renumberingCount = 0
    var renumberingHead = 0
    static let renumberingMemory = 64

    /// Sequence number of the newest packet forwarded, for RTCP SR and RTX bookkeeping.
    public var lastSentSequenceNumber: UInt16? { self.lastOutputSequence.map { UInt16(truncatingIfNeeded: $0) } }
    /// Timestamp of the newest packet forwarded (an SR extrapolates from it, as mediasoup does).
    public var lastSentTimestamp: UInt32? { self.lastOutputTimestamp }
    /// When the newest packet was forwarded.
    public var lastSentTime: NIODeadline? { self.lastOutputTime }

    /// The VP8 PictureID and TL0PICIDX written into the last packet ``rewrite(packet:now:)`` forwarded (nil
    /// where its descriptor has none), so a caller that records them needs no second parse.
    public private(set) var lastVP8Output: (pictureID: UInt16?, tl0PicIndex: UInt8?) = (nil, nil)

    /// Packets dropped through ``drop(sequenceNumber:)``.
    public private(set) var packetsDropped = 0
    /// Source switches seen (the first source included).
    public private(set) var sourceChanges = 0

    /// Creates a rewriter.
    /// - Parameters:
    ///   - outputSSRC: the consumer's SSRC, fixed for its lifetime.
    ///   - clockRate: the media clock rate (90000 for video).
    ///   - rewritesVP8: whether payloads carry VP8 descriptors to keep continuous.
    public init(outputSSRC: UInt32, clockRate: UInt32, rewritesVP8: Bool = false) {
        self.outputSSRC = outputSSRC
        self.clockRate = clockRate
        self.rewritesVP8 = rewritesVP8
        self.renumberings = ContiguousArray(repeating: Renumbering(position: 0, shift: 0), count: Self.renumberingMemory)
    }

    /// The next packet starts a new source even if its SSRC is unchanged (a publisher restart).
    public mutating func markSourceChange() { self.resyncPending = true }

    /// Removes `sequenceNumber` of the current source from the output: the following packets are
    /// renumbered so the receiver sees no gap. Call it for each packet not forwarded (a temporal layer
    /// above the target, padding-only packets). A drop older than the newest packet already handled
    /// changes nothing (those outputs were already numbered), and neither does a drop before the
    /// source's first forwarded packet.
    public mutating func drop(sequenceNumber: UInt16) {
        guard !self.resyncPending, let highest = self.unwrapper.highest else { return }
        let sequence = self.unwrapper.peek(sequenceNumber)
        guard sequence > highest else { return }
        _ = self.unwrapper.unwrap(sequenceNumber)
        self.sequenceOffset -= 1
        self.remember(Renumbering(position: sequence, shift: 1))
        self.packetsDropped += 1
    }

    /// Numbers one extra output packet right after the newest (a repeat of it, a repair): returns its
    /// sequence number and the newest timestamp, or nil before anything was forwarded. Later packets shift
    /// up by one; a reordered late packet keeps the number it would have had.
    public mutating func insert() -> (sequenceNumber: UInt16, timestamp: UInt32)? {
        guard !self.resyncPending, let last = self.lastOutputSequence, let timestamp = self.lastOutputTimestamp,
            let highest = self.unwrapper.highest
        else { return nil }
        self.sequenceOffset += 1
        self.remember(Renumbering(position: highest + 1, shift: -1))
        self.lastOutputSequence = last + 1
        return (UInt16(truncatingIfNeeded: last + 1), timestamp)
    }

    /// Keeps a renumbering; when it pushes out the oldest one, inputs below that one's position can no
    /// longer be numbered and are discarded from now on.
    private mutating func remember(_ renumbering: Renumbering) {
        if self.renumberingCount == Self.renumberingMemory {
            self.sourceBase = max(self.sourceBase, self.renumberings[self.renumberingHead].position)
        }
        self.renumberings[self.renumberingHead] = renumbering
        self.renumberingHead = (self.renumberingHead + 1) % Self.renumberingMemory
        self.renumberingCount = min(self.renumberingCount + 1, Self.renumberingMemory)
    }

    /// Rewrites SSRC, sequence number, timestamp and (for VP8) the payload descriptor of `packet` in place.
    ///
    /// - Parameters:
    ///   - packet: a copy the caller owns (rewriting writes into its buffer).
    ///   - now: the forwarding time, used to re-base timestamps on a source switch.
    /// - Returns: ``Decision/discard`` for a stale packet of the current source (nothing is changed).
    /// - Throws: a `WireError` when VP8 rewriting is on and the payload has no valid descriptor; the
    ///   packet and the rewriter's state are then unchanged.
    public mutating func rewrite(packet: inout RTPPacket, now: NIODeadline) throws(WireError) -> Decision {
        let switching = self.resyncPending || self.sourceSSRC != packet.ssrc

        // Sequence number.
        let input: Int64
        let outputSequence: Int64
        var newOffset = self.sequenceOffset
        if switching {
            input = Int64(packet.sequenceNumber)
            let target: Int64
            if let last = self.lastOutputSequence {
                target = last + (self.lastOutputMarker ? 1 : 2)
            } else {
                target = input
            }
            newOffset = target - input
            outputSequence = target
        } else {
            input = self.unwrapper.peek(packet.sequenceNumber)
            guard input >= self.sourceBase else { return .discard }
            outputSequence = input + self.sequenceOffset + self.shiftAbove(input)
        }
        let isNewest = switching || input > (self.unwrapper.highest ?? Int64.min)

        // Timestamp.
        var newTimestampOffset = self.timestampOffset
        if switching, let lastTimestamp = self.lastOutputTimestamp, let lastTime = self.lastOutputTime {
            let elapsed = MediaClock.scale(
                nanoseconds: MediaClock.elapsed(from: lastTime, to: now), rate: Int64(self.clockRate))
            // Capped at 2^30 so the result stays "after" the last timestamp in RTP's modular order.
            let advance = UInt32(min(max(elapsed, 1), 1 << 30))
            newTimestampOffset = (lastTimestamp &+ advance) &- packet.timestamp
        } else if switching {
            newTimestampOffset = 0
        }
        let outputTimestamp = packet.timestamp &+ newTimestampOffset

        // VP8 descriptor: computed first so a malformed payload leaves everything untouched.
        var pictureID: (input: UInt16, output: UInt16, newest: Bool)?
        var tl0: (input: UInt8, output: UInt8, newest: Bool)?
        if self.rewritesVP8 {
            let descriptor = try VP8PayloadDescriptor(packet.payload)
            if let id = descriptor.pictureID {
                let width: Int32 = id.byteCount == 1 ? 0x80 : 0x8000
                let fresh = switching || self.lastInputPictureID == nil
                var delta: Int32 = 1
                if !fresh, let lastInput = self.lastInputPictureID {
                    delta = (Int32(id.value) - Int32(lastInput)) & (width - 1)
                    if delta >= width / 2 { delta -= width }
                }
                let base = Int32(self.lastOutputPictureID ?? id.value &- 1)
                let output = UInt16(truncatingIfNeeded: (base + delta) & 0x7FFF)
                pictureID = (id.value, output, fresh || delta > 0)
                try packet.rewriteVP8Descriptor(pictureID: output)
            }
            if let index = descriptor.tl0PicIndex {
                let fresh = switching || self.lastInputTL0 == nil
                let delta: Int8 = fresh ? 1 : Int8(bitPattern: index &- (self.lastInputTL0 ?? index))
                let base = self.lastOutputTL0 ?? index &- 1
                let output = UInt8(bitPattern: Int8(bitPattern: base) &+ delta)
                tl0 = (index, output, fresh || delta > 0)
                try packet.rewriteVP8Descriptor(tl0PicIndex: output)
            }
        }

        // Commit.
        if switching {
            self.sourceSSRC = packet.ssrc
            self.resyncPending = false
            self.unwrapper.reset()
            _ = self.unwrapper.unwrap(packet.sequenceNumber)
            self.sourceBase = input
            self.sequenceOffset = newOffset
            self.timestampOffset = newTimestampOffset
            self.renumberingCount = 0
            self.lastInputPictureID = nil
            self.lastInputTL0 = nil
            self.sourceChanges += 1
        } else if isNewest {
            _ = self.unwrapper.unwrap(packet.sequenceNumber)
        }
        if isNewest {
            self.lastOutputSequence = outputSequence
            self.lastOutputMarker = packet.marker
            self.lastOutputTimestamp = outputTimestamp
            self.lastOutputTime = now
        }
        if let pictureID, pictureID.newest {
            self.lastInputPictureID = pictureID.input
            self.lastOutputPictureID = pictureID.output
        }
        if let tl0, tl0.newest {
            self.lastInputTL0 = tl0.input
            self.lastOutputTL0 = tl0.output
        }
        self.lastVP8Output = (pictureID?.output, tl0?.output)
        packet.setSSRC(self.outputSSRC)
        packet.setSequenceNumber(UInt16(truncatingIfNeeded: outputSequence))
        packet.setTimestamp(outputTimestamp)
        return .forward
    }

    /// What the remembered renumberings above `input` changed in the offset since `input`'s place in the
    /// stream: undone for a reordered packet. Zero for a packet newer than every one handled (the usual
    /// case: no renumbering lies above it).
    func shiftAbove(_ input: Int64) -> Int64 {
        guard let highest = self.unwrapper.highest, input <= highest else { return 0 }
        var shift: Int64 = 0
        for index in 0..<self.renumberingCount where self.renumberings[index].position > input {
            shift += self.renumberings[index].shift
        }
        return shift
    }
}
