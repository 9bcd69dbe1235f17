import BraidSFU
import BraidTransport
import BraidWire
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

/// What one session may still queue while the media socket is not writable (`limits.outbound_queue_packets`).
///
/// Media goes out through a ``DatagramSendBatch``: a fixed slab flushed into the kernel's send queue, so
/// nothing queues in user space beyond 256 datagrams; when the kernel's queue is full, the rest of a
/// flush is dropped and the socket counts as not writable until a flush gets through. (Without a socket of
/// its own, NIO queues every write it cannot hand to the kernel, up to its high-water mark,
/// ``MediaService/writeBufferWaterMark``.) Each session counts the packets it writes while the socket is
/// not writable, per *unwritable period*: beyond the limit its packets are dropped before encryption and
/// counted, so one session cannot crowd the others out of the queue. Plain integers, no allocation.
struct OutboundQueueBudget {
    /// The unwritable period the count belongs to (``WebRTCOutputBatch/unwritablePeriod``).
    private(set) var period: UInt64 = 0
    /// Packets written in that period.
    private(set) var queued = 0
    /// The most packets written in any one period.
    private(set) var peak = 0
    /// Packets refused since the session began.
    private(set) var dropped: UInt64 = 0

    /// Takes one packet of `limit` in `period`; false (and counted) when the session has used them all.
    mutating func take(period: UInt64, limit: Int) -> Bool {
        if period != self.period {
            self.period = period
            self.queued = 0
        }
        guard self.queued < limit else {
            self.dropped &+= 1
            return false
        }
        self.queued += 1
        if self.queued > self.peak { self.peak = self.queued }
        return true
    }
}

/// Writes to the media socket that wait for one flush: the store flushes once per batch of received
/// datagrams and once per forwarding tick, so the kernel gets many datagrams per `sendmmsg` call.
///
/// On a real socket the datagrams go through a ``DatagramSendBatch`` (SRTP protects straight into its
/// slots); a channel without a socket of its own (tests' `EmbeddedChannel`) gets them as NIO writes.
final class WebRTCOutputBatch {
    /// NIO writes queued before a flush is forced even inside a read batch: one keyframe fanned out to a
    /// thousand subscribers is thousands of datagrams, and NIO hands the kernel at most 1024 per
    /// `sendmmsg` anyway. Keeps the pending bytes (and the channel's writability) bounded.
    static let maximumPendingWrites = 512

    private let channel: any Channel
    /// The direct path; nil: NIO writes.
    private let direct: DatagramSendBatch?
    private var pendingWrites = 0
    private var hasPendingWrites: Bool { self.pendingWrites > 0 }
    /// What every transport of this batch has sent since the socket opened: it outlives the sessions,
    /// so the Prometheus counters built from it only grow. `dropped` includes datagrams the kernel
    /// refused because its send queue was full.
    var totals: WebRTCSendCounters {
        var totals = self.counted
        if let direct = self.direct { totals.dropped &+= direct.droppedQueueFull &+ direct.failed }
        return totals
    }
    private var counted = WebRTCSendCounters()
    /// What the direct path handed to the send batch, by kind (NIO writes are counted by the pipeline's
    /// ``MediaChannelHandler``).
    private(set) var sentByKind = PacketCountsByKind()
    /// Packets one session may write while the socket is not writable (``OutboundQueueBudget``).
    let queueLimit: Int
    /// Counts the periods in which the socket was found not writable.
    private(set) var unwritablePeriod: UInt64 = 0
    private var wasWritable = true
    /// Packets refused by a session's ``OutboundQueueBudget`` since the socket opened (ended sessions
    /// included).
    private(set) var queueDrops: UInt64 = 0

    /// - Parameters:
    ///   - socket: the channel's socket descriptor, for the direct path; nil: write through the channel.
    init(
        channel: any Channel, socket: CInt? = nil,
        queueLimit: Int = NodeConfiguration.Limits.defaults.outboundQueuePackets
    ) {
        self.channel = channel
        self.direct = socket.flatMap { DatagramSendBatch(socket: $0) }
        self.queueLimit = max(1, queueLimit)
    }

