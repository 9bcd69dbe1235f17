import BraidRTPStreams
import BraidWire
import NIOCore

/// The sending state of one RTP stream (one SSRC): sequence numbers, timestamps, header extensions,
/// retransmission history and sender-report counters.
///
/// Packets are built into one reused buffer and one reused extension builder, so sending allocates
/// nothing once they have grown to the largest packet. A class, so that the buffers are mutated where
/// they live instead of being copied out of a container and written back (which would copy them).
/// Confined to its publisher's event loop.
final class OutgoingStream {
    let ssrc: UInt32
    let payloadType: UInt8
    let clockRate: UInt32
    let isAudio: Bool
    let extensionIDs: RTPHeaderExtensionMap
    let mid: RTPStreamIdentifier?
    var sequenceNumber: UInt16
    let timestampBase: UInt32
    var retransmissions: RetransmissionBuffer
    var extensions = RTPHeaderExtensionBuilder()
    var packet = ByteBuffer()
    var repair = ByteBuffer()

    /// Braid's FEC on this (video) stream's uplink, when the answer took it.
    var fec: UplinkFEC?
    /// RED on this (audio) stream's uplink, when the answer took it.
    var red: UplinkRED?

    var packetsSent: UInt32 = 0
    var octetsSent: UInt32 = 0
    var lastTimestamp: UInt32 = 0
    var lastSentAt: NIODeadline?

    init(
        ssrc: UInt32, payloadType: UInt8, clockRate: UInt32, isAudio: Bool, extensionIDs: RTPHeaderExtensionMap,
        mid: String?, rtx: RetransmissionBuffer.RTX?
    ) {
        self.ssrc = ssrc
        self.payloadType = payloadType
        self.clockRate = clockRate
        self.isAudio = isAudio
        self.extensionIDs = extensionIDs
        self.mid = mid.flatMap { try? RTPStreamIdentifier($0) }
        var random = SystemRandomNumberGenerator()
        // RFC 3550 §5.1: random initial sequence number and timestamp.
        self.sequenceNumber = UInt16.random(in: 0...0x7FFF, using: &random)
        self.timestampBase = UInt32.random(in: 0...UInt32.max, using: &random)
        // History sized for a simulated peer (thousands per process): 256 video packets hold about one
        // second at up to 2.5 Mbit/s, 64 audio packets 1.28 s of 20 ms frames. Slots fit a 1200-byte
        // payload with its header and extensions.
        self.retransmissions = RetransmissionBuffer(
            capacity: isAudio ? 64 : 256, slotSize: 1300, maxAge: isAudio ? .milliseconds(500) : .seconds(1),
            minimumResendInterval: .milliseconds(20), rtx: rtx,
            initialRTXSequenceNumber: UInt16.random(in: 0...0x7FFF, using: &random))
        self.packet.reserveCapacity(1500)
        self.repair.reserveCapacity(1500)
    }

    /// Builds the next packet into ``packet`` (under `payloadType` when given: RED) and records it for
    /// retransmission.
    ///
    /// Extensions, each under the ID the answer gave it (absent when the answer dropped it): MID,
    /// transport-wide sequence number, abs-send-time, abs-capture-time (NTP of capture) and, for audio,
    /// the audio level (RFC 6464, a fixed -30 dBov with voice activity).
    func build(
        timestamp: UInt32, marker: Bool, payload: ByteBuffer, transportSequence: UInt16, captureTime: UInt64,
        now: NIODeadline, nowNTP: UInt64, payloadType: UInt8? = nil
    ) {
        self.extensions.removeAll()
        if let id = self.extensionIDs.mid, let mid = self.mid { try? self.extensions.append(mid, id: id) }
        if let id = self.extensionIDs.transportSequenceNumber {
            try? self.extensions.append(TransportSequenceNumber(transportSequence), id: id)
        }
        if let id = self.extensionIDs.absSendTime {
            try? self.extensions.append(AbsSendTime(ntpTimestamp: nowNTP), id: id)
        }
        if let id = self.extensionIDs.absCaptureTime {
            try? self.extensions.append(AbsCaptureTime(captureTimestamp: captureTime), id: id)
        }
        if self.isAudio, let id = self.extensionIDs.audioLevel {
            try? self.extensions.append(AudioLevel(voiceActivity: true, level: 30), id: id)
        }
        self.packet.clear()
        let header = RTPHeader(
            marker: marker, payloadType: payloadType ?? self.payloadType, sequenceNumber: self.sequenceNumber,
            timestamp: timestamp,
            ssrc: self.ssrc)
        _ = try? self.packet.writeRTPPacket(header, extensions: self.extensions, payload: payload)
        if let view = try? RTPPacket(self.packet) { self.retransmissions.store(view, now: now) }
        self.sequenceNumber &+= 1
        self.packetsSent &+= 1
        self.octetsSent &+= UInt32(truncatingIfNeeded: payload.readableBytes)
        self.lastTimestamp = timestamp
        self.lastSentAt = now
    }

