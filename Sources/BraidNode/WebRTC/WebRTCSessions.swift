import BraidICE
import BraidSDP
import BraidSFU
import BraidSecurity
import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// Why a WHIP or WHEP request failed; ``WebRTCRoutes`` maps each kind to an HTTP status.
public struct WebRTCSessionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The class of failure.
    public enum Kind: Sendable, Equatable {
        /// The offer is not valid SDP or asks for something the node does not do (400).
        case badOffer
        /// No offered codec is one the node supports (406; the reason names what was offered).
        case noCommonCodec
        /// The media socket is not bound (503).
        case unavailable
        /// The node or the room holds its maximum of sessions (`limits.sessions`, `limits.sessions_per_room`):
        /// 503 with `Retry-After`.
        case full
        /// The client's address holds its maximum of sessions (`limits.sessions_per_address`): 429 with
        /// `Retry-After`.
        case tooManyFromAddress
        /// No such session resource (404).
        case unknownSession
        /// A `PATCH` body that is not a usable trickle-ICE fragment (400).
        case badFragment
        /// A `PATCH` without `If-Match` (428, RFC 6585 §3).
        case preconditionRequired
        /// A `PATCH` whose `If-Match` does not match the session's entity tag (412, RFC 9110 §13.1.1).
        case preconditionFailed
        /// A WHEP request's `participant` is malformed or not a live WHIP session of the same room, or a
        /// WHIP request has one (400).
        case badParticipant
    }

    public let kind: Kind
    /// A sentence for the response body.
    public let reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String { "WebRTCSessionError.\(self.kind): \(self.reason)" }
}

/// The former name of ``WebRTCSessionError``.
public typealias WHIPError = WebRTCSessionError

/// A session created by ``WebRTCSessions/createSession(direction:room:offer:participant:)``.
public struct WebRTCSessionCreated: Sendable, Equatable {
    /// The session's id on dashboards and operator routes: derived from ``resource`` one way, so knowing it
    /// does not give control of the session.
    public var id: String
    /// The session's secret resource id: `Location: /whip/{room}/{resource}` or `/whep/{room}/{resource}`.
    /// Only the client that created the session learns it; it is what `DELETE`, `PATCH` and a WHEP
    /// request's `participant` must name.
    public var resource: String
    /// The room from the URL.
    public var room: String
    /// The SDP answer (`application/sdp`).
    public var answer: String
    /// The entity tag of the ICE session (RFC 9725 §4.3.1): changes with an ICE restart.
    public var etag: String
}

/// The former name of ``WebRTCSessionCreated``.
public typealias WHIPSessionCreated = WebRTCSessionCreated

/// What a trickle-ICE `PATCH` did (RFC 9725 §4.3).
public enum WebRTCPatchOutcome: Sendable, Equatable {
    /// Candidates only: recorded (the node is ICE-lite and learns addresses from checks). 204.
    case trickled(candidates: Int)
    /// An ICE restart: the node's new credentials and candidates as an `application/trickle-ice-sdpfrag`
    /// body, and the new entity tag. 200.
    case restarted(fragment: String, etag: String)
}

/// The node's WebRTC sessions, as seen from outside the media event loop.
///
/// Thread-safe: the HTTP handlers call it from any task. Each call builds what it can off the loop (SDP
/// parsing and answer generation are pure) and hops onto the media channel's event loop only to change
/// or read the ``WebRTCSessionStore``, which the packet path owns.
///
/// The node has one DTLS certificate, generated when the media socket starts (``MediaService/run()``);
/// its fingerprint goes into every answer.
public final class WebRTCSessions: Sendable {
    /// Most sessions one node holds by default (`limits.sessions`).
    public static let defaultCapacity = NodeConfiguration.Limits.defaults.sessions

    /// The addresses announced as host candidates (one candidate each, with the bound media port).
    public let advertisedAddresses: [String]
    /// Most sessions held at once.
    public let capacity: Int
    /// The limits against exhaustion (`limits.*`); ``capacity`` is `limits.sessions` unless given apart.
    public let limits: NodeConfiguration.Limits
    /// The node's id in the network.
    public let node: NodeID

    private struct Attached {
        /// One per media socket (event loop), by index; the first is where single-shard work goes.
        var shards: [WebRTCShard]
        let certificate: DTLSCertificate
        /// The bound media port, known once every socket is bound (after the channel initializers ran).
        var port: Int?

