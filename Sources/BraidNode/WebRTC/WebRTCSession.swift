import BraidICE
import BraidSFU
import BraidSecurity
import NIOCore

/// What one session has received on the media socket. Wrapping arithmetic: counters never trap.
public struct WebRTCSessionCounters: Sendable, Equatable, Codable {
    /// SRTP packets that decrypted and authenticated, with their protected sizes.
    public var rtpReceived = PacketCount()
    /// SRTCP packets that decrypted and authenticated, with their protected sizes.
    public var rtcpReceived = PacketCount()
    /// SRTP or SRTCP packets that failed authentication, were replayed, or arrived before the keys.
    public var unprotectFailures: UInt64 = 0
    /// DTLS records that the endpoint rejected (the handshake then fails).
    public var dtlsErrors: UInt64 = 0
    /// STUN requests for this session that got no success answer (bad integrity, no fingerprint, ...).
    public var stunRejected: UInt64 = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case rtpReceived = "rtp_received"
        case rtcpReceived = "rtcp_received"
        case unprotectFailures = "unprotect_failures"
        case dtlsErrors = "dtls_errors"
        case stunRejected = "stun_rejected"
    }
}

/// One session as the dashboard shows it; copied off the media event loop.
public struct WebRTCSessionStatus: Sendable, Equatable, Codable {
    /// The resource id in `Location: /whip/{room}/{id}`.
    public var id: String
    /// The room named in the WHIP URL.
    public var room: String
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

    public init(
        id: String,
        room: String,
        remoteAddress: String?,
        iceState: String,
        dtlsState: String,
        srtpProfile: String?,
        counters: WebRTCSessionCounters
    ) {
        self.id = id
        self.room = room
        self.remoteAddress = remoteAddress
        self.iceState = iceState
        self.dtlsState = dtlsState
        self.srtpProfile = srtpProfile
        self.counters = counters
    }

    enum CodingKeys: String, CodingKey {
        case id
        case room
        case remoteAddress = "remote_address"
        case iceState = "ice_state"
        case dtlsState = "dtls_state"
        case srtpProfile = "srtp_profile"
        case counters
    }
}

/// The per-session state of an ingest (WHIP) session. Confined to the media channel's event loop.
///
/// Ownership: the ICE agent lives in the ``WebRTCSessionStore``'s table next to this object; the DTLS
/// endpoint and SRTP session are allocated here and freed with it (their own `deinit`s free the C
/// handles), so removing the session from the table releases everything.
final class WebRTCSession {
    let id: String
    let room: String
    let dtls: DTLSEndpoint
    var srtp: SRTPSession?
    /// Where DTLS came from; its records are answered there (the peer's selected pair).
    var dtlsPeer: SocketAddress?
    /// The armed DTLS retransmission timer.
    var retransmitTimer: Scheduled<Void>?
    var counters = WebRTCSessionCounters()
    /// The way out for forwarded media and feedback; created when SRTP keys are ready.
    var transport: WebRTCMediaTransport?
    /// The session's part in the forwarding core: a WHIP session publishes, a WHEP session subscribes.
    var publisher: SFUPublisher?
    var subscriber: SFUSubscriber?

    init(id: String, room: String, dtls: DTLSEndpoint) {
        self.id = id
        self.room = room
        self.dtls = dtls
    }

    /// Cancels timers; called when the session leaves the table.
    func close() {
        self.retransmitTimer?.cancel()
        self.retransmitTimer = nil
        self.srtp = nil
        self.transport?.srtp = nil
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
