import BraidCongestion
import BraidRTPStreams
import BraidWire
import NIOCore

/// A subscribing peer (a WHEP session): the WebRTC egress. Its slots (``SubscriberSlot``) consume the
/// room's tracks; this class holds what the slots share — the transport, the transport-wide sequence,
/// the bandwidth estimate that picks their layers (`LayerAllocation.swift`), the RTCP the peer sends
/// (`SubscriberFeedback.swift`) — and builds each outgoing packet.
///
/// Created by ``SFURouter/addSubscriber(room:peerID:participant:description:transport:now:)``; confined to
/// the router's event loop.
public final class SFUSubscriber {
    // What every packet sent reads and writes comes first, together: the object is about 1.7 KB (the
    // bandwidth estimator alone is 900 bytes), and among hundreds of subscribers each cache line a copy
    // touches is a miss. Stored properties are laid out in declaration order.
    let transport: any MediaTransport
    let description: SubscriberDescription
    /// The router's buffers, shared by its subscribers: packets and RTCP are built there.
    let scratch: SubscriberScratch
    var sequencer: TransportSequencer
    let wallClock: WallClock
    var lastActivity: NIODeadline?
    var outbound = RateMeter()
    /// ``SFUConfiguration/bitrateWindow``, read per packet for ``outbound``.
    private let outboundWindow: TimeAmount

    /// The peer's id, unique in the router.
    public let peerID: String
    /// The participant it belongs to: slots are never filled with tracks of the same participant.
    public let participant: String
    /// The room it watches.
    public let room: String

    /// An operator cap on this subscriber's bandwidth estimate (bits/s); nil lifts it. A lower cap moves
    /// the video layers down at once (on the next keyframe); a higher one after the normal up-dwell.
    public var maximumBitrate: Int? {
        didSet {
            if let now = self.lastActivity { self.decideLayers(now: now) }
        }
    }

    let configuration: SFUConfiguration
    public let rtcpSSRC: UInt32
    private(set) var slots: [SubscriberSlot] = []
    var slotsBySSRC: [UInt32: SubscriberSlot] = [:]

    var estimator: BandwidthEstimator
    var rembBitrate: Int?
    /// Packet results the last transport-wide feedback produced (sent packets it reported on).
    var lastFeedbackResultCount = 0
    var roundTripTime: TimeAmount?
    var lastLayerDecisionAt: NIODeadline?
    /// When the sender-report timers are next looked at (``senderReportCheckInterval`` apart).
    var nextSenderReportCheck: NIODeadline?
    /// Whether an audio slot sends repeats (the tick then looks for due ones).
    var hasRepeatingSlots = false
    /// The loss the audio redundancy was last planned for.
    var measuredLoss = 0.0
    /// Downlink loss from transport-wide feedback (every packet, every 100 ms).
    var transportLoss = LossAverage()
    /// Packets transport-wide feedback has reported on, in all: how much ``transportLoss`` is to be trusted.
    var transportPacketsMeasured = 0
    /// The same feedback fitted as bursts: where losses cluster, repair rounds (back to back) and audio
    /// redundancy (copies in consecutive packets) are sized under it.
    var transportBursts = BurstLossModel()

    /// The dashboard's view of the protection toward this peer.
    var protectionStatus: SFUProtectionStatus {
        var distance = 0
        var repeats = false
        var repairRatio = 0.0
        var repairsSent = 0
        var fec: String?
        var protectionBytes = 0
        var payloadBytes = 0
        for slot in self.slots {
            distance = max(distance, slot.redundancy.plan.distance)
            repeats = repeats || slot.redundancy.plan.repeats
            repairRatio = max(repairRatio, slot.protection.ratio)
            repairsSent += slot.protection.repairsSent
            if slot.slot.fecPayloadType != nil { fec = slot.slot.fecScheme.encodingName }
            protectionBytes += slot.redundancy.redundantBytesSent + slot.redundancy.repeatBytesSent
                + slot.protection.repairBytesSent
            // ULPFEC repairs are packets of the media stream, already in its octet count.
            payloadBytes += slot.payloadOctetsSent + (slot.slot.fecScheme == .ulpfec ? 0 : slot.protection.repairBytesSent)
        }
        return SFUProtectionStatus(
            measuredLoss: self.measuredLoss, audioRedundancyDistance: distance, audioRepeats: repeats,
            videoRepairRatio: repairRatio, videoRepairRounds: self.counters.repairRounds,
            videoRoundRepairs: self.counters.roundRepairs, videoFEC: fec, videoRepairsSent: repairsSent,
            protectionBytes: protectionBytes, payloadBytes: payloadBytes,
            lossBurstLength: self.transportBursts.hasSamples && self.transportBursts.meanBurstLength.isFinite
                ? self.transportBursts.meanBurstLength : nil)
    }

