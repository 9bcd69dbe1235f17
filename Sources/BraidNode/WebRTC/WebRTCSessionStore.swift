import BraidFunctions
import BraidICE
import CBraidShims
import BraidSDP
import BraidSFU
import BraidSecurity
import BraidTransport
import BraidWire
import Logging
import NIOCore

/// The WebRTC sessions of one media event loop (shard), and the packet path into them. A node has one
/// store per event loop, each behind its own socket on the shared media port; see
/// `WebRTCSessionStore+Shards.swift` for what passes between them.
///
/// Confined to the media channel's event loop: the ``WebRTCRouter`` calls it from `channelRead`, and
/// ``WebRTCSessions`` (the thread-safe front used by the HTTP handlers) hops onto the loop to add, remove
/// or list sessions. No locks; timers run on the same loop.
///
/// The path of each datagram kind (RFC 7983 demultiplexing has already happened); the per-session part is
/// each session's ``SecureTransport`` in the lite role:
/// - STUN: the ICE-lite session table answers Binding requests (RFC 8445 §7.3); the reply goes back to
///   the source on the same socket, and the session's transport learns the outcome.
/// - DTLS: only from an address that passed a check with consent (RFC 8445 §12, RFC 7675); fed to that
///   session's DTLS server (RFC 5763 §5, the node is always `a=setup:passive`), whose records go back.
/// - SRTP/SRTCP: only from a consented address of a session whose DTLS has connected; unprotected into
///   one scratch buffer (no allocation per packet), counted, and handed to the forwarding core
///   (``SFURouter``): RTP and RTCP of a publisher (WHIP) go to its ``SFUPublisher``, RTCP of a subscriber
///   (WHEP) to its ``SFUSubscriber``. What the core sends goes out through each session's
///   ``WebRTCMediaTransport`` and is flushed once per read batch or tick.
final class WebRTCSessionStore {
    typealias Table = ICESessionTable<WebRTCSession>

    /// Largest datagram the scratch buffer holds: a GRO segment or a plain read (MediaService slots).
    static let scratchSize = 65536
    /// How often consent is checked (RFC 7675 §5.1 asks for expiry within 30 s; we sweep every second).
    static let consentSweepInterval = TimeAmount.seconds(1)
    /// How often the forwarding core's timers run (NACK retries, RTCP reports, layer decisions). It decides
    /// itself what is due; 10 ms keeps NACKs and keyframe requests prompt at a negligible cost.
    static let forwardingTickInterval = TimeAmount.milliseconds(10)

    let channel: any Channel
    let certificate: DTLSCertificate
    private var table: Table
    private var byID: [String: Table.SessionID] = [:]
    /// Decrypted RTP/RTCP lands here: allocated once and reused, so the steady state does not allocate
    /// (the core copies what it keeps, e.g. into the producers' packet stores).
    private var scratch: ByteBuffer
    /// The forwarding core: rooms, producers, consumers of every session on this loop.
    let forwarding: SFURouter
    /// Writes waiting for one flush.
    let output: WebRTCOutputBatch
    /// Edge functions on this loop's router (the first shard's), made on first use.
    private var functionHost: FunctionHost?
    private var sweepTask: Scheduled<Void>?
    private var tickTask: Scheduled<Void>?
    private var closed = false
    /// A session ended since the last sweep: its buffers went back to malloc, which is asked to return
    /// free memory to the system at the next sweep (glibc keeps freed arenas otherwise).
    private var releasedMemory = false

    // Shards (see WebRTCSessionStore+Shards.swift): set by `join` once every shard is bound.
    var shardIndex = 0
    var shards: [WebRTCShard] = []
    var directory: WebRTCShardDirectory?
    var links: [Int: RouterLink] = [:]
    /// Remote addresses whose session another shard holds.
    var remoteOwners: [STUNAddress: RemoteOwner] = [:]
    /// Datagrams waiting to be handed to their owner shard at the end of the read batch.
    var handOffs: [Int: [ForwardedDatagram]] = [:]
    /// Datagrams other shards handed to this one.
    var handedOffIn: UInt64 = 0
    /// Link messages that arrived before `join` told this shard its peers.
    var earlyLinkMessages: [(RouterLinkMessage, Int)] = []

