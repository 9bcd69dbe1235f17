public import BraidICE
public import BraidSecurity
import BraidWire
public import NIOCore

/// What one ``SecureTransport`` received, sent and dropped. Wrapping arithmetic: counters never trap.
public struct SecureTransportCounters: Sendable, Hashable {
    /// SRTP packets that decrypted and authenticated.
    public var rtpPacketsReceived: UInt64 = 0
    /// Their protected sizes, in bytes.
    public var rtpBytesReceived: UInt64 = 0
    /// SRTCP packets that decrypted and authenticated.
    public var rtcpPacketsReceived: UInt64 = 0
    /// Their protected sizes, in bytes.
    public var rtcpBytesReceived: UInt64 = 0
    /// SRTP or SRTCP packets that failed authentication, arrived before the keys (or after they were
    /// discarded), did not fit the scratch buffer, or — controlling role — came from another address than
    /// the selected pair.
    public var unprotectFailures: UInt64 = 0
    /// SRTP or SRTCP packets whose index was already received (the replay check, RFC 3711 §3.3.2): copies a
    /// sender repeats on purpose (a BraidClient publisher's audio on a lossy uplink), duplicates the network
    /// made, or a replay attack. Dropped, and not counted as failures.
    public var duplicatesDropped: UInt64 = 0
    /// DTLS datagrams the endpoint rejected: not whole DTLS records, or after the handshake failed or the
    /// association closed.
    public var dtlsErrors: UInt64 = 0
    /// DTLS datagrams from another address than the selected pair (controlling role; a lite transport
    /// reports them as ``SecureTransport/DTLSReceipt/notAdmitted`` without counting).
    public var strayDTLS: UInt64 = 0
    /// STUN that got no success answer: for the lite role, checks the agent answered with an error or
    /// dropped; for the controlling role, datagrams that are not well-formed STUN.
    public var stunRejected: UInt64 = 0
    /// SRTP packets protected for sending.
    public var rtpPacketsSent: UInt64 = 0
    /// Their protected sizes, in bytes.
    public var rtpBytesSent: UInt64 = 0
    /// SRTCP packets protected for sending.
    public var rtcpPacketsSent: UInt64 = 0
    /// Their protected sizes, in bytes.
    public var rtcpBytesSent: UInt64 = 0
    /// Packets handed over for sending that were not: no keys or no destination yet, or protection failed.
    public var sendDrops: UInt64 = 0

    public init() {}
}