        func shard(_ index: Int) -> WebRTCShard? { self.shards.first { $0.index == index } }
    }

    private let attached = NIOLockedValueBox<Attached?>(nil)
    /// Which shard holds each session.
    private let directory: WebRTCShardDirectory
    /// Media sockets the service binds (one per event loop).
    public let shardCount: Int
    private let timeouts = NIOLockedValueBox(ICELiteAgent.Timeouts.default)

    /// The consent timeouts given to sessions created from now on (RFC 7675: 30 s to failure by default).
    /// A session whose agent reaches ``ICELiteAgent/State/failed`` is removed within a second.
    public var iceTimeouts: ICELiteAgent.Timeouts {
        get { self.timeouts.withLockedValue { $0 } }
        set { self.timeouts.withLockedValue { $0 = newValue } }
    }

    /// - Parameters:
    ///   - advertisedAddresses: ``NodeConfiguration/Media/advertisedAddresses`` (never empty once resolved).
    ///   - capacity: most sessions at once; nil for `limits.sessions`.
    ///   - node: the node's id in the network, the origin of the tracks published here.
    ///   - shards: how many media sockets (event loops) share the sessions.
    ///   - limits: sessions per address and room, transceivers per offer, the handshake timeout, the rate of
    ///     datagrams from unverified sources and each session's outbound queue.
    public init(
        advertisedAddresses: [String], capacity: Int? = nil, node: NodeID = .local,
        shards: Int = 1, limits: NodeConfiguration.Limits = .defaults
    ) {
        self.advertisedAddresses = advertisedAddresses
        self.capacity = capacity ?? limits.sessions
        self.limits = limits
        self.node = node
        self.shardCount = max(1, shards)
        self.directory = WebRTCShardDirectory(shards: max(1, shards))
        self.firstTrackNumber = SFURouter.trackNumberBase(unixSeconds: UInt64(Date().timeIntervalSince1970))
    }

    /// Where this run's track numbers start (see ``SFURouter/trackNumberBase(unixSeconds:)``).
    let firstTrackNumber: UInt32

    /// The fingerprint of the node's certificate, once the media socket runs.
    public var certificateFingerprint: DTLSFingerprint? {
        self.attached.withLockedValue { $0?.certificate.fingerprint }
    }

    /// Creates the store of media socket `shard` once it is bound. Called on the channel's event loop.
    func attach(channel: any Channel, socket: CInt? = nil, certificate: DTLSCertificate, shard: Int)
        -> WebRTCSessionStore
    {
        let store = WebRTCSessionStore(
            channel: channel, socket: socket, certificate: certificate, capacity: self.capacity, node: self.node, shard: shard,
            shards: self.shardCount, firstTrackNumber: self.firstTrackNumber, limits: self.limits)
        store.start()
        let bound = WebRTCShard(
            index: shard, eventLoop: channel.eventLoop, store: NIOLoopBound(store, eventLoop: channel.eventLoop))
        self.attached.withLockedValue { attached in
            if attached == nil {
                attached = Attached(shards: [bound], certificate: certificate, port: nil)
            } else {
                attached?.shards.append(bound)
            }
        }
        // When the socket closes, every session's DTLS and SRTP state is freed with the store.
        channel.closeFuture.whenComplete { [attached = self.attached] _ in
            bound.store.value.close()
            attached.withLockedValue { value in
                value?.shards.removeAll { $0.index == shard }
                if value?.shards.isEmpty ?? false { value = nil }
            }
        }
        return store
    }

    /// Records the bound media port, which every host candidate carries, and joins the shards: each
    /// learns the others (hand-offs, router links) and the directory.
    func mediaBound(port: Int?) {
        let shards = self.attached.withLockedValue { attached -> [WebRTCShard] in
            attached?.port = port
            return attached?.shards ?? []
        }
        let directory = self.directory
        for shard in shards {
            shard.eventLoop.execute {
                shard.store.value.join(shards: shards, index: shard.index, directory: directory)
            }
        }
    }

    /// The shard holding session `id`.
    private func shard(holding id: String) -> WebRTCShard? {
        guard let index = self.directory.placement(id: id)?.shard else { return nil }
        return self.attached.withLockedValue { $0?.shard(index) }
    }

    /// Every shard.
    private var allShards: [WebRTCShard] { self.attached.withLockedValue { $0?.shards ?? [] } }

    /// Shard 0, once bound: the mesh's relay links attach to its router (the others see remote tracks
    /// through their loop links to it).
    func primaryShard() -> WebRTCShard? { self.attached.withLockedValue { $0?.shard(0) } }