    // Limits (`limits.*`).
    /// Datagrams from sources without a session whose DTLS completed here, per source and second.
    private var limiter: SourceRateLimiter
    /// How long a session may take to complete ICE and DTLS (`limits.handshake_timeout_seconds`).
    let handshakeTimeout: TimeAmount
    /// Sessions whose DTLS has not completed yet, with when they were added.
    private var handshaking: [String: NIODeadline] = [:]
    /// Sessions removed because they did not complete ICE and DTLS in time.
    private(set) var handshakeTimeouts: UInt64 = 0

    /// - Parameter socket: the channel's socket descriptor: media goes out through a ``DatagramSendBatch``
    ///   on it; nil writes through the channel.
    init(
        channel: any Channel, socket: CInt? = nil, certificate: DTLSCertificate, capacity: Int, node: NodeID,
        shard: Int = 0, shards: Int = 1, firstTrackNumber: UInt32 = 0, limits: NodeConfiguration.Limits = .defaults
    ) {
        self.channel = channel
        self.certificate = certificate
        self.table = Table(capacity: capacity)
        self.limiter = SourceRateLimiter(rate: limits.unverifiedPacketsPerSecond)
        self.handshakeTimeout = .seconds(Int64(limits.handshakeTimeoutSeconds))
        self.scratch = channel.allocator.buffer(capacity: Self.scratchSize)
        self.shardIndex = shard
        self.forwarding = SFURouter(
            wallClock: .system(now: .now()), node: node, shard: shard, shards: shards, firstTrackNumber: firstTrackNumber)
        self.output = WebRTCOutputBatch(channel: channel, socket: socket, queueLimit: limits.outboundQueuePackets)
    }

    var count: Int { self.table.count }

    /// Every session of this loop, in no particular order (the drain says goodbye to each).
    var allSessions: [WebRTCSession] { self.byID.values.compactMap { self.table.context($0) } }

    // MARK: Session lifecycle (called on the loop by WebRTCSessions)

    /// Starts the consent sweep and the forwarding timers.
    func start() {
        self.scheduleSweep()
        self.scheduleTick()
    }

    private func scheduleTick() {
        guard !self.closed else { return }
        self.tickTask = self.channel.eventLoop.assumeIsolated().scheduleTask(in: Self.forwardingTickInterval) {
            [weak self] in
            self?.tick()
        }
    }

    /// The edge functions of this loop.
    var functions: FunctionHost {
        if let host = self.functionHost { return host }
        let host = FunctionHost(router: self.forwarding, loop: self.channel.eventLoop) { [unowned self] in self.flush() }
        host.onFailure = { id, room, reason in
            Logger(label: "braid.functions").warning(
                "edge function stopped", metadata: ["function": "\(id)", "room": "\(room)", "reason": "\(reason)"])
        }
        self.functionHost = host
        return host
    }

    /// Runs the forwarding core's due work and sends what it produced.
    private func tick() {
        let now = NIODeadline.now()
        self.forwarding.tick(now: now)
        self.functionHost?.tick(now: now)
        self.flushShards()
        self.output.flush()
        self.scheduleTick()
    }

    /// Sends what the datagrams of one read batch produced (forwarded media, retransmissions, feedback).
    func flush() {
        self.flushShards()
        self.output.flush()
    }

    /// Whether the channel closed.
    var isClosed: Bool { self.closed }

    /// Frees every session and stops timers (the channel closed).
    func close() {
        self.closed = true
        self.sweepTask?.cancel()
        self.sweepTask = nil
        self.tickTask?.cancel()
        self.tickTask = nil
        self.functionHost?.close(now: .now())
        for id in Array(self.byID.keys) { self.remove(id: id) }
        self.output.close()
    }

