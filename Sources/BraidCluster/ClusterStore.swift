import Foundation

/// The cluster state a node shares with the others: the node registry, the link-state graph, the
/// room/track directory and the leader (the scheduler), each entry owned by one node and tied to that
/// node's lease, so that a node that dies takes all its entries with it (no stale state to clean up).
/// The one exception is the edge functions' records (``placeFunction(_:)``): they must outlive the node
/// that runs them, so that the leader can move them, and are deleted explicitly.
///
/// One store value serves one node: ``join(node:)`` makes it that node. Two implementations:
/// ``EtcdClusterStore`` (a real cluster, etcd) and ``InMemoryClusterStore`` (one process; several
/// in-process nodes share one ``InMemoryCluster``), with the same behaviour.
///
/// Reading: ``snapshot()`` then ``events(after:)`` (or ``subscribe()``): the events continue exactly after
/// the snapshot's revision, so nothing is missed or applied twice.
///
/// Failures: when the store is unreachable, operations throw (``EtcdError/unreachable(urls:reason:)``)
/// without waiting long, ``health`` turns degraded and the node keeps running on what it knows. Once
/// the store answers again, writes and withdrawals that failed meanwhile are applied, and everything
/// the node owns is written again under a new lease if the old one was lost.
public protocol ClusterStore: Sendable {
    /// Registers `node` under a new lease and keeps the lease alive in the background. If the lease is
    /// lost (expired while the node could not reach the store), a new one is granted and everything the
    /// node owns (record, links, tracks, candidacy) is written again.
    func join(node: NodeRecord) async throws

    /// Changes this node's load and/or draining flag (nil leaves a field as it is).
    func updateNode(load: NodeLoad?, draining: Bool?) async throws

    /// Leaves the cluster: revokes the lease, so every key of this node disappears at once, and stops
    /// the background tasks. The store can join again afterwards. If the store is unreachable this
    /// throws, and the keys vanish when the lease expires (TTL) instead.
    func leave() async throws

    /// Replaces this node's measured outgoing links (about once a second; one key per node).
    func publishLinks(_ links: [LinkRecord]) async throws

    /// Publishes (or replaces) a track of this node in the directory. `track.origin` must be this node.
    func publishTrack(_ track: TrackRecord) async throws

    /// Withdraws a track this node published.
    func withdrawTrack(room: String, id: String) async throws

    /// Writes (or replaces) an edge function's record, under no lease: it outlives every node, the one
    /// that runs it included, until ``removeFunction(room:id:)``. Any member may write any function's
    /// record (the node that starts it, the leader that moves it).
    func placeFunction(_ function: FunctionRecord) async throws

    /// Replaces `current` by `new` (same room and id: a move) only if the stored record still is `current`:
    /// returns false, writing nothing, if it was changed or deleted meanwhile (a `DELETE` racing a move
    /// must not bring the function back).
    func replaceFunction(_ current: FunctionRecord, with new: FunctionRecord) async throws -> Bool

    /// Deletes an edge function's record (nothing if there is none).
    func removeFunction(room: String, id: String) async throws

    /// The whole state, read now.
    func snapshot() async throws -> ClusterSnapshot

    /// The changes after `snapshot`'s revision, as they happen, until the consumer stops iterating.
    /// The stream survives store outages (it catches up when the store is back).
    func events(after snapshot: ClusterSnapshot) -> AsyncStream<ClusterEvent>

    /// Starts campaigning for leadership in the background (after ``join(node:)``). At most one node
    /// leads at a time; leadership ends with its lease (leave, crash) and passes to another candidate.
    func campaign() async throws

    /// Stops campaigning and, if this node leads, hands the leadership over (another candidate takes it),
    /// while staying a member: e.g. for a draining node.
    func resign() async throws

    /// Whether this node currently holds the leadership.
    var isLeader: Bool { get async }

    /// Whether the store was reachable at the last operation or keepalive.
    var health: ClusterHealth { get async }

    /// The lease this node's keys live under, while joined.
    var leaseID: Int64? { get async }

    /// Stops background work and releases connections, without revoking the lease (use ``leave()`` for
    /// that). Call once when the store is no longer used.
    func shutdown() async
}

extension ClusterStore {
    /// A snapshot and the events that follow it.
    public func subscribe() async throws -> (snapshot: ClusterSnapshot, events: AsyncStream<ClusterEvent>) {
        let snapshot = try await self.snapshot()
        return (snapshot, self.events(after: snapshot))
    }
}

/// Misuse of a ``ClusterStore``.
public enum ClusterStoreError: Error, Sendable, Hashable {
    /// The operation needs ``ClusterStore/join(node:)`` first.
    case notJoined
    /// A node may only publish tracks it originates (their lifetime is its lease).
    case notOrigin(track: String, origin: UInt64)
    /// The store was already joined as a node.
    case alreadyJoined
}