/// The secure transport of one peer: ICE, the DTLS handshake and SRTP, behind one UDP 5-tuple
/// ([RFC 8827](https://www.rfc-editor.org/rfc/rfc8827), [RFC 5764](https://www.rfc-editor.org/rfc/rfc5764)).
/// Each of the node's sessions, each BraidClient peer and (next) each mesh link between nodes holds one;
/// it knows nothing of rooms, signalling or sockets.
///
/// **I/O-free.** The owner demultiplexes datagrams (RFC 7983, BraidWire's `DatagramKind`) and hands them
/// to ``receiveSTUN(_:from:now:send:)``, ``receiveDTLS(_:from:now:send:)`` or
/// ``unprotect(_:isRTCP:from:now:into:)``; what must go out (checks, answers, DTLS flights) is handed to
/// the `send` closure of the call, with its destination; media it asks to send comes back protected from
/// ``protect(_:isRTCP:)``. Timers are the owner's: it arms one at ``retransmitDelay`` (DTLS, RFC 6347
/// §4.2.4) and, for the controlling role, one at ``iceDeadline``, and calls back
/// ``handleRetransmitTimeout(send:)`` and ``handleICETimer(now:send:)``. `send` must not call back into the
/// transport.
///
/// **Loop-confined.** Not `Sendable`: one event loop owns it (its DTLS endpoint and SRTP sessions are not
/// thread-safe either).
///
/// **Roles** (``ICERole``):
/// - *lite* (the node: ICE-lite, controlled, RFC 8445 §2.5, with `a=setup:passive`, so DTLS server):
///   the ``ICELiteAgent`` answers checks — routed to it by the owner's `ICESessionTable`, which reports
///   each outcome with ``checkAnswered(_:from:)``. DTLS and SRTP are admitted only from an address whose
///   consent is fresh (RFC 8445 §12, RFC 7675); anything else is ``DTLSReceipt/notAdmitted`` and not
///   counted, so the owner may look for another session. DTLS records answer the address the last DTLS
///   datagram came from. Authenticated DTLS and SRTP move the selected pair to their source
///   (``ICELiteAgent/followMedia(from:now:)``), and protected media goes to the agent's selected address
///   from the moment the keys exist (first to where the handshake completed).
/// - *controlling* (BraidClient: full ICE with host candidates, DTLS client): the
///   ``ICEConnectivityChecker`` checks, nominates and keeps consent; the first nominated pair becomes the
///   only address DTLS and SRTP are taken from (others are counted, ``SecureTransportCounters/strayDTLS``
///   and ``SecureTransportCounters/unprotectFailures``) and sent to, and DTLS starts toward it at once.
///   Consent lost discards the keys: nothing more is sent (RFC 7675 §5.1).
///
/// **Handshake.** Every DTLS event (datagram, timeout, start) ends by deriving the SRTP keys if the
/// endpoint has just connected (``HandshakeProgress/keyed``); a failure to derive them is reported and
/// retried at the next event. A record that fails after the handshake (forged or corrupted) is dropped by
/// the endpoint without ending the association (RFC 6347 §4.1.2.7, see `DTLSEndpoint`); media keeps
/// flowing.
///
/// **Media path.** ``unprotect(_:isRTCP:from:now:into:)`` decrypts into the caller's scratch buffer, which
/// it never grows: a datagram longer than the buffer's capacity is counted as an unprotect failure, so a
/// buffer allocated once serves every packet. ``protect(_:isRTCP:)`` encrypts into a fresh buffer, never in
/// place (the caller's plain packet is usually its own reused scratch, and a write completes later);
/// ``protect(_:isRTCP:appendingTo:)`` appends to a buffer of the caller's instead.
public final class SecureTransport {
    /// Which side of ICE this transport plays.
    public enum ICERole {
        /// ICE-lite, answering: the agent the owner's session table routes checks to.
        case lite(ICELiteAgent)
        /// Full ICE, controlling: sends checks, nominates, keeps consent.
        case controlling(ICEConnectivityChecker)
    }

    /// What a DTLS event did to the handshake.
    public enum HandshakeProgress: Equatable, Sendable {
        /// Nothing new for the owner: still handshaking (re-arm the timer at ``retransmitDelay``), already
        /// keyed, or failed or closed (see ``dtlsState``).
        case unchanged
        /// The handshake completed in this event and the SRTP keys are ready: media may flow.
        case keyed
        /// The handshake completed but the SRTP keys could not be derived; retried at the next DTLS event.
        case keyingFailed(DTLSError)
    }

    /// What ``receiveDTLS(_:from:now:send:)`` did with a datagram.
    public enum DTLSReceipt: Equatable, Sendable {
        /// Not from an address that may speak DTLS here (lite: no consent; controlling: not the selected
        /// pair). Nothing was fed to the endpoint.
        case notAdmitted
        /// The endpoint rejected the datagram (counted in ``SecureTransportCounters/dtlsErrors``).
        case rejected(HandshakeProgress)
        /// Fed to the endpoint; its answer, if any, was sent.
        case accepted(HandshakeProgress)
    }

    /// What ``receiveSTUN(_:from:now:send:)`` did with a datagram.
    public enum STUNReceipt: Equatable, Sendable {
        /// Not well-formed STUN, or this transport is not the controlling role.
        case rejected
        /// Handled by the checker (an answer or a response); the selection did not change.
        case handled
        /// The first nominated pair succeeded: it is selected, and DTLS started toward it.
        case selected(SocketAddress, HandshakeProgress)
    }

