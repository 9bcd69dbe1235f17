public import NIOCore

/// What a sink did with a delivered packet.
public enum Delivery: Sendable, Hashable {
    /// Taken (sent, queued, or deliberately skipped by the sink's own policy).
    case accepted
    /// Refused because the sink is behind (its socket is not writable, its worker queue is full). The
    /// consumer counts it; a video sink asks for a keyframe once it can take packets again.
    case backPressure
}

/// Where a consumed track's packets go: a WebRTC subscriber's m-section, a mesh relay link, an edge
/// function's input. Attached with ``SFURouter/consume(_:into:layers:now:)``.
///
/// Called on the router's event loop. The sink talks back upstream through the ``TrackConsumer`` it is
/// given: keyframe requests, preferred layers, NACKs answered from the producer's packet store, its
/// bandwidth estimate.
public protocol TrackSink: AnyObject {
    /// One packet of a layer the consumer receives. `packet` borrows the received buffer: valid during
    /// the call only.
    func deliver(_ packet: MediaPacket, from consumer: TrackConsumer, now: NIODeadline) -> Delivery

    /// The consumer ended: its track was unpublished, or the router closed it. Not called for
    /// ``TrackConsumer/close(now:)`` made by the sink itself.
    func consumerEnded(_ consumer: TrackConsumer, now: NIODeadline)

    /// Prefetches what the next ``deliver(_:from:now:)`` touches, one pointer level further per `stage`
    /// (0: the objects the sink points to). A hint for the producer's fan-out (``CachePrefetch``); the
    /// default does nothing.
    func prefetch(stage: Int)
}

extension TrackSink {
    public func prefetch(stage: Int) {}
}

/// The upstream of a producer: whoever feeds it (a WebRTC publisher, a mesh link, an edge function).
/// The producer calls it when its consumers ask for something only the source can give.
public protocol TrackSource: AnyObject {
    /// A consumer needs a keyframe on `layer`. The source throttles as it sees fit (a WebRTC publisher:
    /// one PLI/FIR per second per layer, retried until a keyframe comes).
    func requestKeyframe(_ producer: TrackProducer, layer: Int, now: NIODeadline)

    /// The union of the layers the producer's consumers want changed. A relay link pulls only these;
    /// a WebRTC publisher keeps sending what its encoder sends.
    func wantedLayersChanged(_ producer: TrackProducer, layers: LayerSet, now: NIODeadline)

    /// Consumers asked for packets the producer no longer (or never) stored: the source may repair them
    /// from further upstream (a relay link NACKs its upstream hop).
    func repairRequested(_ producer: TrackProducer, layer: Int, sequenceNumbers: [UInt16], now: NIODeadline)
}

extension TrackSource {
    public func wantedLayersChanged(_ producer: TrackProducer, layers: LayerSet, now: NIODeadline) {}
    public func repairRequested(_ producer: TrackProducer, layer: Int, sequenceNumbers: [UInt16], now: NIODeadline)
    {}
}
