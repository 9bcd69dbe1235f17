import BraidSDP
import Foundation
import NIOCore

/// What a peer does when its node is lost: which other nodes it may move to, and how fast it notices.
///
/// Off unless ``fallbacks`` is not empty or ``discoverNodes`` is on. When on, the peer watches its node:
/// consent checks go out every half ``lossTimeout``, and when nothing (media, RTCP, consent responses) has
/// been heard for ``lossTimeout`` — or consent/DTLS fail — the node counts as lost; when the node ends the
/// session itself (an RTCP BYE or a DTLS close_notify, as a draining node does) the peer moves at once.
/// The peer then re-runs WHEP (or WHIP) for the same room and the same tracks at the next node, in order:
/// the fallbacks and discovered nodes after the current one, the lost node last; rounds repeat with a
/// growing pause (up to 2 s) until one answers or the peer is closed. Statistics keep counting across the
/// move (see ``SubscriberStatistics/reconnects`` and ``PublisherStatistics/reconnects``).
public struct FailoverOptions: Sendable {
    /// Other nodes: base URLs (`http://host:port`, the room's path is appended) or full WHIP/WHEP URLs.
    public var fallbacks: [String]
    /// After each connection, `GET /api/v1/mesh` on the node and add the cluster's other nodes
    /// (`nodes[].http_url`, draining nodes excluded) after the fallbacks.
    public var discoverNodes: Bool
    /// Silence after which the node counts as lost.
    public var lossTimeout: Duration
    /// Deadline of one attempt at another node: the HTTP exchange and, separately, ICE + DTLS.
    public var attemptTimeout: Duration

    /// Creates options; the defaults leave failover off.
    public init(
        fallbacks: [String] = [], discoverNodes: Bool = false, lossTimeout: Duration = .seconds(1),
        attemptTimeout: Duration = .seconds(2)
    ) {
        self.fallbacks = fallbacks
        self.discoverNodes = discoverNodes
        self.lossTimeout = lossTimeout
        self.attemptTimeout = attemptTimeout
    }

    /// Whether the peer watches its node and moves when it is lost.
    public var isEnabled: Bool { !self.fallbacks.isEmpty || self.discoverNodes }
}

/// What a peer has done about lost nodes so far.
struct FailoverRecord {
    var reconnects = 0
    var failedAttempts = 0
    var lastReconnect: Date?
    var lastOutage: Duration?
    /// Why the last node was lost (silence, consent, DTLS failure, or the node's goodbye).
    var lastLossReason: String?
    /// Set when the node is lost, until the new transport is keyed.
    var reconnecting = false
    /// When the lost node was last heard, until the first media packet from the new node.
    var outageStartedAt: NIODeadline?
    var closing = false
}

/// A peer that moves to another node when its own is lost (``BraidPublisher``, ``BraidSubscriber``): the
/// procedure they share — notice, close, try the other nodes in rounds, count — with what differs left to
/// each: the offer it sends (``failoverOffer``) and how a new session replaces the old one
/// (``swapIn(_:index:)``). State lives on ``eventLoop``; every step that touches it hops there.
protocol FailingOverPeer: AnyObject, Sendable {
    var eventLoop: any EventLoop { get }
    var options: ConnectionOptions { get }
    var group: any EventLoopGroup { get }
    var transport: PeerTransport { get }
    var failover: FailoverRecord { get set }
    var candidates: FailoverCandidates { get set }
    /// The session resource in use (for its `DELETE` when the node is lost).
    var failoverResource: HTTPEndpoint? { get }
    /// The tracks and direction a new session at another node offers.
    var failoverOffer: (tracks: [OfferedTrack], direction: SDPDirection) { get }
    /// On the loop: makes `join` the peer's session; false when its answer does not fit the peer (then
    /// the attempt counts as failed and the session is ended).
    func swapIn(_ join: PeerJoin, index: Int) -> Bool
}

extension FailingOverPeer {
    /// Runs `body` on the peer's event loop.
    func onLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T? {
        try? await self.eventLoop.submit(body).get()
    }

