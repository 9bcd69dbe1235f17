import BraidRTPStreams
import BraidWire
public import NIOCore

/// Why the router refused a request.
public enum SFURouterError: Error, Sendable, Hashable {
    /// No track with this id is published on this router.
    case unknownTrack(TrackID)
}

/// The forwarding core of one event loop: the directory of tracks (by ``TrackID``), the rooms that
/// group them, and the consumers that forward them.
///
/// ```
///  ingress (any kind)                    router                          consumers (any kind)
///  SFUPublisher (WebRTC) ─┐                                          ┌─ SubscriberSlot (WebRTC, via room policy)
///  mesh link in ──────────┼─▶ TrackProducer.ingest ─ parsed once ─ ──┼─ mesh relay link
///  function output ───────┘   (all layers, origin identity,          └─ edge function input
///                              one stored copy)                         consume(track, into: sink, layers:)
///  upstream, typed (TrackConsumer → TrackProducer → TrackSource): keyframe · layers · repair · estimate
/// ```
///
/// - ``publish(_:room:peerID:participant:extensions:source:now:)`` registers a track from any source;
///   ``addPublisher(room:peerID:participant:description:transport:now:)`` does it for a WebRTC peer.
/// - ``consume(_:into:layers:now:)`` is the one way to attach a consumer. The WHEP slot filling of
///   ``addSubscriber(room:peerID:participant:description:transport:now:)`` is a room policy above it.
///
/// Not thread-safe: create, use and drop it on one event loop. Every entry point takes the loop's current
/// time, so the router is driven by an injected clock (and tested without sockets or sleeps).
public final class SFURouter {
    /// CNAME of the node's own RTCP (RFC 3550 §6.5.1).
    static let cname = "braid-sfu"

    /// The node whose tracks this router mints ids for.
    public let node: NodeID
    /// The configuration every peer uses.
    public let configuration: SFUConfiguration
    /// The NTP mapping for sender reports and abs-send-time.
    public let wallClock: WallClock
    private var rooms: [String: Room] = [:]
    private var tracks: [TrackID: TrackProducer] = [:]
    private var nextTrackNumber: UInt32
    private let trackNumberStride: UInt32
    /// Links to other routers (the node's other event loops).
    public private(set) var links: [RouterLink] = []
    /// Packet results of one feedback message, shared by every subscriber of this loop.
    /// Buffers every subscriber builds its packets and RTCP in, in turn.
    private let subscriberScratch: SubscriberScratch
    /// SSRCs the node uses as the sender of its own RTCP, one per peer.
    private var nextRTCPSSRC: UInt32 = 0x4252_0001

    /// A router with no rooms.
    ///
    /// - Parameters:
    ///   - node: the node whose tracks this router mints ids for.
    ///   - shard: this router's index among the `shards` routers of the node (one per event loop); track
    ///     numbers are interleaved between them so that ids stay unique on the node.
    ///   - firstTrackNumber: where this run's track numbers start. A node that restarts under the same
    ///     name must not reuse the ids of its previous run while other nodes may still mirror them; the
    ///     node starts from its start time (see ``trackNumberBase(unixSeconds:)``).
    public init(
        configuration: SFUConfiguration = .init(), wallClock: WallClock, node: NodeID = .local, shard: Int = 0,
        shards: Int = 1, firstTrackNumber: UInt32 = 0
    ) {
        self.configuration = configuration
        self.subscriberScratch = SubscriberScratch(maximumPacketSize: configuration.maximumPacketSize)
        self.wallClock = wallClock
        self.node = node
        self.nextTrackNumber = firstTrackNumber &+ UInt32(clamping: shard + 1)
        self.trackNumberStride = UInt32(clamping: max(1, shards))
    }