    /// Adds a session that answers checks for `local` and runs DTLS as server against `remoteFingerprint`.
    ///
    /// - Parameter participant: the participant the session joins the forwarding core as (see
    ///   ``WebRTCSession/participant``); nil for its own id. The caller has checked it
    ///   (``isPublishing(id:room:)``) in the same turn of the loop.
    func add(
        id: String,
        room: String,
        direction: WebRTCSession.Direction,
        participant: String? = nil,
        tracks: Set<TrackID> = [],
        negotiated: SDPAnswer,
        local: ICECredentials,
        remote: ICECredentials,
        remoteFingerprint: DTLSFingerprint,
        timeouts: ICELiteAgent.Timeouts
    ) throws -> Void {
        let dtls = try DTLSEndpoint(role: .server, certificate: self.certificate, remoteFingerprint: remoteFingerprint)
        let agent = try ICELiteAgent(local: local, remote: remote, timeouts: timeouts, now: .now)
        let secure = SecureTransport(ice: .lite(agent), dtls: dtls, allocator: self.channel.allocator)
        let session = WebRTCSession(
            id: id, room: room, direction: direction, participant: participant, tracks: tracks, negotiated: negotiated,
            secure: secure)
        let tableID = try self.table.insert(agent, context: session)
        self.byID[id] = tableID
        self.handshaking[id] = .now()
    }

    /// Whether `id` is a WHIP session of `room` that is still in the table (consent not yet expired, not
    /// deleted); its keys need not be ready, so a client may post its WHEP offer right after the WHIP one.
    func isPublishing(id: String, room: String) -> Bool {
        guard let (_, session) = self.session(id: id, room: room) else { return false }
        return session.direction == .publish
    }

    /// Removes a session and frees its state; returns whether it existed (in `room`, when given).
    @discardableResult
    func remove(id: String, room: String? = nil) -> Bool {
        guard let tableID = self.byID[id], let session = self.table.context(tableID) else { return false }
        if let room, session.room != room { return false }
        self.byID.removeValue(forKey: id)
        self.table.remove(tableID)
        self.detach(session)
        return true
    }

    /// The dashboard view of every session.
    func statuses() -> [WebRTCSessionStatus] {
        let now = ContinuousClock.now
        return self.byID.values.compactMap { tableID -> WebRTCSessionStatus? in
            guard let agent = self.table.agent(tableID), let session = self.table.context(tableID) else { return nil }
            return WebRTCSessionStatus(
                id: session.id,
                room: session.room,
                direction: session.direction,
                sections: WebRTCSectionStatus.list(session.negotiated),
                maximumBitrate: session.maximumBitrate,
                iceRestarts: session.iceRestarts,
                trickledCandidates: session.trickledCandidateCount,
                remoteAddress: agent.selectedAddress.map { "\($0)" },
                iceState: WebRTCSession.label(agent.state(now: now)),
                dtlsState: WebRTCSession.label(session.secure.dtlsState),
                srtpProfile: session.secure.srtpProfile?.dtlsProfileName,
                counters: session.counters,
                sent: session.transport?.counters,
                eventLoop: self.shardIndex
            )
        }.sorted { $0.id < $1.id }
    }

    /// The dashboard view of every room (or of the one named `name`), each peer with its session's
    /// selected remote address: the forwarding core knows peers by id only, and a peer's id is its
    /// session's id.
    func roomStatuses(named name: String? = nil) -> [SFURoomStatus] {
        var rooms = self.forwarding.roomStatuses(now: .now())
        if let name { rooms.removeAll { $0.name != name } }
        func address(_ peerID: String) -> String? {
            guard let tableID = self.byID[peerID], let agent = self.table.agent(tableID) else { return nil }
            return agent.selectedAddress.map { "\($0)" }
        }
        for room in rooms.indices {
            for index in rooms[room].publishers.indices {
                rooms[room].publishers[index].remoteAddress = address(rooms[room].publishers[index].id)
            }
            for index in rooms[room].subscribers.indices {
                rooms[room].subscribers[index].remoteAddress = address(rooms[room].subscribers[index].id)
            }
        }
        return rooms
    }

    /// What the node has sent to all peers since the socket opened (sessions that ended included).
    var sendTotals: WebRTCSendCounters { self.output.totals }