    /// Creates an ingest (WHIP) session; see ``createSession(direction:room:offer:participant:)``.
    public func createIngestSession(room: String, offer: String) async throws(WebRTCSessionError)
        -> WebRTCSessionCreated
    {
        try await self.createSession(direction: .publish, room: room, offer: offer)
    }

    /// Creates a session for `offer` in `room` and returns its answer.
    ///
    /// - `.publish` (WHIP, RFC 9725 §4.2): sections are answered `recvonly`.
    /// - `.subscribe` (WHEP, draft-ietf-wish-whep §4.2): sections are answered `sendonly`. The node picks a
    ///   random non-zero media SSRC per accepted section, plus an RTX SSRC for video when RTX is negotiated
    ///   (announced with `a=ssrc-group:FID`), and one msid stream id per session shared by audio and video,
    ///   so the player keeps them in sync. The SSRCs are in the stored answer's
    ///   ``SDPNegotiatedSection/localSender``.
    ///
    /// A client that both publishes and plays links the two: its WHEP request names its WHIP session in
    /// `participant`, and the node never fills the WHEP session's slots with that WHIP session's tracks
    /// (both join the forwarding core as the same participant, see
    /// ``SFURouter/addSubscriber(room:peerID:participant:description:transport:now:)``).
    /// The WHIP resource id is 128 random bits that only the node and the publishing client know, so naming
    /// it proves the client owns it. The WHIP session must exist first: publish, then play.
    ///
    /// - Parameter participant: for `.subscribe` only, the resource id of a live WHIP session of `room`
    ///   (the last path component of its `Location`); nil for a session that is its own participant.
    /// - Throws: ``WebRTCSessionError`` with `.badOffer` for SDP that does not parse, that the node cannot
    ///   answer, or that has no section in the needed direction; `.noCommonCodec` when no offered codec is
    ///   supported; `.badParticipant` when `participant` is not a resource id, names no WHIP session of
    ///   `room` (unknown, ended, of another room, or a WHEP session), or is given for `.publish`;
    ///   `.unavailable` when the media socket is not running; `.full` when the node holds `limits.sessions`
    ///   or the room `limits.sessions_per_room`; `.tooManyFromAddress` when `clientAddress` holds
    ///   `limits.sessions_per_address`; `.badOffer` too for more media sections than
    ///   `limits.transceivers_per_offer`. Every refusal by a limit is counted (``limitCounters()``).
    /// - Parameter clientAddress: the client's IP address (the HTTP peer of the request), counted against
    ///   `limits.sessions_per_address`; nil when unknown (not counted).
    public func createSession(
        direction: WebRTCDirection,
        room: String,
        offer: String,
        participant participantResource: String? = nil,
        tracks: Set<TrackID> = [],
        clientAddress: String? = nil
    ) async throws(WebRTCSessionError) -> WebRTCSessionCreated {
        if let participant = participantResource {
            guard direction == .subscribe else {
                throw WebRTCSessionError(
                    .badParticipant, "participant links a WHEP session to a WHIP session; a WHIP session is its own")
            }
            guard Self.isResourceID(participant) else {
                let reason =
                    "participant must be a WHIP resource id (the last path component of its Location: 32 hex digits)"
                throw WebRTCSessionError(.badParticipant, reason)
            }
        }
        let participant = participantResource.map(Self.sessionID(ofResource:))
        // Refused before any parsing when a limit is already reached (checked again when placing).
        if let refusal = self.directory.refusal(
            room: room, address: clientAddress,
            limits: (sessions: self.capacity, perAddress: self.limits.sessionsPerAddress, perRoom: self.limits.sessionsPerRoom))
        {
            throw self.error(for: refusal, room: room, address: clientAddress)
        }
        let session: SessionDescription
        // The parser stops at the first media section beyond the limit: a huge offer costs no more.
        let maximumSections = self.limits.transceiversPerOffer
        let tooManySections =
            "the offer has more than \(maximumSections) media sections, the most this node takes in one offer "
            + "(limits.transceivers_per_offer)"
        do throws(SDPError) {
            session = try SessionDescription(parsing: offer, limits: SDPLimits(maxMediaSections: maximumSections))
        } catch where error.code == .limitExceeded && error.reason.hasSuffix("media sections") {
            self.directory.countTransceiverRefusal()
            throw WebRTCSessionError(.badOffer, tooManySections)
        } catch {
            throw WebRTCSessionError(.badOffer, "malformed SDP offer: \(error)")
        }
        guard let attached = self.attached.withLockedValue({ $0 }), let bound = attached.port,
            let port = UInt16(exactly: bound)
        else {
            throw WebRTCSessionError(.unavailable, "the media socket is not running")
        }

        let resource = Self.randomID()
        let id = Self.sessionID(ofResource: resource)
        let local = ICECredentials.random()
        let ours = attached.certificate.fingerprint
        var parameters = SDPLocalParameters(
            iceUfrag: local.ufrag,
            icePwd: local.password,
            fingerprint: SDPFingerprint(algorithm: ours.algorithm.rawValue, bytes: ours.bytes),
            candidates: self.candidates(port: port),
            role: direction == .publish ? .receive : .send,
            sessionID: "\(UInt64.random(in: 1...(UInt64(1) << 62)))"
        )
        if direction == .subscribe {
            // One stream id per session: libwebrtc groups audio and video of one msid stream for lip sync.
            let stream = "braid-" + id.prefix(12)
            parameters.streamID = stream
            parameters.cname = stream
            parameters.senders = Self.senders(for: session)
        }
        var answer: SDPAnswer
        do throws(SDPError) {
            answer = try SDPAnswerBuilder(local: parameters).answer(to: session)
        } catch where error.code == .noCommonCodec {
            throw WebRTCSessionError(.noCommonCodec, error.reason)
        } catch {
            throw WebRTCSessionError(.badOffer, "cannot answer the offer: \(error)")
        }
        switch direction {
        case .publish:
            guard answer.sections.contains(where: { $0.accepted && $0.direction.receives }) else {
                throw WebRTCSessionError(.badOffer, "a WHIP offer needs a sendonly audio or video section")
            }
        case .subscribe:
            guard answer.sections.contains(where: { $0.accepted && $0.direction.sends }) else {
                throw WebRTCSessionError(.badOffer, "a WHEP offer needs a recvonly audio or video section")
            }
            // An RTX SSRC only exists where RTX was negotiated; the answer announced none elsewhere.
            for index in answer.sections.indices where answer.sections[index].rtxPayloadType == nil {
                answer.sections[index].localSender?.rtxSSRC = nil
            }
            for index in answer.sections.indices where answer.sections[index].fecPayloadType == nil {
                answer.sections[index].localSender?.fecSSRC = nil
            }
        }

        let remote: ICECredentials
        do throws(ICEError) {
            remote = try ICECredentials(ufrag: answer.remote.iceUfrag, password: answer.remote.icePwd)
        } catch {
            throw WebRTCSessionError(.badOffer, "bad ICE credentials in the offer: \(error.reason)")
        }
        let remoteFingerprint: DTLSFingerprint
        do {
            guard let algorithm = DTLSFingerprint.Algorithm(rawValue: answer.remote.fingerprint.algorithm.lowercased())
            else {
                throw WebRTCSessionError(
                    .badOffer,
                    "unsupported fingerprint hash \(answer.remote.fingerprint.algorithm)"
                )
            }
            remoteFingerprint = try DTLSFingerprint(algorithm: algorithm, bytes: answer.remote.fingerprint.bytes)
        } catch let error as WebRTCSessionError {
            throw error
        } catch {
            throw WebRTCSessionError(.badOffer, "bad a=fingerprint in the offer: \(error)")
        }

        // The session lives on the shard holding the fewest; it is in the directory before its first
        // check can arrive, on whichever socket the kernel picks.
        if let participant, !self.directory.isPublishing(id: participant, room: room) {
            throw WebRTCSessionError(
                .badParticipant, "participant \(participantResource ?? "") is not a live WHIP session in room \(room)")
        }
        guard let home = attached.shard(self.directory.leastLoadedShard()) ?? attached.shards.first else {
            throw WebRTCSessionError(.unavailable, "the media socket is not running")
        }
        let limits = (sessions: self.capacity, perAddress: self.limits.sessionsPerAddress, perRoom: self.limits.sessionsPerRoom)
        if let refusal = self.directory.place(
            id: id, room: room, direction: direction, ufrag: local.ufragKey, shard: home.index, address: clientAddress,
            limits: limits)
        {
            throw self.error(for: refusal, room: room, address: clientAddress)
        }
        let store = home.store
        let timeouts = self.iceTimeouts
        let negotiated = answer
        do {
            try await home.eventLoop.submit {
                try store.value.add(
                    id: id,
                    room: room,
                    direction: direction,
                    participant: participant,
                    tracks: tracks,
                    negotiated: negotiated,
                    local: local,
                    remote: remote,
                    remoteFingerprint: remoteFingerprint,
                    timeouts: timeouts
                )
            }.get()
        } catch let error as ICEError where error.code == .tableFull {
            self.directory.remove(id: id)
            throw WebRTCSessionError(.full, "the node holds its maximum of \(self.capacity) sessions (limits.sessions)")
        } catch {
            self.directory.remove(id: id)
            throw WebRTCSessionError(.unavailable, "cannot create the session: \(error)")
        }
        return WebRTCSessionCreated(id: id, resource: resource, room: room, answer: answer.text, etag: Self.etag(local))
    }

