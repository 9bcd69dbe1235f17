import BraidCongestion
import BraidRTPStreams
import BraidWire
public import NIOCore

/// A subscribing peer (a WHEP session): its slots forward the room's tracks; its RTCP drives
/// retransmissions, keyframe requests and the bandwidth estimate that picks simulcast layers.
///
/// Created by ``SFURouter/addSubscriber(room:peerID:participant:description:transport:now:)``; confined to the
/// router's event loop.
public final class SFUSubscriber {
    /// The peer's id, unique in the router.
    public let peerID: String
    /// The participant the peer belongs to (its own `peerID` unless it was added with one): the router
    /// never forwards a participant's tracks to that participant's subscribers.
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

    let description: SubscriberDescription
    let transport: any MediaTransport
    let configuration: SFUConfiguration
    let wallClock: WallClock
    let rtcpSSRC: UInt32
    private(set) var consumers: [Consumer] = []
    private var consumersBySSRC: [UInt32: Consumer] = [:]

    /// The packet being built; taken while in use so that its storage stays uniquely referenced.
    private var scratch: ByteBuffer?
    private var rtcpScratch: ByteBuffer
    private var extensions: RTPHeaderExtensionBuilder
    /// Next transport-wide sequence number: one counter for every packet sent to this peer, RTX included.
    private(set) var nextTransportSequence: UInt16 = 1
    var sendHistory: TransportSendHistory
    var estimator: BandwidthEstimator
    private var packetResults: ContiguousArray<PacketResult>
    private(set) var rembBitrate: Int?
    /// Packet results the last transport-wide feedback produced (sent packets it reported on).
    private(set) var lastFeedbackResultCount = 0
    private(set) var roundTripTime: TimeAmount?
    private var lastActivity: NIODeadline?
    private var lastLayerDecisionAt: NIODeadline?

    struct Counters {
        var malformedRTCP = 0
        var nacksReceived = 0
        var retransmissions = 0
        var keyframeRequestsReceived = 0
        var transportFeedbackReceived = 0
        var sendFailures = 0
    }
    var counters = Counters()
    var outbound = RateMeter()

    init(
        room: String, peerID: String, participant: String, description: SubscriberDescription,
        transport: any MediaTransport, configuration: SFUConfiguration, wallClock: WallClock, rtcpSSRC: UInt32
    ) {
        self.room = room
        self.peerID = peerID
        self.participant = participant
        self.description = description
        self.transport = transport
        self.configuration = configuration
        self.wallClock = wallClock
        self.rtcpSSRC = rtcpSSRC
        let allocator = ByteBufferAllocator()
        self.scratch = allocator.buffer(capacity: configuration.maximumPacketSize + 64)
        self.rtcpScratch = allocator.buffer(capacity: 1500)
        self.extensions = RTPHeaderExtensionBuilder(storage: allocator.buffer(capacity: 96))
        self.sendHistory = TransportSendHistory()
        var estimatorConfiguration = BandwidthEstimator.Configuration()
        estimatorConfiguration.startBitrate = configuration.startBitrate
        self.estimator = BandwidthEstimator(configuration: estimatorConfiguration)
        self.packetResults = ContiguousArray()
        self.packetResults.reserveCapacity(TransportSendHistory.capacity)
        self.consumers = description.slots.map { Consumer(subscriber: self, slot: $0, configuration: configuration) }
        for consumer in self.consumers {
            self.consumersBySSRC[consumer.slot.ssrc] = consumer
            if let rtx = consumer.slot.rtxSSRC { self.consumersBySSRC[rtx] = consumer }
        }
    }

    /// The reusable packet buffer (tests check that its storage is stable).
    var scratchForTesting: ByteBuffer? { self.scratch }

    /// Whether the subscriber gives any bandwidth signal (transport-cc feedback or REMB).
    var hasBandwidthFeedback: Bool {
        let transportWide = self.description.extensions.transportWideSequence != nil
        return self.consumers.contains { ($0.slot.feedback.transportCC && transportWide) || $0.slot.feedback.remb }
    }

    // MARK: - Sending media

