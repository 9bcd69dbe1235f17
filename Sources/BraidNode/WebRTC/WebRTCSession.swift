import BraidICE
import BraidSDP
import BraidSFU
import BraidSecurity
import BraidTransport
import NIOCore

/// Which way media flows in a session, seen from the client.
public enum WebRTCDirection: String, Sendable, Codable, Hashable {
    /// WHIP (RFC 9725): the client publishes, the node receives.
    case publish
    /// WHEP (draft-ietf-wish-whep): the client plays, the node sends.
    case subscribe
}

/// What one session has received on the media socket. Wrapping arithmetic: counters never trap.
public struct WebRTCSessionCounters: Sendable, Equatable, Codable {
    /// SRTP packets that decrypted and authenticated, with their protected sizes.
    public var rtpReceived = PacketCount()
    /// SRTCP packets that decrypted and authenticated, with their protected sizes.
    public var rtcpReceived = PacketCount()
    /// SRTP or SRTCP packets that failed authentication or arrived before the keys.
    public var unprotectFailures: UInt64 = 0
    /// SRTP or SRTCP packets already received (a publisher's deliberate audio repeats, network duplicates).
    public var duplicatesDropped: UInt64 = 0
    /// DTLS records that the endpoint rejected (the handshake then fails).
    public var dtlsErrors: UInt64 = 0
    /// STUN requests for this session that got no success answer (bad integrity, no fingerprint, ...).
    public var stunRejected: UInt64 = 0

    public init() {}

    /// The receive side of a session's transport counters.
    init(_ counters: SecureTransportCounters) {
        self.rtpReceived = PacketCount(packets: counters.rtpPacketsReceived, bytes: counters.rtpBytesReceived)
        self.rtcpReceived = PacketCount(packets: counters.rtcpPacketsReceived, bytes: counters.rtcpBytesReceived)
        self.unprotectFailures = counters.unprotectFailures
        self.duplicatesDropped = counters.duplicatesDropped
        self.dtlsErrors = counters.dtlsErrors
        self.stunRejected = counters.stunRejected
    }

    enum CodingKeys: String, CodingKey {
        case rtpReceived = "rtp_received"
        case rtcpReceived = "rtcp_received"
        case unprotectFailures = "unprotect_failures"
        case duplicatesDropped = "duplicates_dropped"
        case dtlsErrors = "dtls_errors"
        case stunRejected = "stun_rejected"
    }
}

/// One session as the dashboard shows it; copied off the media event loop.
public struct WebRTCSessionStatus: Sendable, Equatable, Codable {
    /// The resource id in `Location: /whip/{room}/{id}`.
    public var id: String
    /// The room named in the WHIP or WHEP URL.
    public var room: String
    /// `publish` (WHIP) or `subscribe` (WHEP).
    public var direction: WebRTCDirection
    /// The accepted m-sections of the answer: mid, kind and negotiated codec.
    public var sections: [WebRTCSectionStatus]
    /// The operator's bitrate cap in bits per second, or nil when none is set.
    public var maximumBitrate: Int?
    /// ICE restarts completed or started through `PATCH` since the session was created.
    public var iceRestarts: Int
    /// Remote candidates received by trickle ICE `PATCH` requests (recorded, not used: the node is ICE-lite
    /// and learns the client's addresses from its connectivity checks).
    public var trickledCandidates: Int
    /// The selected remote address (`ip:port`), once a check has passed.
    public var remoteAddress: String?
    /// `new`, `checking`, `connected`, `disconnected` or `failed` (``ICELiteAgent/State``).
    public var iceState: String
    /// `handshaking`, `connected`, `failed` or `closed` (``DTLSEndpoint/State``).
    public var dtlsState: String
    /// The negotiated SRTP protection profile (RFC 5764 §4.1.2 name), once DTLS has connected.
    public var srtpProfile: String?
    /// Receive counters.
    public var counters: WebRTCSessionCounters
    /// What the node sent to this peer (forwarded media, retransmissions, its own RTCP); nil until the
    /// session has SRTP keys and joined its room.
    public var sent: WebRTCSendCounters?
    /// The media event loop (shard) that holds the session; absent in documents of older nodes.
    public var eventLoop: Int?

