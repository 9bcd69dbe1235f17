import BraidICE
import BraidSecurity
import BraidWire
import NIOCore
import NIOPosix

/// Receives what the transport decrypts; called on the transport's event loop.
protocol PeerMediaHandler: AnyObject {
    /// DTLS completed and SRTP is keyed: media may flow.
    func transportConnected(now: NIODeadline)
    /// One decrypted RTP packet. The view shares a buffer reused for the next packet: do not keep it.
    func received(rtp packet: RTPPacket, now: NIODeadline)
    /// One decrypted RTCP compound packet (same lifetime rule).
    func received(rtcp compound: RTCPCompoundPacket, now: NIODeadline)
}

/// Counters of one peer's UDP transport.
public struct TransportStatistics: Hashable, Sendable {
    /// SRTP packets sent (retransmissions included).
    public var rtpPacketsSent = 0
    /// SRTP bytes sent.
    public var rtpBytesSent = 0
    /// SRTCP packets sent.
    public var rtcpPacketsSent = 0
    /// SRTP packets received that decrypted and authenticated.
    public var rtpPacketsReceived = 0
    /// SRTP bytes received (protected size).
    public var rtpBytesReceived = 0
    /// SRTCP packets received that decrypted and authenticated.
    public var rtcpPacketsReceived = 0
    /// SRTP/SRTCP packets that failed to decrypt, and packets that arrived before the keys.
    public var unprotectFailures = 0
    /// Datagrams dropped: unknown first byte, malformed STUN/RTP/RTCP, from an unexpected address.
    public var datagramsDropped = 0
    /// STUN Binding requests sent (checks, retransmissions and consent).
    public var stunRequestsSent = 0
    /// Authenticated STUN responses received.
    public var stunResponsesReceived = 0
    /// The negotiated SRTP profile, once connected.
    public var srtpProfile: String?
    /// Uplink impairment counters (zero when the uplink is not impaired).
    public var uplinkImpairment = ImpairmentStatistics()
    /// Downlink impairment counters (zero when the downlink is not impaired).
    public var downlinkImpairment = ImpairmentStatistics()
    /// The selected remote address, once ICE has nominated a pair.
    public var remoteAddress: String?
    /// `checking`, `connected` (SRTP keyed), `failed: <reason>` (ICE, consent or DTLS) or `closed`.
    public var state = "checking"
}

/// The UDP transport of one peer: ICE (controlling, host candidates), DTLS, SRTP, RFC 7983 demux.
///
/// Confined to one event loop: every stored property is read and written only there (``eventLoop``), which
/// is what makes the `@unchecked Sendable` conformance sound. One UDP socket per peer: the node answers
/// every peer from its one media port, so the remote address cannot tell peers apart on a shared socket.
///
/// Sending protects into one reused scratch buffer; a datagram written and flushed on loopback leaves the
/// socket before `writeAndFlush` returns, so the scratch buffer is uniquely referenced again at the next
/// packet and is not copied.
final class PeerTransport: @unchecked Sendable {
    let eventLoop: any EventLoop
    let channel: any Channel
    let certificate: DTLSCertificate
    let answer: RemoteAnswer
    var ice: ICEConnectivityChecker
    var dtls: DTLSEndpoint?
    var srtp: SRTPSession?
    var selected: SocketAddress?
    var iceTimer: Scheduled<Void>?
    var dtlsTimer: Scheduled<Void>?
    var statistics = TransportStatistics()
    weak var handler: (any PeerMediaHandler)?
    let connected: EventLoopPromise<Void>
    /// Outgoing SRTP/SRTCP, reused per packet.
    var scratch: ByteBuffer
    /// Incoming decrypted RTP/RTCP, reused per packet; handlers must not keep views of it.
    var received: ByteBuffer
    var closed = false
    /// Simulated network, per direction; nil when that direction is not impaired.
    var uplink: ImpairedLink?
    var downlink: ImpairedLink?
    var uplinkQueue = DelayLine()
    var downlinkQueue = DelayLine()

