import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// What the dashboard shows of a drain (`draining` in `GET /api/v1/node`; absent while the node serves).
public struct DrainStatus: Codable, Sendable, Equatable {
    /// When the drain started, RFC 3339 in UTC.
    public var startedAt: String
    /// What started it: `signal` (SIGTERM, SIGINT or the service group's graceful shutdown) or `request`
    /// (`POST /api/v1/drain`).
    public var trigger: String
    /// ``NodeConfiguration/drainTimeoutSeconds``: the longest the node waits for sessions to leave.
    public var timeoutSeconds: Int
    /// Seconds left before the node stops waiting (0 once the wait is over).
    public var remainingSeconds: Double

    public init(startedAt: String, trigger: String, timeoutSeconds: Int, remainingSeconds: Double) {
        self.startedAt = startedAt
        self.trigger = trigger
        self.timeoutSeconds = timeoutSeconds
        self.remainingSeconds = remainingSeconds
    }

    enum CodingKeys: String, CodingKey {
        case startedAt = "started_at"
        case trigger
        case timeoutSeconds = "timeout_seconds"
        case remainingSeconds = "remaining_seconds"
    }
}

/// The node's graceful drain: once started (SIGTERM, or `POST /api/v1/drain`), new WHIP and WHEP sessions
/// are refused (`503` with `Retry-After`, or a `307` to another node of the cluster), `/healthz` answers
/// `503 draining`, every peer gets an RTCP BYE and a DTLS close_notify, and the node waits up to
/// ``timeout`` for its sessions to leave before it stops (the ``DrainService`` of its service group).
///
/// Thread-safe; a drain never ends short of the process stopping.
public final class NodeDrain: Sendable {
    /// What started a drain.
    public enum Trigger: String, Sendable {
        /// A signal or a programmatic graceful shutdown of the service group.
        case signal
        /// `POST /api/v1/drain`.
        case request
    }

    private struct State {
        var started: (instant: ContinuousClock.Instant, date: Date, trigger: Trigger)?
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }

    /// The drain timeout of ``NodeConfiguration/drainTimeoutSeconds`` by default, in seconds.
    public static let defaultTimeoutSeconds = 30

    /// The longest a drain waits for sessions to leave.
    public let timeout: Duration
    private let state = NIOLockedValueBox(State())

    /// - Parameter timeoutSeconds: ``NodeConfiguration/drainTimeoutSeconds``.
    public init(timeoutSeconds: Int) {
        self.timeout = .seconds(max(0, timeoutSeconds))
    }

    /// Whether a drain has started.
    public var isDraining: Bool { self.state.withLockedValue { $0.started != nil } }

    /// The drain as the dashboard shows it; nil while the node serves.
    public var status: DrainStatus? {
        guard let started = self.state.withLockedValue({ $0.started }) else { return nil }
        let elapsed = ContinuousClock.now - started.instant
        let remaining = max(.zero, self.timeout - elapsed)
        return DrainStatus(
            startedAt: started.date.ISO8601Format(), trigger: started.trigger.rawValue,
            timeoutSeconds: Int(self.timeout.components.seconds),
            remainingSeconds: (Double(remaining.nanosecondsApproximately) / 1e9 * 10).rounded() / 10)
    }

    /// The `Retry-After` (seconds) of a refused session: when this node may serve again at the soonest
    /// (after the drain, a restart), at least 1.
    public var retryAfterSeconds: Int { max(1, Int(self.timeout.components.seconds)) }

    /// Starts the drain; false when one has already started (the first trigger is kept).
    @discardableResult
    public func start(_ trigger: Trigger) -> Bool {
        let waiters: [CheckedContinuation<Void, Never>]? = self.state.withLockedValue { state in
            guard state.started == nil else { return nil }
            state.started = (ContinuousClock.now, Date(), trigger)
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume() }
        return true
    }

    /// Returns once a drain has started, or when the task is cancelled.
    func waitUntilStarted() async {
        let id = self.state.withLockedValue { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLockedValue { state -> Bool in
                    if state.started != nil || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating far outside any drain's range).
    fileprivate var nanosecondsApproximately: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
    }
}

/// The drain as a service of the node's group, listed after the others so that a graceful shutdown
/// reaches it first (a group shuts its services down in reverse order, one after the other): the HTTP
/// listeners and the media sockets keep running while it drains.
///
/// It waits for a drain to start — by the group's graceful shutdown (SIGTERM, SIGINT, or
/// `triggerGracefulShutdown()`) or by ``NodeDrain/start(_:)`` (`POST /api/v1/drain`) — then marks the node
/// draining in the cluster, says goodbye to every peer (RTCP BYE and DTLS close_notify, repeated every
/// second for peers whose DTLS connects later or whose goodbye was lost), and waits until no session with
/// a connected DTLS association is left or ``NodeDrain/timeout`` has passed. Then it returns; the group is configured to shut down
/// gracefully when it does, so a drain started by a request ends the process like a signal.
struct DrainService: Service {
    /// How often the remaining sessions are counted.
    static let pollInterval = Duration.milliseconds(100)
    /// How often the goodbye is repeated to the sessions still there.
    static let goodbyeInterval = Duration.seconds(1)

    let drain: NodeDrain
    let media: MediaService
    let mesh: MeshService?
    let logger: Logger

    func run() async throws {
        let drain = self.drain
        await withGracefulShutdownHandler {
            await drain.waitUntilStarted()
        } onGracefulShutdown: {
            drain.start(.signal)
        }
        guard drain.isDraining, !Task.isCancelled else { return }
        await self.perform()
    }

    private func perform() async {
        let clock = ContinuousClock()
        let start = clock.now
        let sessions = self.media.sessions
        let before = await sessions.connectedSessionCount()
        self.logger.info(
            "drain started",
            metadata: [
                "trigger": "\(self.drain.status?.trigger ?? "?")", "sessions": "\(before)",
                "timeout_seconds": "\(self.drain.timeout.components.seconds)",
            ])
        await self.mesh?.markDraining()
        var told = await sessions.sayGoodbye()
        var lastGoodbye = clock.now
        var left = await sessions.connectedSessionCount()
        while left > 0, clock.now - start < self.drain.timeout {
            do {
                try await Task.sleep(for: min(Self.pollInterval, self.drain.timeout - (clock.now - start)))
            } catch {
                break  // cancelled: the group is being torn down
            }
            if clock.now - lastGoodbye >= Self.goodbyeInterval {
                told = max(told, await sessions.sayGoodbye())
                lastGoodbye = clock.now
            }
            left = await sessions.connectedSessionCount()
        }
        let elapsed = clock.now - start
        self.logger.info(
            "drain finished",
            metadata: [
                "peers_told": "\(told)", "sessions_left": "\(left)",
                "seconds": "\((Double(elapsed.nanosecondsApproximately) / 1e6).rounded() / 1000)",
            ])
    }
}
