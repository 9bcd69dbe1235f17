import BraidICE
import BraidSecurity
import BraidTransport
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
    /// The node was lost after the transport connected: nothing heard from it (media, RTCP or consent
    /// responses) for the loss timeout, consent or DTLS failed, or DTLS was closed. `lastHeard` is when the
    /// last datagram of the node arrived. Called once per transport.
    func transportLost(reason: String, lastHeard: NIODeadline, now: NIODeadline)
    /// Light reception (``PeerTransport/lightAuthenticationInterval``): an RTP packet as it arrived, still
    /// encrypted — its header, extensions included, is readable (SRTP encrypts payloads only), its payload
    /// is not. Returns whether the handler needs the payload: the packet is then authenticated, decrypted
    /// and handed to ``received(rtp:now:)`` as well.
    func receivedSealed(rtp packet: RTPPacket, now: NIODeadline) -> Bool
}

extension PeerMediaHandler {
    func transportLost(reason: String, lastHeard: NIODeadline, now: NIODeadline) {}
    func receivedSealed(rtp packet: RTPPacket, now: NIODeadline) -> Bool { true }
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
    /// Light reception: RTP packets authenticated as a sample (the rest were counted from their headers).
    public var rtpPacketsAuthenticated = 0
    /// The selected remote address, once ICE has nominated a pair.
    public var remoteAddress: String?
    /// `checking`, `connected` (SRTP keyed), `failed: <reason>` (ICE, consent or DTLS), `ended: <reason>`
    /// (the node ended the session, see ``endedByNode``) or `closed`.
    public var state = "checking"
    /// Set when the node ended the session: it said goodbye with an RTCP BYE (RFC 3550 §6.6; a draining
    /// node does) or closed DTLS with a close_notify alert. A peer with failover moves to its next node at
    /// once; one without has nothing more to expect from this session and should close.
    public var endedByNode: String?
}

/// The UDP transport of one peer: the socket, RFC 7983 demux, timers and the simulated network around a
/// ``SecureTransport`` in the controlling role (ICE with host candidates, DTLS client, SRTP).
///
/// Confined to one event loop: every stored property is read and written only there (``eventLoop``), which
/// is what makes the `@unchecked Sendable` conformance sound. The socket is the peer's own, or one of a
/// ``PeerSocketPool`` where the peer has a loopback address of its own (the node answers every peer from
/// its one media port, so only the local address can tell peers apart on a shared socket).
///
/// Sending protects into one reused scratch buffer; a datagram written and flushed on loopback leaves the
/// socket before `writeAndFlush` returns, so the scratch buffer is uniquely referenced again at the next
/// packet and is not copied.
final class PeerTransport: @unchecked Sendable {
    // What every received packet reads comes first, in the object's first cache lines (a load generator
    // receives for a thousand peers, and each line is a miss). Stored properties are laid out in
    // declaration order.
    var closed = false
    /// Held until ``close()``, which breaks the cycle: a weak reference would cost a side-table load per
    /// packet, and light reception has little else to do per packet.
    var handler: (any PeerMediaHandler)?
    /// Light reception: nil decrypts every RTP packet. N hands RTP packets to the handler still encrypted
    /// (``PeerMediaHandler/receivedSealed(rtp:now:)``) and authenticates one in N of them — that one is
    /// dropped if it fails, as a forged or corrupted packet would be. Saves the decryption of the rest,
    /// which is most of a simulated subscriber's cost. A light transport also compacts its DTLS endpoint
    /// once keyed (``SecureTransport/compactDTLS()``).
    var lightAuthenticationInterval: Int?
    private var sealedSinceSample = 0
    /// Light reception's copy of what the secure transport would check first (keyed, and the datagram from
    /// the selected pair), as ``sourceKey(_:)``: read per packet from here, where the packet's other state
    /// already is. Set on keying and on every selection; nil before the keys, after close, and for IPv6.
    private var lightSource: UInt64?
    /// Simulated network, per direction; nil when that direction is not impaired.
    var downlink: ImpairedLink?
    var uplink: ImpairedLink?
    /// What this type counts itself (parsing, impairments, state); ``statistics`` adds the secure
    /// transport's counters.
    private var ownStatistics = TransportStatistics()