    /// The error of a session refused by a limit, with a reason naming the limit.
    private func error(for refusal: WebRTCShardDirectory.Refusal, room: String, address: String?)
        -> WebRTCSessionError
    {
        switch refusal {
        case .sessions:
            return WebRTCSessionError(.full, "the node holds its maximum of \(self.capacity) sessions (limits.sessions)")
        case .sessionsPerRoom:
            return WebRTCSessionError(
                .full,
                "room \(room) holds its maximum of \(self.limits.sessionsPerRoom) sessions (limits.sessions_per_room)")
        case .sessionsPerAddress:
            return WebRTCSessionError(
                .tooManyFromAddress,
                "your address \(address ?? "?") holds its maximum of \(self.limits.sessionsPerAddress) sessions "
                    + "(limits.sessions_per_address)")
        }
    }

    /// Applies a trickle-ICE `PATCH` (RFC 9725 §4.3, RFC 8840) to session `id` of `room`.
    ///
    /// - A fragment whose `a=ice-ufrag` differs from the client's current one is an ICE restart
    ///   (RFC 8839 §4.4.1.1.1): the node makes new credentials, keeps answering the old ones until the client's
    ///   first check with the new ones (``ICELiteAgent/restart(newLocal:newRemote:)``), and returns its new
    ///   ufrag, pwd and candidates. `If-Match` must be `*` or the current entity tag.
    /// - Otherwise the fragment trickles candidates: they are recorded and counted, nothing else. The node is
    ///   ICE-lite (RFC 8445 §2.5): it sends no checks and learns the client's addresses from its checks.
    ///   `If-Match` must be the current entity tag.
    ///
    /// - Parameters:
    ///   - ifMatch: the request's `If-Match` value, nil when absent.
    ///   - fragment: the `application/trickle-ice-sdpfrag` body.
    /// - Throws: ``WebRTCSessionError`` `.badFragment`, `.unknownSession`, `.preconditionRequired`,
    ///   `.preconditionFailed`, `.unavailable`.
    public func patch(
        direction: WebRTCDirection,
        room: String,
        id: String,
        ifMatch: String?,
        fragment text: String
    ) async throws(WebRTCSessionError) -> WebRTCPatchOutcome {
        let fragment: SDPTrickleFragment
        do throws(SDPError) {
            fragment = try SDPTrickleFragment(parsing: text)
        } catch {
            throw WebRTCSessionError(.badFragment, "malformed trickle-ice-sdpfrag: \(error)")
        }
        guard let attached = self.attached.withLockedValue({ $0 }), let bound = attached.port,
            let port = UInt16(exactly: bound), let shard = self.shard(holding: id)
        else {
            throw WebRTCSessionError(.unknownSession, "no session \(id) in room \(room)")
        }
        let store = shard.store
        let candidates = self.candidates(port: port)
        let result: Result<WebRTCPatchOutcome, WebRTCSessionError>
        do {
            result = try await shard.eventLoop.submit {
                Self.applyPatch(
                    store.value,
                    direction: direction,
                    room: room,
                    id: id,
                    ifMatch: ifMatch,
                    fragment: fragment,
                    candidates: candidates
                )
            }.get()
        } catch {
            throw WebRTCSessionError(.unavailable, "the media socket closed")
        }
        return try result.get()
    }

