import BraidClient
import NIOCore

/// The peers of a run against a Janus VideoRoom (`--janus URL`) instead of Braid's WHIP/WHEP: Janus's HTTP
/// API (sessions, handles, long-poll events; see ``BraidClient/JanusSession``), one VideoRoom per load
/// room, created at the first publisher. Handles share sessions, ``handlesPerSession`` each (one long-poll
/// per session). The peers are the same ``BraidClient/BraidPublisher`` and ``BraidClient/BraidSubscriber``
/// as against a node, so the report's figures mean the same; latency is video only (see
/// ``BraidClient/CaptureTimeLog``).
///
/// A subscriber joins once its room's publisher has (Janus answers VideoRoom 428 "No such feed" before the
/// publisher's PeerConnection is up; a 428 is retried for up to the peer timeout). A run whose Janus cannot
/// be reached fails every peer with the HTTP client's cause (`connection-refused`, `timeout`).
actor JanusLoad {
    let url: String
    let group: any EventLoopGroup
    let timeout: Duration
    /// Handles per Janus session.
    static let handlesPerSession = 50
    private var sessions: [Int: Task<Result<JanusSession, BraidClientError>, Never>] = [:]
    private var rooms: [String: Task<Result<UInt64, BraidClientError>, Never>] = [:]
    private var feeds: [String: Result<UInt64, BraidClientError>] = [:]
    private var feedWaiters: [String: [CheckedContinuation<Result<UInt64, BraidClientError>, Never>]] = [:]
    private var logs: [String: CaptureTimeLog] = [:]
    private let secret = String(UInt64.random(in: 0...UInt64.max), radix: 36)

    init(url: String, group: any EventLoopGroup, timeout: Duration) {
        self.url = url
        self.group = group
        self.timeout = timeout
    }

    /// Joins plan `index` (a publisher or a one-feed subscriber) at Janus.
    func join(_ plan: PeerPlan, index: Int, media: PreEncodedMedia, options: ConnectionOptions) async -> PeerOutcome {
        do throws(BraidClientError) {
            let session = try await self.session(for: index).value.get()
            let room = try await self.room(plan.room, session: session).value.get()
            let log = self.log(for: plan.room)
            switch plan.role {
            case .publisher:
                do throws(BraidClientError) {
                    let (publisher, handle) = try await BraidPublisher.publish(
                        toJanus: session, room: room, display: "braid-load-\(index)",
                        audio: plan.audio ? .preEncoded(media) : nil, video: plan.video ? .preEncoded(media) : nil,
                        captureLog: log, options: options, group: self.group)
                    self.publisherJoined(plan.room, .success(handle.feed ?? 0))
                    return PeerOutcome(plan: plan, peer: .publisher(publisher))
                } catch {
                    self.publisherJoined(plan.room, .failure(error))
                    throw error
                }
            case .subscriber:
                let feed = try await self.feed(of: plan.room).get()
                let deadline = ContinuousClock.now + self.timeout
                while true {
                    do throws(BraidClientError) {
                        let (subscriber, _) = try await BraidSubscriber.subscribe(
                            toJanus: session, room: room, feeds: [feed], captureLog: log, options: options,
                            group: self.group)
                        return PeerOutcome(plan: plan, peer: .subscriber(subscriber))
                    } catch {
                        // 428: the publisher's PeerConnection is not up at Janus yet.
                        guard case .connectionFailed(let reason) = error, reason.contains("error 428"),
                            ContinuousClock.now < deadline
                        else { throw error }
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                }
            }
        } catch {
            return PeerOutcome(plan: plan, failure: error)
        }
    }

    /// Destroys every session (Janus hangs up their handles).
    func finish() async {
        for task in self.sessions.values {
            if case .success(let session) = await task.value { await session.destroy() }
        }
    }

    // MARK: Shared state

    private func session(for index: Int) -> Task<Result<JanusSession, BraidClientError>, Never> {
        let key = index / Self.handlesPerSession
        if let task = self.sessions[key] { return task }
        let (url, group, timeout) = (self.url, self.group, self.timeout)
        let task = Task { () -> Result<JanusSession, BraidClientError> in
            do throws(BraidClientError) {
                return .success(try await JanusSession.create(url: url, group: group, timeout: timeout))
            } catch {
                return .failure(error)
            }
        }
        self.sessions[key] = task
        return task
    }

    private func room(_ name: String, session: JanusSession) -> Task<Result<UInt64, BraidClientError>, Never> {
        if let task = self.rooms[name] { return task }
        let secret = self.secret
        let task = Task { () -> Result<UInt64, BraidClientError> in
            let id = UInt64.random(in: 1...(1 << 40))
            do throws(BraidClientError) {
                try await session.createRoom(id, publishers: 10, secret: secret)
                return .success(id)
            } catch {
                return .failure(error)
            }
        }
        self.rooms[name] = task
        return task
    }

    private func log(for room: String) -> CaptureTimeLog {
        if let log = self.logs[room] { return log }
        let log = CaptureTimeLog()
        self.logs[room] = log
        return log
    }

    private func publisherJoined(_ room: String, _ result: Result<UInt64, BraidClientError>) {
        self.feeds[room] = result
        for waiter in self.feedWaiters.removeValue(forKey: room) ?? [] { waiter.resume(returning: result) }
    }

    private func feed(of room: String) async -> Result<UInt64, BraidClientError> {
        if let result = self.feeds[room] {
            if case .failure(let error) = result {
                return .failure(.connectionFailed("the room's publisher did not join Janus: \(error)"))
            }
            return result
        }
        let result = await withCheckedContinuation { continuation in
            self.feedWaiters[room, default: []].append(continuation)
        }
        if case .failure(let error) = result {
            return .failure(.connectionFailed("the room's publisher did not join Janus: \(error)"))
        }
        return result
    }
}
