import BraidICE
import BraidSDP
import BraidSecurity
import NIOCore

/// Options shared by publishers and subscribers.
public struct ConnectionOptions: Sendable {
    /// Sent as `Authorization: Bearer <token>` when set (RFC 9725 §4.5).
    public var bearerToken: String?
    /// Local address the UDP socket binds to; a specific address is also offered as a host candidate.
    /// Loopback by default: use `0.0.0.0` (or an interface's address) to reach a node on another host.
    public var localHost: String
    /// Deadline for the HTTP exchange and, separately, for ICE + DTLS to complete.
    public var timeout: Duration
    /// This side's DTLS certificate; share one across many peers to save key generation (each peer
    /// still has its own DTLS association and SRTP keys).
    public var certificate: DTLSCertificate?
    /// What the simulated network does to this peer's outgoing SRTP/SRTCP (see ``NetworkImpairment``).
    public var uplink: NetworkImpairment
    /// What the simulated network does to this peer's incoming SRTP/SRTCP.
    public var downlink: NetworkImpairment
    /// Seed of the impairment generators (uplink and downlink get derived streams); random when nil.
    public var impairmentSeed: UInt64?
    /// Other nodes to move to when this peer's node is lost (see ``FailoverOptions``); off by default.
    public var failover: FailoverOptions
    /// Whether a receiver offers the node's loss protection (RED for audio, Braid's FEC for video), and a
    /// publisher offers to protect its video uplink with Braid's FEC. On by default (repairs are added
    /// only when the link loses packets); off to measure without it.
    public var offersLossProtection = true
    /// Whether a receiver with loss protection also offers generic NACK for audio: a lost audio packet is
    /// asked for again while the answer can still make its playout point. On by default; off to compare.
    public var offersAudioNACK = true
    /// Sockets to share with other peers (each peer gets a loopback address of its own on one of them;
    /// see ``PeerSocketPool``); nil: the peer binds a socket of its own at ``localHost``.
    public var socketPool: PeerSocketPool?

    /// Creates options.
    public init(
        bearerToken: String? = nil, localHost: String = "127.0.0.1", timeout: Duration = .seconds(10),
        certificate: DTLSCertificate? = nil, uplink: NetworkImpairment = NetworkImpairment(),
        downlink: NetworkImpairment = NetworkImpairment(), impairmentSeed: UInt64? = nil,
        failover: FailoverOptions = FailoverOptions()
    ) {
        self.failover = failover
        self.bearerToken = bearerToken
        self.localHost = localHost
        self.timeout = timeout
        self.certificate = certificate
        self.uplink = uplink
        self.downlink = downlink
        self.impairmentSeed = impairmentSeed
    }
}

/// The part of joining that publishers and subscribers share: socket, offer, HTTP exchange, transport.
struct PeerJoin {
    var transport: PeerTransport
    var answer: RemoteAnswer
    /// The session resource from `Location`, for DELETE.
    var resource: HTTPEndpoint?
    /// When the HTTP request was sent.
    var requestedAt: NIODeadline

    /// Redirects a WHIP or WHEP `POST` follows before giving up.
    static let maximumRedirects = 3