    /// The body of ``patch(direction:room:id:ifMatch:fragment:)``, on the media event loop.
    private static func applyPatch(
        _ store: WebRTCSessionStore,
        direction: WebRTCDirection,
        room: String,
        id: String,
        ifMatch: String?,
        fragment: SDPTrickleFragment,
        candidates: [SDPCandidate]
    ) -> Result<WebRTCPatchOutcome, WebRTCSessionError> {
        guard let (agent, session) = store.session(id: id, room: room), session.direction == direction else {
            return .failure(WebRTCSessionError(.unknownSession, "no session \(id) in room \(room)"))
        }
        let etag = Self.etag(agent.local)
        guard let ifMatch else {
            let reason = "a PATCH needs If-Match: \(etag) (or * to restart)"
            return .failure(WebRTCSessionError(.preconditionRequired, reason))
        }
        let restart = fragment.isICERestart(currentUfrag: agent.remote.ufrag)
        let condition = EntityTagCondition(ifMatch)
        guard condition.matches(etag) || (restart && condition.isWildcard) else {
            return .failure(WebRTCSessionError(.preconditionFailed, "If-Match does not match the ICE session \(etag)"))
        }
        guard restart else {
            let trickled = fragment.allCandidates
            session.recordTrickled(trickled)
            return .success(.trickled(candidates: trickled.count))
        }

        let ufrag = fragment.iceUfrag ?? fragment.sections.lazy.compactMap(\.iceUfrag).first
        let password = fragment.icePwd ?? fragment.sections.lazy.compactMap(\.icePwd).first
        guard let ufrag, let password else {
            return .failure(WebRTCSessionError(.badFragment, "an ICE restart needs both a=ice-ufrag and a=ice-pwd"))
        }
        let remote: ICECredentials
        do throws(ICEError) {
            remote = try ICECredentials(ufrag: ufrag, password: password)
        } catch {
            return .failure(WebRTCSessionError(.badFragment, "bad ICE credentials: \(error.reason)"))
        }
        let local = ICECredentials.random()
        do throws(ICEError) {
            guard try store.restartICE(id: id, room: room, local: local, remote: remote) else {
                return .failure(WebRTCSessionError(.unknownSession, "no session \(id) in room \(room)"))
            }
        } catch {
            return .failure(WebRTCSessionError(.unavailable, "cannot restart ICE: \(error.reason)"))
        }
        session.recordTrickled(fragment.allCandidates)
        let body = Self.restartFragment(local: local, negotiated: session.negotiated, candidates: candidates)
        return .success(.restarted(fragment: body, etag: Self.etag(local)))
    }