    struct Counters {
        var malformedRTCP = 0
        var nacksReceived = 0
        var retransmissions = 0
        /// NACKs answered with a repair round, and the repair packets those rounds sent.
        var repairRounds = 0
        var roundRepairs = 0
        var keyframeRequestsReceived = 0
        var transportFeedbackReceived = 0
        var sendFailures = 0
    }
    var counters = Counters()

    init(
        room: String, peerID: String, participant: String, description: SubscriberDescription,
        transport: any MediaTransport, configuration: SFUConfiguration, wallClock: WallClock, rtcpSSRC: UInt32,
        scratch: SubscriberScratch
    ) {
        self.scratch = scratch
        self.room = room
        self.peerID = peerID
        self.participant = participant
        self.description = description
        self.transport = transport
        self.configuration = configuration
        self.outboundWindow = configuration.bitrateWindow
        self.wallClock = wallClock
        self.rtcpSSRC = rtcpSSRC
        self.sequencer = TransportSequencer()
        var estimatorConfiguration = BandwidthEstimator.Configuration()
        estimatorConfiguration.startBitrate = configuration.startBitrate
        self.estimator = BandwidthEstimator(configuration: estimatorConfiguration)
        self.slots = description.slots.map { SubscriberSlot(subscriber: self, slot: $0, configuration: configuration) }
        for slot in self.slots {
            self.slotsBySSRC[slot.slot.ssrc] = slot
            if let rtx = slot.slot.rtxSSRC { self.slotsBySSRC[rtx] = slot }
        }
    }

    /// The reusable packet buffer (tests check that its storage is stable).
    var scratchForTesting: ByteBuffer? { self.scratch.packet }

    /// The next transport-wide sequence number.
    var nextTransportSequence: UInt16 { self.sequencer.next }

    /// Whether the subscriber gives any bandwidth signal (transport-cc feedback or REMB).
    var hasBandwidthFeedback: Bool {
        let transportWide = self.description.extensions.transportWideSequence != nil
        return self.slots.contains { ($0.slot.feedback.transportCC && transportWide) || $0.slot.feedback.remb }
    }

    /// Bytes this subscriber holds for its slots' histories and its transport-wide send history (its
    /// send buffers are the router's, ``SubscriberScratch``).
    var footprint: Int {
        self.slots.reduce(0) { $0 + $1.history.footprint + $1.redundancy.footprint + $1.protection.footprint }
            + self.sequencer.footprint
    }

    // MARK: - Sending media

    /// Stage 0: the transport's object and the transport-wide history entry the next packet takes; then
    /// the transport's stages (``CachePrefetch``).
    func prefetch(stage: Int) {
        if stage == 0 {
            CachePrefetch.object(self.transport)
            self.sequencer.prefetchNext()
        } else {
            self.transport.prefetch(stage: stage - 1)
        }
    }