    /// A run's first track number from its start time: 1,024 numbers per second since 1970, modulo 2^32.
    /// A later run starts past every number an earlier one used unless that one published more than 1,024
    /// tracks per second of its life (the window wraps every 48 days).
    public static func trackNumberBase(unixSeconds: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: unixSeconds &* 1_024)
    }

    // MARK: - Links

    /// Links this router to another one: `send` must deliver each message to the other side's
    /// ``RouterLink/receive(_:now:)`` in order. A loop link announces every local track (and mesh
    /// mirror) at once, and later ones as they are published; a mesh link announces nothing.
    public func link(
        name: String, kind: RouterLink.Kind = .eventLoop, send: @escaping (RouterLinkMessage) -> Void
    ) -> RouterLink {
        let link = RouterLink(name: name, kind: kind, router: self, send: send)
        self.links.append(link)
        for producer in self.tracks.values.sorted(by: { $0.id < $1.id }) where link.announces(producer) {
            link.announce(producer)
        }
        return link
    }

    /// Takes `link` down: its mirrors are unpublished (their consumers are told), its relays stop.
    public func unlink(_ link: RouterLink, now: NIODeadline) {
        guard let index = self.links.firstIndex(where: { $0 === link }) else { return }
        self.links.remove(at: index)
        link.close(now: now)
    }

    /// Pulls the mirror `id` over `link` from now on (the mesh route to its origin changed): the old link
    /// stops sending it, the new one is asked for the layers its consumers want and for keyframes, so they
    /// see at most a short gap. Nothing happens for a track that is not a mirror.
    public func moveMirror(_ id: TrackID, to link: RouterLink, now: NIODeadline) {
        guard let producer = self.tracks[id], producer.isMirror,
            let source = producer.source as? MirrorSource, source.link !== link
        else { return }
        _ = source.link?.release(id)
        source.link = link
        link.adopt(source)
        let wanted = producer.wantedLayers
        guard !wanted.isEmpty else { return }
        link.sendUpstream(.wantLayers(id, wanted))
        if producer.kind == .video {
            for layer in producer.layers.indices where wanted.contains(layer: layer) {
                link.sendUpstream(.keyframe(id, layer: layer))
            }
        }
    }

    /// The link a mirror is pulled over (nil for a local track, or a mirror whose link went down).
    public func upstreamLink(of id: TrackID) -> RouterLink? {
        (self.tracks[id]?.source as? MirrorSource)?.link
    }

    /// Sends what every link batched (call it once per read batch and per tick).
    public func flushLinks() {
        for link in self.links { link.flush() }
    }

    /// Publishes the mirror of a track announced over a link, under its own id.
    func publishMirror(_ announcement: TrackAnnouncement, source: MirrorSource, now: NIODeadline) {
        let producer = TrackProducer(
            id: announcement.id, room: announcement.room, peerID: announcement.peerID,
            participant: announcement.participant, track: announcement.track, extensions: announcement.extensions,
            source: source, isMirror: true, audience: announcement.audience, configuration: self.configuration)
        let target = self.room(named: announcement.room)
        self.register([producer], in: target)
        target.assignSlots(router: self, now: now)
    }

    /// Enters tracks in the directory and their room; the links announce the local ones.
    private func register(_ producers: [TrackProducer], in room: Room) {
        for producer in producers { self.tracks[producer.id] = producer }
        room.producers.append(contentsOf: producers)
        for link in self.links {
            for producer in producers where link.announces(producer) { link.announce(producer) }
        }
    }

    /// Takes a track out of the directory and its room and ends it: the links tell the other side (of a
    /// local track), its consumers are told.
    private func end(_ producer: TrackProducer, in room: Room?, now: NIODeadline) {
        for link in self.links { link.ended(producer.id, announced: link.announces(producer), now: now) }
        // A mirror that ends here (its last room left, the route went away) stops its upstream pull.
        if producer.isMirror, let source = producer.source as? MirrorSource { _ = source.link?.release(producer.id) }
        self.tracks[producer.id] = nil
        room?.producers.removeAll { $0 === producer }
        producer.end(now: now)
    }

    // MARK: - Tracks

    /// Registers a track fed by `source` (a mesh link, an edge function, a test): it gets a new id on this
    /// node, joins `room` (created on first use) and fills free subscriber slots there. The source feeds
    /// it with ``TrackProducer/ingest(_:now:)`` after binding each layer's origin SSRC with
    /// ``TrackProducer/bind(layer:ssrc:)``.
    ///
    /// - Parameter audience: the only participant room policies may give the track to (nil: anyone but
    ///   its own participant).
    @discardableResult
    public func publish(
        _ track: PublishedTrackDescription, room: String, peerID: String, participant: String? = nil,
        audience: String? = nil, extensions: RTPHeaderExtensionMap, source: any TrackSource, now: NIODeadline
    ) -> TrackProducer {
        let producer = self.makeProducer(
            track, room: room, peerID: peerID, participant: participant ?? peerID, extensions: extensions,
            source: source, audience: audience)
        let target = self.room(named: room)
        self.register([producer], in: target)
        target.assignSlots(router: self, now: now)
        return producer
    }

    /// Ends a track published with ``publish(_:room:peerID:participant:extensions:source:now:)``: its
    /// consumers are told, and freed slots take other tracks.
    public func unpublish(_ id: TrackID, now: NIODeadline) {
        guard let producer = self.tracks[id] else { return }
        let room = self.rooms[producer.room]
        self.end(producer, in: room, now: now)
        if let room { self.roomChanged(room, now: now) }
    }

    /// The track `id`, if it is published here.
    public func track(_ id: TrackID) -> TrackProducer? { self.tracks[id] }

    /// Every track in the directory, local and mirrored, by id.
    public var allTracks: [TrackProducer] { self.tracks.values.sorted { $0.id < $1.id } }

    /// The tracks of `room` in publication order (empty for an unknown room).
    public func tracks(inRoom room: String) -> [TrackProducer] { self.rooms[room]?.producers ?? [] }

    /// Attaches `sink` to track `id`: from now on it receives every packet of `layers`, under the origin's
    /// identity, until either side closes. The returned consumer is the sink's upstream.
    public func consume(
        _ id: TrackID, into sink: any TrackSink, layers: LayerSet = .all, now: NIODeadline
    ) throws(SFURouterError) -> TrackConsumer {
        guard let producer = self.tracks[id] else { throw .unknownTrack(id) }
        let consumer = TrackConsumer(producer: producer, sink: sink, layers: layers)
        producer.attach(consumer, now: now)
        return consumer
    }

    private func makeProducer(
        _ track: PublishedTrackDescription, room: String, peerID: String, participant: String,
        extensions: RTPHeaderExtensionMap, source: any TrackSource, audience: String? = nil
    ) -> TrackProducer {
        let id = TrackID(origin: self.node, number: self.nextTrackNumber)
        self.nextTrackNumber &+= self.trackNumberStride
        let producer = TrackProducer(
            id: id, room: room, peerID: peerID, participant: participant, track: track, extensions: extensions,
            source: source, audience: audience, configuration: self.configuration)
        return producer
    }

    // MARK: - WebRTC peers

    /// Adds a WebRTC publisher to `room` (created on first use): one track per published m-section, each
    /// filling free subscriber slots of its kind at once.
    ///
    /// - Parameter participant: the participant the peer belongs to (nil: itself). Room policies never
    ///   give a participant's subscriber slots its own tracks.
    @discardableResult
    public func addPublisher(
        room: String, peerID: String, participant: String? = nil, description: PublisherDescription,
        transport: any MediaTransport, now: NIODeadline
    ) -> SFUPublisher {
        let publisher = SFUPublisher(
            room: room, peerID: peerID, participant: participant ?? peerID, description: description,
            transport: transport, configuration: self.configuration, rtcpSSRC: self.makeRTCPSSRC())
        let producers = description.tracks.map {
            self.makeProducer(
                $0, room: room, peerID: peerID, participant: publisher.participant,
                extensions: publisher.extensionMap, source: publisher)
        }
        publisher.adopt(producers)
        let target = self.room(named: room)
        target.publishers.append(publisher)
        self.register(producers, in: target)
        target.assignSlots(router: self, now: now)
        return publisher
    }

    /// Adds a WebRTC subscriber to `room` (created on first use); its slots take the room's tracks at once
    /// (never those of its own participant).
    @discardableResult
    public func addSubscriber(
        room: String, peerID: String, participant: String? = nil, description: SubscriberDescription,
        transport: any MediaTransport, now: NIODeadline
    ) -> SFUSubscriber {
        let subscriber = SFUSubscriber(
            room: room, peerID: peerID, participant: participant ?? peerID, description: description,
            transport: transport, configuration: self.configuration, wallClock: self.wallClock,
            rtcpSSRC: self.makeRTCPSSRC(), scratch: self.subscriberScratch)
        let target = self.room(named: room)
        target.subscribers.append(subscriber)
        target.assignSlots(router: self, now: now)
        return subscriber
    }

    /// Removes every publisher and subscriber with `peerID`. Their tracks end; freed slots take a track no
    /// slot of their subscriber shows yet. Empty rooms disappear.
    public func removePeer(_ peerID: String, now: NIODeadline) {
        for room in Array(self.rooms.values) {
            let publishers = room.publishers.filter { $0.peerID == peerID }
            let subscribers = room.subscribers.filter { $0.peerID == peerID }
            guard !publishers.isEmpty || !subscribers.isEmpty else { continue }
            room.publishers.removeAll { $0.peerID == peerID }
            room.subscribers.removeAll { $0.peerID == peerID }
            for subscriber in subscribers { subscriber.close(now: now) }
            for publisher in publishers {
                for producer in publisher.producers { self.end(producer, in: room, now: now) }
            }
            self.roomChanged(room, now: now)
        }
    }

    /// Refills slots after a change, or drops the room when nothing is left in it.
    private func roomChanged(_ room: Room, now: NIODeadline) {
        if room.publishers.isEmpty && room.subscribers.isEmpty && room.producers.isEmpty {
            self.rooms[room.name] = nil
        } else {
            room.assignSlots(router: self, now: now)
        }
    }

    // MARK: - Periodic work

    /// Periodic work; call it every 10–20 ms. Each part decides itself whether it is due: NACKs and
    /// keyframe-request retries upstream, receiver reports (1 s) and transport-wide feedback (100 ms) to
    /// publishers, sender reports (1 s video, 2 s audio) to subscribers, layer decisions (100 ms).
    public func tick(now: NIODeadline) {
        for producer in self.tracks.values { producer.tick(now: now) }
        for link in self.links { link.tick(now: now) }
        for room in self.rooms.values {
            for publisher in room.publishers { publisher.tick(now: now) }
            for subscriber in room.subscribers { subscriber.tick(now: now) }
        }
    }

    // MARK: - Rooms

    /// Track ids (`a=msid`) of `room`'s audio tracks with voice, loudest first (empty for an unknown room).
    public func activeSpeakers(room: String, now: NIODeadline) -> [String] {
        self.rooms[room]?.activeSpeakers(now: now, configuration: self.configuration).map(\.track.trackID) ?? []
    }

    /// Names of the rooms that exist.
    public var roomNames: [String] { self.rooms.keys.sorted() }

    /// A snapshot of every room, for the dashboard.
    public func roomStatuses(now: NIODeadline) -> [SFURoomStatus] {
        self.rooms.keys.sorted().compactMap { name in
            guard let room = self.rooms[name], room.hasLocalContent else { return nil }
            return room.status(now: now, configuration: self.configuration)
        }
    }

    /// Bytes the router holds for packet stores and subscriber histories (what grows with peers).
    public var mediaMemoryFootprint: Int {
        var total = self.tracks.values.reduce(0) { $0 + $1.storedBytes }
        for room in self.rooms.values { total += room.subscribers.reduce(0) { $0 + $1.footprint } }
        return total
    }

    private func room(named name: String) -> Room {
        if let room = self.rooms[name] { return room }
        let room = Room(name: name)
        self.rooms[name] = room
        return room
    }

    private func makeRTCPSSRC() -> UInt32 {
        defer { self.nextRTCPSSRC &+= 1 }
        return self.nextRTCPSSRC
    }
}

