import BraidCongestion
import BraidRTPStreams
import BraidWire
import NIOCore

/// One subscriber slot (m-section) and the track it currently forwards.
///
/// Owned by its ``SFUSubscriber``; while a producer is assigned, the producer also lists it. Allocated by
/// this: the retransmission buffer (once, in `init`).
final class Consumer {
    unowned let subscriber: SFUSubscriber
    let slot: SubscriberSlotDescription
    /// The slot's MID as an extension value, built once.
    let midValue: RTPStreamIdentifier?
    private(set) var producer: Producer?
    /// Layer being forwarded (nil: none yet; video waits for a keyframe).
    private(set) var currentLayer: Int?
    /// Layer wanted; forwarding moves to it on its next keyframe.
    private(set) var targetLayer = 0
    var rewriter: RTPRewriter
    var retransmissions: RetransmissionBuffer
    var selector: LayerSelector?

    var packetsSent = 0
    /// Payload octets sent (RFC 3550 §6.4.1 sender's octet count).
    var payloadOctetsSent = 0
    var layerSwitches = 0
    var rewriteFailures = 0
    var lastSenderReportAt: NIODeadline?
    /// Loss and RTT from the subscriber's receiver reports about this SSRC.
    var fractionLost: UInt8 = 0
    var cumulativeLost: Int32 = 0

    init(subscriber: SFUSubscriber, slot: SubscriberSlotDescription, configuration: SFUConfiguration) {
        self.subscriber = subscriber
        self.slot = slot
        self.midValue = try? RTPStreamIdentifier(slot.mid)
        // VP8 is the only video codec the node forwards; its descriptor is kept continuous.
        self.rewriter = RTPRewriter(outputSSRC: slot.ssrc, clockRate: slot.clockRate, rewritesVP8: slot.kind == .video)
        let rtx = slot.rtxSSRC.flatMap { ssrc in
            slot.rtxPayloadType.map { RetransmissionBuffer.RTX(ssrc: ssrc, payloadType: $0) }
        }
        let isVideo = slot.kind == .video
        self.retransmissions = RetransmissionBuffer(
            capacity: isVideo ? configuration.videoRetransmissionCapacity : configuration.audioRetransmissionCapacity,
            slotSize: configuration.maximumPacketSize,
            maxAge: isVideo
                ? configuration.retransmissionMaxAge : .nanoseconds(configuration.retransmissionMaxAge.nanoseconds / 2),
            rtx: rtx,
            initialRTXSequenceNumber: UInt16(truncatingIfNeeded: slot.ssrc &* 2_654_435_761))
    }

    var kind: MediaKind { self.slot.kind }

    /// Starts forwarding `producer`: the output stream continues (same SSRC, next sequence number), and a
    /// video slot asks for a keyframe at once so the subscriber can start decoding.
    func attach(_ producer: Producer, now: NIODeadline) {
        self.producer = producer
        producer.consumers.append(self)
        let rewritesVP8 = producer.isVP8 && self.slot.kind == .video
        if self.rewriter.rewritesVP8 == rewritesVP8 {
            // Same output stream: the next packet continues its sequence numbers, timestamps and picture ids.
            self.rewriter.markSourceChange()
        } else {
            self.rewriter = RTPRewriter(
                outputSSRC: self.slot.ssrc, clockRate: self.slot.clockRate, rewritesVP8: rewritesVP8)
        }
        self.currentLayer = nil
        self.selector = nil
        self.targetLayer = producer.qualityOrder().first ?? 0
        if self.kind == .video {
            producer.requestKeyframe(layer: self.targetLayer, now: now)
        }
    }

    /// Stops forwarding (the producer's track ended or the subscriber left).
    func detach() {
        if let producer = self.producer {
            producer.consumers.removeAll { $0 === self }
        }
        self.producer = nil
        self.currentLayer = nil
        self.selector = nil
    }

    /// Chooses the layer to forward; a change waits for that layer's next keyframe, which is requested now.
    func setTargetLayer(_ layer: Int, now: NIODeadline) {
        guard let producer = self.producer, producer.layers.indices.contains(layer) else { return }
        self.targetLayer = layer
        if layer != self.currentLayer {
            producer.requestKeyframe(layer: layer, now: now)
        }
    }

    /// A keyframe request from the subscriber: forward it (throttled) for the layer it is watching.
    func keyframeRequested(now: NIODeadline) {
        guard let producer = self.producer else { return }
        producer.requestKeyframe(layer: self.currentLayer ?? self.targetLayer, now: now)
    }

    /// Forwards one packet of the producer if it belongs to the layer being forwarded.
    func forward(_ packet: InboundPacket, now: NIODeadline) {
        if self.kind == .video {
            if packet.layer != self.currentLayer {
                // Switch (or start) only on a keyframe of the target layer; until then the current layer
                // keeps flowing.
                guard packet.layer == self.targetLayer, packet.isKeyframe else { return }
                if self.currentLayer != nil { self.layerSwitches += 1 }
                self.currentLayer = packet.layer
            }
        } else if self.currentLayer == nil {
            self.currentLayer = packet.layer
        } else if packet.layer != self.currentLayer {
            return
        }
        guard packet.isForwardable else {
            // Padding or FEC-only: renumber so the subscriber sees no gap to NACK.
            self.rewriter.drop(sequenceNumber: packet.sequenceNumber)
            return
        }
        self.subscriber.send(packet, consumer: self, now: now)
    }
}