    static func join(
        endpoint: HTTPEndpoint,
        tracks: [OfferedTrack],
        direction: SDPDirection,
        options: ConnectionOptions,
        group: any EventLoopGroup,
        on loop: (any EventLoop)? = nil,
        timeout: Duration? = nil
    ) async throws(BraidClientError) -> PeerJoin {
        guard !tracks.isEmpty else { throw .badArgument("an offer needs at least one track") }
        // A reconnecting peer keeps its event loop: its state is confined there.
        let eventLoop = loop ?? group.next()
        let socket: PeerSocket
        if let pool = options.socketPool {
            let (shared, address) = try pool.lease(on: eventLoop)
            socket = .shared(shared, address: address)
        } else {
            socket = try await PeerSocket.bind(host: options.localHost, on: eventLoop)
        }
        do {
            let certificate: DTLSCertificate
            if let shared = options.certificate {
                certificate = shared
            } else {
                do {
                    certificate = try DTLSCertificate(commonName: "braid-client")
                } catch {
                    throw BraidClientError.dtlsFailed("creating a certificate: \(error)")
                }
            }
            let credentials = ICECredentials.random()
            var candidates: [SDPCandidate] = []
            if let local = socket.localAddress, options.socketPool != nil || (options.localHost != "0.0.0.0" && options.localHost != "::"),
                let ip = local.ipAddress, let port = local.port, let portValue = UInt16(exactly: port)
            {
                let priority = ICECandidate.priority(
                    typePreference: ICECandidate.hostTypePreference, localPreference: 65_535, component: 1)
                candidates.append(SDPCandidate(foundation: "1", priority: priority, address: ip, port: portValue))
            }
            let cname = "braid-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            let offer = ClientOffer.make(
                tracks: tracks, direction: direction, credentials: credentials, fingerprint: certificate.fingerprint,
                candidates: candidates, cname: cname, streamID: cname, sessionID: UInt64.random(in: 1...(1 << 62)),
                lossProtection: options.offersLossProtection, audioNACK: options.offersAudioNACK)
            var headers = [("Content-Type", "application/sdp"), ("Accept", "application/sdp")]
            if let token = options.bearerToken { headers.append(("Authorization", "Bearer \(token)")) }
            let requestedAt = NIODeadline.now()
            var endpoint = endpoint
            let http = WHTTPClient(group: group, localAddress: socket.httpLocalAddress)
            var response = try await http.request(
                .post, endpoint, headers: headers, body: offer.text, timeout: timeout ?? options.timeout)
            // RFC 9725 §4.5: a 307 (or 308) sends the same POST to another endpoint, e.g. a node of the
            // cluster nearer the client. A few hops at most, so two misconfigured nodes cannot loop.
            var redirects = 0
            while response.status == 307 || response.status == 308, redirects < Self.maximumRedirects,
                let location = response.header("Location")
            {
                redirects += 1
                endpoint = try endpoint.resolving(location)
                response = try await http.request(
                    .post, endpoint, headers: headers, body: offer.text, timeout: timeout ?? options.timeout)
            }
            guard response.status == 201 else {
                throw BraidClientError.httpStatus(code: response.status, body: response.body)
            }
            let answer = try RemoteAnswer(parsing: response.body, offeredSections: tracks.count)
            let resource = try response.header("Location").map { (location) throws(BraidClientError) in
                try endpoint.resolving(location)
            }
            let transport = try PeerTransport(
                socket: socket, local: credentials, certificate: certificate, answer: answer,
                lossTimeout: options.failover.isEnabled ? options.failover.lossTimeout : nil)
            transport.installImpairments(options)
            return PeerJoin(transport: transport, answer: answer, resource: resource, requestedAt: requestedAt)
        } catch {
            try? await eventLoop.flatSubmit { socket.close() }.get()
            throw (error as? BraidClientError) ?? .connectionFailed("\(error)")
        }
    }

    /// Starts ICE and DTLS and waits for SRTP keys, within `timeout`.
    static func connect(_ transport: PeerTransport, timeout: Duration) async throws(BraidClientError) {
        let eventLoop = transport.eventLoop
        let nanoseconds =
            Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let connected = transport.start()
        let timer = eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
            transport.connected.fail(BraidClientError.timeout("ICE and DTLS within \(timeout)"))
        }
        do {
            try await connected.get()
            timer.cancel()
        } catch {
            timer.cancel()
            try? await eventLoop.flatSubmit { transport.close() }.get()
            throw (error as? BraidClientError) ?? .connectionFailed("\(error)")
        }
    }

    /// Ends the session: DELETE on the resource (errors ignored when `ignoreHTTPErrors`), closes the socket.
    static func leave(
        transport: PeerTransport, resource: HTTPEndpoint?, options: ConnectionOptions, group: any EventLoopGroup,
        timeout: Duration? = nil
    ) async throws(BraidClientError) {
        try? await transport.eventLoop.flatSubmit { transport.close() }.get()
        guard let resource else { return }
        var headers: [(String, String)] = []
        if let token = options.bearerToken { headers.append(("Authorization", "Bearer \(token)")) }
        let response = try await WHTTPClient(group: group, localAddress: transport.socket.httpLocalAddress).request(
            .delete, resource, headers: headers, timeout: timeout ?? options.timeout)
        guard (200..<300).contains(response.status) else {
            throw .httpStatus(code: response.status, body: response.body)
        }
    }
}
