public import BraidWire
public import NIOCore

/// A track as one router announces it to another: enough to publish a mirror of it there. Codable: a
/// mesh node publishes it in the cluster's track directory.
public struct TrackAnnouncement: Sendable, Hashable, Codable {
    public var id: TrackID
    public var room: String
    public var peerID: String
    public var participant: String
    public var track: PublishedTrackDescription
    /// The ids of the header extensions its packets carry.
    public var extensions: RTPHeaderExtensionMap
    /// The only participant room policies may give it to (a mix-minus output), nil: anyone.
    public var audience: String?

    public init(
        id: TrackID, room: String, peerID: String, participant: String, track: PublishedTrackDescription,
        extensions: RTPHeaderExtensionMap, audience: String? = nil
    ) {
        self.id = id
        self.room = room
        self.peerID = peerID
        self.participant = participant
        self.track = track
        self.extensions = extensions
        self.audience = audience
    }

    /// The announcement of `producer`.
    public init(_ producer: TrackProducer) {
        self.init(
            id: producer.id, room: producer.room, peerID: producer.peerID, participant: producer.participant,
            track: producer.track, extensions: producer.ingressExtensions, audience: producer.audience)
    }
}

/// What one side of a ``RouterLink`` sends the other. `Sendable`: the node carries it across event loops
/// (and a mesh link would carry the same messages across nodes).
public enum RouterLinkMessage: Sendable {
    /// A track was published on the sending router.
    case published(TrackAnnouncement)
    /// A track of the sending router ended.
    case ended(TrackID)
    /// A batch of packets of tracks the receiver pulls (see ``RouterLink`` for the record format).
    case media(ByteBuffer)
    /// The receiver wants these layers of a track of the sender (`[]`: stop sending it).
    case wantLayers(TrackID, LayerSet)
    /// The receiver needs a keyframe on a layer of a track of the sender.
    case keyframe(TrackID, layer: Int)
    /// The measured bitrate of every layer of a track the receiver pulls (0: not flowing), so the
    /// receiver's layer choices see the layers it does not pull.
    case layerRates(TrackID, [Int])
}

/// One end of a link between two routers: each announces its own tracks to the other, which publishes
/// a mirror of each (same ``TrackID``) that its own room policies and consumers use like any track. A
/// mirror pulls only while it has consumers, and only the layers they want; packets cross in batches,
/// one copy per track per link whatever the number of consumers behind it; keyframe requests go back.
///
/// Two kinds, told apart by ``Kind``:
/// - ``Kind/eventLoop``: how a node spreads its rooms over every event loop (a link between the routers
///   of two loops, messages handed over with `EventLoop.execute`). Each side announces its own tracks
///   and the mesh mirrors it holds, so every loop sees every track the node has.
/// - ``Kind/mesh``: a relay link to another node. Nothing is announced over it: the cluster's track
///   directory says which tracks exist, and the node's mesh service mirrors each remote track on the link
///   to the next hop toward its origin (``receive(_:now:)`` with `.published`, ``SFURouter/moveMirror(_:to:now:)``
///   when the route changes). Pulls, media, keyframe requests and layer rates cross it as they cross a
///   loop link, so a relay node forwards one copy per link per track whatever the consumers behind it.
///
/// Media batches are records, packets in ``OriginForm``:
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      origin node id (64 bits)                 |
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      track number                             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     layer     |  flags (1=RTX)|        packet length          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 packet in origin form ...                     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Confined to its router's event loop. `send` must hand the message to the other side (the node does
/// it with `execute` on the other loop); messages arrive in order.
public final class RouterLink {
    /// Bytes before the packet in a media record (origin, number, layer, flags, length).
    public static let recordHeaderLength = 16

    /// Takes one whole record (header and packet) off the front of a media batch; nil at the end of the
    /// batch or when the rest is shorter than its header says (a relay link splits batches with this).
    public static func readRecord(from batch: inout ByteBuffer) -> ByteBuffer? {
        guard batch.readableBytes >= Self.recordHeaderLength,
            let length = batch.getInteger(at: batch.readerIndex + Self.recordHeaderLength - 2, as: UInt16.self)
        else { return nil }
        return batch.readSlice(length: Self.recordHeaderLength + Int(length))
    }

    /// Whether the other side is another event loop of this node or another node.
    public enum Kind: Sendable, Hashable {
        case eventLoop
        case mesh
    }

