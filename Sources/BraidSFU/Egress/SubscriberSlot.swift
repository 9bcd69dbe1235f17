import BraidCongestion
import BraidRTPStreams
import BraidWire
import NIOCore

/// One m-section of a WebRTC subscriber: a ``TrackSink`` for whichever track the room's slot policy
/// gives it, and the per-slot stages of the subscriber's processing chain:
///
/// ```
/// MediaPacket ─▶ LayerSwitch ─▶ build (payload type, RED, extensions)  ─▶ RTPRewriter ─▶ SentPacketHistory
///                (keyframe-gated)   SFUSubscriber.send, shared per peer     (SSRC, seq, ts,    (positions into the
///                                   (transport-wide sequence, abs-send)     VP8 picture ids)    producer's store)
///                                   audio: AudioRedundancy wraps the frame
///                                   in RED sized from the measured loss
/// ```
///
/// Owned by its ``SFUSubscriber``. Allocated by this: the history ring (once, in `init`).
final class SubscriberSlot: TrackSink {
    // What every packet delivered reads and writes comes first, together (see SFUSubscriber: among
    // hundreds of slots each cache line a copy touches is a miss). The subscriber owns its slots and
    // outlives them (see TrackConsumer.sink for why release builds leave the load unchecked).
    #if DEBUG
    unowned let subscriber: SFUSubscriber
    #else
    unowned(unsafe) let subscriber: SFUSubscriber
    #endif
    let slot: SubscriberSlotDescription
    var layerSwitch = LayerSwitch()
    /// Counts attachments, so history entries of an earlier track are never resent.
    private(set) var generation: UInt8 = 0
    var packetsSent = 0
    /// Payload octets sent (RFC 3550 §6.4.1 sender's octet count).
    var payloadOctetsSent = 0
    var history: SentPacketHistory
    /// The slot's MID as an extension value, built once.
    let midValue: RTPStreamIdentifier?
    /// The attachment to the track shown, if any.
    private(set) var consumer: TrackConsumer?
    var rewriter: RTPRewriter
    /// Audio slots that negotiated RED: the redundancy the link's loss calls for.
    var redundancy = AudioRedundancy()
    /// Video slots that negotiated Braid's FEC: the repair stream.
    var protection: VideoProtection

    var selector: LayerSelector?
    /// Retransmissions of packets older than this are not sent (video 1 s, audio half).
    let maxResendAge: TimeAmount
    /// The same packet is not resent twice within this (three quarters of the subscriber's RTT).
    var minimumResendInterval = TimeAmount.milliseconds(100)
    var nextRTXSequenceNumber: UInt16

    var rewriteFailures = 0
    var backPressureDrops = 0
    var lastSenderReportAt: NIODeadline?
    /// Loss and RTT from the subscriber's receiver reports about this SSRC.
    var fractionLost: UInt8 = 0
    /// Whether a receiver report has described this slot's stream (``fractionLost`` is measured).
    var hasReceiverReport = false
    var cumulativeLost: Int32 = 0

    init(subscriber: SFUSubscriber, slot: SubscriberSlotDescription, configuration: SFUConfiguration) {
        self.subscriber = subscriber
        self.slot = slot
        self.midValue = try? RTPStreamIdentifier(slot.mid)
        // VP8 is the only video codec the node forwards; its descriptor is kept continuous.
        self.rewriter = RTPRewriter(outputSSRC: slot.ssrc, clockRate: slot.clockRate, rewritesVP8: slot.kind == .video)
        let isVideo = slot.kind == .video
        let maxResendAge =
            isVideo ? configuration.retransmissionMaxAge : .nanoseconds(configuration.retransmissionMaxAge.nanoseconds / 2)
        self.maxResendAge = maxResendAge
        self.history = SentPacketHistory(
            capacity: isVideo ? configuration.videoRetransmissionCapacity : configuration.audioRetransmissionCapacity,
            retention: maxResendAge)
        self.nextRTXSequenceNumber = UInt16(truncatingIfNeeded: slot.ssrc &* 2_654_435_761)
        self.protection = VideoProtection(ssrc: slot.fecSSRC ?? slot.ssrc)
    }

    var kind: MediaKind { self.slot.kind }
    /// The producer of the track shown.
    var producer: TrackProducer? { self.consumer?.producer }
    /// Layer being forwarded.
    var currentLayer: Int? { self.layerSwitch.current }
    /// Layer wanted.
    var targetLayer: Int { self.layerSwitch.target }
    /// Layer switches made.
    var layerSwitches: Int { self.layerSwitch.switches }

