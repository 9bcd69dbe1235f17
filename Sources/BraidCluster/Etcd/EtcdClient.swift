import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// A client of etcd's v3 JSON gateway (etcd 3.4: `POST /v3/...`, base64 keys and values), over
/// AsyncHTTPClient.
///
/// The gateway rather than gRPC: it needs no code generation and no HTTP/2 stack, and every call Braid
/// makes (KV, txn, leases, watch) works through it (MESH-NOTES §1). The price is one HTTP/1.1 connection
/// per open watch.
///
/// - Several endpoints (the members of an etcd cluster): a call goes to the last endpoint that worked and
///   moves on to the next one when the connection fails. Only when every endpoint failed does it throw
///   ``EtcdError/unreachable(urls:reason:)``, quickly: connection attempts are not retried by the HTTP
///   client (a refused connection fails at once, a silent one after `connectTimeout`).
/// - Watches reconnect by themselves and resume after the last revision they delivered, so a dropped
///   stream loses nothing (see ``watch(prefix:fromRevision:)``).
///
/// Call ``shutdown()`` when done: it closes the connections (AsyncHTTPClient requires it).
public final class EtcdClient: Sendable {
    /// The endpoints' base URLs, without a trailing slash (`http://127.0.0.1:2379`).
    public let endpoints: [String]
    /// How long a unary call may wait for etcd's answer.
    public let requestTimeout: Duration
    private let http: HTTPClient
    private let logger: Logger
    /// Index of the endpoint that answered last: calls start there.
    private let preferred = Mutex(0)