    /// The session `id` (of `room`, when given) with its agent, or nil.
    func session(id: String, room: String? = nil) -> (agent: ICELiteAgent, session: WebRTCSession)? {
        guard let tableID = self.byID[id], let agent = self.table.agent(tableID),
            let session = self.table.context(tableID)
        else { return nil }
        if let room, session.room != room { return nil }
        return (agent, session)
    }

    /// Starts an ICE restart of session `id` (RFC 8445 §9, RFC 9725 §4.3.2): checks with `local` are
    /// answered from now on, and the old credentials keep answering until the client's first check with the
    /// new ones. Returns false for an unknown session.
    ///
    /// - Throws: ``ICEError`` `.duplicateUfrag` (another session owns `local.ufrag`) or `.badCredentials`.
    func restartICE(id: String, room: String, local: ICECredentials, remote: ICECredentials) throws(ICEError)
        -> Bool
    {
        guard let tableID = self.byID[id], let session = self.table.context(tableID), session.room == room else {
            return false
        }
        try self.table.restart(tableID, newLocal: local, newRemote: remote)
        if let ufrag = local.ufragKey { self.directory?.addUfrag(ufrag, id: id) }
        session.iceRestarts &+= 1
        return true
    }

    /// Sets (or, with nil, lifts) the operator's bitrate cap of session `id`; false for an unknown id.
    func setMaximumBitrate(id: String, bps: Int?) -> Bool {
        guard let tableID = self.byID[id], let session = self.table.context(tableID) else { return false }
        session.maximumBitrate = bps
        return true
    }

    // MARK: Packet path

    /// Routes one datagram; see the type's documentation.
    ///
    /// A datagram of a session another shard holds is handed to that shard (`handedOff` marks one that
    /// arrived that way: it is never passed on again).
    ///
    /// A source (IP address and port) with a session whose DTLS completed here pays one lookup and nothing
    /// else; any other source is held to `limits.unverified_packets_per_second` (``SourceRateLimiter``)
    /// before anything else is done with its datagram, except that a source known to belong to another
    /// shard's session goes to that shard, which applies the limit if its session is not verified yet.
    func route(
        _ datagram: ByteBuffer, kind: DatagramKind, from source: SocketAddress, handedOff: Bool = false
    ) -> DatagramVerdict {
        guard let address = STUNAddress(transport: source) else { return .dropped(.noSession) }
        let known = self.table.session(for: address).flatMap { self.table.context($0) }
        if let session = known, session.transport != nil {
            switch kind {
            case .rtp, .rtcp: return self.routeSRTP(datagram, isRTCP: kind == .rtcp, from: source, session: session)
            case .dtls: return self.routeDTLS(datagram, from: source, session: session)
            case .stun: return self.routeSTUN(datagram, from: source)
            case .zrtp, .turnChannel, .unknown: return .dropped(.noSession)
            }
        }
        if !handedOff, known == nil, self.shards.count > 1, let owner = self.remoteOwners[address] {
            self.handOff(datagram, kind: kind, from: source, to: owner.shard)
            return .delivered
        }
        guard self.limiter.admit(address, now: NIODeadline.now().uptimeNanoseconds) else {
            return .dropped(.unverifiedRateLimit)
        }
        let verdict: DatagramVerdict
        switch kind {
        case .stun:
            verdict = self.routeSTUN(datagram, from: source)
        case .dtls:
            verdict = known.map { self.routeDTLS(datagram, from: source, session: $0) } ?? .dropped(.noSession)
        case .rtp, .rtcp:
            verdict =
                known.map { self.routeSRTP(datagram, isRTCP: kind == .rtcp, from: source, session: $0) }
                ?? .dropped(.noSession)
        case .zrtp, .turnChannel, .unknown:
            return .dropped(.noSession)
        }
        if verdict == .dropped(.noSession), !handedOff,
            let owner = self.ownerShard(of: datagram, kind: kind, from: source)
        {
            self.handOff(datagram, kind: kind, from: source, to: owner)
            return .delivered
        }
        return verdict
    }