    /// Protects `packet` with `secure` and queues it for the peer's selected address.
    func send(_ packet: ByteBuffer, isRTCP: Bool, with secure: SecureTransport) {
        let written: Int?
        if let direct = self.direct {
            written = direct.append { slot in secure.protect(packet, isRTCP: isRTCP, into: slot) }
        } else if let (datagram, destination) = secure.protect(packet, isRTCP: isRTCP) {
            written = datagram.readableBytes
            self.enqueue(datagram, to: destination)
        } else {
            written = nil
        }
        guard let written else {
            self.counted.dropped &+= 1
            return
        }
        if isRTCP {
            self.counted.rtcpSent.add(bytes: written)
        } else {
            self.counted.rtpSent.add(bytes: written)
        }
        if self.direct != nil { self.sentByKind[isRTCP ? .rtcp : .rtp].add(bytes: written) }
    }

    /// Queues a datagram that is already protected (DTLS records, a goodbye), in order with the rest.
    func write(_ datagram: ByteBuffer, to address: SocketAddress) {
        guard let direct = self.direct else { return self.enqueue(datagram, to: address) }
        let copied = direct.append { slot in
            guard datagram.readableBytes <= slot.count else { return nil }
            datagram.withUnsafeReadableBytes { slot.copyMemory(from: $0) }
            return (datagram.readableBytes, address)
        }
        guard let copied else {
            self.counted.dropped &+= 1
            return
        }
        let first = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self) ?? 0
        let second = datagram.getInteger(at: datagram.readerIndex &+ 1, as: UInt8.self)
        self.sentByKind[DatagramKind(firstByte: first, secondByte: second)].add(bytes: copied)
    }

    private func enqueue(_ datagram: ByteBuffer, to address: SocketAddress) {
        self.channel.write(AddressedEnvelope(remoteAddress: address, data: datagram), promise: nil)
        self.pendingWrites &+= 1
        if self.pendingWrites >= Self.maximumPendingWrites { self.flush() }
    }

    /// Whether a session with `budget` may queue one more packet now: always while the socket is
    /// writable; otherwise while it has used fewer than ``queueLimit`` in this unwritable period.
    func admit(_ budget: inout OutboundQueueBudget) -> Bool {
        if self.isWritable {
            self.wasWritable = true
            return true
        }
        if self.wasWritable {
            self.wasWritable = false
            self.unwritablePeriod &+= 1
        }
        guard budget.take(period: self.unwritablePeriod, limit: self.queueLimit) else {
            self.queueDrops &+= 1
            return false
        }
        return true
    }

    func flush() {
        self.direct?.flush()
        guard self.hasPendingWrites else { return }
        self.pendingWrites = 0
        self.channel.flush()
    }

    /// Releases the direct path's descriptor (the channel closed).
    func close() {
        self.direct?.close()
    }

    /// Whether the socket takes more writes: false while NIO's pending writes are above the channel's
    /// high-water mark, or while the kernel's send queue was full at the last direct flush.
    var isWritable: Bool { self.channel.isWritable && !(self.direct?.isFull ?? false) }
}

/// The forwarding core's way out to one WebRTC peer: its ``SecureTransport`` protects each packet into a
/// send slot (or a fresh buffer) for the peer's selected address, queued in the store's
/// ``WebRTCOutputBatch``.
/// The plain packet from the core is never encrypted in place:
/// the core reuses its scratch buffer, and the write completes later (DESIGN.md, "never encrypt a shared
/// buffer in place"). Confined to the media channel's event loop.
final class WebRTCMediaTransport: MediaTransport {
    private let batch: WebRTCOutputBatch
    /// The session's transport: keys (packets without them are counted as dropped) and destination.
    private let secure: SecureTransport
    /// What the session may still queue while the socket is full.
    private(set) var queue = OutboundQueueBudget()

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

    /// Stage 0: the secure transport's first cache lines; then its stages down to the cipher state.
    func prefetch(stage: Int) {
        if stage == 0 {
            CachePrefetch.object(self.secure, lines: 2)
        } else {
            self.secure.prefetchForProtect(stage: stage - 1)
        }
    }

    private func protectAndWrite(_ packet: ByteBuffer, isRTCP: Bool) {
        // Before protecting: a refused packet costs neither encryption nor a buffer.
        guard self.batch.admit(&self.queue) else { return }
        self.batch.send(packet, isRTCP: isRTCP, with: self.secure)
    }
}