    /// What ``unprotect(_:isRTCP:from:now:into:)`` did with a datagram.
    public enum UnprotectResult: Equatable, Sendable {
        /// Lite: not from a consented address (not counted). Controlling: not from the selected pair
        /// (counted as an unprotect failure).
        case notAdmitted
        /// Counted in ``SecureTransportCounters/unprotectFailures``; the scratch buffer holds nothing useful.
        case failed
        /// The plain packet is the scratch buffer's readable bytes.
        case unprotected
    }

    /// Where a call's datagrams go: each buffer is one UDP payload for that address.
    public typealias Send = (ByteBuffer, SocketAddress) -> Void

    /// Room for the SRTP/SRTCP trailer of any profile (tag + SRTCP index), so one capacity fits all.
    static let trailerRoom = 32

    // What every packet reads and writes comes first, in one or two cache lines (a node walks hundreds of
    // transports per packet); the ICE checker, a large struct, comes after. Stored properties are laid
    // out in declaration order.
    private var srtp: SRTPSession?
    /// Where protected media goes: the ICE-selected address (lite: once keyed; controlling: once a pair is
    /// nominated).
    public private(set) var destination: SocketAddress?
    /// What was received, sent and dropped.
    public private(set) var counters = SecureTransportCounters()

    /// The lite role's agent, shared with the owner's session table.
    public let agent: ICELiteAgent?
    /// The controlling role's checker.
    public private(set) var checker: ICEConnectivityChecker?
    private let dtls: DTLSEndpoint
    /// Set by ``discardKeys()``: keys are never derived again.
    private var keysDiscarded = false
    private let allocator: ByteBufferAllocator

    /// Where DTLS records go: the source of the last DTLS datagram (lite), the selected pair (controlling).
    public private(set) var dtlsPeer: SocketAddress?

    /// A transport for one peer.
    /// - Parameters:
    ///   - ice: the ICE role and its state machine.
    ///   - dtls: the DTLS endpoint, already set up with its role, certificate and the peer's fingerprint.
    ///   - allocator: allocates the datagrams this transport hands out (the channel's allocator).
    public init(ice: ICERole, dtls: DTLSEndpoint, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        switch ice {
        case .lite(let agent):
            self.agent = agent
            self.checker = nil
        case .controlling(let checker):
            self.agent = nil
            self.checker = checker
        }
        self.dtls = dtls
        self.allocator = allocator
    }

    // MARK: State

    /// The DTLS handshake's state.
    public var dtlsState: DTLSEndpoint.State { self.dtls.state }
    /// The DTLS role (client sends the ClientHello).
    public var dtlsRole: DTLSRole { self.dtls.role }
    /// Whether SRTP keys exist: packets can be protected and unprotected.
    public var isKeyed: Bool { self.srtp != nil }
    /// The negotiated SRTP protection profile, while keyed.
    public var srtpProfile: SRTPProfile? { self.srtp?.profile }
    /// Post-handshake DTLS records the endpoint discarded (RFC 6347 §4.1.2.7).
    public var rejectedDTLSRecords: Int { self.dtls.rejectedRecords }

    /// When to call ``handleRetransmitTimeout(send:)``: the time left before the last DTLS flight is
    /// retransmitted, or nil when no flight awaits an answer (not handshaking, or a server before the
    /// ClientHello).
    public var retransmitDelay: TimeAmount? {
        guard case .handshaking = self.dtls.state, let remaining = self.dtls.timeoutRemaining else { return nil }
        let (seconds, attoseconds) = remaining.components
        return .nanoseconds(max(0, seconds) &* 1_000_000_000 &+ max(0, attoseconds) / 1_000_000_000)
    }

    // MARK: ICE

    /// Controlling role: sends the first check to every candidate. The lite role sends no checks.
    public func startICE(now: NIODeadline, send: Send) {
        self.checker?.start(now: now, send: send)
    }

    /// Controlling role: when to call ``handleICETimer(now:send:)``; nil when nothing is due (or lite).
    public var iceDeadline: NIODeadline? { self.checker?.nextDeadline }

