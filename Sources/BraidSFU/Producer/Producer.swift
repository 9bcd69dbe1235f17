import BraidRTPStreams
public import BraidWire
public import NIOCore

/// One layer of a track as the producer sees it: its origin SSRC, measured rate, picture size.
public final class ProducerLayer {
    /// Position in the track's `rids` (0 without simulcast).
    public let index: Int
    /// The RID, nil without simulcast.
    public let rid: String?
    /// The origin media SSRC, once the ingress has bound it.
    public internal(set) var ssrc: UInt32?
    var meter = RateMeter()
    public internal(set) var width: Int?
    public internal(set) var height: Int?
    /// Retransmissions that reached the producer (RTX from upstream).
    public internal(set) var retransmissionsReceived = 0
    /// When the last live (not retransmitted) packet arrived.
    var lastPacketAt: NIODeadline?
    /// The newest sequence number that arrived, and the first packet of the newest keyframe.
    var newestSequenceNumber: UInt16?
    var keyframeSequenceNumber: UInt16?
    /// The one stored copy of the layer's recent packets.
    var store: PacketStore

    init(index: Int, rid: String?, store: PacketStore) {
        self.index = index
        self.rid = rid
        self.store = store
    }

    /// Bits per second over the last measurement window.
    public var bitsPerSecond: Int { self.meter.bitsPerSecond }
}

/// What the producer made of an ingress packet.
public enum IngestOutcome: Sendable, Hashable {
    /// Parsed, stored and fanned out; `keyframe` when it starts a keyframe (live packets only).
    case forwarded(keyframe: Bool)
    /// Nothing to forward (an empty payload, a FEC-only RED packet): consumers renumbered around it.
    case skipped
    /// The payload does not parse as its codec says; counted and dropped.
    case malformed
}

/// A track in the router: the one entry point for its packets, whatever their source, and the fan-out
/// to its consumers.
///
/// Every ingress — a WebRTC publisher (``SFUPublisher``), a mesh link, an edge function — does its
/// hop-level work and then calls ``ingest(_:now:)``: the payload is parsed once (RED, VP8), the packet
/// stored once for retransmissions, the layer measured, and a ``MediaPacket`` handed to every consumer
/// whose ``LayerSet`` includes its layer. Consumers talk back through ``TrackConsumer``; what only the
/// source can do goes to its ``TrackSource``.
///
/// Confined to its router's event loop.
public final class TrackProducer {
    /// The network-wide id.
    public let id: TrackID
    /// The room it is published in.
    public let room: String
    /// The publishing peer (a session id, a link id, a function id).
    public let peerID: String
    /// The participant the publisher belongs to: consumers of the same participant are not given it by
    /// room policies.
    public let participant: String
    /// The only participant room policies give this track to (an edge function's mix-minus output for
    /// that participant); nil: anyone but its own participant.
    public let audience: String?
    /// What was negotiated for it.
    public let track: PublishedTrackDescription
    /// Its layers, in the order of `track.rids`.
    public let layers: [ProducerLayer]
    /// Who feeds it.
    public private(set) weak var source: (any TrackSource)?
    /// The header extension ids of the packets the source ingests (stored packets keep their headers).
    public let ingressExtensions: RTPHeaderExtensionMap
    /// Consumers attached, in attachment order.
    public private(set) var consumers: [TrackConsumer] = []
    /// A mirror of a track of another router, fed over a ``RouterLink`` (the dashboard lists the track
    /// where it originates).
    public let isMirror: Bool
    /// The union of the consumers' layers, as last told to the source.
    public private(set) var wantedLayers: LayerSet = []

    let configuration: SFUConfiguration
    let isVP8: Bool
    /// Smoothed RFC 6464 level (−dBov, 127 = silence) and when it was last updated.
    var smoothedAudioLevel: Double?
    var lastAudioLevelAt: NIODeadline?
    public private(set) var malformedPayloads = 0
    /// Packets read back from the store land here (reused).
    private var storeScratch: ByteBuffer

