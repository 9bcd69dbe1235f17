import BraidRTPStreams
import BraidWire
public import NIOCore

/// A publishing peer (a WHIP session): the WebRTC ingress of its tracks. It binds SSRCs to tracks and
/// layers, unwraps RTX, keeps this hop's reception statistics and NACK state, and hands every packet to
/// its ``TrackProducer`` through the one ingress (``TrackProducer/ingest(_:now:)``). Upstream it sends
/// NACKs, keyframe requests (as the producers' ``TrackSource``), receiver reports and transport-wide
/// feedback (`PublisherFeedback.swift`).
///
/// Created by ``SFURouter/addPublisher(room:peerID:participant:description:transport:now:)``; confined to
/// the router's event loop.
public final class SFUPublisher: TrackSource {
    /// The peer's id, unique in the router.
    public let peerID: String
    /// The participant it belongs to (its own id unless linked).
    public let participant: String
    /// The room it publishes to.
    public let room: String

    let description: PublisherDescription
    let transport: any MediaTransport
    let configuration: SFUConfiguration
    let extensionMap: RTPHeaderExtensionMap
    /// SSRC the node uses as the sender of RTCP to this peer.
    public let rtcpSSRC: UInt32
    /// One producer per published m-section, in SDP order; ``streams`` has the same indexes.
    public internal(set) var producers: [TrackProducer] = []
    /// This hop's receive state per producer and layer.
    var streams: [[InboundStream]] = []

    /// Media, RTX or FEC repair stream bound to an SSRC.
    struct Binding {
        var stream: InboundStream
        var producer: TrackProducer
        var isRTX: Bool
        var isRepair = false
    }
    private var bindings: [UInt32: Binding] = [:]

    /// RTCP output buffer, reused (RTCP builders never grow it: its capacity is the RTCP size limit).
    var rtcpScratch: ByteBuffer
    var transportFeedback: TransportFeedbackRecorder
    var lastReceiverReportAt: NIODeadline?
    var lastTransportFeedbackAt: NIODeadline?
    var reportBlocks: [RTCPReportBlock] = []

    /// Dropped-input and feedback counters (for the dashboard and tests).
    struct Counters {
        var malformedRTP = 0
        var unknownSSRC = 0
        var paddingPackets = 0
        var malformedRTCP = 0
        var nacksSent = 0
        /// Of those, silence probes (``SilenceProbe``) on a lossy uplink with FEC.
        var silenceProbesSent = 0
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
        self.extensionMap = RTPHeaderExtensionMap(ids: description.extensions)
        self.rtcpScratch = ByteBufferAllocator().buffer(capacity: 1500)
        self.transportFeedback = TransportFeedbackRecorder()
        self.reportBlocks.reserveCapacity(31)
    }

    /// Takes the producers the router made for ``description``'s tracks and binds the signalled SSRCs.
    func adopt(_ producers: [TrackProducer]) {
        self.producers = producers
        self.streams = producers.map { producer in producer.layers.map { InboundStream(index: $0.index, rid: $0.rid) } }
        for (index, producer) in producers.enumerated() {
            let streams = self.streams[index]
            for (layer, ssrc) in producer.track.ssrcs.enumerated() where layer < streams.count {
                self.bind(ssrc: ssrc, stream: streams[layer], producer: producer, isRTX: false)
            }
            for (rtx, media) in producer.track.rtxSSRCs {
                if let binding = self.bindings[media], binding.producer === producer {
                    self.bind(ssrc: rtx, stream: binding.stream, producer: producer, isRTX: true)
                }
            }
            if producer.track.kind == .audio, producer.track.redPayloadType != nil {
                for stream in streams { stream.redRecovery = REDRecovery() }
            }
            // Uplink FEC protects the one stream of a track without simulcast.
            if let repair = producer.track.fecSSRC, producer.track.fecPayloadType != nil, streams.count == 1 {
                streams[0].fec = SlidingWindowFECDecoder()
                self.bindings[repair] = Binding(stream: streams[0], producer: producer, isRTX: false, isRepair: true)
            }
        }
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
        if binding.isRepair {
            self.receiveRepair(rtp, binding: binding, now: now)
            return
        }
        if binding.stream.redRecovery != nil, !binding.isRTX {
            self.receiveRedundantBlocks(rtp, binding: binding, now: now)
        }
        self.receiveMedia(rtp, binding: binding, recovered: false, now: now)
    }