    /// The node counts as lost (``PeerMediaHandler/transportLost(reason:lastHeard:now:)``, on the loop):
    /// closes its transport, ends its session if it still answers, and starts moving.
    func nodeLost(lastHeard: NIODeadline, reason: String) {
        guard self.options.failover.isEnabled, !self.failover.closing, !self.failover.reconnecting else { return }
        self.failover.lastLossReason = reason
        self.failover.reconnecting = true
        self.failover.outageStartedAt = lastHeard
        let lost = self.transport
        let resource = self.failoverResource
        _ = lost.close()
        Task {
            // The node may only look lost (a network cut): end its session if it still answers, so that
            // nothing of this peer lingers there next to the new session.
            try? await PeerJoin.leave(
                transport: lost, resource: resource, options: self.options, group: self.group,
                timeout: self.options.failover.attemptTimeout)
        }
        Task { await self.reconnect() }
    }

    /// Tries the other nodes in order, in rounds with a growing pause, until one takes the peer or it is
    /// closed.
    private func reconnect() async {
        let failover = self.options.failover
        var round = 0
        while true {
            guard let order = await self.onLoop({ self.failover.closing ? nil : self.candidates.attemptOrder }),
                let order
            else { return }
            for index in order {
                guard
                    let endpoint = await self.onLoop({
                        self.failover.closing ? nil : self.candidates.endpoints[index]
                    }),
                    let endpoint
                else { return }
                if await self.attempt(endpoint: endpoint, index: index, timeout: failover.attemptTimeout) {
                    if failover.discoverNodes { await self.discoverNodes(from: endpoint) }
                    return
                }
            }
            round += 1
            try? await Task.sleep(for: .milliseconds(min(2000, 125 << min(round, 5))))
        }
    }

    /// One attempt at the node of `endpoint`: the offer, the session swapped in, then ICE and DTLS.
    private func attempt(endpoint: HTTPEndpoint, index: Int, timeout: Duration) async -> Bool {
        let offer = self.failoverOffer
        let join: PeerJoin
        do {
            join = try await PeerJoin.join(
                endpoint: endpoint, tracks: offer.tracks, direction: offer.direction, options: self.options,
                group: self.group, on: self.eventLoop, timeout: timeout)
        } catch {
            _ = await self.onLoop { self.failover.failedAttempts += 1 }
            return false
        }
        let swapped = await self.onLoop { !self.failover.closing && self.swapIn(join, index: index) }
        guard swapped == true else {
            _ = await self.onLoop { self.failover.failedAttempts += 1 }
            try? await PeerJoin.leave(
                transport: join.transport, resource: join.resource, options: self.options, group: self.group,
                timeout: timeout)
            return false
        }
        do {
            try await PeerJoin.connect(join.transport, timeout: timeout)
        } catch {
            _ = await self.onLoop { self.failover.failedAttempts += 1 }
            Task {
                try? await PeerJoin.leave(
                    transport: join.transport, resource: join.resource, options: self.options, group: self.group,
                    timeout: timeout)
            }
            return false
        }
        let done = await self.onLoop { () -> Bool in
            guard !self.failover.closing else { return false }
            self.failover.reconnecting = false
            self.failover.reconnects += 1
            self.failover.lastReconnect = Date()
            return true
        }
        guard done == true else {
            // Closed meanwhile: close() left this session's DELETE to us.
            try? await PeerJoin.leave(
                transport: join.transport, resource: join.resource, options: self.options, group: self.group,
                timeout: timeout)
            return false
        }
        return true
    }

    /// Adds the cluster's nodes, as the node at `endpoint` lists them, to the candidates.
    func discoverNodes(from endpoint: HTTPEndpoint) async {
        let nodes = await MeshNodeList.fetch(from: endpoint, options: self.options, group: self.group)
        guard !nodes.isEmpty else { return }
        _ = await self.onLoop { for node in nodes { self.candidates.add(node) } }
    }
}

