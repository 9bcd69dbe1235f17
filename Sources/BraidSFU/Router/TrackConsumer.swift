import BraidWire
public import NIOCore

/// One consumer of one track: the attachment between a ``TrackProducer`` and a ``TrackSink``, made by
/// ``SFURouter/consume(_:into:layers:now:)``. It is also the sink's typed upstream.
///
/// The producer holds its consumers; a consumer holds its sink unowned (the sink owns the consumer and
/// must ``close(now:)`` it before going away). Confined to the router's event loop.
public final class TrackConsumer {
    // What every packet delivered reads comes first (the producer walks hundreds of consumers per packet).
    // Debug builds (the tests) check the lifetime rule above on every use; release builds trust it and
    // skip the reference-count traffic of a checked load, once per copy of every packet.
    #if DEBUG
    private unowned let sink: any TrackSink
    #else
    private unowned(unsafe) let sink: any TrackSink
    #endif
    /// The layers delivered; change them with ``setLayers(_:now:)``.
    public private(set) var layers: LayerSet
    /// Packets delivered to the sink (taken or not).
    public private(set) var packetsDelivered = 0
    /// A video consumer that refused packets asks for a keyframe when it takes them again.
    private var recovering = false

    /// The consumed track.
    public let track: TrackID
    /// Audio or video.
    public let kind: MediaKind
    /// The producer while attached; nil once the track ended or the consumer closed.
    public private(set) weak var producer: TrackProducer?

    /// Packets the sink refused under back-pressure.
    public private(set) var backPressureDrops = 0
    /// Retransmissions served to the sink from the producer's store.
    public private(set) var packetsResent = 0
    /// Repairs the store could not serve (asked upstream instead).
    public private(set) var resendMisses = 0
    /// The sink's downstream bandwidth estimate (bits/s), if it has one; a relay's source can use the
    /// consumers' estimates to decide what to pull.
    public var downstreamEstimate: Int?

    init(producer: TrackProducer, sink: any TrackSink, layers: LayerSet) {
        self.track = producer.id
        self.kind = producer.kind
        self.producer = producer
        self.sink = sink
        self.layers = layers
    }

    /// Whether the consumer is still attached to a live track.
    public var isAttached: Bool { self.producer != nil }

    /// Prefetches for the producer's fan-out (``CachePrefetch``): stage 0 the sink's object, stage n the
    /// sink's stage n − 1.
    @inline(__always)
    func prefetch(stage: Int) {
        if stage == 0 {
            CachePrefetch.object(self.sink, lines: 2)
        } else {
            self.sink.prefetch(stage: stage - 1)
        }
    }

    func deliver(_ packet: MediaPacket, now: NIODeadline) {
        self.packetsDelivered &+= 1
        switch self.sink.deliver(packet, from: self, now: now) {
        case .accepted:
            if self.recovering {
                self.recovering = false
                self.requestKeyframe(layer: packet.layer, now: now)
            }
        case .backPressure:
            self.backPressureDrops &+= 1
            if self.kind == .video { self.recovering = true }
        }
    }

    // MARK: - Upstream

    /// Asks for a keyframe on `layer` (through the producer's source, which throttles).
    public func requestKeyframe(layer: Int, now: NIODeadline) {
        self.producer?.requestKeyframe(layer: layer, now: now)
    }

    /// Changes the layers delivered. The source learns the new union of what its consumers want.
    public func setLayers(_ layers: LayerSet, now: NIODeadline) {
        guard layers != self.layers else { return }
        self.layers = layers
        self.producer?.consumerLayersChanged(now: now)
    }

    /// Serves a repair from the producer's one stored copy: reads packet `sequenceNumber` (origin
    /// numbering) of `layer` and passes it to `body` as a retransmission. A packet not stored any more
    /// is asked from the source (``TrackSource/repairRequested(_:layer:sequenceNumbers:now:)``).
    /// - Returns: whether `body` was called.
    @discardableResult
    public func withStoredPacket(
        layer: Int, sequenceNumber: UInt16, now: NIODeadline, _ body: (MediaPacket) -> Void
    ) -> Bool {
        guard let producer = self.producer else { return false }
        if producer.withStoredPacket(layer: layer, sequenceNumber: sequenceNumber, now: now, body) {
            self.packetsResent &+= 1
            return true
        }
        self.resendMisses &+= 1
        producer.source?.repairRequested(producer, layer: layer, sequenceNumbers: [sequenceNumber], now: now)
        return false
    }

    /// The stored packets of `layer` after `sequenceNumber` through the newest, oldest first, as
    /// retransmissions: for a sink that started on a repaired keyframe, whose frame went by before it.
    public func replay(after sequenceNumber: UInt16, layer: Int, now: NIODeadline, _ body: (MediaPacket) -> Void) {
        self.producer?.replay(layer: layer, after: sequenceNumber, now: now, body)
    }

    /// A NACK in origin numbering: each stored packet is delivered again to the sink as a
    /// retransmission; the rest are asked from the source. Returns how many were delivered.
    @discardableResult
    public func nack(layer: Int, sequenceNumbers: some Sequence<UInt16>, now: NIODeadline) -> Int {
        var delivered = 0
        for sequenceNumber in sequenceNumbers {
            let served = self.withStoredPacket(layer: layer, sequenceNumber: sequenceNumber, now: now) { packet in
                _ = self.sink.deliver(packet, from: self, now: now)
            }
            if served { delivered += 1 }
        }
        return delivered
    }

    /// Detaches from the producer. The sink is not called back.
    public func close(now: NIODeadline) {
        guard let producer = self.producer else { return }
        self.producer = nil
        producer.detach(self, now: now)
    }

    /// The producer's track ended.
    func producerEnded(now: NIODeadline) {
        guard self.producer != nil else { return }
        self.producer = nil
        self.sink.consumerEnded(self, now: now)
    }
}
