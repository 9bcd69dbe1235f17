import Foundation

/// Node ids travel as 16 lower-case hex digits (`"9f2c3a1b00d4e7f2"`): JSON numbers lose precision above
/// 2^53, and the same text names the node's keys.
public enum NodeIDText {
    /// `id` as 16 hex digits.
    public static func format(_ id: UInt64) -> String {
        let hex = String(id, radix: 16)
        return String(repeating: "0", count: max(0, 16 - hex.count)) + hex
    }

    /// The id written by ``format(_:)``, or nil.
    public static func parse(_ text: some StringProtocol) -> UInt64? {
        guard text.count == 16 else { return nil }
        return UInt64(text, radix: 16)
    }
}

/// A node's load as the scheduler weighs it.
public struct NodeLoad: Codable, Sendable, Hashable {
    /// Client sessions (publishers and subscribers) on the node.
    public var sessions: Int
    /// CPU use, 0...1 of the node's cores.
    public var cpu: Double
    /// Subscriber sessions per room (rooms with none left out; nil from nodes that do not report it):
    /// where a room's listeners are, which function placement runs its functions near.
    public var subscribers: [String: Int]?

    public init(sessions: Int = 0, cpu: Double = 0, subscribers: [String: Int]? = nil) {
        self.sessions = sessions
        self.cpu = cpu
        self.subscribers = subscribers
    }
}

/// What a node announces about itself in the registry (`nodes/<id>`), alive as long as its lease.
public struct NodeRecord: Codable, Sendable, Hashable {
    public var id: UInt64
    /// Human-readable name (dashboard, logs).
    public var name: String
    /// Region label (`eu-west`); placement prefers the client's region.
    public var region: String
    /// Position, when known, for distance-based placement.
    public var latitude: Double?
    public var longitude: Double?
    /// Base URL of the node's HTTP API (WHIP/WHEP redirects point there).
    public var httpURL: String
    /// `host:port` other nodes open mesh links to.
    public var meshAddress: String
    public var load: NodeLoad
    /// A draining node takes no new sessions; its clients are moved away.
    public var draining: Bool
    /// When the node started (ISO 8601): tells a restart from a long-lived node.
    public var started: String
    /// What the node's relay links understand beyond plain media datagrams (``LinkFeature``), so that a
    /// newer node sends an older one nothing it would misread (a mesh upgraded one node at a time). Absent
    /// from the records of nodes that predate it: none.
    public var linkFeatures: [String]

    /// Names in ``linkFeatures``.
    public enum LinkFeature {
        /// FEC repair datagrams under the sender's repair SSRC (BraidMesh's `MeshLink`).
        public static let repairs = "fec-repairs"
    }

    public init(
        id: UInt64, name: String, region: String, latitude: Double? = nil, longitude: Double? = nil,
        httpURL: String, meshAddress: String, load: NodeLoad = .init(), draining: Bool = false,
        started: String = Date().formatted(.iso8601), linkFeatures: [String] = []
    ) {
        self.id = id
        self.name = name
        self.region = region
        self.latitude = latitude
        self.longitude = longitude
        self.httpURL = httpURL
        self.meshAddress = meshAddress
        self.load = load
        self.draining = draining
        self.started = started
        self.linkFeatures = linkFeatures
    }

    enum CodingKeys: String, CodingKey {
        case id, name, region, latitude, longitude, httpURL, meshAddress, load, draining, started, linkFeatures
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try hexID(c, .id)
        self.name = try c.decode(String.self, forKey: .name)
        self.region = try c.decode(String.self, forKey: .region)
        self.latitude = try c.decodeIfPresent(Double.self, forKey: .latitude)
        self.longitude = try c.decodeIfPresent(Double.self, forKey: .longitude)
        self.httpURL = try c.decode(String.self, forKey: .httpURL)
        self.meshAddress = try c.decode(String.self, forKey: .meshAddress)
        self.load = try c.decode(NodeLoad.self, forKey: .load)
        self.draining = try c.decode(Bool.self, forKey: .draining)
        self.started = try c.decode(String.self, forKey: .started)
        self.linkFeatures = try c.decodeIfPresent([String].self, forKey: .linkFeatures) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(NodeIDText.format(self.id), forKey: .id)
        try c.encode(self.name, forKey: .name)
        try c.encode(self.region, forKey: .region)
        try c.encodeIfPresent(self.latitude, forKey: .latitude)
        try c.encodeIfPresent(self.longitude, forKey: .longitude)
        try c.encode(self.httpURL, forKey: .httpURL)
        try c.encode(self.meshAddress, forKey: .meshAddress)
        try c.encode(self.load, forKey: .load)
        try c.encode(self.draining, forKey: .draining)
        try c.encode(self.started, forKey: .started)
        if !self.linkFeatures.isEmpty { try c.encode(self.linkFeatures, forKey: .linkFeatures) }
    }
}