    /// Builds the subscriber's copy of `packet` in the reusable scratch buffer and sends it:
    /// payload type, header extensions (the subscriber's IDs), then SSRC, sequence number, timestamp and
    /// VP8 picture ids through the consumer's rewriter.
    func send(_ packet: InboundPacket, consumer: Consumer, now: NIODeadline) {
        self.lastActivity = now
        guard let producer = consumer.producer, var buffer = self.scratch.take() else { return }
        buffer.clear()
        let ids = self.description.extensions
        let map = producer.publisher.extensionMap
        let slot = consumer.slot

        // RFC 2198: RED goes out whole only to an audio slot that negotiated RED; otherwise the primary
        // block alone (video RED is always unwrapped so the VP8 descriptor can be rewritten).
        var payload = packet.payload
        var payloadType = slot.payloadType
        var keepsRED = false
        if let block = packet.redPrimary {
            if let red = slot.redPayloadType, slot.kind == .audio {
                payloadType = red
                keepsRED = true
            } else {
                payload = payload.getSlice(at: payload.readerIndex + block.offset, length: block.length) ?? payload
            }
        }

        let transportSequence = self.nextTransportSequence
        self.extensions.removeAll()
        do {
            if let id = ids.mid, let mid = consumer.midValue { try self.extensions.append(mid, id: id) }
            if let id = ids.absSendTime {
                try self.extensions.append(AbsSendTime(ntpTimestamp: self.wallClock.ntpTimestamp(at: now)), id: id)
            }
            if let id = ids.transportWideSequence {
                try self.extensions.append(TransportSequenceNumber(transportSequence), id: id)
            }
            if let id = ids.audioLevel, let element = map.audioLevel.flatMap({ packet.rtp.extension(id: $0) }) {
                try self.extensions.append(id: id, value: element.value)
            }
            if let id = ids.absCaptureTime, let element = map.absCaptureTime.flatMap({ packet.rtp.extension(id: $0) }) {
                try self.extensions.append(id: id, value: element.value)
            }
            let header = RTPHeader(
                marker: packet.rtp.marker, payloadType: payloadType, sequenceNumber: packet.sequenceNumber,
                timestamp: packet.rtp.timestamp, ssrc: packet.sourceSSRC)
            try buffer.writeRTPPacket(header, csrcs: packet.rtp.csrcs, extensions: self.extensions, payload: payload)
        } catch {
            self.counters.sendFailures += 1
            self.scratch = buffer
            return
        }
        if keepsRED {
            // The block headers name the publisher's media PT; the subscriber knows it by its own.
            REDPrimaryBlock.rewriteBlockPayloadTypes(
                in: &buffer, payloadAt: buffer.writerIndex - payload.readableBytes,
                from: producer.track.payloadType, to: slot.payloadType)
        }

        var out: RTPPacket
        do {
            out = try RTPPacket(consume buffer)
        } catch {
            self.counters.sendFailures += 1
            self.scratch = ByteBufferAllocator().buffer(capacity: self.configuration.maximumPacketSize + 64)
            return
        }
        let decision: RTPRewriter.Decision
        do {
            decision = try consumer.rewriter.rewrite(packet: &out, now: now)
        } catch {
            consumer.rewriteFailures += 1
            self.scratch = out.buffer
            return
        }
        if decision == .forward {
            if ids.transportWideSequence != nil {
                self.nextTransportSequence &+= 1
                self.sendHistory.record(transportSequence, sendTime: now, size: out.length)
            }
            consumer.retransmissions.store(out, now: now)
            consumer.packetsSent += 1
            consumer.payloadOctetsSent += out.payloadLength
            self.outbound.add(bytes: out.length, now: now, window: self.configuration.bitrateWindow)
            self.transport.sendRTP(out.buffer)
        }
        self.scratch = out.buffer
    }