    /// A name for logs and the mirrors' dashboard entries.
    public let name: String
    /// What the other side is.
    public let kind: Kind
    private unowned let router: SFURouter
    private let send: (RouterLinkMessage) -> Void
    private var outbox: ByteBuffer?
    private var lastRatesAt: NIODeadline?
    /// Local tracks the other side pulls.
    private var relays: [TrackID: RelaySink] = [:]
    /// The other side's tracks, mirrored here.
    private var mirrors: [TrackID: MirrorSource] = [:]

    /// Counters for the dashboard and tests.
    public struct Counters: Sendable, Hashable {
        public var packetsSent = 0
        public var packetsReceived = 0
        public var batchesSent = 0
        public var malformedRecords = 0
        /// Records of a track this router does not mirror (it ended, or moved to another link).
        public var unknownTrackRecords = 0
    }
    public private(set) var counters = Counters()

    init(name: String, kind: Kind, router: SFURouter, send: @escaping (RouterLinkMessage) -> Void) {
        self.name = name
        self.kind = kind
        self.router = router
        self.send = send
    }

    /// Tracks of the other side mirrored here (pulled over this link).
    public var mirroredTracks: [TrackID] { self.mirrors.keys.sorted() }

    /// Local tracks the other side pulls over this link, with the layers it wants.
    public var relayedTracks: [(id: TrackID, layers: LayerSet)] {
        self.relays.compactMap { id, relay in relay.consumer.map { (id, $0.layers) } }.sorted { $0.id < $1.id }
    }

    // MARK: - Outgoing

    /// Whether this link tells the other side about `producer`: a loop link announces the router's own
    /// tracks and its mesh mirrors (so every loop sees remote tracks); a mesh link announces nothing.
    func announces(_ producer: TrackProducer) -> Bool {
        guard self.kind == .eventLoop else { return false }
        guard producer.isMirror else { return true }
        return (producer.source as? MirrorSource)?.link?.kind == .mesh
    }

    func announce(_ producer: TrackProducer) {
        self.send(.published(TrackAnnouncement(producer)))
    }

    func ended(_ id: TrackID, announced: Bool, now: NIODeadline) {
        if let relay = self.relays.removeValue(forKey: id) { relay.consumer?.close(now: now) }
        if announced { self.send(.ended(id)) }
    }

    /// Sends the packets batched since the last flush (call it once per read batch and per tick).
    public func flush() {
        guard let batch = self.outbox.take(), batch.readableBytes > 0 else { return }
        self.counters.batchesSent += 1
        self.send(.media(batch))
    }

    fileprivate func append(_ packet: MediaPacket) {
        let form = packet.originForm
        let length = form.length
        guard length <= Int(UInt16.max) else { return }
        if self.outbox == nil {
            self.outbox = ByteBufferAllocator().buffer(capacity: 16 * 1024)
        }
        self.outbox!.writeInteger(packet.track.origin.rawValue)
        self.outbox!.writeInteger(packet.track.number)
        self.outbox!.writeInteger(UInt8(truncatingIfNeeded: packet.layer))
        self.outbox!.writeInteger(UInt8(packet.isRetransmission ? 1 : 0))
        self.outbox!.writeInteger(UInt16(length))
        form.write(into: &self.outbox!)
        self.counters.packetsSent += 1
    }

    func sendUpstream(_ message: RouterLinkMessage) {
        self.send(message)
    }

    // MARK: - Incoming

    /// Handles a message from the other side.
    public func receive(_ message: RouterLinkMessage, now: NIODeadline) {
        switch message {
        case .published(let announcement):
            guard self.mirrors[announcement.id] == nil, self.router.track(announcement.id) == nil,
                announcement.id.origin != self.router.node || self.kind == .eventLoop
            else { return }
            let source = MirrorSource(link: self, id: announcement.id)
            self.mirrors[announcement.id] = source
            self.router.publishMirror(announcement, source: source, now: now)
        case .ended(let id):
            guard self.mirrors.removeValue(forKey: id) != nil else { return }
            self.router.unpublish(id, now: now)
        case .media(var batch):
            self.ingest(&batch, now: now)
        case .wantLayers(let id, let layers):
            self.relay(id, layers: layers, now: now)
        case .keyframe(let id, let layer):
            self.relays[id]?.consumer?.requestKeyframe(layer: layer, now: now)
        case .layerRates(let id, let rates):
            guard self.mirrors[id] != nil, let producer = self.router.track(id) else { return }
            producer.reportedRates = rates
        }
    }