    /// Starts showing `producer`'s track: the output stream continues (same SSRC, next sequence number),
    /// and a video slot asks for a keyframe at once so the subscriber can start decoding.
    func attach(_ producer: TrackProducer, router: SFURouter, now: NIODeadline) {
        let rewritesVP8 = producer.isVP8 && self.slot.kind == .video
        if self.rewriter.rewritesVP8 == rewritesVP8 {
            // Same output stream: the next packet continues its sequence numbers, timestamps and picture ids.
            self.rewriter.markSourceChange()
        } else {
            self.rewriter = RTPRewriter(
                outputSSRC: self.slot.ssrc, clockRate: self.slot.clockRate, rewritesVP8: rewritesVP8)
        }
        self.generation &+= 1
        self.selector = nil
        self.redundancy.reset()
        self.protection.reset()
        self.layerSwitch.reset(target: producer.qualityOrder().first ?? 0)
        let layers: LayerSet = self.kind == .video ? self.layerSwitch.layers : .all
        self.consumer = try? router.consume(producer.id, into: self, layers: layers, now: now)
        if self.kind == .video {
            self.consumer?.requestKeyframe(layer: self.layerSwitch.target, now: now)
        }
    }

    /// Stops showing the track (the subscriber leaves, or the policy moves the slot).
    func detach(now: NIODeadline) {
        self.consumer?.close(now: now)
        self.consumer = nil
        self.layerSwitch.reset(target: 0)
        self.selector = nil
    }

    /// Chooses the layer to forward; a change waits for that layer's next keyframe, which is requested now.
    func setTargetLayer(_ layer: Int, now: NIODeadline) {
        guard let consumer = self.consumer, let producer = consumer.producer, producer.layers.indices.contains(layer)
        else { return }
        self.layerSwitch.target = layer
        consumer.setLayers(self.layerSwitch.layers, now: now)
        if layer != self.layerSwitch.current {
            consumer.requestKeyframe(layer: layer, now: now)
        }
    }

    /// A keyframe request from the subscriber: forward it (throttled) for the layer it is watching.
    func keyframeRequested(now: NIODeadline) {
        self.consumer?.requestKeyframe(layer: self.layerSwitch.current ?? self.layerSwitch.target, now: now)
    }

    // MARK: - TrackSink

    /// Stage 0: the subscriber's first cache lines and the history entry the next packet takes; then the
    /// subscriber's stages.
    func prefetch(stage: Int) {
        let subscriber = self.subscriber
        if stage == 0 {
            CachePrefetch.object(subscriber, lines: 2)
            if let last = self.rewriter.lastSentSequenceNumber { self.history.prefetch(last &+ 1) }
        } else {
            subscriber.prefetch(stage: stage - 1)
        }
    }

    func deliver(_ packet: MediaPacket, from consumer: TrackConsumer, now: NIODeadline) -> Delivery {
        let wasCurrent = self.layerSwitch.current
        guard self.layerSwitch.admit(layer: packet.layer, isKeyframe: packet.isKeyframe, isVideo: self.kind == .video)
        else { return .accepted }
        if self.kind == .video, wasCurrent != self.layerSwitch.current {
            // Switched: the old layer is no longer needed.
            consumer.setLayers(self.layerSwitch.layers, now: now)
        }
        guard packet.isForwardable else {
            // Padding or FEC-only: renumber so the subscriber sees no gap to NACK.
            self.rewriter.drop(sequenceNumber: packet.sequenceNumber)
            return .accepted
        }
        // One strong load of the unowned reference for both uses (each load is a retain and a release).
        let subscriber = self.subscriber
        guard subscriber.transport.isWritable else {
            self.backPressureDrops += 1
            return .backPressure
        }
        subscriber.send(packet, slot: self, now: now)
        if packet.isKeyframe, packet.isRetransmission, wasCurrent != self.layerSwitch.current {
            // Started on a repaired keyframe: the rest of its frame, and what followed, went by before it.
            consumer.replay(after: packet.sequenceNumber, layer: packet.layer, now: now) { replayed in
                subscriber.send(replayed, slot: self, now: now)
            }
        }
        return .accepted
    }

    func consumerEnded(_ consumer: TrackConsumer, now: NIODeadline) {
        guard consumer === self.consumer else { return }
        self.consumer = nil
        self.layerSwitch.reset(target: 0)
        self.selector = nil
    }
}
