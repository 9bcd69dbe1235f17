import Foundation
import Synchronization

/// etcd's data model in one process, shared by the in-process nodes of a test or of a single-process
/// deployment: revisioned keys, leases that delete their keys, create-if-absent, and watches that
/// replay history from a revision. Each node uses its own ``InMemoryClusterStore`` over it.
///
/// Time does not pass here: leases do not expire by themselves. A test ends one with
/// ``expire(lease:)`` (what etcd does when a node stops renewing), and simulates losing the store with
/// ``setReachable(_:)``. Failures use ``EtcdError``'s cases so that the node handles one error type.
public final class InMemoryCluster: Sendable {
    private struct Watcher {
        var key: String
        /// false: exactly `key`; true: every key that starts with `key`.
        var isPrefix: Bool
        var continuation: AsyncThrowingStream<EtcdWatchBatch, any Error>.Continuation

        func matches(_ key: String) -> Bool {
            self.isPrefix ? key.hasPrefix(self.key) : key == self.key
        }
    }

    private struct State {
        var revision: Int64 = 1
        var kvs: [String: EtcdKeyValue] = [:]
        var leases: [Int64: Set<String>] = [:]
        var nextLease: Int64 = 0x7a00
        /// Every change, oldest first; the first `compacted` revisions are forgotten.
        var history: [(revision: Int64, event: EtcdWatchEvent)] = []
        var compacted: Int64 = 0
        var watchers: [UInt64: Watcher] = [:]
        var nextWatcher: UInt64 = 0
        var reachable = true
    }

    private let state = Mutex(State())
    /// How many changes the history keeps for watches that resume from an old revision.
    private let historyLimit: Int

    /// An empty store. `historyLimit` changes are kept for resuming watches; older ones are compacted.
    public init(historyLimit: Int = 10_000) {
        self.historyLimit = historyLimit
    }

    // MARK: - Test controls

    /// Ends lease `id` as if it had expired: its keys are deleted (one revision) and keepalives fail.
    public func expire(lease id: Int64) {
        self.state.withLock { self.revokeLocked(id, &$0) }
    }

    /// Simulates losing (`false`) and regaining the store: while unreachable, every operation throws
    /// ``EtcdError/unreachable(urls:reason:)``. Open watches stay open (there is nothing to deliver:
    /// no one can write).
    public func setReachable(_ reachable: Bool) {
        self.state.withLock { $0.reachable = reachable }
    }

    /// Forgets the history up to the current revision, as `etcdctl compact` does: watches that resume
    /// from an older revision get ``EtcdError/compacted(compactRevision:)``.
    public func compact() {
        self.state.withLock { state in
            state.compacted = state.revision
            state.history.removeAll()
        }
    }

    /// The ids of the leases alive now.
    public var leases: [Int64] {
        self.state.withLock { Array($0.leases.keys).sorted() }
    }

    // MARK: - Locked operations

    private func checkReachable(_ state: State) throws {
        guard state.reachable else {
            throw EtcdError.unreachable(urls: ["memory://"], reason: "simulated outage")
        }
    }

    /// Records one revision made of `events` and delivers it to matching watchers.
    private func commitLocked(_ events: [EtcdWatchEvent], _ state: inout State) {
        guard !events.isEmpty else { return }
        state.revision += 1
        for event in events {
            state.history.append((state.revision, event))
        }
        if state.history.count > self.historyLimit {
            let drop = state.history.count - self.historyLimit
            state.compacted = state.history[drop - 1].revision
            state.history.removeFirst(drop)
        }
        for watcher in state.watchers.values {
            let matching = events.filter { watcher.matches($0.key) }
            if !matching.isEmpty {
                watcher.continuation.yield(EtcdWatchBatch(revision: state.revision, events: matching))
            }
        }
    }

    private func revokeLocked(_ id: Int64, _ state: inout State) {
        guard let keys = state.leases.removeValue(forKey: id) else { return }
        let revision = state.revision + 1
        var events: [EtcdWatchEvent] = []
        for key in keys.sorted() {
            if let old = state.kvs.removeValue(forKey: key) {
                events.append(.delete(EtcdKeyValue(key: key, value: Data(), modRevision: revision), previous: old))
            }
        }
        self.commitLocked(events, &state)
    }

    private func putLocked(_ key: String, _ value: Data, lease: Int64?, _ state: inout State) throws -> Int64 {
        let lease = lease ?? 0
        if lease != 0 {
            guard state.leases[lease] != nil else {
                throw EtcdError.status(code: 404, message: "etcdserver: requested lease not found", url: "memory://")
            }
        }
        let revision = state.revision + 1
        let old = state.kvs[key]
        if let old, old.lease != 0, old.lease != lease {
            state.leases[old.lease]?.remove(key)
        }
        let kv = EtcdKeyValue(
            key: key, value: value, createRevision: old?.createRevision ?? revision, modRevision: revision, lease: lease)
        state.kvs[key] = kv
        if lease != 0 {
            state.leases[lease]?.insert(key)
        }
        self.commitLocked([.put(kv, previous: old)], &state)
        return revision
    }
}

