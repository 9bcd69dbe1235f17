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
final class WebRTCShardDirectory: Sendable {
    struct Placement: Sendable {
        var shard: Int
        var room: String
        var direction: WebRTCDirection
        var ufrags: [ICEUfragKey]
    }

    private struct State {
        var byID: [String: Placement] = [:]
        var byUfrag: [ICEUfragKey: Int] = [:]
        var sessionsPerShard: [Int]
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
        self.state.withLockedValue { state in
            let ufrags = ufrag.map { [$0] } ?? []
            state.byID[id] = Placement(shard: shard, room: room, direction: direction, ufrags: ufrags)
            for key in ufrags { state.byUfrag[key] = shard }
            if state.sessionsPerShard.indices.contains(shard) { state.sessionsPerShard[shard] += 1 }
        }
    }

    /// A session ended.
    func remove(id: String) {
        self.state.withLockedValue { state in
            guard let placement = state.byID.removeValue(forKey: id) else { return }
            for key in placement.ufrags where state.byUfrag[key] == placement.shard { state.byUfrag[key] = nil }
            if state.sessionsPerShard.indices.contains(placement.shard) {
                state.sessionsPerShard[placement.shard] -= 1
            }
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
