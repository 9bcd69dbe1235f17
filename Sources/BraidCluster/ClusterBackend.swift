import Foundation

/// The key-value operations the cluster store is built on: etcd's model (revisions, leases, a CAS on
/// `create_revision == 0`, watches that resume from a revision). ``EtcdClient`` provides them over the
/// network and ``InMemoryCluster`` in one process, so both stores share one implementation of the
/// node's logic (``LeasedClusterStore``) and behave the same.
protocol ClusterBackend: Sendable {
    func put(_ key: String, value: Data, lease: Int64?) async throws -> Int64
    func delete(_ key: String) async throws -> Int64
    func delete(_ key: String, ifCreateRevision createRevision: Int64) async throws -> Bool
    func range(prefix: String) async throws -> EtcdRange
    func createIfAbsent(_ key: String, value: Data, lease: Int64?) async throws -> EtcdCreateResult
    func replace(_ key: String, value: Data, ifValue expected: Data) async throws -> Bool
    func grantLease(ttl: Int64) async throws -> EtcdLease
    func keepAlive(_ id: Int64) async throws -> Int64
    func revoke(_ id: Int64) async throws
    func watch(key: String, fromRevision: Int64) -> AsyncThrowingStream<EtcdWatchBatch, any Error>
    func watch(prefix: String, fromRevision: Int64) -> AsyncThrowingStream<EtcdWatchBatch, any Error>
    func shutdown() async
}

extension EtcdClient: ClusterBackend {}

/// Where each record lives under the store's prefix (see ``EtcdClusterStore`` for the drawing).
struct ClusterKeys: Sendable {
    let prefix: String

    init(prefix: String) {
        self.prefix = prefix.hasSuffix("/") ? prefix : prefix + "/"
    }

    var nodes: String { self.prefix + "nodes/" }
    var links: String { self.prefix + "links/" }
    var tracks: String { self.prefix + "tracks/" }
    var leader: String { self.prefix + "leader" }
    var functions: String { self.prefix + "functions/" }

    func node(_ id: UInt64) -> String { self.nodes + NodeIDText.format(id) }
    func links(_ from: UInt64) -> String { self.links + NodeIDText.format(from) }
    func track(_ key: TrackKey) -> String { self.tracks + Self.escape(key.room) + "/" + Self.escape(key.id) }
    func function(_ key: FunctionKey) -> String { self.functions + Self.escape(key.room) + "/" + Self.escape(key.id) }

    /// What a key names.
    enum Entry: Equatable {
        case node(UInt64)
        case links(UInt64)
        case track(TrackKey)
        case function(FunctionKey)
        case leader
    }

    func parse(_ key: String) -> Entry? {
        guard key.hasPrefix(self.prefix) else { return nil }
        let rest = key.dropFirst(self.prefix.count)
        if rest == "leader" { return .leader }
        if rest.hasPrefix("nodes/") { return NodeIDText.parse(rest.dropFirst(6)).map(Entry.node) }
        if rest.hasPrefix("links/") { return NodeIDText.parse(rest.dropFirst(6)).map(Entry.links) }
        if rest.hasPrefix("tracks/") {
            let parts = rest.dropFirst(7).split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let room = Self.unescape(parts[0]), let id = Self.unescape(parts[1]) else { return nil }
            return .track(TrackKey(room: room, id: id))
        }
        if rest.hasPrefix("functions/") {
            let parts = rest.dropFirst(10).split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let room = Self.unescape(parts[0]), let id = Self.unescape(parts[1]) else { return nil }
            return .function(FunctionKey(room: room, id: id))
        }
        return nil
    }

    /// Room names and track ids contain `/` (`"9f2c3a1b00d4e7f2/17"`): percent-escape `%` and `/` so a
    /// track key always has exactly two segments.
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "/", with: "%2F")
    }

    static func unescape(_ text: Substring) -> String? {
        String(text).removingPercentEncoding
    }
}