    init(
        id: TrackID, room: String, peerID: String, participant: String, track: PublishedTrackDescription,
        extensions: RTPHeaderExtensionMap, source: any TrackSource, isMirror: Bool = false, audience: String? = nil,
        configuration: SFUConfiguration
    ) {
        self.audience = audience
        self.ingressExtensions = extensions
        self.isMirror = isMirror
        self.id = id
        self.room = room
        self.peerID = peerID
        self.participant = participant
        self.track = track
        self.source = source
        self.configuration = configuration
        self.isVP8 = track.codecName.lowercased() == "vp8"
        let isVideo = track.kind == .video
        let store = PacketStore(
            initialCapacity: isVideo ? 128 : 64,
            maximumCapacity: isVideo ? configuration.videoRetransmissionCapacity : configuration.audioRetransmissionCapacity,
            slotSize: configuration.maximumPacketSize,
            maxAge: isVideo
                ? configuration.retransmissionMaxAge : .nanoseconds(configuration.retransmissionMaxAge.nanoseconds / 2))
        let rids: [String?] = track.rids.isEmpty ? [nil] : track.rids
        self.layers = rids.enumerated().map { ProducerLayer(index: $0.offset, rid: $0.element, store: store) }
        self.storeScratch = ByteBufferAllocator().buffer(capacity: configuration.maximumPacketSize)
    }

    /// Audio or video.
    public var kind: MediaKind { self.track.kind }

    /// Bytes held in the packet stores of every layer.
    public var storedBytes: Int { self.layers.reduce(0) { $0 + $1.store.footprint } }

    // MARK: - Ingress

    /// Names the origin SSRC of `layer` (a WebRTC publisher learns it from signalling or the first
    /// packets; a relay link from the track's announcement). Packets of a layer without one are refused.
    public func bind(layer: Int, ssrc: UInt32) {
        guard self.layers.indices.contains(layer) else { return }
        self.layers[layer].ssrc = ssrc
    }

    /// The one entry point for a packet of this track: parses its payload, stores it, measures its
    /// layer and hands it to every consumer of that layer.
    @discardableResult
    public func ingest(_ packet: IngressPacket, now: NIODeadline) -> IngestOutcome {
        guard self.layers.indices.contains(packet.layer), let ssrc = self.layers[packet.layer].ssrc else {
            return .malformed
        }
        let layer = self.layers[packet.layer]
        if packet.isRetransmission {
            layer.retransmissionsReceived += 1
        } else {
            layer.meter.add(bytes: packet.rtp.length, now: now, window: self.configuration.bitrateWindow)
            layer.lastPacketAt = now
        }
        guard var media = self.parse(packet, ssrc: ssrc, isRetransmission: packet.isRetransmission, layer: layer) else {
            self.malformedPayloads += 1
            return .malformed
        }
        if let newest = layer.newestSequenceNumber {
            if packet.sequenceNumber &- newest < 0x8000 { layer.newestSequenceNumber = packet.sequenceNumber }
        } else {
            layer.newestSequenceNumber = packet.sequenceNumber
        }
        if media.isKeyframe { layer.keyframeSequenceNumber = packet.sequenceNumber }
        if media.isKeyframe, let size = vp8KeyframeDimensions(Self.vp8Data(media.mediaPayload)) {
            layer.width = size.width
            layer.height = size.height
        }
        if self.track.kind == .audio, let id = packet.extensions.audioLevel,
            let level = try? packet.rtp.headerExtension(AudioLevel.self, id: id)
        {
            let sample = Double(level.level)
            let weight = self.configuration.speakerSmoothing
            self.smoothedAudioLevel = self.smoothedAudioLevel.map { $0 + weight * (sample - $0) } ?? sample
            self.lastAudioLevelAt = now
        }
        if media.isForwardable {
            layer.store.store(media.originForm, now: now)
        }
        media.layer = packet.layer
        self.fanOut(media, now: now)
        return media.isForwardable ? .forwarded(keyframe: media.isKeyframe) : .skipped
    }


