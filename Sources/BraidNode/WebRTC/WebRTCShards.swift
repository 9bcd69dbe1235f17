import BraidICE
import BraidSFU
import BraidWire
import NIOConcurrencyHelpers
import NIOCore

/// What one media event loop holds and passes on (the dashboard's `forwarding.event_loops`).
public struct WebRTCEventLoopStatus: Sendable, Equatable, Codable {
    /// The loop's index (``WebRTCSessionStatus/eventLoop``).
    public var index: Int
    /// Sessions it holds.
    public var sessions: Int
    /// Datagrams other loops received for its sessions and handed over.
    public var handedOffIn: UInt64
    /// Packets of its tracks it relayed to the other loops (one copy per packet per loop that pulls it).
    public var relayedOut: UInt64
    /// Packets of other loops' tracks it received to forward to its own subscribers.
    public var relayedIn: UInt64
    /// Tracks of other loops mirrored here.
    public var mirroredTracks: Int

    public init(
        index: Int, sessions: Int = 0, handedOffIn: UInt64 = 0, relayedOut: UInt64 = 0, relayedIn: UInt64 = 0,
        mirroredTracks: Int = 0
    ) {
        self.index = index
        self.sessions = sessions
        self.handedOffIn = handedOffIn
        self.relayedOut = relayedOut
        self.relayedIn = relayedIn
        self.mirroredTracks = mirroredTracks
    }

    enum CodingKeys: String, CodingKey {
        case index, sessions
        case handedOffIn = "handed_off_in"
        case relayedOut = "relayed_out"
        case relayedIn = "relayed_in"
        case mirroredTracks = "mirrored_tracks"
    }
}

/// One event loop's share of the media path: its socket (all bound to the same port with SO_REUSEPORT),
/// its ``WebRTCSessionStore`` and forwarding router.
struct WebRTCShard: Sendable {
    let index: Int
    let eventLoop: any EventLoop
    let store: NIOLoopBound<WebRTCSessionStore>
}

/// Which shard holds each session: the only state the shards share, behind one lock.
///
/// A session lives on the shard chosen when it was created (the one holding the fewest sessions). The
/// kernel spreads the clients' 4-tuples over the shards' sockets by hash, so a datagram may arrive on
/// another shard: that shard finds the owner here once per remote address (by the STUN USERNAME's ufrag)
/// and from then on hands the address's datagrams to the owner itself, without the lock. No lock is taken
/// on the packet path of a session whose datagrams arrive on its own shard.
///
/// It also counts sessions per room and per client address, so that the session limits (`limits.sessions`,
/// `sessions_per_address`, `sessions_per_room`) are checked and the session placed in one step.
final class WebRTCShardDirectory: Sendable {
    struct Placement: Sendable {
        var shard: Int
        var room: String
        var direction: WebRTCDirection
        var ufrags: [ICEUfragKey]
        /// The client's IP address (of the HTTP request that created the session), when known.
        var address: String? = nil
    }

    /// Which session limit refused a new session.
    enum Refusal: Sendable, Equatable {
        /// `limits.sessions`: the node is full (503).
        case sessions
        /// `limits.sessions_per_address`: the client's address holds its maximum (429).
        case sessionsPerAddress
        /// `limits.sessions_per_room`: the room is full (503).
        case sessionsPerRoom
    }

    private struct State {
        var byID: [String: Placement] = [:]
        var byUfrag: [ICEUfragKey: Int] = [:]
        var sessionsPerShard: [Int]
        var perAddress: [String: Int] = [:]
        var perRoom: [String: Int] = [:]
        var refusals = WebRTCLimitCounters()
    }

    private let state: NIOLockedValueBox<State>

    init(shards: Int) {
        self.state = NIOLockedValueBox(State(sessionsPerShard: Array(repeating: 0, count: max(1, shards))))
    }