    /// Controlling role: retransmits checks, sends consent checks and detects failure. When ICE fails
    /// (no check answered, or consent expired) the keys are discarded: RFC 7675 §5.1 has the sender stop.
    public func handleICETimer(now: NIODeadline, send: Send) {
        guard self.checker != nil else { return }
        self.checker?.handleTimer(now: now, send: send)
        if case .failed = self.checker?.state { self.discardKeys() }
    }

    /// Controlling role: a STUN datagram from `source` — a check from the peer (answered) or a response
    /// to ours. When the first nominated pair succeeds it is selected and DTLS starts toward it.
    ///
    /// The lite role's checks are answered by its agent through the owner's session table
    /// (``checkAnswered(_:from:)``); here they are ``STUNReceipt/rejected``.
    public func receiveSTUN(_ datagram: ByteBuffer, from source: SocketAddress, now: NIODeadline, send: Send)
        -> STUNReceipt
    {
        guard self.checker != nil else { return .rejected }
        guard let message = try? STUNMessage(parsing: datagram) else {
            self.counters.stunRejected &+= 1
            return .rejected
        }
        self.checker?.handle(message, from: source, now: now, send: send)
        guard case .connected(let address) = self.checker?.state, self.destination == nil else { return .handled }
        self.destination = address
        self.dtlsPeer = address
        for record in self.dtls.start() { send(self.allocator.buffer(bytes: record), address) }
        return .selected(address, self.deriveKeys())
    }

    /// Lite role: what the agent did with a check from `source` (``ICELiteAgent/Outcome``, from the owner's
    /// `ICESessionTable`). A rejected check is counted; a valid one may have moved the selected pair (a
    /// nomination), which media then follows.
    public func checkAnswered(_ outcome: ICELiteAgent.Outcome, from source: SocketAddress) {
        switch outcome {
        case .respond(.error), .drop:
            self.counters.stunRejected &+= 1
        case .respond(.success):
            if let address = STUNAddress(transport: source) { self.follow(source, address: address) }
        }
    }

    // MARK: DTLS

    /// Feeds one DTLS datagram from `source` to the endpoint and sends its answer.
    ///
    /// - Parameter now: the ICE agent's clock, for consent (lite role; the controlling role ignores it).
    public func receiveDTLS(
        _ datagram: ByteBuffer, from source: SocketAddress, now: ContinuousClock.Instant, send: Send
    ) -> DTLSReceipt {
        if let agent = self.agent {
            guard let address = STUNAddress(transport: source), agent.hasConsent(address, now: now) else {
                return .notAdmitted
            }
            self.dtlsPeer = source
            self.follow(source, address: address)
            // A lite transport retries a failed derivation after every DTLS datagram, a rejected one
            // included; the controlling role leaves that to the next accepted one.
            guard let records = self.feed(datagram) else { return .rejected(self.deriveKeys()) }
            for record in records { send(self.allocator.buffer(bytes: record), source) }
            if case .connected = self.dtls.state, agent.followMedia(from: address, now: now) {
                self.follow(source, address: address)
            }
            return .accepted(self.deriveKeys())
        }
        guard let peer = self.dtlsPeer, source == peer else {
            self.counters.strayDTLS &+= 1
            return .notAdmitted
        }
        guard let records = self.feed(datagram) else { return .rejected(.unchanged) }
        for record in records { send(self.allocator.buffer(bytes: record), peer) }
        return .accepted(self.deriveKeys())
    }

    /// Retransmits the last DTLS flight if its timer expired (RFC 6347 §4.2.4; early calls do nothing).
    /// After too many retransmissions the endpoint fails (``dtlsState``).
    public func handleRetransmitTimeout(send: Send) -> HandshakeProgress {
        let records = self.dtls.handleTimeout()
        if let peer = self.dtlsPeer {
            for record in records { send(self.allocator.buffer(bytes: record), peer) }
        }
        return self.deriveKeys()
    }