    /// RED and VP8 parsing: what every consumer needs to know of the payload, done once. With `layer` (a
    /// packet from upstream, not one read back from the store), a repaired keyframe start that is still the
    /// layer's newest keyframe counts as one (see ``isLiveKeyframe(_:layer:)``).
    private func parse(
        _ packet: IngressPacket, ssrc: UInt32, isRetransmission: Bool, layer: ProducerLayer? = nil
    ) -> MediaPacket? {
        let payload = packet.payload
        var redPrimary: REDPrimaryBlock?
        var isForwardable = payload.readableBytes > 0
        var media = payload
        if isForwardable, let red = self.track.redPayloadType, packet.rtp.payloadType == red {
            guard let block = REDPrimaryBlock(payload) else { return nil }
            redPrimary = block
            isForwardable = block.payloadType == self.track.payloadType && block.length > 0
            media = payload.getSlice(at: payload.readerIndex + block.offset, length: block.length) ?? ByteBuffer()
        }
        var isKeyframe = false
        if self.track.kind == .video, isForwardable {
            if self.isVP8 {
                guard let vp8 = try? VP8Payload(media) else { return nil }
                // A repaired old keyframe must not start a layer switch behind the live stream.
                isKeyframe =
                    vp8.isKeyFrame
                    && (!isRetransmission || layer.map { self.isLiveKeyframe(packet.sequenceNumber, layer: $0) } ?? false)
            } else {
                isKeyframe = !isRetransmission  // other codecs: no keyframe detection, switch on any packet.
            }
        }
        // An RTX header carries the RTX payload type: the origin's was the media (or RED) type.
        var payloadType = packet.rtp.payloadType
        if let rtx = self.track.rtxPayloadType, payloadType == rtx {
            payloadType = self.track.payloadType
        }
        return MediaPacket(
            track: self.id, layer: packet.layer, rtp: packet.rtp, extensions: packet.extensions, sourceSSRC: ssrc,
            sequenceNumber: packet.sequenceNumber, payloadType: payloadType, payload: payload, redPrimary: redPrimary,
            isKeyframe: isKeyframe, isForwardable: isForwardable, isRetransmission: isRetransmission)
    }

    /// Packets a repaired keyframe start may be behind the layer's newest and still start a consumer: the
    /// rest of its frame and what followed are replayed from the store (``replay(layer:after:now:_:)``).
    static let liveKeyframeReach: UInt16 = 64

    /// Whether a repaired keyframe start `sequenceNumber` is the layer's live keyframe: newer than its last
    /// keyframe and at most ``liveKeyframeReach`` behind its newest packet. At 50 % uplink loss half of all
    /// keyframes lose their first packet; were those never keyframes, a consumer waiting to start (a new
    /// subscriber, a layer switch) would wait for the next whole one, a keyframe request a second later.
    private func isLiveKeyframe(_ sequenceNumber: UInt16, layer: ProducerLayer) -> Bool {
        guard let newest = layer.newestSequenceNumber, newest &- sequenceNumber <= Self.liveKeyframeReach else {
            return false
        }
        guard let last = layer.keyframeSequenceNumber else { return true }
        let ahead = sequenceNumber &- last
        return ahead != 0 && ahead < 0x8000
    }

    /// Passes the stored packets of `layer` after `sequenceNumber` through its newest, oldest first, to
    /// `body` as retransmissions (those not stored, still missing here, are skipped: they are delivered when
    /// they come). A consumer that started on a repaired keyframe gets the rest of the stream it missed.
    func replay(layer index: Int, after sequenceNumber: UInt16, now: NIODeadline, _ body: (MediaPacket) -> Void) {
        guard self.layers.indices.contains(index), let newest = self.layers[index].newestSequenceNumber else { return }
        let count = newest &- sequenceNumber
        guard count > 0, count <= Self.liveKeyframeReach else { return }
        for offset in 1...count {
            _ = self.withStoredPacket(layer: index, sequenceNumber: sequenceNumber &+ offset, now: now, body)
        }
    }

    private static func vp8Data(_ payload: ByteBuffer) -> ByteBuffer {
        (try? VP8Payload(payload))?.data ?? ByteBuffer()
    }

    private func fanOut(_ packet: MediaPacket, now: NIODeadline) {
        let consumers = self.consumers
        // In groups, each consumer's state prefetched one pointer level at a time across the group first
        // (``CachePrefetch``): the misses of a group overlap instead of following one another. A lone
        // consumer has nothing to overlap with.
        var start = 0
        while start < consumers.count {
            let end = min(start + Self.prefetchGroup, consumers.count)
            if consumers.count > 1 {
                for index in start..<end { CachePrefetch.object(consumers[index]) }
                for stage in 0..<Self.prefetchStages {
                    for index in start..<end { consumers[index].prefetch(stage: stage) }
                }
            }
            for index in start..<end where consumers[index].layers.contains(layer: packet.layer) {
                consumers[index].deliver(packet, now: now)
            }
            start = end
        }
    }