    /// Sends the retransmission of `sequenceNumber` from `consumer`'s buffer, RTX-encapsulated when the
    /// slot has RTX, with fresh abs-send-time and transport-wide sequence number.
    private func retransmit(_ sequenceNumber: UInt16, consumer: Consumer, now: NIODeadline) -> Bool {
        guard var buffer = self.scratch.take() else { return false }
        buffer.clear()
        guard case .written = consumer.retransmissions.retransmit(sequenceNumber, now: now, into: &buffer) else {
            self.scratch = buffer
            return false
        }
        var out: RTPPacket
        do {
            out = try RTPPacket(consume buffer)
        } catch {
            self.scratch = ByteBufferAllocator().buffer(capacity: self.configuration.maximumPacketSize + 64)
            return false
        }
        let ids = self.description.extensions
        let transportSequence = self.nextTransportSequence
        var map = RTPHeaderExtensionMap()
        map.transportSequenceNumber = ids.transportWideSequence
        map.absSendTime = ids.absSendTime
        if ids.transportWideSequence != nil,
            (try? out.setTransportSequenceNumber(transportSequence, map)) != nil
        {
            self.nextTransportSequence &+= 1
            self.sendHistory.record(transportSequence, sendTime: now, size: out.length)
        }
        if ids.absSendTime != nil {
            try? out.setAbsSendTime(AbsSendTime(ntpTimestamp: self.wallClock.ntpTimestamp(at: now)), map)
        }
        self.outbound.add(bytes: out.length, now: now, window: self.configuration.bitrateWindow)
        self.transport.sendRTP(out.buffer)
        self.scratch = out.buffer
        return true
    }

    // MARK: - RTCP from the subscriber

    /// Handles one plain RTCP compound packet from the subscriber: NACK, PLI, FIR, RR, transport-wide
    /// feedback and REMB. Malformed packets are counted and dropped.
    public func receiveRTCP(_ compound: ByteBuffer, now: NIODeadline) {
        self.lastActivity = now
        guard let packets = try? RTCPCompoundPacket(compound) else {
            self.counters.malformedRTCP += 1
            return
        }
        for packet in packets {
            switch packet {
            case .genericNACK(let nack):
                guard let consumer = self.consumersBySSRC[nack.mediaSSRC], consumer.slot.ssrc == nack.mediaSSRC
                else { continue }
                self.counters.nacksReceived += 1
                for sequenceNumber in nack.lostSequenceNumbers
                where self.retransmit(sequenceNumber, consumer: consumer, now: now) {
                    self.counters.retransmissions += 1
                }
            case .pictureLossIndication(let pli):
                guard let consumer = self.consumersBySSRC[pli.mediaSSRC] else { continue }
                self.counters.keyframeRequestsReceived += 1
                consumer.keyframeRequested(now: now)
            case .fullIntraRequest(let fir):
                for entry in fir.entries {
                    guard let consumer = self.consumersBySSRC[entry.ssrc] else { continue }
                    self.counters.keyframeRequestsReceived += 1
                    consumer.keyframeRequested(now: now)
                }
            case .receiverReport(let report):
                self.reportBlocksReceived(report.reportBlocks, now: now)
            case .senderReport(let report):
                self.reportBlocksReceived(report.reportBlocks, now: now)
            case .transportWideFeedback(let feedback):
                self.transportFeedbackReceived(feedback, now: now)
            case .receiverEstimatedMaximumBitrate(let remb):
                let bitrate = Int(clamping: remb.bitrate)
                self.rembBitrate = bitrate
                self.estimator.onREMB(bitrate: bitrate)
            case .malformed:
                self.counters.malformedRTCP += 1
            default:
                break
            }
        }
    }

    /// RTT from LSR/DLSR ([RFC 3550 §6.4.1](https://www.rfc-editor.org/rfc/rfc3550#section-6.4.1)):
    /// RTT = A − LSR − DLSR in 1/65536 s, where A is the middle 32 bits of the NTP time now.
    private func reportBlocksReceived(_ blocks: RTCPReportBlocks, now: NIODeadline) {
        for block in blocks {
            guard let consumer = self.consumersBySSRC[block.ssrc], consumer.slot.ssrc == block.ssrc else { continue }
            consumer.fractionLost = block.fractionLost
            consumer.cumulativeLost = block.cumulativeLost
            guard block.lastSenderReport != 0 else { continue }
            let arrival = UInt32(truncatingIfNeeded: self.wallClock.ntpTimestamp(at: now) >> 16)
            let rtt = arrival &- block.lastSenderReport &- block.delaySinceLastSenderReport
            // A "negative" RTT (clock rounding, or a bogus report) wraps to a huge value: ignore it.
            guard rtt < 65_536 * 10 else { continue }
            let nanoseconds = Int64(rtt) * 1_000_000_000 / 65_536
            self.roundTripTime = .nanoseconds(nanoseconds)
            self.estimator.onRTT(nanoseconds / 1000)
            for consumer in self.consumers {
                consumer.retransmissions.minimumResendInterval = .nanoseconds(max(nanoseconds, 10_000_000))
            }
        }
    }

