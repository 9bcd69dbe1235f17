import BraidWire
import NIOCore

/// The inbound end of the media socket: splits GRO reads, classifies, counts, and routes each datagram.
///
/// All state lives on the channel's event loop as plain integers: no locks or atomics per datagram, no
/// heap allocation per datagram (slicing a `ByteBuffer` only retains its storage). Readers take a
/// ``MediaTrafficSnapshot`` by hopping onto the loop (``MediaService/snapshot()``).
public final class MediaChannelHandler<Router: DatagramRouter>: ChannelDuplexHandler {
    public typealias InboundIn = AddressedEnvelope<ByteBuffer>
    public typealias OutboundIn = AddressedEnvelope<ByteBuffer>
    public typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private var router: Router
    private var counters = MediaTrafficSnapshot()
    private let onInactive: @Sendable (MediaTrafficSnapshot) -> Void

    /// - Parameters:
    ///   - router: where STUN, DTLS, RTP and RTCP datagrams go.
    ///   - onInactive: receives the final counters when the channel closes, so they outlive the pipeline.
    public init(router: Router, onInactive: @escaping @Sendable (MediaTrafficSnapshot) -> Void = { _ in }) {
        self.router = router
        self.onInactive = onInactive
    }

    /// The counters so far, with what the router sent past the pipeline. Read only on the channel's event loop.
    public var snapshot: MediaTrafficSnapshot {
        var snapshot = self.counters
        snapshot.sent = snapshot.sent + self.router.sentOutsidePipeline
        return snapshot
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        let buffer = envelope.data
        // With GRO the kernel hands over several datagrams of one flow in one buffer, all of
        // `segmentSize` bytes except possibly the last; NIO reports the size in the metadata.
        guard let segmentSize = envelope.metadata?.segmentSize, segmentSize > 0,
            buffer.readableBytes > segmentSize
        else {
            self.receive(buffer, from: envelope.remoteAddress)
            return
        }
        self.counters.coalescedReads &+= 1
        var offset = buffer.readerIndex
        let end = buffer.writerIndex
        while offset < end {
            let length = min(segmentSize, end - offset)
            guard let segment = buffer.getSlice(at: offset, length: length) else { break }
            self.receive(segment, from: envelope.remoteAddress)
            offset += length
        }
    }

    /// Counts every datagram written on the socket, whoever writes it (ICE answers, DTLS flights, media),
    /// by the same RFC 7983 classification as the inbound side, then passes it on.
    public func channelReadComplete(context: ChannelHandlerContext) {
        self.router.readComplete()
        context.fireChannelReadComplete()
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let datagram = Self.unwrapOutboundIn(data).data
        let first = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self)
        let second = datagram.getInteger(at: datagram.readerIndex &+ 1, as: UInt8.self)
        let kind = first.map { DatagramKind(firstByte: $0, secondByte: second) } ?? .unknown
        self.counters.sent[kind].add(bytes: datagram.readableBytes)
        context.write(data, promise: promise)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A UDP socket reports errors such as ECONNREFUSED (an ICMP reply to an earlier send) on
        // receive; they concern one peer, so they are counted and the socket stays open.
        self.counters.receiveErrors &+= 1
    }

    public func channelInactive(context: ChannelHandlerContext) {
        self.onInactive(self.snapshot)
        context.fireChannelInactive()
    }

    /// Classifies and counts one datagram, then drops it or hands it to the router.
    private func receive(_ datagram: ByteBuffer, from remoteAddress: SocketAddress) {
        let length = datagram.readableBytes
        guard let first = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self) else {
            self.counters.received[.unknown].add(bytes: 0)
            self.counters.drops.empty &+= 1
            return
        }
        let second = datagram.getInteger(at: datagram.readerIndex &+ 1, as: UInt8.self)
        let kind = DatagramKind(firstByte: first, secondByte: second)
        self.counters.received[kind].add(bytes: length)

        let verdict: DatagramVerdict
        switch kind {
        case .stun, .dtls, .rtp, .rtcp:
            verdict = self.router.route(datagram, kind: kind, from: remoteAddress)
        case .zrtp:
            verdict = .dropped(.zrtpUnsupported)
        case .turnChannel:
            verdict = .dropped(.turnChannelUnsupported)
        case .unknown:
            verdict = .dropped(.unknownProtocol)
        }
        if case .dropped(let reason) = verdict {
            self.counters.drops[reason] &+= 1
        }
    }
}

// The handler's state belongs to one event loop.
@available(*, unavailable)
extension MediaChannelHandler: Sendable {}