    /// Consumers whose state is prefetched together: enough misses in flight to overlap, few enough that
    /// what was prefetched is still in the first-level cache when delivered.
    static let prefetchGroup = 16
    /// Pointer levels prefetched below a consumer: slot, subscriber, transport, and a WebRTC transport's
    /// own levels (secure transport, SRTP session, outbound session, transform, then its stream table and
    /// cipher context in two steps).
    static let prefetchStages = 9

    // MARK: - Stored packets

    /// Reads the stored packet `sequenceNumber` of `layer` back as a ``MediaPacket`` (a retransmission)
    /// and passes it to `body`; false when it is not stored any more.
    func withStoredPacket(
        layer index: Int, sequenceNumber: UInt16, now: NIODeadline, _ body: (MediaPacket) -> Void
    ) -> Bool {
        guard self.layers.indices.contains(index), let ssrc = self.layers[index].ssrc else { return false }
        self.storeScratch.clear()
        guard self.layers[index].store.read(sequenceNumber, now: now, into: &self.storeScratch),
            let rtp = try? RTPPacket(self.storeScratch)
        else { return false }
        let ingress = IngressPacket(
            rtp: rtp, extensions: .init(), layer: index, sequenceNumber: sequenceNumber, payload: rtp.payload,
            isRetransmission: true)
        guard var media = self.parse(ingress, ssrc: ssrc, isRetransmission: true) else { return false }
        media.extensions = self.ingressExtensions
        body(media)
        return true
    }

    // MARK: - Upstream

    /// Asks the source for a keyframe on `layer`.
    func requestKeyframe(layer: Int, now: NIODeadline) {
        guard self.track.kind == .video, self.layers.indices.contains(layer) else { return }
        self.source?.requestKeyframe(self, layer: layer, now: now)
    }

    /// A mirror's layer rates as its origin measured them (a mirror receives only the layers pulled).
    var reportedRates: [Int]?

    /// The bitrate of layer `index`: measured here, or for a mirror as its origin reports it.
    public func rate(of index: Int) -> Int {
        if self.isMirror, let rates = self.reportedRates, rates.indices.contains(index) { return rates[index] }
        return self.layers[index].meter.bitsPerSecond
    }

    /// Layer indexes from the lowest bitrate to the highest. Layers not yet measured rank by their
    /// signalled position (the first rid counts as the lowest), below every measured layer.
    public func qualityOrder() -> [Int] {
        self.layers.indices.sorted { a, b in
            let rateA = self.rate(of: a)
            let rateB = self.rate(of: b)
            if (rateA == 0) != (rateB == 0) { return rateA == 0 }
            return rateA == rateB ? a < b : rateA < rateB
        }
    }

    /// Whether `layer` has a measured bitrate and sent media within the last measurement window.
    public func isFlowing(_ index: Int, now: NIODeadline) -> Bool {
        if self.isMirror, let rates = self.reportedRates, rates.indices.contains(index) { return rates[index] > 0 }
        let layer = self.layers[index]
        guard layer.meter.bitsPerSecond > 0, let last = layer.lastPacketAt else { return false }
        return now - last < self.configuration.bitrateWindow
    }

    /// Closes measurement windows (from the router's tick).
    func tick(now: NIODeadline) {
        for layer in self.layers { layer.meter.roll(now: now, window: self.configuration.bitrateWindow) }
    }

    // MARK: - Consumers

    func attach(_ consumer: TrackConsumer, now: NIODeadline) {
        self.consumers.append(consumer)
        self.consumerLayersChanged(now: now)
    }

    func detach(_ consumer: TrackConsumer, now: NIODeadline) {
        self.consumers.removeAll { $0 === consumer }
        self.consumerLayersChanged(now: now)
    }

    /// Recomputes the union of wanted layers and tells the source when it changed.
    func consumerLayersChanged(now: NIODeadline) {
        var union: LayerSet = []
        for consumer in self.consumers { union.formUnion(consumer.layers) }
        guard union != self.wantedLayers else { return }
        self.wantedLayers = union
        self.source?.wantedLayersChanged(self, layers: union, now: now)
    }

    /// The track ends: every consumer is told and detached.
    func end(now: NIODeadline) {
        let consumers = self.consumers
        self.consumers.removeAll()
        for consumer in consumers { consumer.producerEnded(now: now) }
    }
}