    public init(
        id: String,
        room: String,
        direction: WebRTCDirection = .publish,
        sections: [WebRTCSectionStatus] = [],
        maximumBitrate: Int? = nil,
        iceRestarts: Int = 0,
        trickledCandidates: Int = 0,
        remoteAddress: String?,
        iceState: String,
        dtlsState: String,
        srtpProfile: String?,
        counters: WebRTCSessionCounters,
        sent: WebRTCSendCounters? = nil,
        eventLoop: Int? = nil
    ) {
        self.eventLoop = eventLoop
        self.id = id
        self.room = room
        self.direction = direction
        self.sections = sections
        self.maximumBitrate = maximumBitrate
        self.iceRestarts = iceRestarts
        self.trickledCandidates = trickledCandidates
        self.remoteAddress = remoteAddress
        self.iceState = iceState
        self.dtlsState = dtlsState
        self.srtpProfile = srtpProfile
        self.counters = counters
        self.sent = sent
    }

    enum CodingKeys: String, CodingKey {
        case id
        case room
        case direction
        case sections
        case maximumBitrate = "maximum_bitrate"
        case iceRestarts = "ice_restarts"
        case trickledCandidates = "trickled_candidates"
        case remoteAddress = "remote_address"
        case iceState = "ice_state"
        case dtlsState = "dtls_state"
        case srtpProfile = "srtp_profile"
        case counters
        case sent
        case eventLoop = "event_loop"
    }
}

/// One accepted m-section of a session, as the dashboard shows it.
public struct WebRTCSectionStatus: Sendable, Equatable, Codable {
    /// The section's `a=mid`.
    public var mid: String
    /// `audio` or `video`.
    public var kind: String
    /// The negotiated codec as `encoding/clock[/channels]` with its payload type, e.g. `VP8/90000 pt 96`.
    public var codec: String
    /// The RTX payload type, when RTX is negotiated.
    public var rtxPayloadType: Int?
    /// Simulcast RIDs the client sends (WHIP), in `a=simulcast` order.
    public var rids: [String]
    /// The node's media SSRC in this section (WHEP).
    public var ssrc: UInt32?
    /// The node's RTX SSRC in this section (WHEP, when RTX is negotiated).
    public var rtxSSRC: UInt32?

    public init(
        mid: String,
        kind: String,
        codec: String,
        rtxPayloadType: Int? = nil,
        rids: [String] = [],
        ssrc: UInt32? = nil,
        rtxSSRC: UInt32? = nil
    ) {
        self.mid = mid
        self.kind = kind
        self.codec = codec
        self.rtxPayloadType = rtxPayloadType
        self.rids = rids
        self.ssrc = ssrc
        self.rtxSSRC = rtxSSRC
    }

    /// The accepted sections of `answer`.
    static func list(_ answer: SDPAnswer) -> [WebRTCSectionStatus] {
        answer.sections.compactMap { section in
            guard section.accepted, let mid = section.mid, let codec = section.codec else { return nil }
            var name = "\(codec.encoding)/\(codec.clockRate)"
            if let channels = codec.channels { name += "/\(channels)" }
            return WebRTCSectionStatus(
                mid: mid,
                kind: section.kind.rawValue,
                codec: name + " pt \(codec.payloadType)",
                rtxPayloadType: section.rtxPayloadType.map(Int.init),
                rids: section.simulcast.map { $0.recv.flatMap { $0.map(\.rid) } } ?? [],
                ssrc: section.localSender?.ssrc,
                rtxSSRC: section.localSender?.rtxSSRC
            )
        }
    }

    enum CodingKeys: String, CodingKey {
        case mid
        case kind
        case codec
        case rtxPayloadType = "rtx_payload_type"
        case rids
        case ssrc
        case rtxSSRC = "rtx_ssrc"
    }
}