    /// An audio packet of a track that negotiated RED: the packets its redundant blocks rebuild go in
    /// first, as if received (oldest first, ahead of the packet that carried them), like those of FEC.
    private func receiveRedundantBlocks(_ rtp: RTPPacket, binding: Binding, now: NIODeadline) {
        let stream = binding.stream
        let track = binding.producer.track
        stream.redRecovery!.arrived(rtp.sequenceNumber)
        guard let red = track.redPayloadType, rtp.payloadType == red else { return }
        let rebuilt = stream.redRecovery!.rebuild(
            redPayload: rtp.payload, sequenceNumber: rtp.sequenceNumber, timestamp: rtp.timestamp,
            mediaPayloadType: track.payloadType)
        for packet in rebuilt {
            var buffer = ByteBufferAllocator().buffer(capacity: 12 + packet.payload.readableBytes)
            let header = RTPHeader(
                payloadType: track.payloadType, sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp,
                ssrc: rtp.ssrc)
            guard (try? buffer.writeRTPPacket(header, payload: packet.payload)) != nil,
                let rebuiltRTP = try? RTPPacket(buffer)
            else { continue }
            self.receiveMedia(rebuiltRTP, binding: binding, recovered: true, now: now)
        }
    }

    /// A repair packet of the uplink's FEC: each packet it rebuilds goes in as if received (it never
    /// arrived, so reception statistics and transport-wide feedback leave it out).
    private func receiveRepair(_ rtp: RTPPacket, binding: Binding, now: NIODeadline) {
        let stream = binding.stream
        guard stream.fec != nil else { return }
        let header = try? FECRepairHeader(rtp.payload)
        // The first answer of a round times the round trip of the NACK it answers.
        if let header, header.answersNACK,
            let roundTrip = stream.repairRequests.answerArrived(covering: header.firstSequenceNumber, now: now),
            stream.nack.learnsRoundTripTime
        {
            stream.nack.roundTripSample(roundTrip)
        }
        // The repair names the newest packet sent: anything up to it not yet here is missing now.
        if let header, header.sourceCount > 0 {
            stream.nack.sentThrough(
                sequenceNumber: header.firstSequenceNumber &+ UInt16(truncatingIfNeeded: header.sourceCount - 1), now: now)
        }
        stream.silence.arrived(newest: stream.nack.newestSequence, now: now)
        for rebuilt in stream.fec!.repairReceived(rtp.payload) {
            guard let packet = try? RTPPacket(rebuilt), packet.ssrc == stream.ssrc else { continue }
            stream.packetsRecoveredByFEC += 1
            self.receiveMedia(packet, binding: binding, recovered: true, now: now)
        }
    }

    /// A media or RTX packet of `binding`'s stream, received or (`recovered`) rebuilt from FEC or RED. A
    /// rebuild times no round trip: ``RepairRequests`` knows which NACK a repair answered.
    private func receiveMedia(
        _ rtp: RTPPacket, binding: Binding, recovered: Bool, now: NIODeadline
    ) {
        let stream = binding.stream
        let producer = binding.producer
        var sequenceNumber = rtp.sequenceNumber
        var payload = rtp.payload
        if binding.isRTX {
            // RFC 4588 §4: OSN then the original payload. Chromium sends empty RTX packets as probes.
            guard payload.readableBytes >= 2, let osn = payload.readInteger(as: UInt16.self) else {
                self.counters.paddingPackets += 1
                return
            }
            sequenceNumber = osn
        }
        if !recovered {
            _ = stream.statistics?.packetReceived(
                sequenceNumber: sequenceNumber, timestamp: rtp.timestamp, now: now, isRetransmission: binding.isRTX)
            // Only originals are FEC sources: a retransmission comes with fresh header extensions.
            if !binding.isRTX { stream.fec?.sourceReceived(rtp.buffer, sequenceNumber: sequenceNumber) }
        }
        if producer.track.feedback.nack || stream.fec != nil {
            let outcome = stream.nack.packetReceived(
                sequenceNumber: sequenceNumber, isRetransmission: binding.isRTX, now: now)
            if outcome == .keyframeNeeded { self.requestKeyframe(producer, layer: stream.index, now: now) }
            if !recovered, stream.fec != nil { stream.silence.arrived(newest: stream.nack.newestSequence, now: now) }
            // The first loss starts the FEC record: repairs sent after it cover it and what follows.
            if !binding.isRTX, !recovered, case .advanced(let newlyMissing) = outcome, newlyMissing > 0,
                stream.fec?.isActive == false
            {
                stream.fec!.startRecording(from: sequenceNumber &- UInt16(truncatingIfNeeded: newlyMissing))
                stream.fec!.sourceReceived(rtp.buffer, sequenceNumber: sequenceNumber)
            }
            if binding.isRTX, case .recovered = outcome {
                // It answers a NACK as a repair round's packet does.
                stream.repairRequests.answerArrived(covering: sequenceNumber, now: now)
                stream.fec?.sourceRecoveredElsewhere(sequenceNumber: sequenceNumber)
            }
        }
        let outcome = producer.ingest(
            IngressPacket(
                rtp: rtp, extensions: self.extensionMap, layer: stream.index, sequenceNumber: sequenceNumber,
                payload: payload, isRetransmission: binding.isRTX || recovered),
            now: now)
        if case .forwarded(keyframe: true) = outcome {
            stream.throttle?.keyframeReceived()
            stream.nack.forgetMissing(before: sequenceNumber)
            stream.fec?.forgetEquations(before: sequenceNumber)
        }
    }

