import Logging

/// The cluster state in etcd (a real multi-node cluster), over ``EtcdClient``.
///
/// Key layout under the prefix (default `/braid/`); values are JSON; every key but the functions' is
/// attached to the lease of the node that owns it, so a node's keys all vanish when it leaves or dies:
///
/// ```
///  /braid/
///  ├── nodes/<id: 16 hex>            NodeRecord                 lease: that node
///  ├── links/<from: 16 hex>          [LinkRecord]               lease: node `from` (one key per node,
///  │                                                            rewritten about once a second)
///  ├── tracks/<room>/<track id>      TrackRecord                lease: the track's origin node
///  │                                 (room and id percent-escape "/" and "%")
///  ├── leader                        {"id": <16 hex>}           lease: the leader; created only if absent
///  │                                                            (txn: create_revision == 0)
///  └── functions/<room>/<function id> FunctionRecord            no lease: outlives its node, so the leader
///                                    (escaped as tracks; node:  can restart it elsewhere; written by the
///                                    the runner, request JSON)  node that starts it or the leader that
///                                                               moves it, deleted by DELETE on any node
/// ```
///
/// Readers take one range of the prefix (``snapshot()``) and watch the prefix from the revision after
/// it (``events(after:)``). Leader election is a CAS on the leased `leader` key rather than etcd's
/// election API: the same guarantee (one holder, gone with its lease), and the followers' watch is the
/// one they need anyway because `election/observe` says nothing when the leader disappears.
public final class EtcdClusterStore: ClusterStore {
    /// The connection to etcd, owned by this store (``shutdown()`` closes it).
    public let client: EtcdClient
    private let core: LeasedClusterStore

    /// A store over etcd at `endpoints` (several members: a call moves to the next when one fails).
    ///
    /// - Parameters:
    ///   - prefix: where Braid's keys live; several clusters can share one etcd under different prefixes.
    ///   - ttl: lease TTL in seconds: how long a node that stopped renewing stays listed. Renewed every TTL/3.
    public convenience init(
        endpoints: [String], prefix: String = "/braid/", ttl: Int64 = 3, logger: Logger = Logger(label: "braid.cluster")
    ) {
        self.init(client: EtcdClient(endpoints: endpoints, logger: logger), prefix: prefix, ttl: ttl, logger: logger)
    }

    /// A store over `client`, which it takes ownership of.
    public init(client: EtcdClient, prefix: String = "/braid/", ttl: Int64 = 3, logger: Logger = Logger(label: "braid.cluster")) {
        self.client = client
        self.core = LeasedClusterStore(backend: client, prefix: prefix, ttl: ttl, logger: logger)
    }

    public func join(node: NodeRecord) async throws { try await self.core.join(node: node) }
    public func updateNode(load: NodeLoad? = nil, draining: Bool? = nil) async throws {
        try await self.core.updateNode(load: load, draining: draining)
    }
    public func leave() async throws { try await self.core.leave() }
    public func publishLinks(_ links: [LinkRecord]) async throws { try await self.core.publishLinks(links) }
    public func publishTrack(_ track: TrackRecord) async throws { try await self.core.publishTrack(track) }
    public func withdrawTrack(room: String, id: String) async throws {
        try await self.core.withdrawTrack(room: room, id: id)
    }
    public func placeFunction(_ function: FunctionRecord) async throws { try await self.core.placeFunction(function) }
    public func replaceFunction(_ current: FunctionRecord, with new: FunctionRecord) async throws -> Bool {
        try await self.core.replaceFunction(current, with: new)
    }
    public func removeFunction(room: String, id: String) async throws {
        try await self.core.removeFunction(room: room, id: id)
    }
    public func snapshot() async throws -> ClusterSnapshot { try await self.core.snapshot() }
    public func events(after snapshot: ClusterSnapshot) -> AsyncStream<ClusterEvent> {
        self.core.events(after: snapshot)
    }
    public func campaign() async throws { try await self.core.campaign() }
    public func resign() async throws { try await self.core.resign() }
    public var isLeader: Bool { get async { await self.core.isLeader } }
    public var health: ClusterHealth { get async { await self.core.health } }
    public var leaseID: Int64? { get async { await self.core.lease } }
    public func shutdown() async { await self.core.shutdown() }
}