    /// Turns transport-wide feedback into packet results for the bandwidth estimator.
    private func transportFeedbackReceived(_ feedback: RTCPTransportWideFeedback, now: NIODeadline) {
        self.counters.transportFeedbackReceived += 1
        self.packetResults.removeAll(keepingCapacity: true)
        let reference = feedback.referenceTimeMicroseconds
        for status in feedback.packets {
            guard let sent = self.sendHistory.lookup(status.sequenceNumber) else { continue }
            guard self.packetResults.count < TransportSendHistory.capacity else { break }
            self.packetResults.append(
                PacketResult(
                    sequenceNumber: status.sequenceNumber, sendTimeUs: sent.sendTimeUs, size: sent.size,
                    arrivalTimeUs: status.arrivalOffset.map { reference + $0 }))
        }
        self.lastFeedbackResultCount = self.packetResults.count
        guard !self.packetResults.isEmpty else { return }
        self.estimator.onFeedback(results: self.packetResults, now: now.microseconds)
    }

    // MARK: - Periodic work

    /// The subscriber's available bitrate: the estimate (or unlimited without any feedback), capped.
    var availableBitrate: Int {
        let estimate = self.hasBandwidthFeedback ? self.estimator.estimate.bitrate : Int.max
        return min(estimate, self.maximumBitrate ?? Int.max)
    }

    func tick(now: NIODeadline) {
        self.lastActivity = now
        self.outbound.roll(now: now, window: self.configuration.bitrateWindow)
        self.sendSenderReports(now: now)
        if self.lastLayerDecisionAt.map({ now - $0 >= self.configuration.layerDecisionInterval }) ?? true {
            self.decideLayers(now: now)
        }
    }

    /// Splits the available bitrate over the video slots (audio is always forwarded; its measured rate is
    /// set aside first) and lets each slot's layer selector pick a layer.
    func decideLayers(now: NIODeadline) {
        self.lastLayerDecisionAt = now
        var budget = self.availableBitrate
        var videoSlots = 0
        for consumer in self.consumers {
            guard let producer = consumer.producer else { continue }
            if consumer.kind == .audio {
                let rate = producer.layers.first?.meter.bitsPerSecond ?? 0
                budget = budget == Int.max ? budget : max(0, budget - rate)
            } else {
                videoSlots += 1
            }
        }
        guard videoSlots > 0 else { return }
        let share = budget == Int.max ? Int.max : budget / videoSlots
        for consumer in self.consumers where consumer.kind == .video {
            guard let producer = consumer.producer, producer.layers.count > 1 else { continue }
            // Only layers that are flowing are candidates: a browser stops its top layers when its own
            // estimate drops, and a layer never measured yet cannot be ranked.
            let order = producer.qualityOrder().filter { producer.isFlowing($0, now: now) }
            guard !order.isEmpty else { continue }
            // LayerSelector wants strictly increasing rates (equal measurements are nudged apart).
            var rates: [Int] = []
            rates.reserveCapacity(order.count)
            for index in order {
                rates.append(max(producer.layers[index].meter.bitsPerSecond, (rates.last ?? 0) + 1))
            }
            // A target that stopped flowing: start from the best flowing layer, the selector goes down
            // from there at once if the estimate does not cover it.
            let currentRank = order.firstIndex(of: consumer.targetLayer) ?? (order.count - 1)
            if consumer.selector.map({ !Self.similar($0.layerBitrates, rates) }) ?? true {
                var selectorConfiguration = LayerSelector.Configuration()
                selectorConfiguration.upThreshold = self.configuration.layerUpThreshold
                selectorConfiguration.downThreshold = self.configuration.layerDownThreshold
                selectorConfiguration.upDwellUs = self.configuration.layerUpDwell.nanoseconds / 1000
                consumer.selector = try? LayerSelector(
                    layerBitrates: rates, initialLayer: currentRank, configuration: selectorConfiguration)
            }
            guard var selector = consumer.selector else { continue }
            let rank = selector.update(estimate: share, now: now.microseconds)
            consumer.selector = selector
            let layer = order[min(rank, order.count - 1)]
            if layer != consumer.targetLayer { consumer.setTargetLayer(layer, now: now) }
        }
    }