/// The nodes a peer may use, in the order it tries them; the first is the one it joined.
struct FailoverCandidates {
    /// The room's endpoint on each node.
    private(set) var endpoints: [HTTPEndpoint]
    /// The endpoint in use.
    var current = 0
    /// Path (and query) of the room, appended to base URLs.
    let roomPath: String

    /// - Parameters:
    ///   - origin: the endpoint the peer joined first.
    ///   - roomPath: the room's path on other nodes (the origin's path without per-node parameters).
    init(origin: HTTPEndpoint, roomPath: String, fallbacks: [String]) throws(BraidClientError) {
        self.endpoints = [origin]
        self.roomPath = roomPath
        for fallback in fallbacks { self.add(try HTTPEndpoint(url: fallback)) }
    }

    /// Adds a node (a base URL's endpoint gets the room's path) unless one with its host and port is known.
    mutating func add(_ node: HTTPEndpoint) {
        var endpoint = node
        if endpoint.path.isEmpty || endpoint.path == "/" { endpoint.path = self.roomPath }
        guard !self.endpoints.contains(where: { Self.sameNode($0, endpoint) }) else { return }
        self.endpoints.append(endpoint)
    }

    static func sameNode(_ a: HTTPEndpoint, _ b: HTTPEndpoint) -> Bool {
        func normal(_ host: String) -> String {
            let lower = host.lowercased()
            return ["localhost", "0.0.0.0", "::", "::1", "[::1]"].contains(lower) ? "127.0.0.1" : lower
        }
        return a.port == b.port && normal(a.host) == normal(b.host)
    }

    /// Indices to try after losing the current node: the next ones in order, the lost one last.
    var attemptOrder: [Int] {
        let count = self.endpoints.count
        return (1...count).map { (self.current + $0) % count }
    }
}

/// The part of `GET /api/v1/mesh` failover reads.
struct MeshNodeList: Decodable {
    struct Node: Decodable {
        var name: String?
        var httpURL: String
        var draining: Bool?

        enum CodingKeys: String, CodingKey {
            case name, draining
            case httpURL = "http_url"
        }
    }

    var nodes: [Node]

    /// The cluster's nodes that take new sessions, as the node at `endpoint` lists them; empty when it
    /// does not answer (not a Braid node, or not in a cluster).
    static func fetch(
        from endpoint: HTTPEndpoint, options: ConnectionOptions, group: any EventLoopGroup
    ) async -> [HTTPEndpoint] {
        let url = HTTPEndpoint(host: endpoint.host, port: endpoint.port, path: "/api/v1/mesh")
        var headers: [(String, String)] = [("Accept", "application/json")]
        if let token = options.bearerToken { headers.append(("Authorization", "Bearer \(token)")) }
        guard
            let response = try? await WHTTPClient(group: group).request(
                .get, url, headers: headers, timeout: options.failover.attemptTimeout),
            response.status == 200,
            let list = try? JSONDecoder().decode(MeshNodeList.self, from: Data(response.body.utf8))
        else { return [] }
        return list.nodes.compactMap { node in
            guard node.draining != true else { return nil }
            return try? HTTPEndpoint(url: node.httpURL)
        }
    }
}

extension TransportStatistics {
    /// These counters plus `earlier`'s (a transport this peer used before); state, addresses and profile
    /// are this transport's.
    func adding(_ earlier: TransportStatistics) -> TransportStatistics {
        var sum = self
        sum.rtpPacketsSent &+= earlier.rtpPacketsSent
        sum.rtpBytesSent &+= earlier.rtpBytesSent
        sum.rtcpPacketsSent &+= earlier.rtcpPacketsSent
        sum.rtpPacketsReceived &+= earlier.rtpPacketsReceived
        sum.rtpBytesReceived &+= earlier.rtpBytesReceived
        sum.rtcpPacketsReceived &+= earlier.rtcpPacketsReceived
        sum.unprotectFailures &+= earlier.unprotectFailures
        sum.datagramsDropped &+= earlier.datagramsDropped
        sum.stunRequestsSent &+= earlier.stunRequestsSent
        sum.stunResponsesReceived &+= earlier.stunResponsesReceived
        return sum
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
    }
}