    /// Builds the subscriber's copy of `packet` in the reusable scratch buffer and sends it:
    /// payload type, header extensions (the subscriber's IDs), then SSRC, sequence number, timestamp and
    /// VP8 picture ids through the slot's rewriter; records where it came from for retransmissions.
    func send(_ packet: MediaPacket, slot: SubscriberSlot, now: NIODeadline) {
        self.lastActivity = now
        // Repeats of the previous packet the 10 ms tick has not reached yet go first: none is skipped.
        while slot.redundancy.repeatsPending > 0 { self.sendRepeat(slot: slot, now: now) }
        guard var out = self.build(packet, slot: slot, now: now) else { return }
        let decision: RTPRewriter.Decision
        do {
            decision = try slot.rewriter.rewrite(packet: &out, now: now)
        } catch {
            slot.rewriteFailures += 1
            self.scratch.packet = out.buffer
            return
        }
        var repairs = 0
        let timestamp = out.timestamp
        let forwarded = decision == .forward
        if forwarded {
            self.record(out, from: packet, slot: slot, now: now)
            slot.packetsSent += 1
            slot.payloadOctetsSent += out.payloadLength
            repairs = slot.protection.sent(out.buffer, sequenceNumber: out.sequenceNumber, now: now)
        }
        let headerLength = out.headerLength
        // The packet's storage goes back to the scratch slot, uniquely referenced, before a repair reuses it.
        var wire = (consume out).buffer
        if forwarded {
            if slot.protection.wrapsInRED, let red = slot.slot.redPayloadType {
                // ULPFEC: the repairs cover the packet as it was; the browser sees it so once RED is taken off.
                REDPayload.wrapPrimaryOnly(&wire, headerLength: headerLength, redPayloadType: red)
            }
            self.transmit(wire, now: now)
            if slot.redundancy.plan.repeats, !packet.isRetransmission {
                slot.redundancy.keepForRepeat(wire, now: now)
            }
        }
        self.scratch.packet = wire
        for index in 0..<repairs {
            self.sendRepair(slot: slot, timestamp: timestamp, ulpfec: (index, repairs), now: now)
        }
    }

    /// Sends the repeats of each repeating audio slot's last packet that are due (see
    /// ``AudioRedundancyPolicy``).
    func sendRepeats(now: NIODeadline) {
        for slot in self.slots where slot.redundancy.repeatsPending > 0 {
            guard let due = slot.redundancy.nextRepeatDue(clockRate: slot.slot.clockRate), now >= due else { continue }
            self.sendRepeat(slot: slot, now: now)
        }
    }

    /// Sends one repeat of `slot`'s last packet: the same bytes under the next sequence number, with fresh
    /// abs-send-time and transport-wide sequence number.
    private func sendRepeat(slot: SubscriberSlot, now: NIODeadline) {
        slot.redundancy.repeatsPending -= 1
        guard let last = slot.redundancy.lastPacket, var buffer = self.scratch.packet.take() else { return }
        buffer.clear()
        buffer.writeImmutableBuffer(last)
        guard self.transport.isWritable, var out = try? RTPPacket(buffer), let number = slot.rewriter.insert() else {
            self.scratch.packet = buffer
            return
        }
        let ids = self.description.extensions
        out.setSequenceNumber(number.sequenceNumber)
        if let id = ids.transportWideSequence {
            try? out.setExtension(TransportSequenceNumber(self.sequencer.next), id: id)
        }
        if let id = ids.absSendTime {
            try? out.setExtension(AbsSendTime(ntpTimestamp: self.wallClock.ntpTimestamp(at: now)), id: id)
        }
        slot.packetsSent += 1
        slot.payloadOctetsSent += out.payloadLength
        slot.redundancy.repeatsSent += 1
        slot.redundancy.repeatBytesSent += out.payloadLength
        self.transmit(out.buffer, now: now)
        self.scratch.packet = out.buffer
    }