    /// A client of the given endpoints.
    ///
    /// - Parameters:
    ///   - endpoints: base URLs of etcd members (`http://host:2379`); at least one.
    ///   - connectTimeout: how long one connection attempt may take before the next endpoint is tried.
    ///   - requestTimeout: how long a unary call may wait for its answer (watches have no limit).
    public init(
        endpoints: [String], connectTimeout: Duration = .seconds(1), requestTimeout: Duration = .seconds(2),
        logger: Logger = Logger(label: "braid.etcd")
    ) {
        precondition(!endpoints.isEmpty, "EtcdClient needs at least one endpoint")
        self.endpoints = endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.requestTimeout = requestTimeout
        self.logger = logger
        var configuration = HTTPClient.Configuration()
        // No read timeout: a watch stays silent for as long as nothing changes. Unary calls carry a deadline.
        configuration.timeout = .init(connect: .init(connectTimeout), read: nil)
        // A failed connection must fail the call now (so the next endpoint is tried and the node learns
        // that etcd is gone), not be retried with backoff until the deadline.
        configuration.connectionPool.retryConnectionEstablishment = false
        // Each open watch holds a connection of its own.
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 32
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// A client of a comma-separated endpoint list (`http://a:2379,http://b:2379`), the form of a
    /// command-line option.
    public convenience init(endpoints list: String, logger: Logger = Logger(label: "braid.etcd")) {
        let endpoints = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        self.init(endpoints: endpoints, logger: logger)
    }

    /// Closes every connection; open watches end. Call once, last.
    public func shutdown() async {
        do {
            try await self.http.shutdown()
        } catch {
            self.logger.debug("etcd client shutdown: \(error)")
        }
    }

    // MARK: - KV

    /// Writes `value` at `key`, attached to `lease` when given (the key dies with the lease).
    ///
    /// - Returns: the store revision of the write.
    @discardableResult
    public func put(_ key: String, value: Data, lease: Int64? = nil) async throws -> Int64 {
        let body = WirePutRequest(key: Data(key.utf8), value: value, lease: lease.map(WireInt64.init))
        let response: WirePutResponse = try await self.call("kv/put", body)
        return response.header?.revision?.value ?? 0
    }

    /// The value at `key`, or nil.
    public func get(_ key: String) async throws -> EtcdKeyValue? {
        try await self.range(key).kvs.first
    }

    /// The one key `key` (zero or one result) and the revision it was read at.
    public func range(_ key: String) async throws -> EtcdRange {
        try await self.range(WireRangeRequest(key: Data(key.utf8)))
    }

    /// Every key that starts with `prefix`, in key order, and the revision they were read at.
    public func range(prefix: String) async throws -> EtcdRange {
        try await self.range(WireRangeRequest(key: Data(prefix.utf8), range_end: Self.rangeEnd(prefix)))
    }

    private func range(_ request: WireRangeRequest) async throws -> EtcdRange {
        let response: WireRangeResponse = try await self.call("kv/range", request)
        return EtcdRange(kvs: (response.kvs ?? []).map(EtcdKeyValue.init), revision: response.header?.revision?.value ?? 0)
    }

    /// Deletes `key`. Returns how many keys were deleted (0 or 1).
    @discardableResult
    public func delete(_ key: String) async throws -> Int64 {
        let response: WireDeleteRangeResponse = try await self.call(
            "kv/deleterange", WireDeleteRangeRequest(key: Data(key.utf8)))
        return response.deleted?.value ?? 0
    }

    /// Deletes every key that starts with `prefix`. Returns how many keys were deleted.
    @discardableResult
    public func delete(prefix: String) async throws -> Int64 {
        let response: WireDeleteRangeResponse = try await self.call(
            "kv/deleterange", WireDeleteRangeRequest(key: Data(prefix.utf8), range_end: Self.rangeEnd(prefix)))
        return response.deleted?.value ?? 0
    }

    /// Creates `key` only if it does not exist: one txn comparing `create_revision == 0`, which is atomic
    /// where a read-then-write is not (two nodes could both see "absent" and both write).
    ///
    /// - Returns: `.created` when this call wrote the key, otherwise the key's current value.
    public func createIfAbsent(_ key: String, value: Data, lease: Int64? = nil) async throws -> EtcdCreateResult {
        let keyData = Data(key.utf8)
        let request = WireTxnRequest(
            compare: [WireCompare(result: "EQUAL", target: "CREATE", key: keyData, create_revision: WireInt64(0))],
            success: [WireRequestOp(request_put: WirePutRequest(key: keyData, value: value, lease: lease.map(WireInt64.init)))],
            failure: [WireRequestOp(request_range: WireRangeRequest(key: keyData))])
        let response: WireTxnResponse = try await self.call("kv/txn", request)
        if response.succeeded == true {
            return .created(revision: response.header?.revision?.value ?? 0)
        }
        // The key may have vanished between the compare and now only in a later revision; what the
        // failure branch read is the value that made the compare fail.
        guard let kv = response.responses?.first?.response_range?.kvs?.first else {
            throw EtcdError.decoding(what: "txn", reason: "compare failed but the failure range returned no key")
        }
        return .exists(EtcdKeyValue(kv))
    }

    /// Forgets the history before `revision` (etcd keeps every revision until compacted). Watches that
    /// would resume from an older revision end with ``EtcdError/compacted(compactRevision:)``.
    public func compact(revision: Int64) async throws {
        let _: WireEmptyResponse = try await self.call("kv/compaction", WireCompactionRequest(revision: WireInt64(revision)))
    }

    /// Deletes `key` only if it is still the incarnation created at `createRevision` (a txn comparing
    /// `create_revision`): a node giving up a key it created cannot delete a successor's.
    ///
    /// - Returns: whether the key was deleted.
    @discardableResult
    public func delete(_ key: String, ifCreateRevision createRevision: Int64) async throws -> Bool {
        let keyData = Data(key.utf8)
        let request = WireTxnRequest(
            compare: [WireCompare(result: "EQUAL", target: "CREATE", key: keyData, create_revision: WireInt64(createRevision))],
            success: [WireRequestOp(request_delete_range: WireDeleteRangeRequest(key: keyData))],
            failure: [])
        let response: WireTxnResponse = try await self.call("kv/txn", request)
        return response.succeeded == true
    }

    /// Replaces `key`'s value only if it still is `expected` (a txn comparing the value), under no lease:
    /// a writer that read a record cannot overwrite a change, or resurrect a deletion, made since.
    ///
    /// - Returns: whether the value was written.
    public func replace(_ key: String, value: Data, ifValue expected: Data) async throws -> Bool {
        let keyData = Data(key.utf8)
        let request = WireTxnRequest(
            compare: [WireCompare(result: "EQUAL", target: "VALUE", key: keyData, value: expected)],
            success: [WireRequestOp(request_put: WirePutRequest(key: keyData, value: value, lease: nil))],
            failure: [])
        let response: WireTxnResponse = try await self.call("kv/txn", request)
        return response.succeeded == true
    }

    // MARK: - Leases

    /// Grants a lease of `ttl` seconds. Keys put with it are deleted when it expires or is revoked.
    public func grantLease(ttl: Int64) async throws -> EtcdLease {
        let response: WireLeaseGrantResponse = try await self.call("lease/grant", WireLeaseGrantRequest(TTL: WireInt64(ttl)))
        if let error = response.error, !error.isEmpty {
            throw EtcdError.status(code: 200, message: error, url: self.currentEndpoint)
        }
        guard let id = response.ID?.value, id != 0 else {
            throw EtcdError.decoding(what: "lease grant", reason: "no ID in the answer")
        }
        return EtcdLease(id: id, ttl: response.TTL?.value ?? ttl)
    }

    /// Renews lease `id` once. Returns the TTL it now has.
    ///
    /// - Throws: ``EtcdError/leaseLost(id:)`` when the lease no longer exists. etcd answers a keepalive of
    ///   an expired lease with 200 and no `TTL` (MESH-NOTES §1), so a missing or zero TTL means lost.
    @discardableResult
    public func keepAlive(_ id: Int64) async throws -> Int64 {
        let response: WireLeaseKeepAliveResponse
        do {
            response = try await self.call("lease/keepalive", WireLeaseIDRequest(ID: WireInt64(id)))
        } catch EtcdError.status(404, _, _) {
            throw EtcdError.leaseLost(id: id)
        }
        guard let ttl = response.result?.TTL?.value, ttl > 0 else {
            throw EtcdError.leaseLost(id: id)
        }
        return ttl
    }

    /// Revokes lease `id`: every key attached to it is deleted at once. Revoking a lease that is already
    /// gone is not an error (its keys are gone too).
    public func revoke(_ id: Int64) async throws {
        do {
            let _: WireEmptyResponse = try await self.call("lease/revoke", WireLeaseIDRequest(ID: WireInt64(id)))
        } catch EtcdError.status(404, _, _) {
            return
        }
    }

    // MARK: - Health

    /// Whether some endpoint answers `GET /health` with `{"health":"true"}`.
    public func isHealthy() async -> Bool {
        for endpoint in self.orderedEndpoints() {
            var request = HTTPClientRequest(url: endpoint + "/health")
            request.method = .GET
            do {
                let response = try await self.http.execute(request, timeout: .init(self.requestTimeout))
                let body = try await response.body.collect(upTo: 1 << 16)
                if response.status == .ok, String(buffer: body).contains("\"true\"") {
                    return true
                }
            } catch {
                continue
            }
        }
        return false
    }

    // MARK: - Transport

    /// The key just past every key that starts with `prefix` (etcd's `range_end` for a prefix): the
    /// prefix with its last byte incremented, dropping trailing 0xff bytes.
    static func rangeEnd(_ prefix: String) -> Data {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xff {
                bytes[bytes.count - 1] = last + 1
                return Data(bytes)
            }
            bytes.removeLast()
        }
        return Data([0])  // "\0": every key
    }

