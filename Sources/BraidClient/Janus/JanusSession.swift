import Foundation
import NIOCore

/// A Janus session over Janus's HTTP transport: requests are `POST`s, events come back on a long-poll
/// `GET` (Janus REST API, <https://janus.conf.meetecho.com/docs/rest.html>; `src/transports/janus_http.c`).
///
/// - `POST <base>` `{"janus":"create"}` → `data.id` = the session; `POST <base>/<session>`
///   `{"janus":"attach","plugin":…}` → `data.id` = a handle. Many handles share one session; events name
///   theirs in `sender`.
/// - `POST <base>/<session>/<handle>` `{"janus":"message",…}`: a synchronous plugin request is answered
///   with `success` and `plugindata`; an asynchronous one with `ack`, and its result arrives later as an
///   `event` with the same `transaction` on the long-poll.
/// - The long-poll `GET <base>/<session>?maxev=10&rid=N` returns up to 10 events (an array) or, after 30 s
///   with nothing to say, `[{"janus":"keepalive"}]`. A pending long-poll keeps the session alive (Janus
///   drops a session after `session_timeout`, 60 s, without one), so one poll always runs.
///
/// Errors: the HTTP exchange's own (``BraidClientError/connectionFailed(_:)``,
/// ``BraidClientError/timeout(_:)``); Janus errors (`{"janus":"error"}` with `error.code`, or a plugin's
/// `error_code`) and malformed replies become ``BraidClientError/connectionFailed(_:)`` whose text starts
/// with "Janus" (``JanusError``'s description). Nothing Janus sends can crash the client.
public actor JanusSession {
    /// The API base, e.g. `http://10.200.0.2:8088/janus`.
    public nonisolated let base: HTTPEndpoint
    /// The session id Janus gave.
    public nonisolated let id: UInt64
    let group: any EventLoopGroup
    /// Deadline of each request, and of the wait for an asynchronous request's event.
    let timeout: Duration
    private var waiters: [String: CheckedContinuation<JanusMessage, any Error>] = [:]
    /// Events that arrived for a transaction nobody waits for (yet).
    private var unclaimed: [String: JanusMessage] = [:]
    private var pollTask: Task<Void, Never>?
    /// Set when the long-poll loop has returned (no request of it is in flight).
    private var pollEnded = false
    private var closed = false
    private var failure: BraidClientError?
    private var counter: UInt64 = 0
    /// Events without a transaction, by kind (`webrtcup`, `media`, `hangup`, `slowlink`, ...).
    public private(set) var eventCounts: [String: Int] = [:]

    init(base: HTTPEndpoint, id: UInt64, group: any EventLoopGroup, timeout: Duration) {
        self.base = base
        self.id = id
        self.group = group
        self.timeout = timeout
    }

    /// Creates a session at `url` (the API base, e.g. `http://host:8088/janus`) and starts its long-poll.
    public static func create(
        url: String, group: any EventLoopGroup, timeout: Duration = .seconds(10)
    ) async throws(BraidClientError) -> JanusSession {
        let base = try HTTPEndpoint(url: url)
        let reply = try await Self.post(
            base, body: JanusRequest.createSession(transaction: Self.transactionID()), group: group,
            timeout: timeout)
        guard reply.kind == "success", let id = reply.dataID else {
            throw Self.error(reply.failure ?? .malformed("reply to create: \(reply.kind) without data.id"))
        }
        let session = JanusSession(base: base, id: id, group: group, timeout: timeout)
        await session.startPolling()
        return session
    }

    /// Attaches a handle of `plugin` (the VideoRoom by default).
    public func attach(plugin: String = "janus.plugin.videoroom") async throws(BraidClientError) -> UInt64 {
        let reply = try await self.send(
            path: "/\(self.id)", body: JanusRequest.attach(transaction: Self.transactionID(), plugin: plugin))
        guard reply.kind == "success", let handle = reply.dataID else {
            throw Self.error(reply.failure ?? .malformed("reply to attach: \(reply.kind) without data.id"))
        }
        return handle
    }

    /// Sends a plugin request on `handle`; for an asynchronous one (`ack`), waits for its event. Returns
    /// the `success` reply or the event; a Janus or plugin error is thrown.
    public func message(
        handle: UInt64, body: JanusBody, jsep: (type: String, sdp: String)? = nil
    ) async throws(BraidClientError) -> JanusMessage {
        let transaction = Self.transactionID()
        let text = JanusRequest.message(transaction: transaction, body: body, jsep: jsep)
        let reply = try await self.send(path: "/\(self.id)/\(handle)", body: text)
        let result: JanusMessage
        switch reply.kind {
        case "ack":
            result = try await self.event(for: transaction)
        case "success", "event", "error":
            result = reply
        default:
            throw Self.error(.malformed("reply to a message: \(reply.kind)"))
        }
        if let failure = result.failure { throw Self.error(failure) }
        return result
    }

    /// Detaches `handle` (its PeerConnection is hung up); errors are returned, not thrown.
    @discardableResult
    public func detach(handle: UInt64) async -> BraidClientError? {
        do {
            let reply = try await self.send(
                path: "/\(self.id)/\(handle)", body: JanusRequest.simple("detach", transaction: Self.transactionID()))
            return reply.failure.map(Self.error)
        } catch {
            return error
        }
    }

    /// Destroys the session (every handle with it) and stops the long-poll: returns once the poll in
    /// flight has ended (Janus answers it when the session goes), or after 3 s, so that the event loops
    /// may be shut down afterwards.
    public func destroy() async {
        if !self.closed {
            _ = try? await self.send(
                path: "/\(self.id)", body: JanusRequest.simple("destroy", transaction: Self.transactionID()))
            self.finish(.closed)
        }
        let deadline = ContinuousClock.now + .seconds(3)
        while !self.pollEnded, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
    }

    // MARK: Transport

    private func send(path: String, body: String) async throws(BraidClientError) -> JanusMessage {
        if let failure = self.failure { throw failure }
        var endpoint = self.base
        endpoint.path += path
        return try await Self.post(endpoint, body: body, group: self.group, timeout: self.timeout)
    }

    static func post(
        _ endpoint: HTTPEndpoint, body: String, group: any EventLoopGroup, timeout: Duration
    ) async throws(BraidClientError) -> JanusMessage {
        let response = try await WHTTPClient(group: group).request(
            .post, endpoint, headers: [("Content-Type", "application/json")], body: body, timeout: timeout)
        return try Self.parse(response)
    }

    static func parse(_ response: HTTPResponseSummary) throws(BraidClientError) -> JanusMessage {
        guard response.status == 200 else { throw Self.error(.httpStatus(response.status, response.body)) }
        do {
            return try JanusMessage(json: response.body)
        } catch {
            throw Self.error(error)
        }
    }

    static func error(_ error: JanusError) -> BraidClientError {
        .connectionFailed(error.description)
    }

    static func transactionID() -> String {
        String(UInt64.random(in: 0...UInt64.max), radix: 36)
    }

    // MARK: Events

    private func event(for transaction: String) async throws(BraidClientError) -> JanusMessage {
        if let early = self.unclaimed.removeValue(forKey: transaction) { return early }
        if let failure = self.failure { throw failure }
        let timeout = self.timeout
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.expire(transaction, after: timeout)
        }
        defer { timer.cancel() }
        do {
            return try await withCheckedThrowingContinuation { continuation in
                self.waiters[transaction] = continuation
            }
        } catch let error as BraidClientError {
            throw error
        } catch {
            throw .connectionFailed("\(error)")
        }
    }

    private func expire(_ transaction: String, after timeout: Duration) {
        self.waiters.removeValue(forKey: transaction)?.resume(
            throwing: BraidClientError.timeout("Janus event for transaction \(transaction) within \(timeout)"))
    }

    private func startPolling() {
        self.pollTask = Task { [weak self] in
            await self?.poll()
        }
    }

    private func pollFinished() { self.pollEnded = true }

    /// The long-poll loop: runs until the session is closed or gone.
    private nonisolated func poll() async {
        await self.pollLoop()
        await self.pollFinished()
    }

    private nonisolated func pollLoop() async {
        do {
            var failures = 0
            var rid: UInt64 = 0
            let session = self
            while await !session.isClosed {
                rid += 1
                var endpoint = session.base
                endpoint.path += "/\(session.id)?maxev=10&rid=\(rid)"
                do {
                    // Janus answers a long-poll within 30 s (a keepalive when idle).
                    let response = try await WHTTPClient(group: session.group).request(
                        .get, endpoint, timeout: .seconds(45))
                    guard response.status == 200 else {
                        throw BraidClientError.connectionFailed(
                            JanusError.httpStatus(response.status, response.body).description)
                    }
                    let events: [JanusMessage]
                    do throws(JanusError) {
                        events = try JanusMessage.events(json: response.body)
                    } catch {
                        throw BraidClientError.connectionFailed(error.description)
                    }
                    failures = 0
                    if await session.deliver(events) { return }
                } catch {
                    failures += 1
                    if failures >= 5 {
                        await session.finish((error as? BraidClientError) ?? .connectionFailed("\(error)"))
                        return
                    }
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
        }
    }

    private var isClosed: Bool { self.closed }

    /// Hands events to their waiters; returns true when the session is gone.
    private func deliver(_ events: [JanusMessage]) -> Bool {
        for event in events {
            if event.kind == "error", event.transaction == nil, let error = event.error, error.code == 458 {
                self.finish(Self.error(.api(code: error.code, reason: error.reason)))
                return true
            }
            if let transaction = event.transaction, event.kind != "ack" {
                if let waiter = self.waiters.removeValue(forKey: transaction) {
                    waiter.resume(returning: event)
                    continue
                }
                if event.kind == "event" || event.kind == "error" {
                    if self.unclaimed.count > 1000 { self.unclaimed.removeAll() }
                    self.unclaimed[transaction] = event
                    continue
                }
            }
            self.eventCounts[event.kind, default: 0] += 1
        }
        return false
    }

    private func finish(_ error: BraidClientError) {
        self.closed = true
        self.failure = self.failure ?? error
        self.pollTask?.cancel()
        let waiters = self.waiters
        self.waiters.removeAll()
        for waiter in waiters.values { waiter.resume(throwing: error) }
    }
}
