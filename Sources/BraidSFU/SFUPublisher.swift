import BraidRTPStreams
import BraidWire
public import NIOCore

/// A publishing peer (a WHIP session): receives its RTP and RTCP and sends it NACKs, keyframe requests,
/// receiver reports and transport-wide feedback.
///
/// Created by ``SFURouter/addPublisher(room:peerID:participant:description:transport:now:)``; confined to the router's
/// event loop.
public final class SFUPublisher {
    /// The peer's id, unique in the router.
    public let peerID: String
    /// The participant the peer belongs to (its own `peerID` unless it was added with one): the router
    /// never forwards a participant's tracks to that participant's subscribers.
    public let participant: String
    /// The room it publishes to.
    public let room: String

    let description: PublisherDescription
    let transport: any MediaTransport
    let configuration: SFUConfiguration
    let extensionMap: RTPHeaderExtensionMap
    /// SSRC the node uses as the sender of RTCP to this peer.
    let rtcpSSRC: UInt32
    private(set) var producers: [Producer] = []

    /// Media or RTX stream bound to an SSRC.
    struct Binding {
        var layer: InboundLayer
        var producer: Producer
        var isRTX: Bool
    }
    private var bindings: [UInt32: Binding] = [:]

    /// RTCP output buffer, reused (RTCP builders never grow it: its capacity is the RTCP size limit).
    var rtcpScratch: ByteBuffer
    var transportFeedback: TransportFeedbackRecorder
    private var lastReceiverReportAt: NIODeadline?
    private var lastTransportFeedbackAt: NIODeadline?
    private var reportBlocks: [RTCPReportBlock] = []

    /// Dropped-input and feedback counters (for the dashboard and tests).
    struct Counters {
        var malformedRTP = 0
        var unknownSSRC = 0
        var paddingPackets = 0
        var malformedRTCP = 0
        var nacksSent = 0
        var keyframeRequestsSent = 0
        var transportFeedbackSent = 0
        var receiverReportsSent = 0
    }
    var counters = Counters()
    var inbound = RateMeter()

    init(
        room: String, peerID: String, participant: String, description: PublisherDescription,
        transport: any MediaTransport, configuration: SFUConfiguration, rtcpSSRC: UInt32
    ) {
        self.room = room
        self.peerID = peerID
        self.participant = participant
        self.description = description
        self.transport = transport
        self.configuration = configuration
        self.rtcpSSRC = rtcpSSRC
        var map = RTPHeaderExtensionMap()
        let ids = description.extensions
        map.mid = ids.mid
        map.rid = ids.rid
        map.repairedRID = ids.repairedRID
        map.absSendTime = ids.absSendTime
        map.transportSequenceNumber = ids.transportWideSequence
        map.audioLevel = ids.audioLevel
        map.absCaptureTime = ids.absCaptureTime
        self.extensionMap = map
        self.rtcpScratch = ByteBufferAllocator().buffer(capacity: 1500)
        self.transportFeedback = TransportFeedbackRecorder()
        self.producers = description.tracks.map { Producer(publisher: self, track: $0) }
        for producer in self.producers {
            for (index, ssrc) in producer.track.ssrcs.enumerated() where index < producer.layers.count {
                self.bind(ssrc: ssrc, layer: producer.layers[index], producer: producer, isRTX: false)
            }
            for (rtx, media) in producer.track.rtxSSRCs {
                if let binding = self.bindings[media], binding.producer === producer {
                    self.bind(ssrc: rtx, layer: binding.layer, producer: producer, isRTX: true)
                }
            }
        }
        self.reportBlocks.reserveCapacity(31)
    }

    /// Whether any track asked for transport-wide feedback.
    var wantsTransportFeedback: Bool {
        self.extensionMap.transportSequenceNumber != nil && self.producers.contains { $0.track.feedback.transportCC }
    }

    // MARK: - RTP