    private var currentEndpoint: String {
        self.endpoints[self.preferred.withLock { $0 }]
    }

    /// The endpoints in the order to try them: the preferred one first.
    private func orderedEndpoints() -> [String] {
        let start = self.preferred.withLock { $0 }
        return (0..<self.endpoints.count).map { self.endpoints[(start + $0) % self.endpoints.count] }
    }

    private func markPreferred(_ endpoint: String) {
        guard let index = self.endpoints.firstIndex(of: endpoint) else { return }
        self.preferred.withLock { $0 = index }
    }

    /// Opens a POST to `/v3/<path>` on the first endpoint that accepts the connection.
    ///
    /// - Returns: the response (status not checked) and the endpoint that gave it.
    /// - Throws: ``EtcdError/unreachable(urls:reason:)`` when no endpoint answered.
    func open(_ path: String, body: Data, deadline: NIODeadline?) async throws -> (HTTPClientResponse, String) {
        var tried: [String] = []
        var lastError: (any Error)?
        for endpoint in self.orderedEndpoints() {
            try Task.checkCancellation()
            var request = HTTPClientRequest(url: endpoint + "/v3/" + path)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
            tried.append(endpoint)
            do {
                let response = try await self.http.execute(request, deadline: deadline ?? .distantFuture)
                self.markPreferred(endpoint)
                return (response, endpoint)
            } catch let error as HTTPClientError where error == .cancelled {
                throw CancellationError()
            } catch {
                if Task.isCancelled { throw CancellationError() }
                if let error = error as? HTTPClientError, error == .alreadyShutdown { throw EtcdError.shutDown }
                self.logger.debug("etcd \(endpoint) failed: \(error)")
                lastError = error
            }
        }
        throw EtcdError.unreachable(urls: tried, reason: lastError.map { "\($0)" } ?? "no endpoint")
    }

    /// One unary call: POST the JSON of `body`, decode the answer or throw etcd's error.
    func call<Request: Encodable, Response: Decodable>(_ path: String, _ body: Request) async throws -> Response {
        let data = try JSONEncoder().encode(body)
        let (response, endpoint) = try await self.open(path, body: data, deadline: .now() + .init(self.requestTimeout))
        let bytes: ByteBuffer
        do {
            bytes = try await response.body.collect(upTo: 16 << 20)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw EtcdError.unreachable(urls: [endpoint], reason: "answer cut off: \(error)")
        }
        let payload = Data(bytes.readableBytesView)
        guard response.status == .ok else {
            throw Self.statusError(response.status, payload, endpoint)
        }
        do {
            return try JSONDecoder().decode(Response.self, from: payload)
        } catch {
            throw EtcdError.decoding(what: path, reason: "\(error)")
        }
    }

    static func statusError(_ status: HTTPResponseStatus, _ payload: Data, _ endpoint: String) -> EtcdError {
        let message = (try? JSONDecoder().decode(WireError.self, from: payload)).flatMap { $0.message ?? $0.error }
            ?? String(decoding: payload.prefix(200), as: UTF8.self)
        return .status(code: Int(status.code), message: message, url: endpoint)
    }
}