/// One measured outgoing link of a node, as the scheduler's link-state graph takes it.
public struct LinkRecord: Codable, Sendable, Hashable {
    public var from: UInt64
    public var to: UInt64
    /// Round-trip time, milliseconds.
    public var rttMs: Double
    /// Packet loss, 0...1.
    public var loss: Double
    public var jitterMs: Double
    /// Capacity left on the link, kbit/s.
    public var spareKbps: Int

    public init(from: UInt64, to: UInt64, rttMs: Double, loss: Double = 0, jitterMs: Double = 0, spareKbps: Int = 0) {
        self.from = from
        self.to = to
        self.rttMs = rttMs
        self.loss = loss
        self.jitterMs = jitterMs
        self.spareKbps = spareKbps
    }

    enum CodingKeys: String, CodingKey { case from, to, rttMs, loss, jitterMs, spareKbps }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.from = try hexID(c, .from)
        self.to = try hexID(c, .to)
        self.rttMs = try c.decode(Double.self, forKey: .rttMs)
        self.loss = try c.decode(Double.self, forKey: .loss)
        self.jitterMs = try c.decode(Double.self, forKey: .jitterMs)
        self.spareKbps = try c.decode(Int.self, forKey: .spareKbps)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(NodeIDText.format(self.from), forKey: .from)
        try c.encode(NodeIDText.format(self.to), forKey: .to)
        try c.encode(self.rttMs, forKey: .rttMs)
        try c.encode(self.loss, forKey: .loss)
        try c.encode(self.jitterMs, forKey: .jitterMs)
        try c.encode(self.spareKbps, forKey: .spareKbps)
    }
}

/// A track in the room directory: which node it originates on, so subscribers elsewhere know where to
/// pull it from. Lives under the origin's lease: a dead node's tracks vanish with it.
public struct TrackRecord: Codable, Sendable, Hashable {
    public var room: String
    /// The track's id, unique in the cluster (`"9f2c3a1b00d4e7f2/17"`: origin node and number).
    public var id: String
    /// The node the track is published on.
    public var origin: UInt64
    /// The node's own description of the track (codecs, layers…), opaque here; base64 in the JSON.
    public var payload: Data

    public init(room: String, id: String, origin: UInt64, payload: Data = Data()) {
        self.room = room
        self.id = id
        self.origin = origin
        self.payload = payload
    }

    /// The directory key of the track.
    public var key: TrackKey { TrackKey(room: self.room, id: self.id) }

    enum CodingKeys: String, CodingKey { case room, id, origin, payload }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.room = try c.decode(String.self, forKey: .room)
        self.id = try c.decode(String.self, forKey: .id)
        self.origin = try hexID(c, .origin)
        self.payload = try c.decode(Data.self, forKey: .payload)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.room, forKey: .room)
        try c.encode(self.id, forKey: .id)
        try c.encode(NodeIDText.format(self.origin), forKey: .origin)
        try c.encode(self.payload, forKey: .payload)
    }
}

/// An edge function of the mesh (`functions/<room>/<id>`): what it is (the operator's request) and which
/// node runs it. Unlike every other record it lives under no lease: it must outlive the node that runs it,
/// so that when that node is lost the leader can start it on another (and rewrite ``node``). Written by
/// the node that starts it, rewritten by the leader when it moves, deleted by `DELETE` on any node.
public struct FunctionRecord: Codable, Sendable, Hashable {
    public var room: String
    /// Unique in the mesh: the node that first placed it and a number (`"9f2c3a1b00d4e7f2-fn-3"`); kept
    /// across moves.
    public var id: String
    /// The node that runs it (or is to run it, just after a move).
    public var node: UInt64
    /// The operator's request body, JSON text (`{"kind", "inputs", "parameters"}`): what a new node
    /// starts when the function moves.
    public var request: String
    /// How many times it moved because its node was lost.
    public var moves: Int
    /// When it was first started (ISO 8601).
    public var created: String

    public init(room: String, id: String, node: UInt64, request: String, moves: Int = 0, created: String = Date().formatted(.iso8601)) {
        self.room = room
        self.id = id
        self.node = node
        self.request = request
        self.moves = moves
        self.created = created
    }

