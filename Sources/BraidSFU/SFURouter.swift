import BraidRTPStreams
import BraidWire
public import NIOCore

/// All rooms of one event loop: publishers, subscribers and the forwarding between them.
///
/// Not thread-safe: create, use and drop it on one event loop. Every entry point takes the loop's current
/// time, so the router is driven by an injected clock (and tested without sockets or sleeps).
///
/// See the module documentation for the room model (pre-allocated subscriber slots).
public final class SFURouter {
    /// CNAME of the node's own RTCP (RFC 3550 §6.5.1).
    static let cname = "braid-sfu"

    /// The configuration every peer uses.
    public let configuration: SFUConfiguration
    /// The NTP mapping for sender reports and abs-send-time.
    public let wallClock: WallClock
    private var rooms: [String: Room] = [:]
    /// SSRCs the node uses as the sender of its own RTCP, one per peer.
    private var nextRTCPSSRC: UInt32 = 0x4252_0001

    /// A router with no rooms.
    public init(configuration: SFUConfiguration = .init(), wallClock: WallClock) {
        self.configuration = configuration
        self.wallClock = wallClock
    }

    /// Adds a publisher to `room` (created on first use); its tracks fill free subscriber slots of the
    /// same kind at once, except the slots of subscribers of the same participant.
    ///
    /// - Parameter participant: the person or program the peer belongs to; a publisher's tracks never go
    ///   to a subscriber of the same participant. Nil makes the peer its own participant (`peerID`).
    @discardableResult
    public func addPublisher(
        room: String, peerID: String, participant: String? = nil, description: PublisherDescription,
        transport: any MediaTransport, now: NIODeadline
    ) -> SFUPublisher {
        let publisher = SFUPublisher(
            room: room, peerID: peerID, participant: participant ?? peerID, description: description,
            transport: transport, configuration: self.configuration, rtcpSSRC: self.makeRTCPSSRC())
        let target = self.room(named: room)
        target.publishers.append(publisher)
        target.assignSlots(now: now)
        return publisher
    }

    /// Adds a subscriber to `room` (created on first use); its slots take the room's tracks at once, except
    /// the tracks of its own participant.
    ///
    /// - Parameter participant: the person or program the peer belongs to, e.g. the id of the WHIP session
    ///   the same client publishes with: tracks of publishers with the same participant never fill this
    ///   subscriber's slots. Nil makes the peer its own participant (`peerID`).
    @discardableResult
    public func addSubscriber(
        room: String, peerID: String, participant: String? = nil, description: SubscriberDescription,
        transport: any MediaTransport, now: NIODeadline
    ) -> SFUSubscriber {
        let subscriber = SFUSubscriber(
            room: room, peerID: peerID, participant: participant ?? peerID, description: description,
            transport: transport,
            configuration: self.configuration, wallClock: self.wallClock, rtcpSSRC: self.makeRTCPSSRC())
        let target = self.room(named: room)
        target.subscribers.append(subscriber)
        target.assignSlots(now: now)
        return subscriber
    }

    /// Removes every publisher and subscriber with `peerID`. Their slots and tracks are freed: a freed
    /// slot takes a track no slot of its subscriber shows yet. Empty rooms disappear.
    public func removePeer(_ peerID: String, now: NIODeadline) {
        for (name, room) in self.rooms {
            let publishers = room.publishers.filter { $0.peerID == peerID }
            let subscribers = room.subscribers.filter { $0.peerID == peerID }
            guard !publishers.isEmpty || !subscribers.isEmpty else { continue }
            room.publishers.removeAll { $0.peerID == peerID }
            room.subscribers.removeAll { $0.peerID == peerID }
            for publisher in publishers { publisher.close(now: now) }
            for subscriber in subscribers { subscriber.close() }
            if room.publishers.isEmpty && room.subscribers.isEmpty {
                self.rooms[name] = nil
            } else {
                room.assignSlots(now: now)
            }
        }
    }

    /// Periodic work; call it every 10–20 ms. Each part decides itself whether it is due: NACKs and
    /// keyframe-request retries upstream, receiver reports (1 s) and transport-wide feedback (100 ms) to
    /// publishers, sender reports (1 s video, 2 s audio) to subscribers, layer decisions (100 ms).
    public func tick(now: NIODeadline) {
        for room in self.rooms.values {
            for publisher in room.publishers { publisher.tick(now: now) }
            for subscriber in room.subscribers { subscriber.tick(now: now) }
        }
    }

    /// Track ids of `room`'s audio tracks with voice, loudest first (empty for an unknown room).
    public func activeSpeakers(room: String, now: NIODeadline) -> [String] {
        self.rooms[room]?.activeSpeakers(now: now, configuration: self.configuration).map(\.track.trackID) ?? []
    }

    /// Names of the rooms that exist.
    public var roomNames: [String] { self.rooms.keys.sorted() }

    /// A snapshot of every room, for the dashboard.
    public func roomStatuses(now: NIODeadline) -> [SFURoomStatus] {
        self.rooms.keys.sorted().compactMap { self.rooms[$0]?.status(now: now, configuration: self.configuration) }
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

/// One room: its publishers (and their tracks, in publication order) and subscribers.
final class Room {
    let name: String
    var publishers: [SFUPublisher] = []
    var subscribers: [SFUSubscriber] = []

    init(name: String) {
        self.name = name
    }

    /// Tracks in publication order.
    var producers: [Producer] { self.publishers.flatMap(\.producers) }

    /// Fills every free slot with the first track of its kind, in publication order, that the subscriber
    /// does not already receive and that is not its own: neither published by the same peer nor by a peer
    /// of the same participant (a client's WHIP session, when its WHEP session names it).
    func assignSlots(now: NIODeadline) {
        let producers = self.producers
        for subscriber in self.subscribers {
            for consumer in subscriber.consumers where consumer.producer == nil {
                let shown = subscriber.consumers.compactMap(\.producer)
                let candidate = producers.first { producer in
                    producer.kind == consumer.kind && producer.publisher.peerID != subscriber.peerID
                        && producer.publisher.participant != subscriber.participant
                        && !shown.contains { $0 === producer }
                }
                if let candidate { consumer.attach(candidate, now: now) }
            }
        }
    }
}