    /// The node's side of an ICE restart (RFC 8840 §9 grammar, RFC 9725 §4.3.2 example):
    ///
    ///     a=ice-lite
    ///     a=ice-ufrag:<new ufrag>
    ///     a=ice-pwd:<new pwd>
    ///     m=<kind> 9 <proto> <formats>      the first bundled section of the answer
    ///     a=mid:<mid>
    ///     a=candidate:...                   one per advertised address
    ///     a=end-of-candidates
    static func restartFragment(local: ICECredentials, negotiated: SDPAnswer, candidates: [SDPCandidate]) -> String {
        var lines = ["a=ice-lite", "a=ice-ufrag:\(local.ufrag)", "a=ice-pwd:\(local.password)"]
        if let section = negotiated.sections.first(where: { $0.accepted && $0.mid != nil }), let mid = section.mid,
            section.index < negotiated.session.media.count
        {
            let media = negotiated.session.media[section.index]
            let formats = media.formats.joined(separator: " ")
            lines.append("m=\(media.kind.rawValue) \(media.port) \(media.proto) \(formats)")
            lines.append("a=mid:\(mid)")
            for candidate in candidates { lines.append("a=candidate:\(candidate.attributeValue)") }
            lines.append("a=end-of-candidates")
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// Sets (a number) or lifts (nil) the operator bitrate cap of session `id`; false for an unknown id.
    public func setMaximumBitrate(id: String, bps: Int?) async -> Bool {
        guard let shard = self.shard(holding: id) else { return false }
        let store = shard.store
        return (try? await shard.eventLoop.submit { store.value.setMaximumBitrate(id: id, bps: bps) }.get()) ?? false
    }

    /// Ends the session `id` of `room` and frees its state; false when there is no such session (or it
    /// has the other `direction`, when one is given: a WHEP URL cannot end a WHIP session).
    public func endSession(direction: WebRTCDirection? = nil, room: String, id: String) async -> Bool {
        guard let shard = self.shard(holding: id) else { return false }
        let store = shard.store
        let ended = try? await shard.eventLoop.submit { () -> Bool in
            guard let (_, session) = store.value.session(id: id, room: room) else { return false }
            if let direction, session.direction != direction { return false }
            return store.value.remove(id: id, room: room)
        }.get()
        return ended ?? false
    }

    /// The drain's goodbye: every peer gets an RTCP BYE and a DTLS close_notify (see
    /// `WebRTCSessionStore.sayGoodbye()`); sessions stay until their peers leave. Returns the peers told.
    public func sayGoodbye() async -> Int {
        var told = 0
        for shard in self.allShards {
            let store = shard.store
            told += (try? await shard.eventLoop.submit { store.value.sayGoodbye() }.get()) ?? 0
        }
        return told
    }

    /// How many sessions whose DTLS connected the node holds (the ones a drain waits for), read on the
    /// media event loops.
    public func connectedSessionCount() async -> Int {
        var count = 0
        for shard in self.allShards {
            let store = shard.store
            count += (try? await shard.eventLoop.submit { store.value.connectedSessionCount }.get()) ?? 0
        }
        return count
    }

    /// What the limits refused and dropped so far, read on the media event loops.
    public func limitCounters() async -> WebRTCLimitCounters {
        var total = self.directory.refusals
        for shard in self.allShards {
            let store = shard.store
            if let part = try? await shard.eventLoop.submit({ store.value.limitCounters }).get() {
                total = total + part
            }
        }
        return total
    }

    /// The most packets each session queued in one period while the socket was full, by id (tests).
    func outboundQueuePeaks() async -> [String: Int] {
        var peaks: [String: Int] = [:]
        for shard in self.allShards {
            let store = shard.store
            if let part = try? await shard.eventLoop.submit({ store.value.outboundQueuePeaks }).get() {
                peaks.merge(part) { a, _ in a }
            }
        }
        return peaks
    }

    /// Every session's status, read on the media event loops.
    public func statuses() async -> [WebRTCSessionStatus] {
        await self.snapshot().sessions
    }

    /// Every room of the forwarding core, by name: its publishers and subscribers (each with the selected
    /// remote address of its session), tracks with their layers, and active speakers. Empty when the media
    /// socket is not running. A room spread over several event loops is shown once.
    public func rooms() async -> [SFURoomStatus] {
        await self.snapshot().rooms
    }

    /// The room `name`, or nil when no peer is in it (rooms exist while they have a peer).
    public func room(named name: String) async -> SFURoomStatus? {
        var parts: [SFURoomStatus] = []
        for shard in self.allShards {
            let store = shard.store
            if let rooms = try? await shard.eventLoop.submit({ store.value.roomStatuses(named: name) }).get() {
                parts += rooms
            }
        }
        return Self.merge(parts).first
    }

    /// Sessions, rooms and send totals read with one hop onto each media event loop, so that each shard's
    /// part describes one moment (the dashboard's view).
    public func snapshot() async -> WebRTCSessionsSnapshot {
        var total = WebRTCSessionsSnapshot()
        var rooms: [SFURoomStatus] = []
        for shard in self.allShards {
            let store = shard.store
            guard
                let part = try? await shard.eventLoop.submit({
                    WebRTCSessionsSnapshot(
                        sessions: store.value.statuses(),
                        rooms: store.value.roomStatuses(),
                        sent: store.value.sendTotals,
                        eventLoops: [store.value.eventLoopStatus],
                        limits: store.value.limitCounters
                    )
                }).get()
            else { continue }
            total.sessions += part.sessions
            rooms += part.rooms
            total.sent = total.sent + part.sent
            total.eventLoops += part.eventLoops
            total.limits = total.limits + part.limits
        }
        total.limits = total.limits + self.directory.refusals
        total.eventLoops.sort { $0.index < $1.index }
        total.sessions.sort { $0.id < $1.id }
        total.rooms = Self.merge(rooms)
        return total
    }

    /// Joins the parts of rooms that several shards hold: peers and tracks together, active speakers
    /// loudest first by their tracks' levels.
    static func merge(_ parts: [SFURoomStatus]) -> [SFURoomStatus] {
        var byName: [String: SFURoomStatus] = [:]
        for part in parts {
            guard var room = byName[part.name] else {
                byName[part.name] = part
                continue
            }
            room.publishers += part.publishers
            room.subscribers += part.subscribers
            room.tracks += part.tracks
            room.activeSpeakers += part.activeSpeakers
            byName[part.name] = room
        }
        return byName.keys.sorted().compactMap { name in
            guard var room = byName[name] else { return nil }
            let levels = Dictionary(
                room.tracks.compactMap { track in track.audioLevel.map { (track.trackID, $0) } },
                uniquingKeysWith: { a, _ in a })
            room.activeSpeakers.sort { (levels[$0] ?? 127) < (levels[$1] ?? 127) }
            return room
        }
    }

    /// One host candidate per advertised address, all on the media port.
    private func candidates(port: UInt16) -> [SDPCandidate] {
        self.advertisedAddresses.enumerated().map { index, address in
            SDPCandidate(
                foundation: "\(index + 1)",
                priority: ICECandidate.priority(
                    typePreference: ICECandidate.hostTypePreference,
                    localPreference: UInt16(clamping: 65535 - index),
                    component: 1
                ),
                address: address,
                port: port
            )
        }
    }

    /// WHEP senders: a track id and random distinct non-zero SSRCs for every audio or video section with a
    /// mid (the builder keeps them only for the sections it accepts as sending).
    static func senders(for offer: SessionDescription) -> [String: SDPLocalSender] {
        var generator = SystemRandomNumberGenerator()
        var used: Set<UInt32> = []
        func ssrc() -> UInt32 {
            while true {
                let value = UInt32.random(in: 1...UInt32.max, using: &generator)
                if used.insert(value).inserted { return value }
            }
        }
        var senders: [String: SDPLocalSender] = [:]
        for media in offer.media where media.kind == .audio || media.kind == .video {
            guard let mid = media.mid, senders[mid] == nil else { continue }
            senders[mid] = SDPLocalSender(
                trackID: "\(media.kind.rawValue)-\(mid)",
                ssrc: ssrc(),
                rtxSSRC: media.kind == .video ? ssrc() : nil,
                fecSSRC: media.kind == .video ? ssrc() : nil
            )
        }
        return senders
    }

    /// The entity tag of an ICE session: the node's current ufrag, quoted (RFC 9110 §8.8.3).
    static func etag(_ local: ICECredentials) -> String { "\"\(local.ufrag)\"" }

    /// Whether `text` looks like a resource id of ``randomID()``: 32 lowercase hex digits.
    static func isResourceID(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The public id of the session whose secret resource id is `resource`: the first 128 bits of
    /// HMAC-SHA256 under a fixed label, in hex. One way: the id shown to operators cannot be turned back
    /// into the resource URL that ends or restarts the session.
    public static func sessionID(ofResource resource: String) -> String {
        let digest = HKDF.hmac(key: Array("braid session id".utf8), data: Array(resource.utf8))
        return digest.prefix(16).map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
    }

    /// 128 random bits in hex: unguessable, so a resource URL is its own capability.
    private static func randomID() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: 16 - digits.count) + digits
        }
        return hex(high) + hex(low)
    }
}