    let eventLoop: any EventLoop
    let socket: PeerSocket
    let certificate: DTLSCertificate
    let answer: RemoteAnswer
    /// ICE, DTLS, SRTP and their counters.
    let secure: SecureTransport
    var iceTimer: Scheduled<Void>?
    var dtlsTimer: Scheduled<Void>?
    let connected: EventLoopPromise<Void>
    /// Outgoing SRTP/SRTCP, reused per packet.
    var scratch: ByteBuffer
    /// Incoming decrypted RTP/RTCP, reused per packet; handlers must not keep views of it.
    var received: ByteBuffer
    var uplinkQueue = DelayLine()
    var downlinkQueue = DelayLine()
    /// With failover on: how long the node may stay silent (no media, RTCP or consent response) before it
    /// counts as lost. Consent checks then go out every half of it, so a live node is always heard.
    let lossTimeout: TimeAmount?
    var lossTimer: RepeatedTask?
    /// When the node was last heard from, and the counters that tell (read by the loss timer only).
    var lastHeard = NIODeadline.now()
    var heardCount = 0
    /// Set once SRTP is keyed; the loss of the node is reported only after that, and only once.
    var wasKeyed = false
    var lossReported = false

    /// - Parameter iceLite: answer the peer's checks as an ICE-lite agent and send none (a peer that made
    ///   the offer and controls ICE, such as Janus for its subscribers; our SDP then says `a=ice-lite`).
    init(
        socket: PeerSocket, local: ICECredentials, certificate: DTLSCertificate, answer: RemoteAnswer,
        lossTimeout: Duration? = nil, iceLite: Bool = false
    ) throws(BraidClientError) {
        self.eventLoop = socket.eventLoop
        self.socket = socket
        self.certificate = certificate
        self.answer = answer
        let loss = lossTimeout.map { TimeAmount.nanoseconds(max(Int64(1), $0.nanoseconds)) }
        self.lossTimeout = loss
        let checker: ICEConnectivityChecker
        if let loss {
            // Consent every loss/2 × [0.8, 1.2]: an idle but live node answers well within the timeout.
            checker = ICEConnectivityChecker(
                local: local, remoteUfrag: answer.iceUfrag, remotePassword: answer.icePassword,
                candidates: answer.candidates, consentInterval: .nanoseconds(loss.nanoseconds / 2))
        } else {
            checker = ICEConnectivityChecker(
                local: local, remoteUfrag: answer.iceUfrag, remotePassword: answer.icePassword,
                candidates: answer.candidates)
        }
        let dtls: DTLSEndpoint
        do {
            dtls = try DTLSEndpoint(
                role: answer.dtlsRole, certificate: certificate, remoteFingerprint: answer.fingerprint)
        } catch {
            throw .dtlsFailed("\(error)")
        }
        let allocator = ByteBufferAllocator()
        if iceLite {
            let agent: ICELiteAgent
            do {
                agent = try ICELiteAgent(
                    local: local, remote: ICECredentials(ufrag: answer.iceUfrag, password: answer.icePassword),
                    now: .now)
            } catch {
                throw .iceFailed("the peer's ICE credentials: \(error)")
            }
            self.secure = SecureTransport(ice: .lite(agent), dtls: dtls, allocator: allocator)
        } else {
            self.secure = SecureTransport(ice: .controlling(checker), dtls: dtls, allocator: allocator)
        }
        self.connected = socket.eventLoop.makePromise()
        self.scratch = allocator.buffer(capacity: 1500)
        self.received = allocator.buffer(capacity: 2048)
    }

    /// The counters: this transport's own and its secure transport's.
    var statistics: TransportStatistics {
        var statistics = self.ownStatistics
        let counters = self.secure.counters
        statistics.rtpPacketsSent = Int(truncatingIfNeeded: counters.rtpPacketsSent)
        statistics.rtpBytesSent = Int(truncatingIfNeeded: counters.rtpBytesSent)
        statistics.rtcpPacketsSent = Int(truncatingIfNeeded: counters.rtcpPacketsSent)
        statistics.unprotectFailures = Int(truncatingIfNeeded: counters.unprotectFailures)
        // Malformed STUN, DTLS from elsewhere than the selected pair and rejected DTLS are dropped datagrams.
        statistics.datagramsDropped &+= Int(
            truncatingIfNeeded: counters.stunRejected &+ counters.strayDTLS &+ counters.dtlsErrors)
        statistics.stunRequestsSent = self.secure.checker?.requestsSent ?? 0
        statistics.stunResponsesReceived = self.secure.checker?.responsesReceived ?? 0
        return statistics
    }