    /// The function's key.
    public var key: FunctionKey { FunctionKey(room: self.room, id: self.id) }

    enum CodingKeys: String, CodingKey { case room, id, node, request, moves, created }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.room = try c.decode(String.self, forKey: .room)
        self.id = try c.decode(String.self, forKey: .id)
        self.node = try hexID(c, .node)
        self.request = try c.decode(String.self, forKey: .request)
        self.moves = try c.decodeIfPresent(Int.self, forKey: .moves) ?? 0
        self.created = try c.decodeIfPresent(String.self, forKey: .created) ?? ""
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.room, forKey: .room)
        try c.encode(self.id, forKey: .id)
        try c.encode(NodeIDText.format(self.node), forKey: .node)
        try c.encode(self.request, forKey: .request)
        try c.encode(self.moves, forKey: .moves)
        try c.encode(self.created, forKey: .created)
    }
}

/// A function's place in the cluster state: room and function id.
public struct FunctionKey: Sendable, Hashable, Comparable {
    public var room: String
    public var id: String

    public init(room: String, id: String) {
        self.room = room
        self.id = id
    }

    public static func < (a: FunctionKey, b: FunctionKey) -> Bool {
        (a.room, a.id) < (b.room, b.id)
    }
}

/// A track's place in the directory: room and track id.
public struct TrackKey: Sendable, Hashable, Comparable {
    public var room: String
    public var id: String

    public init(room: String, id: String) {
        self.room = room
        self.id = id
    }

    public static func < (a: TrackKey, b: TrackKey) -> Bool {
        (a.room, a.id) < (b.room, b.id)
    }
}

/// The whole cluster state at one store revision.
public struct ClusterSnapshot: Sendable, Hashable {
    /// The store revision it was read at: ``ClusterStore/events(after:)`` continues from the next one.
    public var revision: Int64
    public var nodes: [UInt64: NodeRecord]
    /// Each node's outgoing links, by origin node.
    public var links: [UInt64: [LinkRecord]]
    public var tracks: [TrackKey: TrackRecord]
    /// The elected leader (scheduler), if any.
    public var leader: UInt64?
    /// The mesh's edge functions and where each runs.
    public var functions: [FunctionKey: FunctionRecord]

    public init(
        revision: Int64 = 0, nodes: [UInt64: NodeRecord] = [:], links: [UInt64: [LinkRecord]] = [:],
        tracks: [TrackKey: TrackRecord] = [:], leader: UInt64? = nil, functions: [FunctionKey: FunctionRecord] = [:]
    ) {
        self.revision = revision
        self.nodes = nodes
        self.links = links
        self.tracks = tracks
        self.leader = leader
        self.functions = functions
    }
}

/// One change of the cluster state.
public enum ClusterEvent: Sendable, Hashable {
    /// A node registered (or came back after its lease had expired).
    case nodeUp(NodeRecord)
    /// A registered node changed its record (load, draining).
    case nodeChanged(NodeRecord)
    /// A node left or its lease expired.
    case nodeDown(UInt64)
    /// A node's outgoing links were replaced (empty: the node is gone).
    case linksChanged(from: UInt64, links: [LinkRecord])
    /// A track was published or its record replaced.
    case trackPublished(TrackRecord)
    /// A track was withdrawn, or vanished with its origin's lease.
    case trackWithdrawn(room: String, id: String, origin: UInt64?)
    /// The leader changed; nil while there is none.
    case leaderChanged(UInt64?)
    /// An edge function was placed, or moved to another node (its record written).
    case functionPlaced(FunctionRecord)
    /// An edge function was deleted; `node` is the one that ran it, when known.
    case functionRemoved(room: String, id: String, node: UInt64?)
}

/// Whether the store can currently be reached.
public enum ClusterHealth: Sendable, Hashable {
    case healthy
    /// The last operation or keepalive could not reach the store; the node keeps running on what it
    /// knows and recovers when the store returns.
    case degraded(reason: String)

    public var isHealthy: Bool { self == .healthy }
}

private func hexID<K: CodingKey>(_ container: KeyedDecodingContainer<K>, _ key: K) throws -> UInt64 {
    let text = try container.decode(String.self, forKey: key)
    guard let id = NodeIDText.parse(text) else {
        throw DecodingError.dataCorruptedError(
            forKey: key, in: container, debugDescription: "not a 16-hex-digit node id: \(text)")
    }
    return id
}
