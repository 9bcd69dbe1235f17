import Foundation
import Logging
import Synchronization

/// The node's side of the cluster state, over any ``ClusterBackend``: what ``EtcdClusterStore`` and
/// ``InMemoryClusterStore`` both are.
///
/// It remembers everything the node owns (record, links, tracks, candidacy) so that a lost lease costs
/// nothing but a rewrite: the keepalive loop grants a new lease and writes it all again. A write that
/// fails because its lease is gone triggers the same rewrite at once.
actor LeasedClusterStore {
    nonisolated let backend: any ClusterBackend
    nonisolated let keys: ClusterKeys
    nonisolated let ttl: Int64
    nonisolated let logger: Logger
    /// Event streams' pumps, cancelled by ``shutdown()``.
    private nonisolated let streams = Mutex<[UInt64: Task<Void, Never>]>([:])
    private nonisolated let nextStream = Atomic<UInt64>(0)

    private var node: NodeRecord?
    private(set) var lease: Int64?
    private var links: [LinkRecord]?
    private var tracks: [TrackKey: TrackRecord] = [:]
    /// Set when owned keys may differ from what is stored: a new lease was granted and not every key
    /// could be written under it yet, or a write failed while the store was unreachable. The keepalive
    /// loop writes everything again once the store answers.
    private var needsRewrite = false
    /// Bumped whenever `needsRewrite` is set, so that a rewrite that ran concurrently with a new failure
    /// does not clear the flag.
    private var dirtyGeneration = 0
    /// When the lease was last known alive (granted or renewed).
    private var lastRenewal = ContinuousClock.now
    /// Track keys withdrawn while the store was unreachable: deleted once it answers (else they would
    /// live on as long as the lease).
    private var pendingDeletes: Set<String> = []
    private var campaigning = false
    private(set) var isLeader = false
    /// The create revision of the leader key this node holds: identifies it for ``resign()``.
    private var leaderKeyRevision: Int64?
    private(set) var health: ClusterHealth = .healthy
    private var keepAliveTask: Task<Void, Never>?
    private var campaignTask: Task<Void, Never>?

    init(backend: any ClusterBackend, prefix: String, ttl: Int64, logger: Logger) {
        self.backend = backend
        self.keys = ClusterKeys(prefix: prefix)
        self.ttl = max(ttl, 1)
        self.logger = logger
    }

    /// Every call to the backend goes through here, so that ``health`` follows reachability.
    private func observe<T: Sendable>(_ operation: () async throws -> T) async throws -> T {
        do {
            let result = try await operation()
            self.health = .healthy
            return result
        } catch let error as EtcdError {
            if case .unreachable = error {
                self.health = .degraded(reason: error.description)
            }
            throw error
        }
    }

    // MARK: - Membership

    func join(node: NodeRecord) async throws {
        guard self.node == nil else { throw ClusterStoreError.alreadyJoined }
        let lease = try await self.observe { try await self.backend.grantLease(ttl: self.ttl) }.id
        do {
            _ = try await self.observe {
                try await self.backend.put(self.keys.node(node.id), value: try Self.encode(node), lease: lease)
            }
        } catch {
            try? await self.backend.revoke(lease)
            throw error
        }
        self.node = node
        self.lease = lease
        self.lastRenewal = .now
        self.keepAliveTask = Task { await self.keepAliveLoop() }
    }

    func updateNode(load: NodeLoad?, draining: Bool?) async throws {
        guard var node = self.node else { throw ClusterStoreError.notJoined }
        if let load { node.load = load }
        if let draining { node.draining = draining }
        self.node = node
        try await self.writeOwned(self.keys.node(node.id), try Self.encode(node))
    }

    func leave() async throws {
        self.keepAliveTask?.cancel()
        self.campaignTask?.cancel()
        self.keepAliveTask = nil
        self.campaignTask = nil
        self.campaigning = false
        self.isLeader = false
        self.leaderKeyRevision = nil
        let lease = self.lease
        self.node = nil
        self.lease = nil
        self.links = nil
        self.tracks = [:]
        self.needsRewrite = false
        self.pendingDeletes = []
        if let lease {
            try await self.observe { try await self.backend.revoke(lease) }
        }
    }

    // MARK: - Links and tracks

    func publishLinks(_ links: [LinkRecord]) async throws {
        guard let node = self.node else { throw ClusterStoreError.notJoined }
        self.links = links
        try await self.writeOwned(self.keys.links(node.id), try Self.encode(links))
    }

    func publishTrack(_ track: TrackRecord) async throws {
        guard let node = self.node else { throw ClusterStoreError.notJoined }
        guard track.origin == node.id else { throw ClusterStoreError.notOrigin(track: track.id, origin: track.origin) }
        self.tracks[track.key] = track
        try await self.writeOwned(self.keys.track(track.key), try Self.encode(track))
    }

    func withdrawTrack(room: String, id: String) async throws {
        guard self.node != nil else { throw ClusterStoreError.notJoined }
        let key = TrackKey(room: room, id: id)
        guard self.tracks.removeValue(forKey: key) != nil else { return }
        do {
            _ = try await self.observe { try await self.backend.delete(self.keys.track(key)) }
        } catch {
            self.pendingDeletes.insert(self.keys.track(key))
            throw error
        }
    }

    // MARK: - Functions

    /// Function records belong to no node: written without a lease, not remembered for rewrites.
    func placeFunction(_ function: FunctionRecord) async throws {
        guard self.node != nil else { throw ClusterStoreError.notJoined }
        _ = try await self.observe {
            try await self.backend.put(self.keys.function(function.key), value: try Self.encode(function), lease: nil)
        }
    }

    /// Reads the stored record and swaps it with a compare on the bytes read, so that the check does not
    /// depend on how another node encoded it.
    func replaceFunction(_ current: FunctionRecord, with new: FunctionRecord) async throws -> Bool {
        guard self.node != nil else { throw ClusterStoreError.notJoined }
        guard current.key == new.key else { return false }  // a move, not a rename
        let key = self.keys.function(current.key)
        let range = try await self.observe { try await self.backend.range(prefix: key) }
        guard let stored = range.kvs.first(where: { $0.key == key }),
            (try? JSONDecoder().decode(FunctionRecord.self, from: stored.value)) == current
        else { return false }
        let value = try Self.encode(new)
        return try await self.observe { try await self.backend.replace(key, value: value, ifValue: stored.value) }
    }

    func removeFunction(room: String, id: String) async throws {
        guard self.node != nil else { throw ClusterStoreError.notJoined }
        _ = try await self.observe { try await self.backend.delete(self.keys.function(FunctionKey(room: room, id: id))) }
    }

    /// Writes a key this node owns under its lease; if the lease turns out to be gone, re-establishes
    /// (new lease, every owned key written again, this one included since the caller recorded it).
    private func writeOwned(_ key: String, _ value: Data) async throws {
        guard let lease = self.lease else { throw ClusterStoreError.notJoined }
        do {
            _ = try await self.observe { try await self.backend.put(key, value: value, lease: lease) }
        } catch let error as EtcdError where Self.isLeaseGone(error) {
            try await self.reestablish(lost: lease)
        } catch {
            // The caller learns of the failure; the keepalive loop still writes the new value once the
            // store answers, so the stored state converges to the node's.
            self.markDirty()
            throw error
        }
    }

    /// etcd answers a put under an unknown lease with 404 ("requested lease not found").
    private static func isLeaseGone(_ error: EtcdError) -> Bool {
        switch error {
        case .leaseLost: true
        case .status(let code, _, _): code == 404
        default: false
        }
    }

    // MARK: - Lease

    private var keepAliveInterval: Duration {
        .milliseconds(self.ttl * 1000 / 3)
    }

    /// Renews the lease every TTL/3 (two renewals may fail before it expires); retries every 500 ms
    /// while the store is unreachable or a rewrite is pending. After a successful renewal it catches up
    /// on writes and deletes that failed meanwhile.
    private func keepAliveLoop() async {
        while !Task.isCancelled {
            let retrying = !self.health.isHealthy || self.needsRewrite || !self.pendingDeletes.isEmpty
            try? await Task.sleep(for: retrying ? min(.milliseconds(500), self.keepAliveInterval) : self.keepAliveInterval)
            guard !Task.isCancelled, let lease = self.lease else { return }
            do {
                _ = try await self.observe { try await self.backend.keepAlive(lease) }
                self.lastRenewal = .now
                if self.leaderKeyRevision != nil, self.campaigning, !self.isLeader {
                    // Stepped down below while the store was unreachable; the lease and so the leader
                    // key survived (the campaign would have seen the key deleted otherwise).
                    self.isLeader = true
                }
                if self.needsRewrite {
                    try await self.rewriteOwned()
                }
                for key in self.pendingDeletes {
                    _ = try await self.observe { try await self.backend.delete(key) }
                    self.pendingDeletes.remove(key)
                }
            } catch let error as EtcdError where Self.isLeaseGone(error) {
                self.logger.warning("cluster lease \(String(lease, radix: 16)) lost; re-registering")
                do {
                    try await self.reestablish(lost: lease)
                } catch {
                    self.logger.warning("re-registering failed, retrying: \(error)")
                }
            } catch {
                self.logger.debug("cluster keepalive failed: \(error)")
                if self.isLeader, ContinuousClock.now - self.lastRenewal >= .seconds(self.ttl) {
                    // The lease may have expired without this node hearing of it (a partition): another
                    // node may lead by now, so stop acting as the leader until a renewal succeeds.
                    self.logger.warning("cluster lease not renewed for a TTL: stepping down as leader")
                    self.isLeader = false
                }
            }
        }
    }

    /// Replaces the lost lease `lost` by a new one and writes everything this node owns under it.
    /// Concurrent callers that lost the same lease share one new lease.
    private func reestablish(lost: Int64) async throws {
        if self.lease == lost {
            self.isLeader = false
            self.leaderKeyRevision = nil
            let granted = try await self.observe { try await self.backend.grantLease(ttl: self.ttl) }.id
            guard self.lease == lost else {
                // Another caller re-established meanwhile (or the node left): this lease is not needed.
                try? await self.backend.revoke(granted)
                return
            }
            self.lease = granted
            self.lastRenewal = .now
            self.markDirty()
            self.pendingDeletes = []  // gone with the old lease
        }
        if self.needsRewrite {
            try await self.rewriteOwned()
        }
    }

    private func markDirty() {
        self.needsRewrite = true
        self.dirtyGeneration += 1
    }

    private func rewriteOwned() async throws {
        guard let lease = self.lease, let node = self.node else { return }
        let generation = self.dirtyGeneration
        var writes: [(String, Data)] = [(self.keys.node(node.id), try Self.encode(node))]
        if let links = self.links {
            writes.append((self.keys.links(node.id), try Self.encode(links)))
        }
        for track in self.tracks.values.sorted(by: { $0.key < $1.key }) {
            writes.append((self.keys.track(track.key), try Self.encode(track)))
        }
        for (key, value) in writes {
            _ = try await self.observe { try await self.backend.put(key, value: value, lease: lease) }
        }
        if self.lease == lease, self.dirtyGeneration == generation {
            self.needsRewrite = false
        }
    }

    // MARK: - Leader

    func campaign() throws {
        guard self.node != nil else { throw ClusterStoreError.notJoined }
        guard !self.campaigning else { return }
        self.campaigning = true
        self.campaignTask = Task { await self.campaignLoop() }
    }

    /// Leader = the node whose lease holds the leader key, created only if absent (`create_revision ==
    /// 0`, so two candidates cannot both win). Everyone else watches the key and tries again when it is
    /// deleted: by the leader leaving, or by its lease expiring, which also ends the leader's own
    /// leadership (see `reestablish`).
    private func campaignLoop() async {
        while !Task.isCancelled, self.campaigning {
            guard let lease = self.lease, let node = self.node else { return }
            let holderRevision: Int64
            do {
                let value = try Self.encode(LeaderRecord(id: NodeIDText.format(node.id)))
                let result = try await self.observe {
                    try await self.backend.createIfAbsent(self.keys.leader, value: value, lease: lease)
                }
                switch result {
                case .created(let revision):
                    holderRevision = revision
                    self.isLeader = self.lease == lease
                    self.leaderKeyRevision = revision
                case .exists(let kv):
                    // Our own key when an earlier attempt's answer was lost.
                    holderRevision = kv.modRevision
                    self.isLeader = kv.lease == lease && self.lease == lease
                    self.leaderKeyRevision = self.isLeader ? kv.createRevision : nil
                }
                if Task.isCancelled || !self.campaigning {
                    // resign() or leave() ran while this attempt was in flight: do not keep what it won.
                    try? await self.giveUpLeadership()
                    return
                }
                if self.isLeader {
                    self.logger.info("cluster leader: this node (\(NodeIDText.format(node.id)))")
                }
            } catch {
                // Unreachable, or our lease is gone (the keepalive loop replaces it): try again shortly.
                try? await Task.sleep(for: .milliseconds(300))
                continue
            }
            await self.waitForDeletion(of: self.keys.leader, after: holderRevision)
            self.isLeader = false
            self.leaderKeyRevision = nil
        }
    }

    func resign() async throws {
        self.campaigning = false
        self.campaignTask?.cancel()
        self.campaignTask = nil
        try await self.giveUpLeadership()
    }

    /// Deletes the leader key if this node still holds the incarnation it created.
    private func giveUpLeadership() async throws {
        let revision = self.leaderKeyRevision
        self.isLeader = false
        self.leaderKeyRevision = nil
        if let revision {
            _ = try await self.observe { try await self.backend.delete(self.keys.leader, ifCreateRevision: revision) }
        }
    }

    /// Returns when `key` is deleted after revision `after` (or the task is cancelled, or the watch
    /// cannot resume).
    private nonisolated func waitForDeletion(of key: String, after revision: Int64) async {
        do {
            for try await batch in self.backend.watch(key: key, fromRevision: revision + 1) {
                for case .delete in batch.events {
                    return
                }
            }
        } catch {
            return
        }
    }

    // MARK: - Reading

    func snapshot() async throws -> ClusterSnapshot {
        let range = try await self.observe { try await self.backend.range(prefix: self.keys.prefix) }
        return ClusterSnapshot(range, keys: self.keys, logger: self.logger)
    }

    /// Watches the prefix from the revision after `snapshot`; when the watch cannot resume (history
    /// compacted), reads the state again and emits the difference.
    nonisolated func events(after snapshot: ClusterSnapshot) -> AsyncStream<ClusterEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: ClusterEvent.self)
        let id = self.nextStream.wrappingAdd(1, ordering: .relaxed).oldValue
        let task = Task {
            var model = snapshot
            while !Task.isCancelled {
                do {
                    for try await batch in self.backend.watch(prefix: self.keys.prefix, fromRevision: model.revision + 1) {
                        for event in batch.events {
                            for change in model.apply(event, keys: self.keys, logger: self.logger) {
                                continuation.yield(change)
                            }
                        }
                        model.revision = batch.revision
                    }
                    break  // the watch ended: cancelled or shut down
                } catch EtcdError.shutDown {
                    break
                } catch {
                    self.logger.info("cluster watch cannot resume (\(error)); reading the state again")
                }
                while !Task.isCancelled {
                    do {
                        let range = try await self.backend.range(prefix: self.keys.prefix)
                        let fresh = ClusterSnapshot(range, keys: self.keys, logger: self.logger)
                        for change in model.changes(to: fresh) {
                            continuation.yield(change)
                        }
                        model = fresh
                        break
                    } catch {
                        try? await Task.sleep(for: .milliseconds(500))
                    }
                }
            }
            continuation.finish()
            _ = self.streams.withLock { $0.removeValue(forKey: id) }
        }
        self.streams.withLock { $0[id] = task }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: - Shutdown

    func shutdown() async {
        self.keepAliveTask?.cancel()
        self.campaignTask?.cancel()
        self.campaigning = false
        let tasks = self.streams.withLock { streams in
            defer { streams.removeAll() }
            return Array(streams.values)
        }
        for task in tasks {
            task.cancel()
        }
        await self.backend.shutdown()
    }

    static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(value)
    }
}
