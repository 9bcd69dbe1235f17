import BraidCluster
import BraidMesh
import BraidScheduler
import BraidSFU
import Foundation
import NIOCore

/// The node's part of the mesh, confined to the event loop of media shard 0: a relay link to every other
/// node of the cluster, a mirror of every remote track pulled along the scheduler's route, and the
/// measurements it reports.
///
/// ```
///            cluster directory (etcd)                    scheduler (link-state graph)
///   nodes ─▶ one MeshPeer each:                  links ─▶ nextHop(toward: origin, from: self)
///            MeshLink (UDP, SRTP, NACK, probes)                     │
///            ⇅                                                      ▼
///            RouterLink(kind: .mesh) on shard 0's router ◀── mirror of each remote track, moved
///                                                           when the route changes
///   tracks ─▶ mirrors (pulled only while consumed)
///   own tracks (shard 0 sees every loop's) ─▶ published in the directory
/// ```
///
/// A subscriber anywhere on this node consumes a mirror (other loops through their loop links); the
/// mirror's source asks the next hop for the layers it needs, which pulls from its own next hop, and so
/// on to the origin: one copy per link per track whatever the number of subscribers behind it.
final class MeshForwarder {
    let node: NodeID
    let router: SFURouter
    let epoch: UInt64
    private let secret: [UInt8]
    private let channel: any Channel
    private let flushMedia: () -> Void
    private let emulation: [String: LinkProfile]
    private let linkConfiguration: MeshLink.Configuration
    let scheduler = MeshScheduler()
    /// The sessions a node holds at most (``WebRTCSessions/capacity``'s default): load = sessions / this.
    static let sessionCapacity = 1_024

    private(set) var peers: [NodeID: MeshPeer] = [:]
    private(set) var nodes: [NodeID: NodeRecord] = [:]
    private(set) var leader: UInt64?
    /// Remote tracks from the directory, mirrored here while a route to their origin exists.
    private(set) var remoteTracks: [TrackID: TrackAnnouncement] = [:]
    /// Links other nodes reported (to prune the scheduler's graph when a report drops one).
    private var reportedLinks: [UInt64: Set<UInt64>] = [:]
    private(set) var counters = Counters()
    private var lastRouteCheck: NIODeadline?
    /// The directory records of this node's tracks, encoded once each.
    private var ownTrackRecords: [TrackID: TrackRecord] = [:]

    struct Counters: Sendable, Hashable, Codable {
        /// Datagrams from a sender that is not a known node.
        var unknownSenders = 0
        /// Mirrors moved to another link because the route changed.
        var reroutes = 0
        /// Directory entries that could not be read.
        var badDirectoryEntries = 0

        enum CodingKeys: String, CodingKey {
            case unknownSenders = "unknown_senders"
            case reroutes
            case badDirectoryEntries = "bad_directory_entries"
        }
    }

    init(
        node: NodeID, router: SFURouter, secret: [UInt8], epoch: UInt64, channel: any Channel,
        emulation: [String: LinkProfile] = [:], linkConfiguration: MeshLink.Configuration = .init(),
        flushMedia: @escaping () -> Void
    ) {
        self.node = node
        self.router = router
        self.secret = secret
        self.epoch = epoch
        self.channel = channel
        self.emulation = emulation
        self.linkConfiguration = linkConfiguration
        self.flushMedia = flushMedia
    }

    // MARK: - Directory

    func apply(_ snapshot: ClusterSnapshot, now: NIODeadline) {
        for record in snapshot.nodes.values.sorted(by: { $0.id < $1.id }) { self.nodeUp(record, now: now) }
        for (from, links) in snapshot.links { self.linksChanged(from: from, links: links) }
        for record in snapshot.tracks.values { self.trackPublished(record, now: now) }
        self.leader = snapshot.leader
        self.reroute(now: now)
    }