/// The per-session state of a WHIP or WHEP session. Confined to the media channel's event loop.
///
/// Ownership: the ICE agent lives in the ``WebRTCSessionStore``'s table next to this object and is shared
/// with its ``SecureTransport`` (consent, DTLS, SRTP), which is allocated here and freed with it (the DTLS
/// endpoint's and SRTP sessions' own `deinit`s free the C handles), so removing the session from the table
/// releases everything; ``close()`` drops the SRTP keys at once in case the forwarding core still holds
/// the media transport.
final class WebRTCSession {
    typealias Direction = WebRTCDirection

    /// The most trickled remote candidates kept per session; later ones are only counted.
    static let maximumRecordedCandidates = 32

    let id: String
    let room: String
    /// WHIP (`publish`) or WHEP (`subscribe`).
    let direction: Direction
    /// The participant the session joins the forwarding core as: the id of the WHIP session a WHEP request
    /// named (`?participant=`), so that the client never receives its own tracks; otherwise its own id.
    let participant: String
    /// WHEP: the only tracks the session's slots take (`?track=`); empty: any track of the room.
    let tracks: Set<TrackID>
    /// The answer and what it negotiated per m-section (codecs, extension IDs, simulcast RIDs, and for
    /// WHEP the node's SSRCs in ``SDPNegotiatedSection/localSender``).
    let negotiated: SDPAnswer
    /// The operator's cap on what the node sends to (WHEP) or asks of (WHIP) this client, in bits per
    /// second; nil when unset. Set through ``WebRTCSessionStore/setMaximumBitrate(id:bps:)``.
    var maximumBitrate: Int? {
        didSet { self.subscriber?.maximumBitrate = self.maximumBitrate }
    }
    /// Remote candidates from trickle `PATCH` requests, at most ``maximumRecordedCandidates``. The node is
    /// ICE-lite (RFC 8445 §2.5): it sends no checks and learns addresses from the client's checks, so
    /// these are kept for diagnosis only.
    var trickledCandidates: [SDPCandidate] = []
    /// Every trickled candidate, recorded or not.
    var trickledCandidateCount = 0
    /// ICE restarts accepted for this session.
    var iceRestarts = 0
    /// ICE consent, the DTLS handshake (server), SRTP and the receive and send counters.
    let secure: SecureTransport
    /// The armed DTLS retransmission timer.
    var retransmitTimer: Scheduled<Void>?
    /// What the session received.
    var counters: WebRTCSessionCounters { WebRTCSessionCounters(self.secure.counters) }
    /// The way out for forwarded media and feedback; created when SRTP keys are ready.
    var transport: WebRTCMediaTransport?
    /// The session's part in the forwarding core: a WHIP session publishes, a WHEP session subscribes.
    var publisher: SFUPublisher?
    var subscriber: SFUSubscriber?

    init(
        id: String, room: String, direction: Direction, participant: String? = nil, tracks: Set<TrackID> = [],
        negotiated: SDPAnswer, secure: SecureTransport
    ) {
        self.tracks = tracks
        self.id = id
        self.room = room
        self.direction = direction
        self.participant = participant ?? id
        self.negotiated = negotiated
        self.secure = secure
    }

    /// Records candidates from a trickle fragment (bounded; see ``trickledCandidates``).
    func recordTrickled(_ candidates: [SDPCandidate]) {
        self.trickledCandidateCount &+= candidates.count
        let room = Self.maximumRecordedCandidates - self.trickledCandidates.count
        if room > 0 { self.trickledCandidates.append(contentsOf: candidates.prefix(room)) }
    }

    /// Cancels timers; called when the session leaves the table.
    func close() {
        self.retransmitTimer?.cancel()
        self.retransmitTimer = nil
        self.secure.discardKeys()
        self.transport = nil
        self.publisher = nil
        self.subscriber = nil
    }

    static func label(_ state: ICELiteAgent.State) -> String {
        switch state {
        case .new: "new"
        case .checking: "checking"
        case .connected: "connected"
        case .disconnected: "disconnected"
        case .failed: "failed"
        }
    }

    static func label(_ state: DTLSEndpoint.State) -> String {
        switch state {
        case .handshaking: "handshaking"
        case .connected: "connected"
        case .failed: "failed"
        case .closed: "closed"
        }
    }
}