    /// Whether SRTP keys exist (DTLS connected, consent not lost): media may be sent.
    var isKeyed: Bool { self.secure.isKeyed }

    /// Installs the receive handler and starts ICE. Call on any thread.
    func start() -> EventLoopFuture<Void> {
        self.eventLoop.execute {
            do {
                try self.socket.attach(self)
            } catch {
                self.fail(.connectionFailed("installing the receive handler: \(error)"))
                return
            }
            self.secure.startICE(now: .now(), send: self.sendDatagram)
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
            self.ownStatistics.uplinkImpairment = self.uplink!.statistics
        } else {
            guard self.downlink != nil else { return deliver(datagram, address) }
            verdict = self.downlink!.decide(bytes: datagram.readableBytes, now: nanoseconds)
            self.ownStatistics.downlinkImpairment = self.downlink!.statistics
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
                self.uplinkQueue.drain(now: now) { datagram, address in self.socket.write(datagram, to: address) }
                self.socket.flush()
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
            self.ownStatistics.datagramsDropped += 1
            return
        }
        switch DatagramKind(firstByte: first, secondByte: second) {
        case .stun:
            if let agent = self.secure.agent {
                self.answerCheck(datagram, agent: agent, from: source)
                return
            }
            switch self.secure.receiveSTUN(datagram, from: source, now: now, send: self.sendDatagram) {
            case .rejected:
                return  // counted by the secure transport
            case .handled:
                break
            case .selected(let address, let progress):
                self.ownStatistics.remoteAddress = "\(address)"
                self.refreshLightSource()
                self.afterDTLS(progress, now: now)
            }
            self.armICETimer()
        case .dtls:
            // Only from the selected pair; stray and rejected datagrams are counted by the secure transport.
            guard case .accepted(let progress) = self.secure.receiveDTLS(
                datagram, from: source, now: .now, send: self.sendDatagram)
            else { return }
            self.afterDTLS(progress, now: now)
        case .rtp, .rtcp:
            let isRTCP = DatagramKind(firstByte: first, secondByte: second) == .rtcp
            if !isRTCP, let interval = self.lightAuthenticationInterval, self.receiveSealed(datagram, from: source, interval: interval, now: now) {
                return
            }
            let protectedLength = datagram.readableBytes
            // Decrypt into the reused receive buffer: mutating the datagram in place would copy it, since
            // NIO's envelope still references its storage. Media before the keys or from another address
            // than the selected pair counts as an unprotect failure.
            let result = self.secure.unprotect(datagram, isRTCP: isRTCP, from: source, now: .now, into: &self.received)
            guard result == .unprotected else { return }
            let plain = self.received
            if isRTCP {
                guard let compound = try? RTCPCompoundPacket(plain) else {
                    self.ownStatistics.datagramsDropped += 1
                    return
                }
                self.ownStatistics.rtcpPacketsReceived += 1
                self.handler?.received(rtcp: compound, now: now)
                if compound.contains(where: { if case .goodbye = $0 { true } else { false } }) {
                    self.endedByNode("the node said goodbye (RTCP BYE)", now: now)
                }
            } else {
                guard let packet = try? RTPPacket(plain) else {
                    self.ownStatistics.datagramsDropped += 1
                    return
                }
                self.ownStatistics.rtpPacketsReceived += 1
                self.ownStatistics.rtpBytesReceived += protectedLength
                self.handler?.received(rtp: packet, now: now)
            }
        case .zrtp, .turnChannel, .unknown:
            self.ownStatistics.datagramsDropped += 1
        }
    }

    /// ICE-lite role: answers the peer's check (RFC 8445 §7.3, see `ICELiteAgent`); DTLS and media are
    /// then admitted from its address.
    private func answerCheck(_ datagram: ByteBuffer, agent: ICELiteAgent, from source: SocketAddress) {
        guard let message = try? STUNMessage(parsing: datagram) else {
            self.ownStatistics.datagramsDropped += 1
            return
        }
        var response = ByteBuffer()
        let outcome = agent.handleBindingRequest(message: message, from: source, now: .now, responseInto: &response)
        if case .respond = outcome, response.readableBytes > 0 { self.sendDatagram(response, to: source) }
        self.secure.checkAnswered(outcome, from: source)
        self.refreshLightSource()
        if case .respond(.success) = outcome, self.ownStatistics.remoteAddress == nil {
            self.ownStatistics.remoteAddress = "\(source)"
        }
    }