extension InMemoryCluster: ClusterBackend {
    func put(_ key: String, value: Data, lease: Int64?) async throws -> Int64 {
        try self.state.withLock { state in
            try self.checkReachable(state)
            return try self.putLocked(key, value, lease: lease, &state)
        }
    }

    func delete(_ key: String) async throws -> Int64 {
        try self.state.withLock { state in
            try self.checkReachable(state)
            guard let old = state.kvs.removeValue(forKey: key) else { return 0 }
            if old.lease != 0 {
                state.leases[old.lease]?.remove(key)
            }
            let kv = EtcdKeyValue(key: key, value: Data(), modRevision: state.revision + 1)
            self.commitLocked([.delete(kv, previous: old)], &state)
            return 1
        }
    }

    func delete(_ key: String, ifCreateRevision createRevision: Int64) async throws -> Bool {
        let current = try self.state.withLock { state in
            try self.checkReachable(state)
            return state.kvs[key]?.createRevision
        }
        guard current == createRevision else { return false }
        return try await self.delete(key) == 1
    }

    func range(prefix: String) async throws -> EtcdRange {
        try self.state.withLock { state in
            try self.checkReachable(state)
            let kvs = state.kvs.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }.map(\.value)
            return EtcdRange(kvs: kvs, revision: state.revision)
        }
    }

    func createIfAbsent(_ key: String, value: Data, lease: Int64?) async throws -> EtcdCreateResult {
        try self.state.withLock { state in
            try self.checkReachable(state)
            if let existing = state.kvs[key] {
                return .exists(existing)
            }
            return .created(revision: try self.putLocked(key, value, lease: lease, &state))
        }
    }

    func replace(_ key: String, value: Data, ifValue expected: Data) async throws -> Bool {
        try self.state.withLock { state in
            try self.checkReachable(state)
            guard state.kvs[key]?.value == expected else { return false }
            _ = try self.putLocked(key, value, lease: nil, &state)
            return true
        }
    }

    func grantLease(ttl: Int64) async throws -> EtcdLease {
        try self.state.withLock { state in
            try self.checkReachable(state)
            state.nextLease += 1
            state.leases[state.nextLease] = []
            return EtcdLease(id: state.nextLease, ttl: ttl)
        }
    }

    func keepAlive(_ id: Int64) async throws -> Int64 {
        try self.state.withLock { state in
            try self.checkReachable(state)
            guard state.leases[id] != nil else { throw EtcdError.leaseLost(id: id) }
            return 1
        }
    }

    func revoke(_ id: Int64) async throws {
        try self.state.withLock { state in
            try self.checkReachable(state)
            self.revokeLocked(id, &state)
        }
    }

    func watch(key: String, fromRevision: Int64) -> AsyncThrowingStream<EtcdWatchBatch, any Error> {
        self.watch(key: key, isPrefix: false, fromRevision: fromRevision)
    }

    func watch(prefix: String, fromRevision: Int64) -> AsyncThrowingStream<EtcdWatchBatch, any Error> {
        self.watch(key: prefix, isPrefix: true, fromRevision: fromRevision)
    }

    /// Replays the history from `fromRevision` and registers the watcher, in one critical section, so no
    /// change falls between the replay and the live events.
    private func watch(key: String, isPrefix: Bool, fromRevision: Int64) -> AsyncThrowingStream<EtcdWatchBatch, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: EtcdWatchBatch.self, throwing: (any Error).self)
        let watcher = Watcher(key: key, isPrefix: isPrefix, continuation: continuation)
        let id: UInt64? = self.state.withLock { state in
            if fromRevision > 0 {
                if fromRevision <= state.compacted {
                    continuation.finish(throwing: EtcdError.compacted(compactRevision: state.compacted))
                    return nil
                }
                var batch: EtcdWatchBatch?
                for (revision, event) in state.history where revision >= fromRevision && watcher.matches(event.key) {
                    if let current = batch, current.revision != revision {
                        continuation.yield(current)
                        batch = nil
                    }
                    batch = batch ?? EtcdWatchBatch(revision: revision, events: [])
                    batch?.events.append(event)
                }
                if let batch { continuation.yield(batch) }
            }
            state.nextWatcher += 1
            state.watchers[state.nextWatcher] = watcher
            return state.nextWatcher
        }
        if let id {
            // Not under the cluster's lock here: onTermination runs inside task cancellation (holding the
            // task's status lock) while a commit, holding the cluster's lock, may be yielding to this very
            // stream (which takes that status lock): taking one inside the other deadlocked a test run.
            // A finished stream ignores later yields, so removing the watcher a moment later is harmless.
            continuation.onTermination = { [weak self] _ in
                Task { _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) } }
            }
        }
        return stream
    }

    /// The cluster outlives the stores that use it: nothing to release.
    func shutdown() async {}
}