    /// The shard with the fewest sessions (the lowest index on a tie).
    func leastLoadedShard() -> Int {
        self.state.withLockedValue { state in
            state.sessionsPerShard.indices.min { state.sessionsPerShard[$0] < state.sessionsPerShard[$1] } ?? 0
        }
    }

    func place(id: String, room: String, direction: WebRTCDirection, ufrag: ICEUfragKey?, shard: Int) {
        _ = self.place(
            id: id, room: room, direction: direction, ufrag: ufrag, shard: shard, address: nil,
            limits: (sessions: Int.max, perAddress: 0, perRoom: Int.max))
    }

    /// Places a session unless a limit refuses it (then counts the refusal and returns which).
    ///
    /// - Parameter limits: most sessions in all, per address (0: no limit) and per room.
    func place(
        id: String, room: String, direction: WebRTCDirection, ufrag: ICEUfragKey?, shard: Int, address: String?,
        limits: (sessions: Int, perAddress: Int, perRoom: Int)
    ) -> Refusal? {
        self.state.withLockedValue { state -> Refusal? in
            if let refusal = Self.refusal(&state, room: room, address: address, limits: limits) { return refusal }
            let ufrags = ufrag.map { [$0] } ?? []
            state.byID[id] = Placement(shard: shard, room: room, direction: direction, ufrags: ufrags, address: address)
            for key in ufrags { state.byUfrag[key] = shard }
            if state.sessionsPerShard.indices.contains(shard) { state.sessionsPerShard[shard] += 1 }
            if let address { state.perAddress[address, default: 0] += 1 }
            state.perRoom[room, default: 0] += 1
            return nil
        }
    }

    /// Which limit, if any, refuses a new session of `room` from `address` now (counted). A check before the
    /// work of answering; ``place(id:room:direction:ufrag:shard:address:limits:)`` checks again.
    func refusal(room: String, address: String?, limits: (sessions: Int, perAddress: Int, perRoom: Int)) -> Refusal? {
        self.state.withLockedValue { Self.refusal(&$0, room: room, address: address, limits: limits) }
    }

    private static func refusal(
        _ state: inout State, room: String, address: String?, limits: (sessions: Int, perAddress: Int, perRoom: Int)
    ) -> Refusal? {
        if state.byID.count >= limits.sessions {
            state.refusals.refusedSessions &+= 1
            return .sessions
        }
        if let address, limits.perAddress > 0, state.perAddress[address, default: 0] >= limits.perAddress {
            state.refusals.refusedPerAddress &+= 1
            return .sessionsPerAddress
        }
        if state.perRoom[room, default: 0] >= limits.perRoom {
            state.refusals.refusedPerRoom &+= 1
            return .sessionsPerRoom
        }
        return nil
    }

    /// Counts an offer refused for having more media sections than `limits.transceivers_per_offer`.
    func countTransceiverRefusal() {
        self.state.withLockedValue { $0.refusals.refusedTransceivers &+= 1 }
    }

    /// The refusals counted so far (the other fields are zero).
    var refusals: WebRTCLimitCounters { self.state.withLockedValue { $0.refusals } }

    /// Sessions of the client address `address` now.
    func sessions(address: String) -> Int { self.state.withLockedValue { $0.perAddress[address] ?? 0 } }

    /// Sessions of room `room` now.
    func sessions(room: String) -> Int { self.state.withLockedValue { $0.perRoom[room] ?? 0 } }

    /// A session ended.
    func remove(id: String) {
        self.state.withLockedValue { state in
            guard let placement = state.byID.removeValue(forKey: id) else { return }
            for key in placement.ufrags where state.byUfrag[key] == placement.shard { state.byUfrag[key] = nil }
            if state.sessionsPerShard.indices.contains(placement.shard) {
                state.sessionsPerShard[placement.shard] -= 1
            }
            if let address = placement.address {
                let left = (state.perAddress[address] ?? 1) - 1
                state.perAddress[address] = left > 0 ? left : nil
            }
            let left = (state.perRoom[placement.room] ?? 1) - 1
            state.perRoom[placement.room] = left > 0 ? left : nil
        }
    }