    /// Binds a UDP socket on `eventLoop` at `host` (port 0).
    static func bind(host: String, on eventLoop: any EventLoop) async throws(BraidClientError) -> any Channel {
        do {
            return try await DatagramBootstrap(group: eventLoop)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048))
                .bind(host: host, port: 0).get()
        } catch {
            throw .connectionFailed("binding a UDP socket on \(host): \(error)")
        }
    }

    init(
        channel: any Channel, local: ICECredentials, certificate: DTLSCertificate, answer: RemoteAnswer
    ) throws(BraidClientError) {
        self.eventLoop = channel.eventLoop
        self.channel = channel
        self.certificate = certificate
        self.answer = answer
        self.ice = ICEConnectivityChecker(
            local: local, remoteUfrag: answer.iceUfrag, remotePassword: answer.icePassword,
            candidates: answer.candidates)
        do {
            self.dtls = try DTLSEndpoint(
                role: answer.dtlsRole, certificate: certificate, remoteFingerprint: answer.fingerprint)
        } catch {
            throw .dtlsFailed("\(error)")
        }
        self.connected = channel.eventLoop.makePromise()
        self.scratch = channel.allocator.buffer(capacity: 1500)
        self.received = channel.allocator.buffer(capacity: 2048)
    }

    /// Installs the receive handler and starts ICE. Call on any thread.
    func start() -> EventLoopFuture<Void> {
        self.eventLoop.execute {
            do {
                try self.channel.pipeline.syncOperations.addHandler(DatagramReceiver(transport: self))
            } catch {
                self.fail(.connectionFailed("installing the receive handler: \(error)"))
                return
            }
            let now = NIODeadline.now()
            self.ice.start(now: now, send: self.sendDatagram)
            self.syncStatistics()
            self.armICETimer()
        }
        return self.connected.futureResult
    }

    /// Sets up the simulated network from `options` (before ``start()``).
    func installImpairments(_ options: ConnectionOptions) {
        let seed = options.impairmentSeed ?? UInt64.random(in: 0...UInt64.max)
        if !options.uplink.isNone { self.uplink = ImpairedLink(options.uplink, seed: SplitMix64.derive(seed, 1)) }
        if !options.downlink.isNone {
            self.downlink = ImpairedLink(options.downlink, seed: SplitMix64.derive(seed, 2))
        }
    }

    // MARK: Simulated network

    /// Passes `datagram` through the uplink or downlink simulation: dropped, handed to `deliver` now, or
    /// queued for later. Each property is accessed in its own statement (class properties are checked for
    /// exclusive access at run time).
    private func impair(
        _ datagram: ByteBuffer, address: SocketAddress, isUplink: Bool, deliver: (ByteBuffer, SocketAddress) -> Void
    ) {
        let now = NIODeadline.now()
        let nanoseconds = Int64(truncatingIfNeeded: now.uptimeNanoseconds)
        let verdict: ImpairedLink.Verdict
        if isUplink {
            guard self.uplink != nil else { return deliver(datagram, address) }
            verdict = self.uplink!.decide(bytes: datagram.readableBytes, now: nanoseconds)
            self.statistics.uplinkImpairment = self.uplink!.statistics
        } else {
            guard self.downlink != nil else { return deliver(datagram, address) }
            verdict = self.downlink!.decide(bytes: datagram.readableBytes, now: nanoseconds)
            self.statistics.downlinkImpairment = self.downlink!.statistics
        }
        guard case .deliver(let after) = verdict else { return }
        let queueEmpty = isUplink ? self.uplinkQueue.isEmpty : self.downlinkQueue.isEmpty
        if after <= 0, queueEmpty {
            deliver(datagram, address)
            return
        }
        // The entry keeps the datagram's storage: the uplink scratch buffer is then copied on its next reuse
        // (one copy per delayed packet, only when a delay or cap is configured).
        let entry = DelayLine.Entry(deadline: now + .nanoseconds(after), datagram: datagram, address: address)
        let armed: Bool
        if isUplink {
            self.uplinkQueue.append(entry)
            armed = self.uplinkQueue.timer != nil
        } else {
            self.downlinkQueue.append(entry)
            armed = self.downlinkQueue.timer != nil
        }
        if !armed { self.armDelayTimer(isUplink: isUplink) }
    }

    private func armDelayTimer(isUplink: Bool) {
        let deadline = isUplink ? self.uplinkQueue.nextDeadline : self.downlinkQueue.nextDeadline
        guard let deadline, !self.closed else {
            if isUplink { self.uplinkQueue.timer = nil } else { self.downlinkQueue.timer = nil }
            return
        }
        let timer = self.eventLoop.scheduleTask(deadline: deadline) {
            guard !self.closed else { return }
            let now = NIODeadline.now()
            if isUplink {
                self.uplinkQueue.timer = nil
                self.uplinkQueue.drain(now: now) { datagram, address in
                    self.channel.write(AddressedEnvelope(remoteAddress: address, data: datagram), promise: nil)
                }
                self.channel.flush()
            } else {
                self.downlinkQueue.timer = nil
                self.downlinkQueue.drain(now: now) { datagram, address in self.process(datagram, from: address) }
            }
            self.armDelayTimer(isUplink: isUplink)
        }
        if isUplink { self.uplinkQueue.timer = timer } else { self.downlinkQueue.timer = timer }
    }

    // MARK: Receive path

    func receive(_ datagram: ByteBuffer, from source: SocketAddress) {
        guard !self.closed else { return }
        if self.downlink != nil, let first = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self),
            (128...191).contains(first)
        {
            // RTP/RTCP range of RFC 7983: the simulated downlink decides when this arrives.
            self.impair(datagram, address: source, isUplink: false) { datagram, address in
                self.process(datagram, from: address)
            }
            return
        }
        self.process(datagram, from: source)
    }

    func process(_ datagram: ByteBuffer, from source: SocketAddress) {
        guard !self.closed else { return }
        let now = NIODeadline.now()
        let first = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self)
        let second = datagram.getInteger(at: datagram.readerIndex + 1, as: UInt8.self)
        guard let first else {
            self.statistics.datagramsDropped += 1
            return
        }
        switch DatagramKind(firstByte: first, secondByte: second) {
        case .stun:
            guard let message = try? STUNMessage(parsing: datagram) else {
                self.statistics.datagramsDropped += 1
                return
            }
            self.ice.handle(message, from: source, now: now, send: self.sendDatagram)
            self.syncStatistics()
            if case .connected(let address) = self.ice.state, self.selected == nil {
                self.selected = address
                self.statistics.remoteAddress = "\(address)"
                self.startDTLS()
            }
            self.armICETimer()
        case .dtls:
            guard source == self.selected, let dtls = self.dtls else {
                self.statistics.datagramsDropped += 1
                return
            }
            let output: [[UInt8]]
            do {
                output = try datagram.withUnsafeReadableBytes { bytes in
                    try Result { () throws(DTLSError) in try dtls.receive(bytes) }.get()
                }
            } catch {
                self.statistics.datagramsDropped += 1
                return
            }
            self.send(dtlsOutput: output)
            self.afterDTLS(now: now)
        case .rtp, .rtcp:
            let isRTCP = DatagramKind(firstByte: first, secondByte: second) == .rtcp
            guard let srtp = self.srtp, source == self.selected else {
                self.statistics.unprotectFailures += 1
                return
            }
            let protectedLength = datagram.readableBytes
            // Decrypt into the reused receive buffer: mutating the datagram in place would copy it, since
            // NIO's envelope still references its storage.
            self.received.clear()
            guard (try? srtp.inbound.unprotect(datagram, isRTCP: isRTCP, appendingTo: &self.received)) != nil else {
                self.statistics.unprotectFailures += 1
                return
            }
            let plain = self.received
            if isRTCP {
                guard let compound = try? RTCPCompoundPacket(plain) else {
                    self.statistics.datagramsDropped += 1
                    return
                }
                self.statistics.rtcpPacketsReceived += 1
                self.handler?.received(rtcp: compound, now: now)
            } else {
                guard let packet = try? RTPPacket(plain) else {
                    self.statistics.datagramsDropped += 1
                    return
                }
                self.statistics.rtpPacketsReceived += 1
                self.statistics.rtpBytesReceived += protectedLength
                self.handler?.received(rtp: packet, now: now)
            }
        case .zrtp, .turnChannel, .unknown:
            self.statistics.datagramsDropped += 1
        }
    }

    // MARK: Send path

    /// Protects `packet` (a plain RTP packet, its readable bytes) and sends it to the selected pair.
    func sendRTP(_ packet: ByteBuffer) {
        self.protectAndSend(packet, isRTCP: false)
    }

    /// Protects an RTCP compound packet and sends it.
    func sendRTCP(_ packet: ByteBuffer) {
        self.protectAndSend(packet, isRTCP: true)
    }

    private func protectAndSend(_ packet: ByteBuffer, isRTCP: Bool) {
        guard let srtp = self.srtp, let remote = self.selected, !self.closed else { return }
        self.scratch.clear()
        guard let written = try? srtp.outbound.protect(packet, isRTCP: isRTCP, appendingTo: &self.scratch) else {
            return
        }
        if isRTCP {
            self.statistics.rtcpPacketsSent += 1
        } else {
            self.statistics.rtpPacketsSent += 1
            self.statistics.rtpBytesSent += written
        }
        if self.uplink != nil {
            self.impair(self.scratch, address: remote, isUplink: true) { datagram, address in
                self.channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: datagram), promise: nil)
            }
            return
        }
        self.channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: self.scratch), promise: nil)
    }

    private func sendDatagram(_ buffer: ByteBuffer, to address: SocketAddress) {
        self.channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer), promise: nil)
    }

    private func send(dtlsOutput: [[UInt8]]) {
        guard let remote = self.selected else { return }
        for datagram in dtlsOutput {
            self.sendDatagram(self.channel.allocator.buffer(bytes: datagram), to: remote)
        }
    }

    // MARK: DTLS

    private func startDTLS() {
        guard let dtls = self.dtls else { return }
        self.send(dtlsOutput: dtls.start())
        self.afterDTLS(now: .now())
    }

    private func afterDTLS(now: NIODeadline) {
        guard let dtls = self.dtls else { return }
        switch dtls.state {
        case .handshaking:
            self.armDTLSTimer()
        case .connected:
            self.dtlsTimer?.cancel()
            self.dtlsTimer = nil
            guard self.srtp == nil else { return }
            do {
                self.srtp = try dtls.makeSRTPSession()
            } catch {
                self.fail(.dtlsFailed("deriving SRTP keys: \(error)"))
                return
            }
            self.statistics.srtpProfile = dtls.negotiatedProfile?.dtlsProfileName
            self.statistics.state = "connected"
            self.handler?.transportConnected(now: now)
            self.connected.succeed(())
        case .failed(let error):
            self.fail(.dtlsFailed("\(error)"))
        case .closed:
            self.fail(.closed)
        }
    }

    private func armDTLSTimer() {
        self.dtlsTimer?.cancel()
        guard let remaining = self.dtls?.timeoutRemaining else { return }
        self.dtlsTimer = self.eventLoop.scheduleTask(
            in: .nanoseconds(
                Int64(remaining.components.seconds) * 1_000_000_000
                    + remaining.components.attoseconds / 1_000_000_000 + 1_000_000)
        ) {
            guard let dtls = self.dtls, !self.closed else { return }
            self.send(dtlsOutput: dtls.handleTimeout())
            self.afterDTLS(now: .now())
        }
    }

    // MARK: ICE timers

    private func armICETimer() {
        self.iceTimer?.cancel()
        self.iceTimer = nil
        if case .failed(let reason) = self.ice.state {
            self.fail(.iceFailed(reason))
            return
        }
        guard let deadline = self.ice.nextDeadline, !self.closed else { return }
        self.iceTimer = self.eventLoop.scheduleTask(deadline: deadline) {
            self.ice.handleTimer(now: .now(), send: self.sendDatagram)
            self.syncStatistics()
            self.armICETimer()
        }
    }

    private func syncStatistics() {
        self.statistics.stunRequestsSent = self.ice.requestsSent
        self.statistics.stunResponsesReceived = self.ice.responsesReceived
    }

    private func fail(_ error: BraidClientError) {
        if !self.closed { self.statistics.state = "failed: \(error)" }
        self.connected.fail(error)
        if self.srtp != nil, case .iceFailed = error {
            // Consent lost after media flowed: stop sending (RFC 7675 §5.1).
            self.srtp = nil
        }
    }

    /// Stops timers, sends a DTLS close_notify and closes the socket. Call on the event loop.
    func close() -> EventLoopFuture<Void> {
        guard !self.closed else { return self.eventLoop.makeSucceededVoidFuture() }
        if let dtls = self.dtls, case .connected = dtls.state { self.send(dtlsOutput: dtls.close()) }
        self.closed = true
        self.statistics.state = "closed"
        self.iceTimer?.cancel()
        self.dtlsTimer?.cancel()
        self.uplinkQueue.cancel()
        self.downlinkQueue.cancel()
        self.connected.fail(BraidClientError.closed)
        return self.channel.close().recover { _ in }
    }
}

/// Hands each received datagram to the transport (on its event loop).
private final class DatagramReceiver: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let transport: PeerTransport

    init(transport: PeerTransport) {
        self.transport = transport
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = self.unwrapInboundIn(data)
        self.transport.receive(envelope.data, from: envelope.remoteAddress)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable and friends surface here on a connected-less UDP socket: ignore.
    }
}