    /// Sends the uplink FEC repairs due after the packet just built and sent (``packet``): each with its
    /// own transport-wide sequence number (`transportSequence()`) and abs-send-time.
    /// - Returns: the number of repair packets sent.
    func sendRepairs(
        timestamp: UInt32, now: NIODeadline, nowNTP: UInt64, transportSequence: () -> UInt16,
        send: (ByteBuffer) -> Void
    ) -> Int {
        guard self.fec != nil else { return 0 }
        let repairs = self.fec!.sent(self.packet, sequenceNumber: self.sequenceNumber &- 1, now: now)
        var sent = 0
        for _ in 0..<repairs {
            self.extensions.removeAll()
            if let id = self.extensionIDs.transportSequenceNumber {
                try? self.extensions.append(TransportSequenceNumber(transportSequence()), id: id)
            }
            if let id = self.extensionIDs.absSendTime {
                try? self.extensions.append(AbsSendTime(ntpTimestamp: nowNTP), id: id)
            }
            guard self.fec!.writeRepair(timestamp: timestamp, extensions: self.extensions, now: now, into: &self.repair)
            else { break }
            send(self.repair)
            sent += 1
        }
        return sent
    }

    /// Answers a generic NACK. With uplink FEC protecting the stream, the asked-for packets the encoder
    /// still keeps are the node's deficit, answered by one round of fresh repairs over the span from the
    /// oldest of them through the newest packet sent, as many as ``UplinkFEC/rounds`` sizes for the uplink's
    /// loss and for how often these packets were asked for before (a deficit of one gets copies of that
    /// packet, which the node's decoder learns byte for byte). The other packets are resent from the
    /// retransmission history (RTX when negotiated, RFC 4588 §4, else verbatim). Every packet on the
    /// transport, retransmissions included, takes the next transport-wide sequence number
    /// (`transportSequence()`; a stored one is stale), patched in place before sending.
    /// - Returns: the packets resent and the round's repairs sent.
    func answer(
        _ nack: RTCPGenericNACK, now: NIODeadline, nowNTP: UInt64, transportSequence: () -> UInt16,
        send: (ByteBuffer) -> Void
    ) -> (resent: Int, repairs: Int) {
        let protecting = self.fec?.isProtecting == true
        var deficit = 0
        var widest = 0
        var oldest: UInt16 = 0
        var round = 0
        var resent = 0
        let twccID = self.extensionIDs.transportSequenceNumber
        for sequenceNumber in nack.lostSequenceNumbers {
            if protecting, let sources = self.fec!.sourcesSince(sequenceNumber),
                sources <= FECRepairHeader.maximumSources
            {
                // Covered by the round (unless asked for again within the round trip: a duplicate NACK).
                guard let before = self.retransmissions.markAnswered(sequenceNumber, now: now) else { continue }
                deficit += 1
                round = max(round, before)
                if sources > widest {
                    widest = sources
                    oldest = sequenceNumber
                }
                continue
            }
            self.repair.clear()
            guard case .written = self.retransmissions.retransmit(sequenceNumber, now: now, into: &self.repair) else {
                continue
            }
            if let twccID, let view = try? RTPPacket(self.repair), let element = view.extension(id: twccID),
                element.length == 2
            {
                self.repair.setInteger(transportSequence(), at: self.repair.readerIndex + element.valueOffset)
            }
            send(self.repair)
            resent += 1
        }
        guard deficit > 0 else { return (resent, 0) }
        let repairs = UplinkFEC.rounds.repairs(deficit: deficit, loss: self.fec!.loss, round: round)
        var sent = 0
        while sent < repairs {
            self.extensions.removeAll()
            if let id = twccID { try? self.extensions.append(TransportSequenceNumber(transportSequence()), id: id) }
            if let id = self.extensionIDs.absSendTime {
                try? self.extensions.append(AbsSendTime(ntpTimestamp: nowNTP), id: id)
            }
            guard self.fec!.writeRepair(
                timestamp: self.lastTimestamp, extensions: self.extensions, now: now, since: oldest,
                count: deficit == 1 ? 1 : nil, into: &self.repair)
            else { break }
            send(self.repair)
            sent += 1
        }
        self.fec!.roundSent()
        return (resent, sent)
    }

    /// The RTP timestamp "now" for a sender report (RFC 3550 §6.4.1): the last packet's timestamp
    /// advanced by the time since it was sent.
    func senderReportTimestamp(now: NIODeadline) -> UInt32 {
        guard let last = self.lastSentAt else { return self.timestampBase }
        let elapsed = max(0, (now - last).nanoseconds)
        let ticks = elapsed / 1000 * Int64(self.clockRate) / 1_000_000
        return self.lastTimestamp &+ UInt32(truncatingIfNeeded: ticks)
    }
}