    private func routeSTUN(_ datagram: ByteBuffer, from source: SocketAddress) -> DatagramVerdict {
        // STUN answers are control traffic (a few per second per session): a fresh small buffer each,
        // because the write completes asynchronously and may not share a reused one.
        var response = self.channel.allocator.buffer(capacity: 256)
        let (tableID, outcome) = self.table.handleSTUNDatagram(
            datagram,
            from: source,
            now: .now,
            responseInto: &response
        )
        guard let tableID, let session = self.table.context(tableID) else { return .dropped(.noSession) }
        // Counts a rejected check; a nomination may have moved the selected pair.
        session.secure.checkAnswered(outcome, from: source)
        if case .respond = outcome { self.send(response, to: source) }
        return .delivered
    }

    private func routeDTLS(_ datagram: ByteBuffer, from source: SocketAddress, session: WebRTCSession)
        -> DatagramVerdict
    {
        let receipt = session.secure.receiveDTLS(datagram, from: source, now: .now) { self.send($0, to: $1) }
        switch receipt {
        case .notAdmitted:
            return .dropped(.noSession)
        case .accepted(let progress), .rejected(let progress):
            self.afterDTLS(session, progress)
            return .delivered
        }
    }

    /// Joins the session to its room once its SRTP keys are ready, and re-arms the retransmission timer.
    private func afterDTLS(_ session: WebRTCSession, _ progress: SecureTransport.HandshakeProgress) {
        if progress == .keyed { self.attach(session) }
        self.armRetransmitTimer(session)
    }

    // MARK: Forwarding

    /// Joins a session whose keys are ready to the forwarding core: a WHIP session publishes its tracks,
    /// a WHEP session subscribes with its slots. Both join as their ``WebRTCSession/participant``: a WHEP
    /// session linked to a WHIP session is never given that session's tracks. Joining only now means a new
    /// subscriber's first keyframe (requested on join) arrives when it can be decrypted.
    private func attach(_ session: WebRTCSession) {
        guard session.transport == nil else { return }
        self.handshaking.removeValue(forKey: session.id)
        let transport = WebRTCMediaTransport(batch: self.output, secure: session.secure)
        session.transport = transport
        let now = NIODeadline.now()
        switch session.direction {
        case .publish:
            session.publisher = self.forwarding.addPublisher(
                room: session.room,
                peerID: session.id,
                participant: session.participant,
                description: PublisherDescription(negotiated: session.negotiated),
                transport: transport,
                now: now
            )
        case .subscribe:
            let subscriber = self.forwarding.addSubscriber(
                room: session.room,
                peerID: session.id,
                participant: session.participant,
                description: SubscriberDescription(negotiated: session.negotiated, tracks: session.tracks),
                transport: transport,
                now: now
            )
            subscriber.maximumBitrate = session.maximumBitrate
            session.subscriber = subscriber
        }
        self.output.flush()
    }

    /// Takes a session out of the forwarding core and frees its state.
    private func detach(_ session: WebRTCSession) {
        if session.transport != nil {
            self.forwarding.removePeer(session.id, now: .now())
        }
        session.close()
        self.handshaking.removeValue(forKey: session.id)
        self.directory?.remove(id: session.id)
        self.releasedMemory = true
    }

