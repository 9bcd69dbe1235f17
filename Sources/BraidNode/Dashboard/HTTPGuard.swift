import Hummingbird
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// What the HTTP listeners' guards did, for the dashboard's `limits` section.
public struct HTTPGuardCounters: Codable, Sendable, Equatable {
    /// Connections open now, over both listeners.
    public var connectionsOpen: Int = 0
    /// Connections accepted since start.
    public var connectionsAccepted: UInt64 = 0
    /// Connections closed because a request was not read completely within `limits.http_read_timeout_seconds`
    /// (slowloris and stalled uploads).
    public var readTimeouts: UInt64 = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case connectionsOpen = "connections_open"
        case connectionsAccepted = "connections_accepted"
        case readTimeouts = "read_timeouts"
    }
}

/// The HTTP listeners' protection against exhaustion: a connection cap (new connections wait in the accept
/// backlog while it is reached), an idle timeout between requests, and a deadline for reading each request.
///
/// Hummingbird's idle timeout only sees whole request heads, so a client that sends a header byte every
/// few seconds (slowloris) would hold its connection forever; the read deadline here watches raw bytes.
public final class HTTPGuard: Sendable {
    private let counters = NIOLockedValueBox(HTTPGuardCounters())
    let maximumConnections: Int
    let idleTimeout: TimeAmount
    let readTimeout: TimeAmount

    public init(limits: NodeConfiguration.Limits) {
        self.maximumConnections = limits.httpConnections
        self.idleTimeout = .seconds(Int64(limits.httpIdleTimeoutSeconds))
        self.readTimeout = .seconds(Int64(limits.httpReadTimeoutSeconds))
    }

    /// The counters now.
    public var snapshot: HTTPGuardCounters { self.counters.withLockedValue { $0 } }

    /// An HTTP/1.1 server with the read deadline in front of Hummingbird's pipeline and the idle timeout.
    func serverBuilder() -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            GuardedHTTP1Channel(
                inner: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: self.idleTimeout)),
                guard: self)
        }
    }

    /// The connection cap, per listener.
    func connectionLimit(logger: Logger) -> MaximumAvailableConnections {
        MaximumAvailableConnections(self.maximumConnections, logger: logger)
    }

    fileprivate func opened() {
        self.counters.withLockedValue {
            $0.connectionsOpen += 1
            $0.connectionsAccepted += 1
        }
    }

    fileprivate func closed() { self.counters.withLockedValue { $0.connectionsOpen -= 1 } }

    fileprivate func timedOut() { self.counters.withLockedValue { $0.readTimeouts += 1 } }
}

/// Hummingbird's HTTP/1.1 child channel with ``RequestReadDeadlineHandler`` first in the pipeline.
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel
    let `guard`: HTTPGuard

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let handler = RequestReadDeadlineHandler(timeout: self.guard.readTimeout, guard: self.guard)
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(handler, position: .first)
        }.flatMap {
            self.inner.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await self.inner.handle(value: value, logger: logger)
    }
}

/// Closes a connection whose request is still arriving `timeout` after its first byte.
///
/// Works on raw bytes, before the HTTP decoder: the first inbound bytes after the connection opened or
/// after the last response started arm the deadline; the server's first outbound write (the response)
/// disarms it. A request body the server does not wait for (a 413) ends the deadline with the response.
final class RequestReadDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let timeout: TimeAmount
    private let `guard`: HTTPGuard
    private var deadline: Scheduled<Void>?
    private var counted = false

    init(timeout: TimeAmount, guard: HTTPGuard) {
        self.timeout = timeout
        self.guard = `guard`
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { self.countOpen() }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.countOpen()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.disarm()
        if self.counted {
            self.counted = false
            self.guard.closed()
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.disarm()
        if self.counted {
            self.counted = false
            self.guard.closed()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.deadline == nil {
            self.deadline = context.eventLoop.assumeIsolated().scheduleTask(in: self.timeout) {
                self.deadline = nil
                self.guard.timedOut()
                context.close(promise: nil)
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        self.disarm()
        context.write(data, promise: promise)
    }

    private func countOpen() {
        guard !self.counted else { return }
        self.counted = true
        self.guard.opened()
    }

    private func disarm() {
        self.deadline?.cancel()
        self.deadline = nil
    }
}