    /// Sends one FEC repair packet of `slot`: its own SSRC, payload type and sequence numbers (ULPFEC: the
    /// media's SSRC and next sequence number, inside RED), the protected media's timestamp, fresh
    /// abs-send-time and transport-wide sequence number. The repair covers the recent packets (sent with
    /// the media; ULPFEC: repair `ulpfec.index` of the `ulpfec.count` after a frame), or `count` packets
    /// from `since` (all of them through the newest when nil: a repair round answering a NACK). Returns
    /// false when there was nothing to cover.
    @discardableResult
    private func sendRepair(
        slot: SubscriberSlot, timestamp: UInt32, since: UInt16? = nil, count: Int? = nil,
        ulpfec ulpfecRepair: (index: Int, count: Int) = (0, 1), now: NIODeadline
    ) -> Bool {
        let ulpfec = slot.slot.fecScheme == .ulpfec
        guard let ssrc = ulpfec ? slot.slot.ssrc : slot.slot.fecSSRC,
            let payloadType = ulpfec ? slot.slot.redPayloadType : slot.slot.fecPayloadType,
            let fecPayloadType = slot.slot.fecPayloadType,
            slot.protection.hasEncoder, self.transport.isWritable, var buffer = self.scratch.packet.take()
        else { return false }
        defer { self.scratch.packet = buffer }
        buffer.clear()
        // A ULPFEC repair's number is taken from the media stream once the repair is written.
        let header = RTPHeader(
            marker: false, payloadType: payloadType, sequenceNumber: ulpfec ? 0 : slot.protection.nextSequenceNumber,
            timestamp: timestamp, ssrc: ssrc)
        let headerLength = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: RTPHeaderWriter.maximumLength) {
            memory in
            var writer = RTPHeaderWriter(into: memory, header: header, csrcs: [UInt32]())
            if ulpfec, let id = self.description.extensions.mid, let mid = slot.midValue {
                writer.append(id: id, value: mid.bytes)
            }
            self.appendSendTimeAndSequence(to: &writer, now: now)
            return writer.finish() ?? 0
        }
        guard headerLength > 0 else { return false }
        let policy = self.configuration.videoFEC
        // Read before the encoder is accessed for writing (the optional chain holds `protection`).
        let span = slot.protection.xorSpan
        let written =
            switch slot.slot.fecScheme {
            case .flexFEC:
                slot.protection.flexEncoder?.writeRepair(protecting: slot.slot.ssrc, span: span, into: &buffer) ?? false
            case .ulpfec:
                // RFC 2198: one block, the ULPFEC payload type's.
                buffer.writeInteger(fecPayloadType & 0x7F) > 0
                    && slot.protection.writeULPFECRepair(ulpfecRepair.index, of: ulpfecRepair.count, into: &buffer)
            case .slidingWindow:
                if let since {
                    slot.protection.encoder?.writeRepair(since: since, count: count, into: &buffer) ?? false
                } else {
                    slot.protection.encoder?.writeRepair(
                        now: now, maximumAge: policy.windowDuration, maximumSources: policy.window,
                        maximumSymbolGrowth: policy.maximumSymbolGrowth, into: &buffer) ?? false
                }
            }
        guard written else { return false }
        let bytes = buffer.readableBytes - headerLength
        if ulpfec {
            guard let number = slot.rewriter.insert() else { return false }
            buffer.setInteger(number.sequenceNumber, at: buffer.readerIndex + 2)
            slot.packetsSent += 1
            slot.payloadOctetsSent += bytes
        } else {
            slot.protection.nextSequenceNumber &+= 1
        }
        slot.protection.counted(bytes: bytes)
        self.transmit(buffer, now: now)
        return true
    }

    /// Answers a NACK of `slot` with a repair round when its link gets FEC (see ``VideoFECPolicy``): the
    /// asked-for packets still in the encoder's window are the receiver's deficit, and fresh repairs over
    /// the span from the oldest of them through the newest packet sent rebuild them all once that many
    /// arrive. A deficit of one gets repairs over that packet alone (copies of it, no longer than it: a
    /// repair is as long as the longest packet of its span), which, unlike RTX, the receiver's FEC decoder
    /// learns byte for byte. `uncovered` gets the asked-for packets the round does not take (older than
    /// the encoder's window; all of them when the slot gets no FEC), for RTX.
    func answerWithRepairRound(
        _ sequenceNumbers: some Sequence<UInt16>, slot: SubscriberSlot, now: NIODeadline,
        uncovered: (UInt16) -> Void
    ) {
        // The encoder is read in place: a copy held across `sendRepair` would copy its slab on write.
        guard slot.protection.ratio > 0, slot.protection.encoder != nil else {
            for sequenceNumber in sequenceNumbers { uncovered(sequenceNumber) }
            return
        }
        // First pass: the deficit the round would take, without marking anything.
        var deficit = 0
        var widest = 0
        var oldest: UInt16 = 0
        var timestamp: UInt32 = 0
        var round = 0
        for sequenceNumber in sequenceNumbers {
            guard let sources = slot.protection.encoder?.sourcesSince(sequenceNumber),
                sources <= FECRepairHeader.maximumSources,
                // Asked for again within the round trip (a duplicate NACK) or by a stale attachment: skip.
                let entry = slot.history.lookup(
                    sequenceNumber, generation: slot.generation, now: now, maxAge: slot.maxResendAge,
                    minimumResendInterval: slot.minimumResendInterval)
            else { continue }
            deficit += 1
            round = max(round, Int(entry.resends))
            if sources > widest {
                widest = sources
                oldest = sequenceNumber
                timestamp = entry.timestamp
            }
        }
        guard deficit > 0 else {
            for sequenceNumber in sequenceNumbers { uncovered(sequenceNumber) }
            return
        }
        for sequenceNumber in sequenceNumbers {
            guard let sources = slot.protection.encoder?.sourcesSince(sequenceNumber),
                sources <= FECRepairHeader.maximumSources
            else {
                uncovered(sequenceNumber)
                continue
            }
            slot.history.markResent(sequenceNumber, now: now)
        }
        let policy = self.configuration.videoFEC
        let repairs =
            self.transportBursts.isBursty
            ? policy.repairs(deficit: deficit, bursts: self.transportBursts, round: round)
            : policy.repairs(deficit: deficit, loss: self.plannedLoss(slot), round: round)
        var sent = 0
        let span = deficit == 1 ? 1 : nil
        while sent < repairs, self.sendRepair(slot: slot, timestamp: timestamp, since: oldest, count: span, now: now) {
            sent += 1
        }
        self.counters.repairRounds += 1
        self.counters.roundRepairs += sent
    }

    /// The extensions written fresh into every packet to this peer: abs-send-time, and the transport-wide
    /// sequence number that ``transmit(_:now:)`` then consumes.
    private func appendSendTimeAndSequence(to writer: inout RTPHeaderWriter, now: NIODeadline) {
        let ids = self.description.extensions
        if let id = ids.absSendTime {
            writer.append(
                id: id, bigEndian: UInt64(AbsSendTime(ntpTimestamp: self.wallClock.ntpTimestamp(at: now)).rawValue),
                length: 3)
        }
        if let id = ids.transportWideSequence {
            writer.append(id: id, bigEndian: UInt64(self.sequencer.next), length: 2)
        }
    }

    /// Sends one RTP packet to the peer: it takes the transport-wide sequence number written into it (the
    /// sequencer records size and time for the bandwidth estimator) and counts toward the outbound rate.
    private func transmit(_ packet: ByteBuffer, now: NIODeadline) {
        if self.description.extensions.transportWideSequence != nil {
            self.sequencer.sent(size: packet.readableBytes, sendTime: now)
        }
        self.outbound.add(bytes: packet.readableBytes, now: now, window: self.outboundWindow)
        self.transport.sendRTP(packet)
    }

    /// The loss of the link to this subscriber: from transport-wide feedback where it sends it, else from
    /// `slot`'s last receiver report.
    func linkLoss(_ slot: SubscriberSlot) -> Double {
        self.transportLoss.hasSamples ? self.transportLoss.fraction : Double(slot.fractionLost) / 256
    }

    /// The loss `slot`'s protection is planned for: before any feedback ``SFUConfiguration/lossBeforeFeedback``;
    /// then transport-wide feedback's measure, with that assumption kept as a prior worth
    /// ``SFUConfiguration/lossPriorPackets`` packets (a Beta prior: the first 100 ms measure 10–20 packets, and
    /// at 50 % loss their estimate is anywhere from 25 % to 75 %; a low one left the first keyframes
    /// under-protected); or the last receiver report's.
    func plannedLoss(_ slot: SubscriberSlot) -> Double {
        let prior = self.configuration.lossBeforeFeedback
        if self.transportLoss.hasSamples {
            let measured = Double(self.transportPacketsMeasured)
            let weight = self.configuration.lossPriorPackets
            return (prior * weight + self.transportLoss.fraction * measured) / (weight + measured)
        }
        return slot.hasReceiverReport ? self.linkLoss(slot) : prior
    }

    /// How many packets this subscriber's link carries per frame of `slot` (its own, repeats included,
    /// and every other slot's media and repairs): how far apart, in a burst model counted per packet,
    /// consecutive packets of the slot are.
    func packetsPerFrame(of slot: SubscriberSlot) -> Double {
        let frames = slot.packetsSent - slot.redundancy.repeatsSent
        guard frames > 0 else { return 1 }
        let all = self.slots.reduce(0) { $0 + $1.packetsSent + $1.protection.repairsSent }
        return max(1, Double(all) / Double(frames))
    }

    /// Re-plans each slot's protection (audio RED and repeats, video FEC) from the link's measured loss:
    /// transport-wide feedback (every packet) where the subscriber sends it, else the slot's last receiver
    /// report; the one-way delay is half the RTT.
    func planProtection() {
        let audio = self.configuration.audioRedundancy
        let video = self.configuration.videoFEC
        let oneWay = TimeAmount.nanoseconds((self.roundTripTime?.nanoseconds ?? 0) / 2)
        var repeating = false
        for slot in self.slots {
            let loss = self.plannedLoss(slot)
            if slot.kind == .video, slot.slot.fecPayloadType != nil {
                self.measuredLoss = self.linkLoss(slot)
                switch slot.slot.fecScheme {
                case .slidingWindow:
                    slot.protection.update(
                        ratio: video.repairRatio(loss: loss), policy: video,
                        maximumPacketSize: self.configuration.maximumPacketSize)
                case .flexFEC, .ulpfec:
                    let ids = self.description.extensions
                    slot.protection.updateXOR(
                        span: self.configuration.flexFEC.span(loss: loss), ulpfec: slot.slot.fecScheme == .ulpfec,
                        maximumPacketSize: self.configuration.maximumPacketSize,
                        mutableExtensionIDs: (ids.transportWideSequence ?? 0, ids.absSendTime ?? 0, 0))
                }
            } else if slot.kind == .audio, slot.slot.redPayloadType != nil {
                self.measuredLoss = self.linkLoss(slot)
                let frame = slot.redundancy.frameDuration(clockRate: slot.slot.clockRate)
                let plan =
                    self.transportBursts.isBursty
                    ? audio.plan(
                        bursts: self.transportBursts, spacing: self.packetsPerFrame(of: slot), oneWayDelay: oneWay,
                        frameDuration: frame)
                    : audio.plan(loss: loss, oneWayDelay: oneWay, frameDuration: frame, nack: self.audioNACKRounds(slot, loss: loss))
                slot.redundancy.update(plan: plan)
                repeating = repeating || plan.repeats
            }
        }
        self.hasRepeatingSlots = repeating
    }

    /// What a subscriber that NACKs lost audio (its answer kept `nack` for the slot) can count on: its round
    /// trip and the copies ``RetransmissionPolicy`` resends per round; nil without NACK or a measured RTT.
    private func audioNACKRounds(_ slot: SubscriberSlot, loss: Double) -> AudioRedundancyPolicy.NACKRounds? {
        guard slot.slot.feedback.nack, let roundTrip = self.roundTripTime else { return nil }
        let policy = self.configuration.retransmission
        return AudioRedundancyPolicy.NACKRounds(
            roundTrip: roundTrip, copies: (0..<4).map { policy.copies(previousResends: $0, loss: loss) })
    }

    /// Writes `packet` for this subscriber into the scratch buffer, still under the origin's SSRC,
    /// sequence number and timestamp: the subscriber's payload type (RFC 2198: RED goes out whole only to
    /// an audio slot that negotiated RED; otherwise its primary block alone — video RED is always
    /// unwrapped so the VP8 descriptor can be rewritten) and header extensions under the subscriber's ids
    /// (mid, abs-send-time and transport-wide sequence fresh; audio level and abs-capture-time copied).
    /// Returns nil, with the scratch buffer put back, when the packet cannot be written.
    private func build(_ packet: MediaPacket, slot: SubscriberSlot, now: NIODeadline) -> RTPPacket? {
        guard slot.consumer != nil, var buffer = self.scratch.packet.take() else { return nil }
        buffer.clear()
        let ids = self.description.extensions
        let map = packet.extensions
        let description = slot.slot

        var payload = packet.payload
        var payloadType = description.payloadType
        var keepsRED = false
        if description.kind == .audio, let red = description.redPayloadType, !packet.isRetransmission,
            slot.redundancy.keepsFrames,
            let wrapped = slot.redundancy.payload(
                primary: packet.mediaPayload, timestamp: packet.timestamp, payloadType: description.payloadType)
        {
            // The node's own redundancy, sized for this subscriber's link (AudioRedundancy.swift).
            payload = wrapped
            payloadType = red
        } else if let block = packet.redPrimary {
            if let red = description.redPayloadType, description.kind == .audio {
                payloadType = red
                keepsRED = true
            } else {
                payload = payload.getSlice(at: payload.readerIndex + block.offset, length: block.length) ?? payload
            }
        }

        let header = RTPHeader(
            marker: packet.marker, payloadType: payloadType, sequenceNumber: packet.sequenceNumber,
            timestamp: packet.timestamp, ssrc: packet.sourceSSRC)
        // Extension maps are per session, so a video packet would be searched for an audio level in vain.
        let audioLevel =
            description.kind == .audio
            ? ids.audioLevel.flatMap { _ in map.audioLevel.flatMap { packet.rtp.extension(id: $0) } } : nil
        let captureTime = ids.absCaptureTime.flatMap { _ in map.absCaptureTime.flatMap { packet.rtp.extension(id: $0) } }
        // The fast path: the header and one-byte-form extensions written straight into the buffer.
        let headerLength = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: RTPHeaderWriter.maximumLength) {
            memory in
            var writer = RTPHeaderWriter(into: memory, header: header, csrcs: packet.rtp.csrcs)
            if let id = ids.mid, let mid = slot.midValue { writer.append(id: id, value: mid.bytes) }
            self.appendSendTimeAndSequence(to: &writer, now: now)
            if let id = ids.audioLevel, let element = audioLevel { writer.append(id: id, value: element.value) }
            if let id = ids.absCaptureTime, let element = captureTime { writer.append(id: id, value: element.value) }
            return writer.finish() ?? 0
        }
        if headerLength > 0 {
            buffer.writeImmutableBuffer(payload)
        } else {
            // An ID over 14 or a value over 16 bytes: the two-byte form, through the general builder.
            buffer.clear()
            self.scratch.extensions.removeAll()
            do {
                if let id = ids.mid, let mid = slot.midValue { try self.scratch.extensions.append(mid, id: id) }
                if let id = ids.absSendTime {
                    try self.scratch.extensions.append(AbsSendTime(ntpTimestamp: self.wallClock.ntpTimestamp(at: now)), id: id)
                }
                if let id = ids.transportWideSequence {
                    try self.scratch.extensions.append(TransportSequenceNumber(self.sequencer.next), id: id)
                }
                if let id = ids.audioLevel, let element = audioLevel { try self.scratch.extensions.append(id: id, value: element.value) }
                if let id = ids.absCaptureTime, let element = captureTime {
                    try self.scratch.extensions.append(id: id, value: element.value)
                }
                try buffer.writeRTPPacket(header, csrcs: packet.rtp.csrcs, extensions: self.scratch.extensions, payload: payload)
            } catch {
                self.counters.sendFailures += 1
                self.scratch.packet = buffer
                return nil
            }
        }
        if keepsRED, let producer = slot.producer {
            // The block headers name the publisher's media PT; the subscriber knows it by its own.
            REDPrimaryBlock.rewriteBlockPayloadTypes(
                in: &buffer, payloadAt: buffer.writerIndex - payload.readableBytes,
                from: producer.track.payloadType, to: description.payloadType)
        }
        do {
            return try RTPPacket(consume buffer)
        } catch {
            self.counters.sendFailures += 1
            self.scratch.packet = self.scratch.makePacketBuffer()
            return nil
        }
    }

    /// Keeps where a sent packet came from and how it was rewritten.
    private func record(_ out: RTPPacket, from packet: MediaPacket, slot: SubscriberSlot, now: NIODeadline) {
        var entry = SentPacketHistory.Entry(
            sequenceNumber: out.sequenceNumber, originSequenceNumber: packet.sequenceNumber, timestamp: out.timestamp,
            layer: UInt8(truncatingIfNeeded: packet.layer), generation: slot.generation,
            sentAt: now.uptimeNanoseconds)
        if slot.rewriter.rewritesVP8 {
            let written = slot.rewriter.lastVP8Output
            entry.pictureID = written.pictureID.map { Int16(truncatingIfNeeded: $0 & 0x7FFF) } ?? -1
            entry.tl0PicIndex = written.tl0PicIndex.map { Int16($0) } ?? -1
        }
        slot.history.record(entry)
    }

    /// Resends output packet `sequenceNumber` of `slot`: the producer's stored copy, rewritten as it was
    /// the first time, RTX-encapsulated when the slot has RTX (RFC 4588 §4), with fresh abs-send-time and
    /// transport-wide sequence number; on a lossy link in as many copies as ``RetransmissionPolicy`` says
    /// (each its own RTX sequence number).
    func retransmit(_ sequenceNumber: UInt16, slot: SubscriberSlot, now: NIODeadline) -> Bool {
        guard let consumer = slot.consumer,
            let entry = slot.history.lookup(
                sequenceNumber, generation: slot.generation, now: now, maxAge: slot.maxResendAge,
                minimumResendInterval: slot.minimumResendInterval)
        else { return false }
        let copies = self.configuration.retransmission.copies(
            previousResends: Int(entry.resends), loss: self.linkLoss(slot))
        var sent = false
        consumer.withStoredPacket(layer: Int(entry.layer), sequenceNumber: entry.originSequenceNumber, now: now) {
            packet in
            for _ in 0..<copies {
                guard var out = self.build(packet, slot: slot, now: now) else { return }
                out.setSSRC(slot.slot.ssrc)
                out.setSequenceNumber(sequenceNumber)
                out.setTimestamp(entry.timestamp)
                if entry.pictureID >= 0 { try? out.rewriteVP8Descriptor(pictureID: UInt16(entry.pictureID)) }
                if entry.tl0PicIndex >= 0 { try? out.rewriteVP8Descriptor(tl0PicIndex: UInt8(entry.tl0PicIndex)) }
                var wire = out.buffer
                if let rtxSSRC = slot.slot.rtxSSRC, let rtxPayloadType = slot.slot.rtxPayloadType {
                    self.scratch.rtx.clear()
                    out.writeRTX(
                        ssrc: rtxSSRC, payloadType: rtxPayloadType, sequenceNumber: slot.nextRTXSequenceNumber,
                        into: &self.scratch.rtx)
                    slot.nextRTXSequenceNumber &+= 1
                    wire = self.scratch.rtx
                }
                self.transmit(wire, now: now)
                self.scratch.packet = out.buffer
                sent = true
            }
        }
        if sent { slot.history.markResent(sequenceNumber, now: now) }
        return sent
    }

    /// Detaches every slot (the peer leaves).
    func close(now: NIODeadline) {
        for slot in self.slots { slot.detach(now: now) }
    }
}