    func apply(_ event: ClusterEvent, now: NIODeadline) {
        switch event {
        case .nodeUp(let record), .nodeChanged(let record):
            self.nodeUp(record, now: now)
        case .nodeDown(let id):
            self.nodeDown(NodeID(rawValue: id), now: now)
        case .linksChanged(let from, let links):
            self.linksChanged(from: from, links: links)
        case .trackPublished(let record):
            self.trackPublished(record, now: now)
        case .trackWithdrawn(_, let id, _):
            guard let trackID = TrackID(id) else { return }
            self.remoteTracks[trackID] = nil
            if trackID.origin != self.node, self.router.track(trackID)?.isMirror == true {
                self.router.unpublish(trackID, now: now)
            }
        case .leaderChanged(let id):
            self.leader = id
        case .functionPlaced, .functionRemoved:
            return  // MeshService keeps the functions' model
        }
        self.reroute(now: now)
        self.flush(now: now)
    }

    private func nodeUp(_ record: NodeRecord, now: NIODeadline) {
        let id = NodeID(rawValue: record.id)
        self.nodes[id] = record
        _ = self.scheduler.updateNode(
            record.id,
            state: MeshNodeState(
                // Sessions against the node's session capacity, or its CPU when it reports one.
                load: min(0.99, max(record.load.cpu, Double(record.load.sessions) / Double(Self.sessionCapacity))),
                location: MeshLocation(region: record.region, latitude: record.latitude, longitude: record.longitude),
                isAlive: true, isDraining: record.draining))
        guard id != self.node else { return }
        guard let address = Self.socketAddress(record.meshAddress) else {
            self.counters.badDirectoryEntries += 1
            return
        }
        let peerDecodesRepairs = record.linkFeatures.contains(NodeRecord.LinkFeature.repairs)
        if let peer = self.peers[id] {
            peer.address = address
            peer.link.peerDecodesRepairs = peerDecodesRepairs  // a restart may have changed its version
            return
        }
        do {
            let peer = try MeshPeer(
                forwarder: self, id: id, name: record.name, address: address, emulation: self.emulation[record.name])
            peer.link.peerDecodesRepairs = peerDecodesRepairs
            self.peers[id] = peer
        } catch {
            self.counters.badDirectoryEntries += 1
        }
    }

    private func nodeDown(_ id: NodeID, now: NIODeadline) {
        self.nodes[id] = nil
        self.reportedLinks[id.rawValue] = nil
        _ = self.scheduler.removeNode(id.rawValue)
        guard let peer = self.peers.removeValue(forKey: id) else { return }
        // Mirrors pulled over it move first (reroute); what has no other route is unpublished with it.
        self.reroute(now: now)
        self.router.unlink(peer.routerLink, now: now)
    }

    private func linksChanged(from: UInt64, links: [LinkRecord]) {
        // Our own links are fed to the scheduler as they are measured, not as echoed by the store.
        guard from != self.node.rawValue else { return }
        let previous = self.reportedLinks[from] ?? []
        var current = Set<UInt64>()
        for link in links where link.from == from {
            current.insert(link.to)
            _ = self.scheduler.updateLink(
                from: link.from, to: link.to,
                measurement: LinkMeasurement(
                    rtt: link.rttMs, loss: link.loss, jitter: link.jitterMs,
                    spareCapacity: link.spareKbps > 0 ? Double(link.spareKbps) : nil))
        }
        for gone in previous.subtracting(current) { _ = self.scheduler.removeLink(from: from, to: gone) }
        self.reportedLinks[from] = current
    }

    private func trackPublished(_ record: TrackRecord, now: NIODeadline) {
        guard record.origin != self.node.rawValue else { return }
        guard let announcement = try? JSONDecoder().decode(TrackAnnouncement.self, from: record.payload),
            announcement.id.origin.rawValue == record.origin
        else {
            self.counters.badDirectoryEntries += 1
            return
        }
        self.remoteTracks[announcement.id] = announcement
        self.scheduler.activate(origin: record.origin)
    }