/// One room: its tracks (in publication order, whatever their source), WebRTC publishers and subscribers.
final class Room {
    let name: String
    var publishers: [SFUPublisher] = []
    var subscribers: [SFUSubscriber] = []
    var producers: [TrackProducer] = []

    init(name: String) {
        self.name = name
    }

    /// Whether anything of the room lives on this router (not only mirrors of other routers' tracks).
    var hasLocalContent: Bool {
        !self.publishers.isEmpty || !self.subscribers.isEmpty || self.producers.contains { !$0.isMirror }
    }

    /// The WHEP slot policy: fills every free slot with the first track of its kind, in publication order,
    /// that the subscriber does not already receive, that is not its own participant's, that is meant for
    /// its participant if meant for anyone in particular (``TrackProducer/audience``), and that it asked
    /// for if it named tracks (``SubscriberDescription/tracks``).
    func assignSlots(router: SFURouter, now: NIODeadline) {
        for subscriber in self.subscribers {
            for slot in subscriber.slots where slot.consumer == nil {
                let wanted = subscriber.description.tracks
                let candidate = self.producers.first { producer in
                    producer.kind == slot.kind && producer.participant != subscriber.participant
                        && (producer.audience == nil || producer.audience == subscriber.participant)
                        && (wanted.isEmpty || wanted.contains(producer.id))
                        && !subscriber.slots.contains { $0.producer === producer }
                }
                if let candidate { slot.attach(candidate, router: router, now: now) }
            }
        }
    }
}