    /// Handles one plain (unprotected) RTP packet from the publisher.
    ///
    /// Unparseable packets, packets of an SSRC that cannot be bound to a track and malformed payloads are
    /// counted and dropped.
    public func receiveRTP(_ packet: ByteBuffer, now: NIODeadline) {
        guard let rtp = try? RTPPacket(packet) else {
            self.counters.malformedRTP += 1
            return
        }
        self.inbound.add(bytes: rtp.length, now: now, window: self.configuration.bitrateWindow)
        if let id = self.extensionMap.transportSequenceNumber,
            let sequence = try? rtp.headerExtension(TransportSequenceNumber.self, id: id)
        {
            self.transportFeedback.record(sequence.value, arrival: now)
        }
        guard let binding = self.bindings[rtp.ssrc] ?? self.learn(rtp, now: now) else {
            self.counters.unknownSSRC += 1
            return
        }
        binding.producer.receive(rtp, layer: binding.layer, isRTX: binding.isRTX, now: now)
    }

    /// Binds an unknown SSRC from the mid/rid/repaired-rid extensions of its packet (Chromium sends them
    /// only until an RR acknowledges the SSRC, so the binding is kept for good), or from an unambiguous
    /// payload type when the publisher negotiated no MID extension.
    private func learn(_ rtp: RTPPacket, now: NIODeadline) -> Binding? {
        var producer: Producer?
        if let mid = try? rtp.mid(self.extensionMap) {
            producer = self.producers.first { mid.matches($0.track.mid) }
        } else if self.extensionMap.mid == nil {
            let candidates = self.producers.filter {
                $0.track.payloadType == rtp.payloadType || $0.track.rtxPayloadType == rtp.payloadType
                    || $0.track.redPayloadType == rtp.payloadType
            }
            if candidates.count == 1 { producer = candidates[0] }
        }
        guard let producer else { return nil }
        let isRTX = producer.track.rtxPayloadType == rtp.payloadType
        let layer: InboundLayer?
        if producer.layers.count == 1 && producer.track.rids.isEmpty {
            layer = producer.layers[0]
        } else {
            let rid = isRTX ? try? rtp.repairedRID(self.extensionMap) : try? rtp.rid(self.extensionMap)
            if let rid {
                layer = producer.layers.first { $0.rid.map(rid.matches) ?? false }
            } else {
                layer = nil
            }
        }
        guard let layer else { return nil }
        // An RTX stream is usable only once its media stream is known (its OSNs refer to it).
        guard !isRTX || layer.ssrc != nil else { return nil }
        self.bind(ssrc: rtp.ssrc, layer: layer, producer: producer, isRTX: isRTX)
        if !isRTX, layer.keyframeWanted {
            layer.keyframeWanted = false
            producer.requestKeyframe(layer: layer.index, now: now)
        }
        return self.bindings[rtp.ssrc]
    }

    private func bind(ssrc: UInt32, layer: InboundLayer, producer: Producer, isRTX: Bool) {
        if isRTX {
            if let old = layer.rtxSSRC, old != ssrc { self.bindings[old] = nil }
            layer.rtxSSRC = ssrc
        } else {
            if let old = layer.ssrc, old != ssrc { self.bindings[old] = nil }
            layer.bind(
                ssrc: ssrc, clockRate: producer.track.clockRate,
                keyframeInterval: self.configuration.keyframeRequestInterval)
        }
        self.bindings[ssrc] = Binding(layer: layer, producer: producer, isRTX: isRTX)
    }

    // MARK: - RTCP

    /// Handles one plain RTCP compound packet from the publisher (sender reports; the rest is ignored).
    public func receiveRTCP(_ compound: ByteBuffer, now: NIODeadline) {
        guard let packets = try? RTCPCompoundPacket(compound) else {
            self.counters.malformedRTCP += 1
            return
        }
        for packet in packets {
            switch packet {
            case .senderReport(let report):
                if let binding = self.bindings[report.senderSSRC], !binding.isRTX {
                    binding.layer.statistics?.senderReportReceived(ntpTimestamp: report.ntpTimestamp, now: now)
                }
            case .malformed:
                self.counters.malformedRTCP += 1
            default:
                break
            }
        }
    }