    /// Binds an unknown SSRC from the mid/rid/repaired-rid extensions of its packet (Chromium sends them
    /// only until an RR acknowledges the SSRC, so the binding is kept for good), or from an unambiguous
    /// payload type when the publisher negotiated no MID extension.
    private func learn(_ rtp: RTPPacket, now: NIODeadline) -> Binding? {
        var found: Int?
        if let mid = try? rtp.mid(self.extensionMap) {
            found = self.producers.firstIndex { mid.matches($0.track.mid) }
        } else if self.extensionMap.mid == nil {
            let candidates = self.producers.indices.filter {
                let track = self.producers[$0].track
                return track.payloadType == rtp.payloadType || track.rtxPayloadType == rtp.payloadType
                    || track.redPayloadType == rtp.payloadType
            }
            if candidates.count == 1 { found = candidates[0] }
        }
        guard let index = found else { return nil }
        let producer = self.producers[index]
        let streams = self.streams[index]
        let isRTX = producer.track.rtxPayloadType == rtp.payloadType
        let stream: InboundStream?
        if streams.count == 1 && producer.track.rids.isEmpty {
            stream = streams[0]
        } else {
            let rid = isRTX ? try? rtp.repairedRID(self.extensionMap) : try? rtp.rid(self.extensionMap)
            if let rid {
                stream = streams.first { $0.rid.map(rid.matches) ?? false }
            } else {
                stream = nil
            }
        }
        guard let stream else { return nil }
        // An RTX stream is usable only once its media stream is known (its OSNs refer to it).
        guard !isRTX || stream.ssrc != nil else { return nil }
        self.bind(ssrc: rtp.ssrc, stream: stream, producer: producer, isRTX: isRTX)
        if !isRTX, stream.keyframeWanted {
            stream.keyframeWanted = false
            self.requestKeyframe(producer, layer: stream.index, now: now)
        }
        return self.bindings[rtp.ssrc]
    }

    private func bind(ssrc: UInt32, stream: InboundStream, producer: TrackProducer, isRTX: Bool) {
        if isRTX {
            if let old = stream.rtxSSRC, old != ssrc { self.bindings[old] = nil }
            stream.rtxSSRC = ssrc
        } else {
            if let old = stream.ssrc, old != ssrc { self.bindings[old] = nil }
            stream.bind(
                ssrc: ssrc, clockRate: producer.track.clockRate,
                keyframeInterval: self.configuration.keyframeRequestInterval)
            producer.layers[stream.index].ssrc = ssrc
        }
        self.bindings[ssrc] = Binding(stream: stream, producer: producer, isRTX: isRTX)
    }

    // MARK: - TrackSource

    /// Asks the publisher for a keyframe on `layer`, through the stream's throttle; before the stream's
    /// SSRC is known the wish is kept and asked as soon as it is.
    public func requestKeyframe(_ producer: TrackProducer, layer: Int, now: NIODeadline) {
        guard let index = self.producers.firstIndex(where: { $0 === producer }),
            self.streams[index].indices.contains(layer)
        else { return }
        let stream = self.streams[index][layer]
        guard stream.throttle != nil else {
            stream.keyframeWanted = true
            return
        }
        if let request = stream.throttle?.keyframeRequested(now: now) {
            self.sendKeyframeRequest(producer: producer, stream: stream, request: request)
        }
    }
}