/// Scratch space every subscriber of a router uses in turn (they all run on its event loop), kept once per
/// router rather than per peer. A packet is built in one buffer that stays in the cache from one
/// subscriber's copy to the next; a buffer per subscriber was a cold kilobyte to write for every copy
/// among hundreds of subscribers, and 4 KB of memory per peer.
final class SubscriberScratch {
    /// The packet being built; taken while in use so that its storage stays uniquely referenced.
    var packet: ByteBuffer?
    /// RTX encapsulation of a retransmission.
    var rtx: ByteBuffer
    /// Outgoing RTCP (sender reports).
    var rtcp: ByteBuffer
    /// Header extensions in the two-byte form (the general builder).
    var extensions: RTPHeaderExtensionBuilder
    /// The packet results of one feedback message, up to 8192 of them (320 KB).
    var feedbackResults = ContiguousArray<PacketResult>()

    /// Room for a packet and what RTX encapsulation or the SRTP trailer adds.
    private let packetCapacity: Int

    init(maximumPacketSize: Int) {
        let allocator = ByteBufferAllocator()
        self.packetCapacity = maximumPacketSize + 64
        self.packet = allocator.buffer(capacity: self.packetCapacity)
        self.rtx = allocator.buffer(capacity: self.packetCapacity)
        self.rtcp = allocator.buffer(capacity: 1500)
        self.extensions = RTPHeaderExtensionBuilder(storage: allocator.buffer(capacity: 96))
        self.feedbackResults.reserveCapacity(TransportSequencer.maximumCapacity)
    }

    /// A fresh packet buffer (when the last one was lost to a failed write).
    func makePacketBuffer() -> ByteBuffer {
        ByteBufferAllocator().buffer(capacity: self.packetCapacity)
    }
}