    /// Light reception of one SRTP packet: one in `interval` is authenticated first (and dropped if it
    /// fails), then the handler reads its header. Returns false when the packet must go the full way
    /// (the handler needs its payload, or its header does not parse).
    private func receiveSealed(_ datagram: ByteBuffer, from source: SocketAddress, interval: Int, now: NIODeadline) -> Bool {
        // Before the keys, or from another address than the selected pair, the full path counts the packet
        // as an unprotect failure.
        guard let expected = self.lightSource, Self.sourceKey(source) == expected, let sealed = try? RTPPacket(datagram)
        else { return false }
        self.sealedSinceSample += 1
        var decrypted = false
        if self.sealedSinceSample >= interval {
            self.sealedSinceSample = 0
            guard self.secure.unprotect(datagram, isRTCP: false, from: source, now: .now, into: &self.received) == .unprotected
            else { return true }  // counted by the secure transport
            self.ownStatistics.rtpPacketsAuthenticated += 1
            decrypted = true
        }
        let needsPayload = self.handler?.receivedSealed(rtp: sealed, now: now) ?? false
        // Not yet decrypted: the full path decrypts, counts and delivers it.
        if needsPayload, !decrypted { return false }
        self.ownStatistics.rtpPacketsReceived += 1
        self.ownStatistics.rtpBytesReceived += datagram.readableBytes
        // Already decrypted (a second unprotect would be refused as a replay).
        if needsPayload, let packet = try? RTPPacket(self.received) { self.handler?.received(rtp: packet, now: now) }
        return true
    }