/// The sessions and rooms of a node at one moment; see ``WebRTCSessions/snapshot()``.
public struct WebRTCSessionsSnapshot: Sendable, Equatable {
    /// Every session, by id.
    public var sessions: [WebRTCSessionStatus]
    /// Every room, by name.
    public var rooms: [SFURoomStatus]
    /// What the node has sent to all peers since the media socket opened, ended sessions included.
    public var sent: WebRTCSendCounters
    /// Each media event loop, by index.
    public var eventLoops: [WebRTCEventLoopStatus]
    /// What the limits refused and dropped (counts of the live media sockets and of the node).
    public var limits: WebRTCLimitCounters

    public init(
        sessions: [WebRTCSessionStatus] = [],
        rooms: [SFURoomStatus] = [],
        sent: WebRTCSendCounters = WebRTCSendCounters(),
        eventLoops: [WebRTCEventLoopStatus] = [],
        limits: WebRTCLimitCounters = WebRTCLimitCounters()
    ) {
        self.sessions = sessions
        self.rooms = rooms
        self.sent = sent
        self.eventLoops = eventLoops
        self.limits = limits
    }
}

/// An `If-Match` field value (RFC 9110 §13.1.1): `*` or a list of entity tags, compared strongly.
struct EntityTagCondition {
    let isWildcard: Bool
    let tags: [Substring]

    init(_ value: String) {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        self.isWildcard = trimmed == "*"
        self.tags = trimmed.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces)[...] }
    }

    /// Whether the list names `etag` (a weak `W/` tag never matches: strong comparison).
    func matches(_ etag: String) -> Bool {
        !self.isWildcard && self.tags.contains { $0 == etag[...] }
    }
}