    /// DTLS retransmits its last flight when no answer arrives (RFC 6347 §4.2.4): the transport says when.
    private func armRetransmitTimer(_ session: WebRTCSession) {
        session.retransmitTimer?.cancel()
        session.retransmitTimer = nil
        guard let delay = session.secure.retransmitDelay else { return }
        let id = session.id
        session.retransmitTimer = self.channel.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            [weak self] in
            self?.retransmit(sessionID: id)
        }
    }

    private func retransmit(sessionID: String) {
        guard let tableID = self.byID[sessionID], let session = self.table.context(tableID) else { return }
        session.retransmitTimer = nil
        let progress = session.secure.handleRetransmitTimeout { self.send($0, to: $1) }
        self.afterDTLS(session, progress)
    }

    private func routeSRTP(
        _ datagram: ByteBuffer, isRTCP: Bool, from source: SocketAddress, session: WebRTCSession
    ) -> DatagramVerdict {
        // The scratch buffer's capacity (scratchSize) bounds what is decrypted: larger counts as a failure.
        switch session.secure.unprotect(datagram, isRTCP: isRTCP, from: source, now: .now, into: &self.scratch) {
        case .notAdmitted:
            return .dropped(.noSession)
        case .failed:
            return .delivered
        case .unprotected:
            break
        }
        let now = NIODeadline.now()
        if let publisher = session.publisher {
            if isRTCP {
                publisher.receiveRTCP(self.scratch, now: now)
            } else {
                publisher.receiveRTP(self.scratch, now: now)
            }
        } else if isRTCP, let subscriber = session.subscriber {
            subscriber.receiveRTCP(self.scratch, now: now)
        }
        return .delivered
    }

    // MARK: Timers and output

    private func scheduleSweep() {
        guard !self.closed else { return }
        self.sweepTask = self.channel.eventLoop.assumeIsolated().scheduleTask(in: Self.consentSweepInterval) {
            [weak self] in
            self?.sweep()
        }
    }

    /// Frees sessions whose consent expired (RFC 7675 §5.1): ICE state `failed`; and sessions that have not
    /// completed ICE and DTLS within the handshake timeout (a client may keep consent alive with one check
    /// every few seconds and never start DTLS).
    func sweep() {
        for session in self.table.removeFailedSessions(now: .now) {
            self.byID.removeValue(forKey: session.id)
            self.detach(session)
        }
        self.expireHandshakes(now: .now())
        self.sweepRemoteOwners()
        if self.releasedMemory {
            self.releasedMemory = false
            // At most once a second, and only after sessions ended: trimming walks the heap.
            _ = braid_malloc_trim(0)
        }
        self.scheduleSweep()
    }

    /// Removes the sessions that have not completed their handshake `handshakeTimeout` after they were
    /// added; returns how many.
    @discardableResult
    func expireHandshakes(now: NIODeadline) -> Int {
        guard !self.handshaking.isEmpty else { return 0 }
        let late = self.handshaking.filter { now - $0.value >= self.handshakeTimeout }.map(\.key)
        for id in late where self.remove(id: id) { self.handshakeTimeouts &+= 1 }
        return late.count
    }

    /// This loop's part of the limits' counters.
    var limitCounters: WebRTCLimitCounters {
        var counters = WebRTCLimitCounters()
        counters.handshakeTimeouts = self.handshakeTimeouts
        counters.unverifiedPacketsDropped = self.limiter.refused
        counters.outboundQueueDropped = self.output.queueDrops
        counters.handshaking = self.handshaking.count
        return counters
    }

    /// The most packets each keyed session queued in one period while the socket was full, by id (tests).
    var outboundQueuePeaks: [String: Int] {
        var peaks: [String: Int] = [:]
        for id in self.byID.keys {
            if let transport = self.session(id: id)?.session.transport { peaks[id] = transport.queue.peak }
        }
        return peaks
    }

    private func send(_ buffer: ByteBuffer, to address: SocketAddress) {
        self.channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer), promise: nil)
    }
}

/// The media socket's router: hands every STUN, DTLS, RTP and RTCP datagram to the session store.
///
/// Replaces ``NoSessionRouter``; datagrams that belong to no session are still dropped as
/// ``MediaDropReason/noSession``.
public struct WebRTCRouter: DatagramRouter {
    let store: WebRTCSessionStore

    init(store: WebRTCSessionStore) {
        self.store = store
    }

    public mutating func route(_ datagram: ByteBuffer, kind: DatagramKind, from remoteAddress: SocketAddress)
        -> DatagramVerdict
    {
        self.store.route(datagram, kind: kind, from: remoteAddress)
    }

    public mutating func readComplete() {
        self.store.flush()
    }

    public var sentOutsidePipeline: PacketCountsByKind { self.store.output.sentByKind }
}