    private func relay(_ id: TrackID, layers: LayerSet, now: NIODeadline) {
        if let relay = self.relays[id] {
            if layers.isEmpty {
                relay.consumer?.close(now: now)
                self.relays[id] = nil
            } else {
                relay.consumer?.setLayers(layers, now: now)
            }
            return
        }
        guard !layers.isEmpty else { return }
        let relay = RelaySink(link: self)
        relay.consumer = try? self.router.consume(id, into: relay, layers: layers, now: now)
        if relay.consumer != nil { self.relays[id] = relay }
    }

    private func ingest(_ batch: inout ByteBuffer, now: NIODeadline) {
        while batch.readableBytes >= Self.recordHeaderLength {
            guard let origin = batch.readInteger(as: UInt64.self), let number = batch.readInteger(as: UInt32.self),
                let layer = batch.readInteger(as: UInt8.self), let flags = batch.readInteger(as: UInt8.self),
                let length = batch.readInteger(as: UInt16.self), let bytes = batch.readSlice(length: Int(length))
            else {
                self.counters.malformedRecords += 1
                return
            }
            let id = TrackID(origin: NodeID(rawValue: origin), number: number)
            // A mirror that just moved to another link still takes what was in flight on this one.
            guard let producer = self.router.track(id), producer.isMirror else {
                self.counters.unknownTrackRecords += 1
                continue
            }
            guard let rtp = try? RTPPacket(bytes), producer.layers.indices.contains(Int(layer)) else {
                self.counters.malformedRecords += 1
                continue
            }
            self.counters.packetsReceived += 1
            if producer.layers[Int(layer)].ssrc != rtp.ssrc { producer.bind(layer: Int(layer), ssrc: rtp.ssrc) }
            producer.ingest(
                IngressPacket(
                    rtp: rtp, extensions: producer.ingressExtensions, layer: Int(layer),
                    sequenceNumber: rtp.sequenceNumber, payload: rtp.payload, isRetransmission: flags & 1 != 0),
                now: now)
        }
    }

    /// Periodic work: every bitrate window, the layer rates of each track the other side pulls.
    func tick(now: NIODeadline) {
        if let last = self.lastRatesAt, now - last < self.router.configuration.bitrateWindow { return }
        self.lastRatesAt = now
        for (id, relay) in self.relays {
            guard let producer = relay.consumer?.producer else { continue }
            let rates = producer.layers.indices.map { producer.isFlowing($0, now: now) ? producer.rate(of: $0) : 0 }
            self.send(.layerRates(id, rates))
        }
    }

    /// Moves the mirror `source` here from the link it was on.
    func adopt(_ source: MirrorSource) {
        self.mirrors[source.id] = source
    }

    /// Lets go of the mirror `id` (it moves to another link); the other side stops sending it.
    func release(_ id: TrackID) -> MirrorSource? {
        guard let source = self.mirrors.removeValue(forKey: id) else { return nil }
        self.send(.wantLayers(id, []))
        return source
    }

    /// Unpublishes every mirror and stops every relay (the link goes down).
    func close(now: NIODeadline) {
        let mirrored = self.mirrors.keys
        self.mirrors.removeAll()
        for id in mirrored { self.router.unpublish(id, now: now) }
        for relay in self.relays.values { relay.consumer?.close(now: now) }
        self.relays.removeAll()
    }
}

/// Consumes a local track for the other side of a link: each packet is appended to the link's batch.
private final class RelaySink: TrackSink {
    unowned let link: RouterLink
    var consumer: TrackConsumer?

    init(link: RouterLink) {
        self.link = link
    }

    func deliver(_ packet: MediaPacket, from consumer: TrackConsumer, now: NIODeadline) -> Delivery {
        // Padding too: the other side's consumers renumber around it instead of seeing a gap to NACK.
        self.link.append(packet)
        return .accepted
    }

    func consumerEnded(_ consumer: TrackConsumer, now: NIODeadline) {
        self.consumer = nil
    }
}

/// The source of a mirrored track: what its consumers ask goes back over the link it is pulled on (a
/// mesh mirror moves between links as routes change).
final class MirrorSource: TrackSource {
    weak var link: RouterLink?
    let id: TrackID

    init(link: RouterLink, id: TrackID) {
        self.link = link
        self.id = id
    }

    func requestKeyframe(_ producer: TrackProducer, layer: Int, now: NIODeadline) {
        self.link?.sendUpstream(.keyframe(self.id, layer: layer))
    }

    func wantedLayersChanged(_ producer: TrackProducer, layers: LayerSet, now: NIODeadline) {
        self.link?.sendUpstream(.wantLayers(self.id, layers))
    }
}