    /// Whether two rate lists differ by less than a quarter per layer (measurement noise): the selector
    /// is rebuilt only on a real change, so its up-dwell is not restarted by every new measurement.
    private static func similar(_ a: [Int], _ b: [Int]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where abs(x - y) * 4 > max(x, y) { return false }
        return true
    }

    /// One SR per consumer SSRC that sent media, every 1 s (video) / 2 s (audio)
    /// ([RFC 3550 §6.4.1](https://www.rfc-editor.org/rfc/rfc3550#section-6.4.1)): NTP time now, the RTP
    /// timestamp extrapolated from the last packet sent to now (as mediasoup does), packet and octet counts.
    private func sendSenderReports(now: NIODeadline) {
        for consumer in self.consumers where consumer.packetsSent > 0 {
            let interval =
                consumer.kind == .video
                ? self.configuration.videoSenderReportInterval : self.configuration.audioSenderReportInterval
            if let last = consumer.lastSenderReportAt, now - last < interval { continue }
            guard let lastTimestamp = consumer.rewriter.lastSentTimestamp,
                let lastTime = consumer.rewriter.lastSentTime
            else { continue }
            consumer.lastSenderReportAt = now
            let elapsed = max(0, (now - lastTime).nanoseconds)
            let ticks = elapsed / 1_000_000 * Int64(consumer.slot.clockRate) / 1000
            let rtpTimestamp = lastTimestamp &+ UInt32(truncatingIfNeeded: ticks)
            // SR + SDES CNAME: the compound RFC 3550 §6.1 requires, written straight into the scratch buffer.
            self.rtcpScratch.clear()
            do {
                try RTCPSenderReport.write(
                    senderSSRC: consumer.slot.ssrc, ntpTimestamp: self.wallClock.ntpTimestamp(at: now),
                    rtpTimestamp: rtpTimestamp, packetCount: UInt32(truncatingIfNeeded: consumer.packetsSent),
                    octetCount: UInt32(truncatingIfNeeded: consumer.payloadOctetsSent),
                    reportBlocks: EmptyCollection(), into: &self.rtcpScratch)
                try RTCPSourceDescription.writeCNAME(
                    ssrc: consumer.slot.ssrc, cname: SFURouter.cname, into: &self.rtcpScratch)
            } catch {
                continue
            }
            self.transport.sendRTCP(self.rtcpScratch)
        }
    }

    /// Detaches every slot (the peer leaves).
    func close() {
        for consumer in self.consumers { consumer.detach() }
    }
}

/// Send side of transport-wide congestion control: what was sent under each transport-wide sequence
/// number, so feedback can be turned into packet results. A fixed ring, allocated once.
struct TransportSendHistory {
    static let capacity = 8192
    private var sequences: ContiguousArray<Int32>
    private var sendTimes: ContiguousArray<Int64>
    private var sizes: ContiguousArray<Int32>

    init() {
        self.sequences = ContiguousArray(repeating: -1, count: Self.capacity)
        self.sendTimes = ContiguousArray(repeating: 0, count: Self.capacity)
        self.sizes = ContiguousArray(repeating: 0, count: Self.capacity)
    }

    mutating func record(_ sequence: UInt16, sendTime: NIODeadline, size: Int) {
        let slot = Int(sequence) & (Self.capacity - 1)
        self.sequences[slot] = Int32(sequence)
        self.sendTimes[slot] = sendTime.microseconds
        self.sizes[slot] = Int32(clamping: size)
    }

    func lookup(_ sequence: UInt16) -> (sendTimeUs: Int64, size: Int)? {
        let slot = Int(sequence) & (Self.capacity - 1)
        guard self.sequences[slot] == Int32(sequence) else { return nil }
        return (self.sendTimes[slot], Int(self.sizes[slot]))
    }
}
