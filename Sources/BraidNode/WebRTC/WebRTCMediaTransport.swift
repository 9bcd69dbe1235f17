import BraidSFU
import BraidTransport
import NIOCore

/// What the node sent to one peer on behalf of the forwarding core. Wrapping arithmetic.
public struct WebRTCSendCounters: Sendable, Equatable, Codable {
    /// SRTP packets written to the socket, with their protected sizes.
    public var rtpSent = PacketCount()
    /// SRTCP packets written to the socket, with their protected sizes.
    public var rtcpSent = PacketCount()
    /// Packets the core produced before the peer had keys or a selected address, or that failed to protect.
    public var dropped: UInt64 = 0

    public init() {}

    /// The send side of a session's transport counters.
    init(_ counters: SecureTransportCounters) {
        self.rtpSent = PacketCount(packets: counters.rtpPacketsSent, bytes: counters.rtpBytesSent)
        self.rtcpSent = PacketCount(packets: counters.rtcpPacketsSent, bytes: counters.rtcpBytesSent)
        self.dropped = counters.sendDrops
    }

    enum CodingKeys: String, CodingKey {
        case rtpSent = "rtp_sent"
        case rtcpSent = "rtcp_sent"
        case dropped
    }
}

/// Writes to the media socket that wait for one flush: the store flushes once per batch of received
/// datagrams and once per forwarding tick, so NIO hands the kernel many datagrams per `sendmmsg` call.
final class WebRTCOutputBatch {
    /// Writes queued before a flush is forced even inside a read batch: one keyframe fanned out to a
    /// thousand subscribers is thousands of datagrams, and NIO hands the kernel at most 1024 per
    /// `sendmmsg` anyway. Keeps the pending bytes (and the channel's writability) bounded.
    static let maximumPendingWrites = 512

    private let channel: any Channel
    private var pendingWrites = 0
    private var hasPendingWrites: Bool { self.pendingWrites > 0 }
    /// What every transport of this batch has sent since the socket opened: it outlives the sessions,
    /// so the Prometheus counters built from it only grow.
    var totals = WebRTCSendCounters()

    init(channel: any Channel) {
        self.channel = channel
    }

    func write(_ datagram: ByteBuffer, to address: SocketAddress) {
        self.channel.write(AddressedEnvelope(remoteAddress: address, data: datagram), promise: nil)
        self.pendingWrites &+= 1
        if self.pendingWrites >= Self.maximumPendingWrites { self.flush() }
    }

    func flush() {
        guard self.hasPendingWrites else { return }
        self.pendingWrites = 0
        self.channel.flush()
    }

    /// Whether the socket takes more writes (false while the kernel's send queue and NIO's pending
    /// writes are above the channel's high-water mark).
    var isWritable: Bool { self.channel.isWritable }
}

/// The forwarding core's way out to one WebRTC peer: its ``SecureTransport`` protects each packet into a
/// fresh buffer for the peer's selected address, queued here in the store's ``WebRTCOutputBatch``.
/// The plain packet from the core is never encrypted in place:
/// the core reuses its scratch buffer, and the write completes later (DESIGN.md, "never encrypt a shared
/// buffer in place"). Confined to the media channel's event loop.
final class WebRTCMediaTransport: MediaTransport {
    private let batch: WebRTCOutputBatch
    /// The session's transport: keys (packets without them are counted as dropped) and destination.
    private let secure: SecureTransport

    init(batch: WebRTCOutputBatch, secure: SecureTransport) {
        self.batch = batch
        self.secure = secure
    }

    /// What was sent to this peer.
    var counters: WebRTCSendCounters { WebRTCSendCounters(self.secure.counters) }

    func sendRTP(_ packet: ByteBuffer) {
        self.protectAndWrite(packet, isRTCP: false)
    }

    func sendRTCP(_ packet: ByteBuffer) {
        self.protectAndWrite(packet, isRTCP: true)
    }

    var isWritable: Bool { self.batch.isWritable }

    private func protectAndWrite(_ packet: ByteBuffer, isRTCP: Bool) {
        guard let (datagram, destination) = self.secure.protect(packet, isRTCP: isRTCP) else {
            self.batch.totals.dropped &+= 1
            return
        }
        if isRTCP {
            self.batch.totals.rtcpSent.add(bytes: datagram.readableBytes)
        } else {
            self.batch.totals.rtpSent.add(bytes: datagram.readableBytes)
        }
        self.batch.write(datagram, to: destination)
    }
}
