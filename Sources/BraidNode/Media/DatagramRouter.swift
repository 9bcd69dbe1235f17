import BraidWire
import NIOCore

/// What became of a datagram handed to a ``DatagramRouter``.
public enum DatagramVerdict: Sendable, Equatable {
    /// A session took the datagram.
    case delivered
    /// Nobody took it; counted under `reason`.
    case dropped(MediaDropReason)
}

/// The seam between the media socket and the sessions behind it.
///
/// ``MediaChannelHandler`` classifies every datagram by its first byte (RFC 7983), drops the kinds no
/// session can use, and hands STUN, DTLS, RTP and RTCP here. The router runs on the socket's event loop,
/// once per datagram, and must not block or allocate in the steady state. It returns what it did so the
/// handler can count it; it does not count anything itself.
///
/// The node's media socket uses ``WebRTCRouter`` (ICE-lite, DTLS-SRTP sessions); ``NoSessionRouter``
/// remains for tests of the socket alone.
public protocol DatagramRouter {
    /// Routes one datagram. Called on the media channel's event loop.
    ///
    /// - Parameters:
    ///   - datagram: the UDP payload; a slice that shares the receive buffer (retain it only if needed).
    ///   - kind: its RFC 7983 kind: always ``DatagramKind/stun``, `.dtls`, `.rtp` or `.rtcp` here.
    ///   - remoteAddress: who sent it.
    mutating func route(_ datagram: ByteBuffer, kind: DatagramKind, from remoteAddress: SocketAddress)
        -> DatagramVerdict

    /// The socket has delivered a batch of reads (NIO's `channelReadComplete`): the moment to flush what
    /// routing them produced, so many datagrams leave in one `sendmmsg`.
    mutating func readComplete()

    /// Datagrams the router wrote to the socket itself, bypassing the pipeline (the media send batch), by
    /// kind: the handler adds them to its `sent` counters.
    var sentOutsidePipeline: PacketCountsByKind { get }
}

extension DatagramRouter {
    /// Routers that write nothing have nothing to flush.
    public mutating func readComplete() {}

    /// Routers that write past the pipeline report it.
    public var sentOutsidePipeline: PacketCountsByKind { PacketCountsByKind() }
}

/// The router for a node with no sessions: every datagram is dropped as ``MediaDropReason/noSession``.
public struct NoSessionRouter: DatagramRouter, Sendable {
    public init() {}

    @inlinable
    public mutating func route(_ datagram: ByteBuffer, kind: DatagramKind, from remoteAddress: SocketAddress)
        -> DatagramVerdict
    {
        .dropped(.noSession)
    }
}