    /// Sends a close_notify alert if the association is connected, and closes it. Keys stay: media already
    /// queued may still be protected (``discardKeys()`` ends that).
    public func closeDTLS(send: Send) {
        guard case .connected = self.dtls.state else { return }
        let records = self.dtls.close()
        guard let peer = self.dtlsPeer else { return }
        for record in records { send(self.allocator.buffer(bytes: record), peer) }
    }

    /// Frees the DTLS endpoint's OpenSSL state once the keys are derived (``DTLSEndpoint/compact()``: a
    /// client only; an alert the peer sends afterwards closes the association unauthenticated).
    /// - Returns: whether the endpoint is compact.
    @discardableResult
    public func compactDTLS() -> Bool {
        guard self.srtp != nil else { return false }
        return self.dtls.compact()
    }

    /// Drops the SRTP keys for good: nothing more is protected or unprotected, and a later DTLS event does
    /// not derive them again. For consent loss and for the end of the session (the SRTP session state is freed
    /// now, whoever still holds the transport).
    public func discardKeys() {
        self.srtp = nil
        self.keysDiscarded = true
    }

    /// The endpoint's answer to `datagram`, or nil when it rejected it (counted).
    private func feed(_ datagram: ByteBuffer) -> [[UInt8]]? {
        let result: Result<[[UInt8]], DTLSError> = datagram.withUnsafeReadableBytes { bytes in
            do throws(DTLSError) {
                return .success(try self.dtls.receive(bytes))
            } catch {
                return .failure(error)
            }
        }
        guard case .success(let records) = result else {
            self.counters.dtlsErrors &+= 1
            return nil
        }
        return records
    }

    /// Derives the SRTP keys once the endpoint is connected (RFC 5764 §4.2).
    private func deriveKeys() -> HandshakeProgress {
        guard self.srtp == nil, !self.keysDiscarded, case .connected = self.dtls.state else { return .unchanged }
        do {
            self.srtp = try self.dtls.makeSRTPSession()
        } catch {
            return .keyingFailed(error)
        }
        // Lite: media starts where the handshake completed, then follows the selection.
        if self.agent != nil { self.destination = self.dtlsPeer }
        return .keyed
    }

    /// Lite role: media follows the agent's selected address once keyed.
    private func follow(_ source: SocketAddress, address: STUNAddress) {
        guard self.srtp != nil, let agent = self.agent, agent.selectedAddress == address else { return }
        self.destination = source
    }

    // MARK: SRTP

    /// Verifies and decrypts one SRTP (or, with `isRTCP`, SRTCP) datagram from `source` into `scratch`
    /// (cleared first; the plain packet is its readable bytes). `scratch` is never grown: a datagram
    /// longer than its capacity fails.
    ///
    /// Lite role: authenticated media from a consented address other than the selected one moves the
    /// selection there (``ICELiteAgent/followMedia(from:now:)``).
    /// - Parameter now: the ICE agent's clock, for consent (lite role; the controlling role ignores it).
    public func unprotect(
        _ datagram: ByteBuffer, isRTCP: Bool, from source: SocketAddress, now: ContinuousClock.Instant,
        into scratch: inout ByteBuffer
    ) -> UnprotectResult {
        var consented: STUNAddress?
        if let agent = self.agent {
            guard let address = STUNAddress(transport: source), agent.hasConsent(address, now: now) else {
                return .notAdmitted
            }
            consented = address
        } else if self.destination != source {
            self.counters.unprotectFailures &+= 1
            return .notAdmitted
        }
        // Media before the handshake finished cannot be authenticated, so it is not media yet.
        guard let srtp = self.srtp else {
            self.counters.unprotectFailures &+= 1
            return .failed
        }
        let length = datagram.readableBytes
        guard length <= scratch.capacity else {
            self.counters.unprotectFailures &+= 1
            return .failed
        }
        scratch.clear()
        do {
            _ = try srtp.inbound.unprotect(datagram, isRTCP: isRTCP, appendingTo: &scratch)
        } catch {
            if error.code == .replayed { self.counters.duplicatesDropped &+= 1 } else { self.counters.unprotectFailures &+= 1 }
            return .failed
        }
        if isRTCP {
            self.counters.rtcpPacketsReceived &+= 1
            self.counters.rtcpBytesReceived &+= UInt64(truncatingIfNeeded: length)
        } else {
            self.counters.rtpPacketsReceived &+= 1
            self.counters.rtpBytesReceived &+= UInt64(truncatingIfNeeded: length)
        }
        if let agent = self.agent, let address = consented, agent.followMedia(from: address, now: now) {
            self.follow(source, address: address)
        }
        return .unprotected
    }