    /// An ICE restart: the session answers `ufrag` too from now on.
    func addUfrag(_ ufrag: ICEUfragKey, id: String) {
        self.state.withLockedValue { state in
            guard let shard = state.byID[id]?.shard else { return }
            state.byID[id]?.ufrags.append(ufrag)
            state.byUfrag[ufrag] = shard
        }
    }

    func placement(id: String) -> Placement? {
        self.state.withLockedValue { $0.byID[id] }
    }

    func shard(ufrag: ICEUfragKey) -> Int? {
        self.state.withLockedValue { $0.byUfrag[ufrag] }
    }

    /// Whether `id` is a live WHIP session of `room`, on any shard.
    func isPublishing(id: String, room: String) -> Bool {
        self.state.withLockedValue { state in
            guard let placement = state.byID[id] else { return false }
            return placement.room == room && placement.direction == .publish
        }
    }

    var count: Int { self.state.withLockedValue { $0.byID.count } }
}

/// What the limits against exhaustion refused and dropped (the dashboard's `limits` section). Wrapping
/// arithmetic.
public struct WebRTCLimitCounters: Sendable, Equatable, Codable {
    /// New sessions refused because the node held `limits.sessions` (503).
    public var refusedSessions: UInt64 = 0
    /// New sessions refused because the client's address held `limits.sessions_per_address` (429).
    public var refusedPerAddress: UInt64 = 0
    /// New sessions refused because the room held `limits.sessions_per_room` (503).
    public var refusedPerRoom: UInt64 = 0
    /// Offers refused for more media sections than `limits.transceivers_per_offer` (400).
    public var refusedTransceivers: UInt64 = 0
    /// Sessions removed for not completing ICE and DTLS within `limits.handshake_timeout_seconds`.
    public var handshakeTimeouts: UInt64 = 0
    /// Datagrams dropped by `limits.unverified_packets_per_second` (also the media drop reason
    /// `unverified_rate_limit`).
    public var unverifiedPacketsDropped: UInt64 = 0
    /// Packets dropped by `limits.outbound_queue_packets` (a session's queue while the socket was full).
    public var outboundQueueDropped: UInt64 = 0
    /// Sessions still in their ICE and DTLS handshake now (a gauge).
    public var handshaking: Int = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case refusedSessions = "refused_sessions"
        case refusedPerAddress = "refused_sessions_per_address"
        case refusedPerRoom = "refused_sessions_per_room"
        case refusedTransceivers = "refused_transceivers_per_offer"
        case handshakeTimeouts = "handshake_timeouts"
        case unverifiedPacketsDropped = "unverified_packets_dropped"
        case outboundQueueDropped = "outbound_queue_dropped"
        case handshaking
    }

    static func + (lhs: WebRTCLimitCounters, rhs: WebRTCLimitCounters) -> WebRTCLimitCounters {
        var sum = WebRTCLimitCounters()
        sum.refusedSessions = lhs.refusedSessions &+ rhs.refusedSessions
        sum.refusedPerAddress = lhs.refusedPerAddress &+ rhs.refusedPerAddress
        sum.refusedPerRoom = lhs.refusedPerRoom &+ rhs.refusedPerRoom
        sum.refusedTransceivers = lhs.refusedTransceivers &+ rhs.refusedTransceivers
        sum.handshakeTimeouts = lhs.handshakeTimeouts &+ rhs.handshakeTimeouts
        sum.unverifiedPacketsDropped = lhs.unverifiedPacketsDropped &+ rhs.unverifiedPacketsDropped
        sum.outboundQueueDropped = lhs.outboundQueueDropped &+ rhs.outboundQueueDropped
        sum.handshaking = lhs.handshaking + rhs.handshaking
        return sum
    }
}
