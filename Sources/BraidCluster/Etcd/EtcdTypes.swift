import Foundation

/// One key as etcd stores it.
public struct EtcdKeyValue: Sendable, Hashable {
    /// The key (UTF-8; Braid's keys are text).
    public var key: String
    /// The value's bytes (empty on a delete event).
    public var value: Data
    /// The revision that created the key (0 when it does not exist).
    public var createRevision: Int64
    /// The revision of the last change.
    public var modRevision: Int64
    /// The lease the key is attached to (0: none).
    public var lease: Int64

    public init(key: String, value: Data, createRevision: Int64 = 0, modRevision: Int64 = 0, lease: Int64 = 0) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.lease = lease
    }

    init(_ wire: WireKV) {
        self.init(
            key: String(decoding: wire.key, as: UTF8.self), value: wire.value ?? Data(),
            createRevision: wire.create_revision?.value ?? 0, modRevision: wire.mod_revision?.value ?? 0,
            lease: wire.lease?.value ?? 0)
    }
}

/// The result of a range: the keys and the store revision they were read at (watch from `revision + 1`
/// to see every later change).
public struct EtcdRange: Sendable, Hashable {
    public var kvs: [EtcdKeyValue]
    public var revision: Int64
}

/// A granted lease.
public struct EtcdLease: Sendable, Hashable {
    public var id: Int64
    /// The TTL etcd granted, in seconds (etcd raises a request below its minimum, 2 s by default).
    public var ttl: Int64
}

/// The outcome of ``EtcdClient/createIfAbsent(_:value:lease:)``.
public enum EtcdCreateResult: Sendable, Hashable {
    /// The key did not exist and now holds the value; the revision of the write.
    case created(revision: Int64)
    /// The key already existed: its current value (possibly written by this caller earlier).
    case exists(EtcdKeyValue)
}

/// One change seen by a watch.
public enum EtcdWatchEvent: Sendable, Hashable {
    /// The key was created or changed; the previous value if there was one.
    case put(EtcdKeyValue, previous: EtcdKeyValue?)
    /// The key was deleted (explicitly or by its lease); `kv.value` is empty, `previous` holds the last value.
    case delete(EtcdKeyValue, previous: EtcdKeyValue?)

    /// The changed key.
    public var key: String {
        switch self {
        case .put(let kv, _), .delete(let kv, _): kv.key
        }
    }
}

/// The events of one watch response, in revision order; `revision` is the store revision they bring the
/// watcher up to.
public struct EtcdWatchBatch: Sendable, Hashable {
    public var revision: Int64
    public var events: [EtcdWatchEvent]
}