    /// An IPv4 address and port as one number; nil for IPv6.
    static func sourceKey(_ address: SocketAddress) -> UInt64? {
        guard case .v4 = address else { return nil }
        // struct sockaddr_in: family (2 bytes), port (2), address (4), both in network byte order.
        return address.withSockAddr { pointer, _ in
            let raw = UnsafeRawPointer(pointer)
            return UInt64(raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) << 16
                | UInt64(raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        }
    }

    private func refreshLightSource() {
        self.lightSource = self.secure.isKeyed ? self.secure.destination.flatMap(Self.sourceKey) : nil
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

    /// Protects an RTP packet once and sends it `copies` times: now, then `spacing` apart. The copies are
    /// the same datagram (same sequence number), so the receiver's SRTP replay check keeps the first that
    /// arrives and drops the others. For audio on a lossy uplink (``UplinkRED``).
    func sendRTP(_ packet: ByteBuffer, copies: Int, spacing: TimeAmount) {
        guard copies > 1 else { return self.sendRTP(packet) }
        guard !self.closed else { return }
        self.scratch.clear()
        guard let remote = self.secure.protect(packet, isRTCP: false, appendingTo: &self.scratch) else { return }
        self.emit(self.scratch, to: remote)
        let datagram = ByteBuffer(buffer: self.scratch)  // its own storage: the scratch is reused at once
        for copy in 1..<copies {
            self.eventLoop.scheduleTask(in: .nanoseconds(spacing.nanoseconds * Int64(copy))) {
                guard !self.closed else { return }
                self.emit(datagram, to: remote)
            }
        }
    }

    private func protectAndSend(_ packet: ByteBuffer, isRTCP: Bool) {
        guard !self.closed else { return }
        self.scratch.clear()
        // Nil without keys or selected pair (or when protection fails): nothing is sent.
        guard let remote = self.secure.protect(packet, isRTCP: isRTCP, appendingTo: &self.scratch) else { return }
        self.emit(self.scratch, to: remote)
    }

    /// Sends a protected datagram, through the uplink simulation when one is configured.
    private func emit(_ datagram: ByteBuffer, to remote: SocketAddress) {
        if self.uplink != nil {
            self.impair(datagram, address: remote, isUplink: true) { datagram, address in
                self.socket.write(datagram, to: address)
                self.socket.flush()
            }
            return
        }
        self.socket.write(datagram, to: remote)
        self.socket.flush()
    }

    private func sendDatagram(_ buffer: ByteBuffer, to address: SocketAddress) {
        self.socket.write(buffer, to: address)
        self.socket.flush()
    }

    // MARK: DTLS

    /// Acts on a DTLS event: connected (keys ready), failed, closed, or still handshaking (re-arm).
    private func afterDTLS(_ progress: SecureTransport.HandshakeProgress, now: NIODeadline) {
        switch progress {
        case .keyed:
            self.dtlsTimer?.cancel()
            self.dtlsTimer = nil
            self.ownStatistics.srtpProfile = self.secure.srtpProfile?.dtlsProfileName
            self.ownStatistics.state = "connected"
            self.wasKeyed = true
            self.lastHeard = now
            self.refreshLightSource()
            // A light subscriber keeps no DTLS state past the handshake (~40 KB of OpenSSL buffers per
            // peer); the node's close_notify is then recognised by its record type alone.
            if self.lightAuthenticationInterval != nil { self.secure.compactDTLS() }
            self.startLossTimer()
            self.handler?.transportConnected(now: now)
            self.connected.succeed(())
            return
        case .keyingFailed(let error):
            self.dtlsTimer?.cancel()
            self.dtlsTimer = nil
            self.fail(.dtlsFailed("deriving SRTP keys: \(error)"))
            return
        case .unchanged:
            break
        }
        switch self.secure.dtlsState {
        case .handshaking:
            self.armDTLSTimer()
        case .connected:
            self.dtlsTimer?.cancel()
            self.dtlsTimer = nil
        case .failed(let error):
            self.fail(.dtlsFailed("\(error)"))
        case .closed:
            self.endedByNode("the node closed DTLS (close_notify)", now: now)
        }
    }

    /// The node ended the session (RTCP BYE or DTLS close_notify): recorded, and reported as the loss of
    /// the node at once, not after the silence timeout.
    private func endedByNode(_ reason: String, now: NIODeadline) {
        guard !self.closed, self.ownStatistics.endedByNode == nil else { return }
        self.ownStatistics.endedByNode = reason
        self.ownStatistics.state = "ended: \(reason)"
        self.connected.fail(BraidClientError.closed)
        self.reportLoss(reason, now: now)
    }

    private func armDTLSTimer() {
        self.dtlsTimer?.cancel()
        guard let delay = self.secure.retransmitDelay else { return }
        // A millisecond late, so that OpenSSL's own timer has expired when it is asked.
        self.dtlsTimer = self.eventLoop.scheduleTask(in: delay + .milliseconds(1)) {
            guard !self.closed else { return }
            let progress = self.secure.handleRetransmitTimeout(send: self.sendDatagram)
            self.afterDTLS(progress, now: .now())
        }
    }

    // MARK: ICE timers

    private func armICETimer() {
        self.iceTimer?.cancel()
        self.iceTimer = nil
        if case .failed(let reason) = self.secure.checker?.state {
            // The secure transport has discarded its keys: no more media is sent (RFC 7675 §5.1).
            self.fail(.iceFailed(reason))
            return
        }
        guard let deadline = self.secure.iceDeadline, !self.closed else { return }
        self.iceTimer = self.eventLoop.scheduleTask(deadline: deadline) {
            self.secure.handleICETimer(now: .now(), send: self.sendDatagram)
            self.armICETimer()
        }
    }

    private func fail(_ error: BraidClientError) {
        if !self.closed { self.ownStatistics.state = "failed: \(error)" }
        self.connected.fail(error)
        self.reportLoss("\(error)", now: .now())
    }

    // MARK: Loss of the node

    /// Datagrams heard from the node so far: STUN responses, RTP and RTCP that authenticated.
    private var heardSoFar: Int {
        let statistics = self.ownStatistics
        return statistics.rtpPacketsReceived &+ statistics.rtcpPacketsReceived
            &+ (self.secure.checker?.responsesReceived ?? 0)
    }

    private func startLossTimer() {
        guard let loss = self.lossTimeout, self.lossTimer == nil else { return }
        self.heardCount = self.heardSoFar
        let period = TimeAmount.nanoseconds(min(max(loss.nanoseconds / 10, 10_000_000), 100_000_000))
        self.lossTimer = self.eventLoop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            guard !self.closed else { return }
            let now = NIODeadline.now()
            let heard = self.heardSoFar
            if heard != self.heardCount {
                self.heardCount = heard
                self.lastHeard = now
            } else if now - self.lastHeard >= loss {
                self.ownStatistics.state = "failed: nothing heard from the node for \(loss)"
                self.reportLoss("nothing heard from the node for \(loss)", now: now)
            }
        }
    }

    /// Tells the handler once that the node is lost (after SRTP was keyed; never after ``close()``).
    private func reportLoss(_ reason: String, now: NIODeadline) {
        guard self.wasKeyed, !self.lossReported, !self.closed else { return }
        self.lossReported = true
        self.lossTimer?.cancel()
        self.lossTimer = nil
        self.handler?.transportLost(reason: reason, lastHeard: self.lastHeard, now: now)
    }

    /// Stops timers, sends a DTLS close_notify and closes the socket. Call on the event loop.
    func close() -> EventLoopFuture<Void> {
        guard !self.closed else { return self.eventLoop.makeSucceededVoidFuture() }
        self.secure.closeDTLS(send: self.sendDatagram)
        self.closed = true
        self.ownStatistics.state = "closed"
        self.lightSource = nil
        self.handler = nil
        self.iceTimer?.cancel()
        self.dtlsTimer?.cancel()
        self.lossTimer?.cancel()
        self.lossTimer = nil
        self.uplinkQueue.cancel()
        self.downlinkQueue.cancel()
        self.connected.fail(BraidClientError.closed)
        return self.socket.close()
    }
}

/// Where a peer's datagrams go out and come in: a UDP socket of its own, or its own loopback address on
/// a socket of a ``PeerSocketPool``.
enum PeerSocket {
    case own(any Channel)
    case shared(SharedPeerSocket, address: UInt32)

