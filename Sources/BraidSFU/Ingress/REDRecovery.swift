import BraidWire
import NIOCore

/// Rebuilds audio packets lost on a publisher's uplink from the redundant blocks of the RED packets that
/// follow them ([RFC 2198](https://www.rfc-editor.org/rfc/rfc2198)), so subscribers that take plain Opus
/// (aiortc, or a browser that did not offer RED) get the frame too, and a subscriber's own redundancy
/// starts from a whole stream.
///
/// RED blocks carry a timestamp offset, not a sequence number. A block `k` frames behind the primary
/// (offset = k × the primary's Opus duration) stood in packet `P − k` when the sender sends one frame per
/// packet, as Chromium and BraidClient do; a block whose offset is not a whole number of frames is left
/// alone. Only a packet seen missing (a gap behind the newest, within the last 64) is rebuilt, once, and
/// only from a block that parses as Opus (RFC 6716 §3.4), so a forged or mismatched block cannot replace
/// a packet that arrived.
///
/// ```
///  received:   P−3        (P−2 lost)  (P−1 lost)   P = RED [ block @ −2·960 | block @ −960 | primary ]
///  rebuilt:                 P−2 ◄──────────────────────────────┘               │
///                                      P−1 ◄───────────────────────────────────┘
/// ```
///
/// Confined to its publisher's event loop; holds 16 bytes.
struct REDRecovery {
    /// A packet to ingest as if it had arrived: its sequence number, timestamp and Opus payload (a slice
    /// of the RED payload).
    struct Rebuilt {
        var sequenceNumber: UInt16
        var timestamp: UInt32
        var payload: ByteBuffer
    }

    /// Positions tracked behind the newest (the width of ``received``).
    static let window = 64
    /// How far back a RED block can reach: its 14-bit offset is at most 341 ms at 48 kHz, 34 frames of
    /// 10 ms. A gap further back is not worth parsing a payload for.
    static let reach = 40

    private var newest: UInt16?
    /// Bit `i` set: packet `newest − i` arrived (or was rebuilt).
    private var received: UInt64 = 0
    /// Positions behind the newest that the stream has covered since its first packet (at most
    /// ``window``): nothing before the first packet counts as missing.
    private var span = 0

    /// Packets rebuilt so far.
    private(set) var packetsRebuilt = 0

    /// Notes the arrival of `sequenceNumber` (any audio packet of the stream, RED or not).
    mutating func arrived(_ sequenceNumber: UInt16) {
        guard let newest = self.newest else {
            self.newest = sequenceNumber
            self.received = 1
            self.span = 1
            return
        }
        // Widened before negating: half the sequence space away is Int16.min, whose negation traps.
        let ahead = Int(Int16(bitPattern: sequenceNumber &- newest))
        if ahead > 0 {
            self.received = ahead >= Self.window ? 1 : (self.received << UInt64(ahead)) | 1
            self.span = min(Self.window, self.span + ahead)
            self.newest = sequenceNumber
        } else if -ahead < Self.window {
            self.received |= 1 << UInt64(-ahead)
        }
    }

    /// Whether `sequenceNumber` lies within the window behind the newest and has not arrived.
    func isMissing(_ sequenceNumber: UInt16) -> Bool {
        guard let newest = self.newest else { return false }
        let behind = Int(Int16(bitPattern: newest &- sequenceNumber))
        return behind > 0 && behind < self.span && self.received & (1 << UInt64(behind)) == 0
    }

    /// Whether one of the last `distance` packets behind the newest is missing: only then is a RED
    /// payload worth parsing.
    func hasGap(within distance: Int) -> Bool {
        let positions = min(distance, self.span - 1)
        guard positions > 0 else { return false }
        let mask: UInt64 = positions >= 63 ? ~1 : ((1 << UInt64(positions + 1)) - 1) & ~1
        return self.received & mask != mask
    }

    /// The packets the RED packet (`sequenceNumber`, `timestamp`, its `payload`) can rebuild: those of its
    /// redundant blocks in `mediaPayloadType` that stood in a packet still missing. Call after
    /// ``arrived(_:)`` for the RED packet itself; the rebuilt ones are noted as arrived.
    mutating func rebuild(
        redPayload payload: ByteBuffer, sequenceNumber: UInt16, timestamp: UInt32, mediaPayloadType: UInt8
    ) -> [Rebuilt] {
        guard self.hasGap(within: Self.reach), let red = try? REDPayload(payload), !red.redundant.isEmpty,
            red.primary.payloadType == mediaPayloadType,
            let frame = try? OpusPacketInfo(red.primary.data), frame.durationSamples > 0
        else { return [] }
        let ticks = frame.durationSamples
        var rebuilt: [Rebuilt] = []
        for block in red.redundant where block.payloadType == mediaPayloadType && block.data.readableBytes > 0 {
            let offset = Int(block.timestampOffset)
            guard offset > 0, offset % ticks == 0 else { continue }
            let behind = offset / ticks
            guard behind <= Self.reach else { continue }
            let lost = sequenceNumber &- UInt16(behind)
            guard self.isMissing(lost), (try? OpusPacketInfo(block.data)) != nil else { continue }
            self.arrived(lost)
            self.packetsRebuilt += 1
            rebuilt.append(Rebuilt(sequenceNumber: lost, timestamp: timestamp &- UInt32(offset), payload: block.data))
        }
        // Oldest first, as they would have arrived.
        return rebuilt.sorted { Int16(bitPattern: $0.sequenceNumber &- $1.sequenceNumber) < 0 }
    }
}