    /// Puts every remote track's mirror on the link to the next hop toward its origin. Runs after every
    /// directory change and link state change, and a few times a second.
    func reroute(now: NIODeadline) {
        for (id, announcement) in self.remoteTracks {
            guard let hop = self.scheduler.nextHop(toward: id.origin.rawValue, from: self.node.rawValue),
                let peer = self.peers[NodeID(rawValue: hop)]
            else { continue }
            if self.router.track(id) == nil {
                peer.routerLink.receive(.published(announcement), now: now)
            } else if let current = self.router.upstreamLink(of: id), current !== peer.routerLink {
                self.router.moveMirror(id, to: peer.routerLink, now: now)
                self.counters.reroutes += 1
            } else if self.router.upstreamLink(of: id) == nil, self.router.track(id)?.isMirror == true {
                // Its link went away: adopt it on the new one.
                self.router.moveMirror(id, to: peer.routerLink, now: now)
                self.counters.reroutes += 1
            }
        }
    }

    /// The node a new client should join: by region or coordinates, penalising loaded and draining
    /// nodes (the scheduler's placement over every node alive in the directory).
    func placement(region: String?, latitude: Double?, longitude: Double?) -> NodeRecord? {
        let client = ClientPlacement(location: MeshLocation(region: region, latitude: latitude, longitude: longitude))
        return self.scheduler.placement(client: client).flatMap { self.nodes[NodeID(rawValue: $0)] }
    }

    // MARK: - What this node reports

    /// This node's tracks (every loop's: shard 0 mirrors the others) as directory records. A track's
    /// record never changes, so each is encoded once.
    func ownTracks() -> [TrackRecord] {
        var records: [TrackRecord] = []
        var current: [TrackID: TrackRecord] = [:]
        for producer in self.router.allTracks where producer.id.origin == self.node {
            let record =
                self.ownTrackRecords[producer.id]
                ?? TrackRecord(
                    room: producer.room, id: producer.id.description, origin: self.node.rawValue,
                    payload: (try? JSONEncoder().encode(TrackAnnouncement(producer))) ?? Data())
            current[producer.id] = record
            records.append(record)
        }
        self.ownTrackRecords = current
        return records
    }

    /// The measured outgoing links that are up, for the directory.
    func linkRecords() -> [LinkRecord] {
        self.peers.values.sorted { $0.id < $1.id }.compactMap { peer in
            guard peer.link.isUp, let rtt = peer.link.measurements.rtt else { return nil }
            return LinkRecord(
                from: self.node.rawValue, to: peer.id.rawValue, rttMs: Double(rtt.nanoseconds) / 1e6,
                loss: peer.link.measurements.loss, jitterMs: Double(peer.link.measurements.jitter.nanoseconds) / 1e6,
                spareKbps: max(0, Int(MeshPeer.nominalCapacityKbps - peer.link.measurements.sendRateKbps)))
        }
    }

    // MARK: - Datagrams and time

    func receive(_ datagram: ByteBuffer, from address: SocketAddress, now: NIODeadline) {
        guard let sender = MeshLink.sender(of: datagram), let peer = self.peers[sender] else {
            self.counters.unknownSenders += 1
            return
        }
        peer.link.receive(datagram, now: now)
    }

    /// After a read batch: sends what the routers produced (relayed media, subscribers' packets).
    func flush(now: NIODeadline) {
        self.router.flushLinks()
        for peer in self.peers.values { peer.link.flush(now: now) }
        self.flushMedia()
    }

    /// Every 10 ms: probes, repairs, liveness; the local measurements feed the scheduler.
    func tick(now: NIODeadline) {
        for peer in self.peers.values { peer.link.tick(now: now) }
        if self.lastRouteCheck.map({ now - $0 >= .milliseconds(100) }) ?? true {
            self.lastRouteCheck = now
            for peer in self.peers.values { peer.reportMeasurement(to: self.scheduler, from: self.node) }
            self.reroute(now: now)
        }
        self.flush(now: now)
    }