    /// Protects one plain RTP (or, with `isRTCP`, RTCP compound) packet — its readable bytes, left
    /// untouched — into a fresh buffer, and says where to send it; nil (counted as a send drop) without
    /// keys or destination, or when protection fails.
    public func protect(_ packet: ByteBuffer, isRTCP: Bool) -> (datagram: ByteBuffer, destination: SocketAddress)? {
        guard self.srtp != nil, self.destination != nil else {
            self.counters.sendDrops &+= 1
            return nil
        }
        var output = self.allocator.buffer(capacity: packet.readableBytes &+ Self.trailerRoom)
        guard let destination = self.protect(packet, isRTCP: isRTCP, appendingTo: &output) else { return nil }
        return (output, destination)
    }

    /// Protects one plain packet as ``protect(_:isRTCP:)`` does, writing it into `output` (a send slot of
    /// at least the packet's size plus the profile's trailer), and returns its length and where to send
    /// it. No allocation: this is the forwarding hot path.
    public func protect(_ packet: ByteBuffer, isRTCP: Bool, into output: UnsafeMutableRawBufferPointer)
        -> (length: Int, destination: SocketAddress)?
    {
        guard let srtp = self.srtp, let destination = self.destination else {
            self.counters.sendDrops &+= 1
            return nil
        }
        let written: Int? = packet.withUnsafeReadableBytes { plain in
            isRTCP
                ? try? srtp.outbound.protectRTCP(plain, into: output)
                : try? srtp.outbound.protectRTP(plain, into: output)
        }
        guard let written else {
            self.counters.sendDrops &+= 1
            return nil
        }
        self.countSent(bytes: written, isRTCP: isRTCP)
        return (written, destination)
    }

    /// Prefetches what ``protect(_:isRTCP:into:)`` reads, one pointer level per stage (0: the SRTP
    /// session's object), for a node fanning one packet out to many transports (``CachePrefetch``).
    public func prefetchForProtect(stage: Int) {
        guard let srtp = self.srtp else { return }
        if stage == 0 {
            CachePrefetch.object(srtp)
        } else {
            srtp.prefetchOutbound(stage: stage - 1)
        }
    }

    /// Protects one plain packet as ``protect(_:isRTCP:)`` does, appending it to `buffer` (which grows if
    /// it must), and returns where to send it.
    public func protect(_ packet: ByteBuffer, isRTCP: Bool, appendingTo buffer: inout ByteBuffer) -> SocketAddress? {
        guard let srtp = self.srtp, let destination = self.destination,
            let written = try? srtp.outbound.protect(packet, isRTCP: isRTCP, appendingTo: &buffer)
        else {
            self.counters.sendDrops &+= 1
            return nil
        }
        self.countSent(bytes: written, isRTCP: isRTCP)
        return destination
    }

    /// Counts one protected packet of `bytes` bytes as sent.
    private func countSent(bytes: Int, isRTCP: Bool) {
        if isRTCP {
            self.counters.rtcpPacketsSent &+= 1
            self.counters.rtcpBytesSent &+= UInt64(truncatingIfNeeded: bytes)
        } else {
            self.counters.rtpPacketsSent &+= 1
            self.counters.rtpBytesSent &+= UInt64(truncatingIfNeeded: bytes)
        }
    }
}