    /// Sends a PLI (when negotiated) or else a FIR for `layer`.
    func sendKeyframeRequest(layer: InboundLayer, request: KeyframeRequestThrottle.Request) {
        guard let throttle = layer.throttle,
            let producer = self.producers.first(where: { $0.layers.contains { $0 === layer } })
        else { return }
        self.rtcpScratch.clear()
        do {
            if producer.track.feedback.pli {
                try throttle.writePLI(senderSSRC: self.rtcpSSRC, into: &self.rtcpScratch)
            } else if producer.track.feedback.fir {
                try throttle.writeFIR(request, senderSSRC: self.rtcpSSRC, into: &self.rtcpScratch)
            } else {
                return
            }
        } catch {
            return
        }
        self.counters.keyframeRequestsSent += 1
        self.transport.sendRTCP(self.rtcpScratch)
    }

    /// Periodic work: NACKs, keyframe retries, receiver reports, transport-wide feedback.
    func tick(now: NIODeadline) {
        self.inbound.roll(now: now, window: self.configuration.bitrateWindow)
        for producer in self.producers {
            producer.retryKeyframeRequests(now: now)
            for layer in producer.layers {
                layer.meter.roll(now: now, window: self.configuration.bitrateWindow)
                guard producer.track.feedback.nack, let ssrc = layer.ssrc else { continue }
                layer.nack.pending(now: now, into: &layer.pendingNACKs)
                guard !layer.pendingNACKs.isEmpty else { continue }
                self.rtcpScratch.clear()
                do {
                    try NACKGenerator.writeNACK(
                        senderSSRC: self.rtcpSSRC, mediaSSRC: ssrc, sequenceNumbers: layer.pendingNACKs,
                        into: &self.rtcpScratch)
                } catch {
                    continue
                }
                self.counters.nacksSent += 1
                self.transport.sendRTCP(self.rtcpScratch)
            }
        }
        if self.lastReceiverReportAt.map({ now - $0 >= self.configuration.receiverReportInterval }) ?? true {
            self.lastReceiverReportAt = now
            self.sendReceiverReports(now: now)
        }
        if self.wantsTransportFeedback,
            self.lastTransportFeedbackAt.map({ now - $0 >= self.configuration.transportFeedbackInterval }) ?? true
        {
            self.lastTransportFeedbackAt = now
            self.sendTransportFeedback()
        }
    }

    /// RR with one block per media SSRC received (RFC 3550 §6.4.2), 31 blocks per packet at most.
    private func sendReceiverReports(now: NIODeadline) {
        self.reportBlocks.removeAll(keepingCapacity: true)
        for producer in self.producers {
            for layer in producer.layers {
                guard var statistics = layer.statistics, statistics.packetsReceived > 0 else { continue }
                self.reportBlocks.append(statistics.makeReportBlock(now: now))
                layer.statistics = statistics
                if self.reportBlocks.count == 31 { self.flushReceiverReport() }
            }
        }
        if !self.reportBlocks.isEmpty { self.flushReceiverReport() }
    }

    private func flushReceiverReport() {
        self.rtcpScratch.clear()
        do {
            try RTCPReceiverReport.write(
                senderSSRC: self.rtcpSSRC, reportBlocks: self.reportBlocks, into: &self.rtcpScratch)
            try RTCPSourceDescription.writeCNAME(ssrc: self.rtcpSSRC, cname: SFURouter.cname, into: &self.rtcpScratch)
            self.counters.receiverReportsSent += 1
            self.transport.sendRTCP(self.rtcpScratch)
        } catch {
            // Cannot happen with 31 blocks in a 1500-byte buffer; nothing is sent if it does.
        }
        self.reportBlocks.removeAll(keepingCapacity: true)
    }

    /// Transport-wide feedback for every packet recorded since the last one
    /// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1).
    private func sendTransportFeedback() {
        let mediaSSRC = self.producers.lazy.flatMap(\.layers).compactMap(\.ssrc).first ?? 0
        self.transportFeedback.flush(
            senderSSRC: self.rtcpSSRC, mediaSSRC: mediaSSRC, scratch: &self.rtcpScratch
        ) { packet in
            self.counters.transportFeedbackSent += 1
            self.transport.sendRTCP(packet)
        }
    }

    /// Detaches every producer (the peer leaves).
    func close(now: NIODeadline) {
        for producer in self.producers { producer.detachAll(now: now) }
    }
}