    /// A link went up or down: the scheduler hears of it at once, and mirrors move.
    func linkStateChanged(_ peer: MeshPeer, now: NIODeadline) {
        peer.reportMeasurement(to: self.scheduler, from: self.node)
        self.reroute(now: now)
    }

    fileprivate func transmit(_ datagram: ByteBuffer, to address: SocketAddress) {
        self.channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: datagram), promise: nil)
    }

    fileprivate func transmit(_ datagram: ByteBuffer, to address: SocketAddress, at deadline: NIODeadline) {
        let channel = self.channel
        channel.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: datagram), promise: nil)
        }
    }

    static func socketAddress(_ text: String) -> SocketAddress? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return try? SocketAddress(ipAddress: host, port: port)
    }
}

/// Another node as this one sees it: the relay link (datagrams) and the router link (tracks) to it.
final class MeshPeer {
    /// What a link is assumed to carry when nothing says otherwise (spare capacity = this − sent).
    static let nominalCapacityKbps: Double = 1_000_000

    let id: NodeID
    let name: String
    var address: SocketAddress
    private(set) var link: MeshLink!
    private(set) var routerLink: RouterLink!
    private var emulator: LinkEmulator?
    private var reportedUp = false

    init(forwarder: MeshForwarder, id: NodeID, name: String, address: SocketAddress, emulation: LinkProfile?)
        throws
    {
        self.id = id
        self.name = name
        self.address = address
        self.emulator = emulation.map { LinkEmulator(profile: $0, seed: id.rawValue ^ forwarder.node.rawValue) }
        self.link = try MeshLink(
            local: forwarder.node, peer: id, secret: forwarder.secretBytes, epoch: forwarder.epoch,
            configuration: forwarder.linkConfigurationValue
        ) { [unowned self, unowned forwarder] datagram in
            if var emulator = self.emulator {
                let deadline = emulator.schedule(bytes: datagram.readableBytes, now: .now())
                self.emulator = emulator
                if let deadline { forwarder.transmit(datagram, to: self.address, at: deadline) }
            } else {
                forwarder.transmit(datagram, to: self.address)
            }
        }
        self.routerLink = forwarder.router.link(name: "mesh-\(name)", kind: .mesh) { [unowned self] message in
            self.link.send(message, now: .now())
            self.link.flush(now: .now())
        }
        self.link.onMessage = { [unowned self] message in
            self.routerLink.receive(message, now: .now())
        }
        self.link.onStateChange = { [unowned self, unowned forwarder] _ in
            forwarder.linkStateChanged(self, now: .now())
        }
    }

    /// Feeds this link's state to the scheduler: its measurement while up, its removal when down.
    func reportMeasurement(to scheduler: MeshScheduler, from node: NodeID) {
        if self.link.isUp, let rtt = self.link.measurements.rtt {
            _ = scheduler.updateLink(
                from: node.rawValue, to: self.id.rawValue,
                measurement: LinkMeasurement(
                    rtt: Double(rtt.nanoseconds) / 1e6, loss: self.link.measurements.loss,
                    jitter: Double(self.link.measurements.jitter.nanoseconds) / 1e6))
            self.reportedUp = true
        } else if self.reportedUp {
            _ = scheduler.removeLink(from: node.rawValue, to: self.id.rawValue)
            // Media from the peer to us crosses the same broken path: drop that direction too until the
            // peer reports it again.
            _ = scheduler.removeLink(from: self.id.rawValue, to: node.rawValue)
            self.reportedUp = false
        }
    }
}

extension MeshForwarder {
    fileprivate var secretBytes: [UInt8] { self.secret }
    fileprivate var linkConfigurationValue: MeshLink.Configuration { self.linkConfiguration }
}
