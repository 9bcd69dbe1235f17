import Foundation
import NIOCore

/// What a peer does when its node is lost: which other nodes it may move to, and how fast it notices.
///
/// Off unless ``fallbacks`` is not empty or ``discoverNodes`` is on. When on, the peer watches its node:
/// consent checks go out every half ``lossTimeout``, and when nothing (media, RTCP, consent responses) has
/// been heard for ``lossTimeout`` — or consent/DTLS fail, or the node closes DTLS — the node counts as lost.
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
    /// Set when the node is lost, until the new transport is keyed.
    var reconnecting = false
    /// When the lost node was last heard, until the first media packet from the new node.
    var outageStartedAt: NIODeadline?
    var closing = false
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
