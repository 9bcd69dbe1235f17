import Logging

/// One node's view of an ``InMemoryCluster``: the same behaviour as ``EtcdClusterStore`` (leases,
/// re-registration, leader election, snapshot-then-events) without a service to run. Used by the
/// single-process deployment and by tests, where several in-process nodes share one cluster.
public final class InMemoryClusterStore: ClusterStore {
    /// The shared state this node reads and writes.
    public let cluster: InMemoryCluster
    private let core: LeasedClusterStore

    /// A node's store over `cluster` (keys under `prefix`, leases of `ttl` seconds: renewals happen every
    /// TTL/3 as with etcd, but only ``InMemoryCluster/expire(lease:)`` ends a lease).
    public init(
        cluster: InMemoryCluster, prefix: String = "/braid/", ttl: Int64 = 3,
        logger: Logger = Logger(label: "braid.cluster")
    ) {
        self.cluster = cluster
        self.core = LeasedClusterStore(backend: cluster, prefix: prefix, ttl: ttl, logger: logger)
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