    /// Binds a UDP socket of its own on `eventLoop` at `host` (port 0).
    static func bind(host: String, on eventLoop: any EventLoop) async throws(BraidClientError) -> PeerSocket {
        do {
            return .own(
                try await DatagramBootstrap(group: eventLoop)
                    .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048))
                    .bind(host: host, port: 0).get())
        } catch {
            throw .connectionFailed("binding a UDP socket on \(host): \(error)")
        }
    }

    /// The peer's own socket; nil for a shared one.
    var ownChannel: (any Channel)? {
        if case .own(let channel) = self { channel } else { nil }
    }

    var eventLoop: any EventLoop {
        switch self {
        case .own(let channel): channel.eventLoop
        case .shared(let socket, _): socket.eventLoop
        }
    }

    /// The address the node can reach this peer at (offered as its host candidate).
    var localAddress: SocketAddress? {
        switch self {
        case .own(let channel): channel.localAddress
        case .shared(let socket, let address): socket.socketAddress(address)
        }
    }

    /// Where this peer's HTTP requests come from: its own loopback address on a shared socket, so the node
    /// sees one client per address for signalling too; nil (the system's choice) for an own socket.
    var httpLocalAddress: SocketAddress? {
        guard case .shared(let socket, let address) = self else { return nil }
        return socket.socketAddress(address).flatMap { $0.ipAddress }.flatMap { try? SocketAddress(ipAddress: $0, port: 0) }
    }

    /// Delivers what arrives for this peer to `transport`. On the event loop.
    func attach(_ transport: PeerTransport) throws {
        switch self {
        case .own(let channel): try channel.pipeline.syncOperations.addHandler(DatagramReceiver(transport: transport))
        case .shared(let socket, let address): socket.attach(transport, address: address)
        }
    }

    /// Queues a datagram (a shared socket sends it at once). On the event loop.
    func write(_ datagram: ByteBuffer, to remote: SocketAddress) {
        switch self {
        case .own(let channel): channel.write(AddressedEnvelope(remoteAddress: remote, data: datagram), promise: nil)
        case .shared(let socket, let address): socket.send(datagram, to: remote, from: address)
        }
    }

    func flush() {
        if case .own(let channel) = self { channel.flush() }
    }

    /// Closes an own socket; leaves a shared one (other peers use it). On the event loop.
    func close() -> EventLoopFuture<Void> {
        switch self {
        case .own(let channel):
            return channel.close().recover { _ in }
        case .shared(let socket, let address):
            socket.detach(address: address)
            return socket.eventLoop.makeSucceededVoidFuture()
        }
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
