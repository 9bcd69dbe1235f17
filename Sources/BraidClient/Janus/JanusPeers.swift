import BraidICE
import BraidSDP
import BraidSecurity
import BraidWire
import NIOCore

/// A VideoRoom handle a Janus peer holds (to detach it when done).
public struct JanusHandle: Sendable, Hashable {
    /// The handle id.
    public var id: UInt64
    /// The publisher's feed id (`joined.id`), for a publisher; nil for a subscriber.
    public var feed: UInt64?
}

extension JanusSession {
    /// Creates VideoRoom `room` (sync `create`; Janus VideoRoom docs "create"). An existing room is an
    /// error (VideoRoom 427).
    public func createRoom(
        _ room: UInt64, publishers: Int = 10, bitrate: Int = 1_024_000, secret: String
    ) async throws(BraidClientError) {
        let handle = try await self.attach()
        defer { Task { await self.detach(handle: handle) } }
        let reply = try await self.message(
            handle: handle,
            body: JanusRequest.createRoom(room: room, publishers: publishers, bitrate: bitrate, secret: secret))
        guard reply.videoroom == "created" else {
            throw JanusSession.error(.malformed("reply to create room: \(reply.videoroom ?? reply.kind)"))
        }
    }
}

extension BraidPublisher {
    /// Publishes to Janus VideoRoom `room` over `session`: attach, `join` as a publisher, `publish` with
    /// this client's offer, then ICE and DTLS against Janus's answer (Janus VideoRoom docs "publish";
    /// `plugins/janus_videoroom.c`).
    ///
    /// Janus answers as the ICE-controlled agent with `a=setup:active` (it is the DTLS client): this side
    /// runs full ICE as the controlling agent, as against a Braid node, and answers Janus's own checks.
    /// Janus 1.1.2 does not negotiate abs-capture-time; with `captureLog`, each video frame's capture time
    /// is recorded by its VP8 picture ID for subscribers in the same process (``CaptureTimeLog``).
    ///
    /// - Returns: the publisher and its handle (`feed` = the id subscribers join).
    public static func publish(
        toJanus session: JanusSession, room: UInt64, display: String = "braid", audio: AudioSource?,
        video: VideoSource?, captureLog: CaptureTimeLog? = nil, options: ConnectionOptions = ConnectionOptions(),
        group: any EventLoopGroup
    ) async throws(BraidClientError) -> (BraidPublisher, JanusHandle) {
        guard audio != nil || video != nil else { throw .badArgument("publish needs audio, video or both") }
        let handle = try await session.attach()
        do throws(BraidClientError) {
            let joined = try await session.message(
                handle: handle, body: JanusRequest.joinPublisher(room: room, display: display))
            guard joined.videoroom == "joined", let feed = JanusMessage.integer(joined.pluginData?["id"]) else {
                throw JanusSession.error(.malformed("reply to join: \(joined.videoroom ?? joined.kind) without id"))
            }
            let tracks = Self.offeredTracks(audio: audio != nil, video: video != nil)
            let local = try await JanusLocalPeer.make(options: options, group: group)
            do throws(BraidClientError) {
                let offer = ClientOffer.make(
                    tracks: tracks, direction: .sendonly, credentials: local.credentials,
                    fingerprint: local.certificate.fingerprint, candidates: local.candidates, cname: local.cname,
                    streamID: local.cname, sessionID: UInt64.random(in: 1...(1 << 62)),
                    lossProtection: false)
                let requestedAt = NIODeadline.now()
                let configured = try await session.message(
                    handle: handle, body: JanusRequest.publish(), jsep: ("offer", offer.text))
                guard let jsep = configured.jsep, jsep.type == "answer" else {
                    throw JanusSession.error(.malformed("reply to publish without a JSEP answer"))
                }
                let answer = try RemoteAnswer(parsing: jsep.sdp, offeredSections: tracks.count)
                let transport = try PeerTransport(
                    socket: local.socket, local: local.credentials, certificate: local.certificate, answer: answer)
                transport.installImpairments(options)
                let join = PeerJoin(transport: transport, answer: answer, resource: nil, requestedAt: requestedAt)
                let candidates = try FailoverCandidates(origin: session.base, roomPath: session.base.path, fallbacks: [])
                let publisher = try BraidPublisher(
                    join: join, tracks: tracks, candidates: candidates, audio: audio, video: video,
                    options: options, group: group)
                if let captureLog {
                    publisher.videoFrameSent = { captureLog.record(pictureID: $0, captureTime: $1) }
                }
                transport.handler = publisher
                try await PeerJoin.connect(transport, timeout: options.timeout)
                return (publisher, JanusHandle(id: handle, feed: feed))
            } catch {
                try? await local.socket.eventLoop.flatSubmit { local.socket.close() }.get()
                throw error
            }
        } catch {
            await session.detach(handle: handle)
            throw error
        }
    }
}

extension BraidSubscriber {
    /// Subscribes to `feeds` of Janus VideoRoom `room` over `session`: attach, `join` as a subscriber
    /// (Janus sends a JSEP offer), answer it (``JanusSubscriberAnswer``: ICE-lite, DTLS passive), `start`,
    /// then wait for DTLS (Janus VideoRoom docs "subscribe"; `plugins/janus_videoroom.c`).
    ///
    /// The subscriber measures what a WHEP subscriber measures; latency needs `captureLog` (filled by the
    /// publisher in the same process, see ``CaptureTimeLog``) and is then video only.
    ///
    /// - Throws: a Janus error as ``BraidClientError/connectionFailed(_:)`` (e.g. VideoRoom 428 "No such
    ///   feed" before the publisher's PeerConnection is up), and what ICE or DTLS throw.
    public static func subscribe(
        toJanus session: JanusSession, room: UInt64, feeds: [UInt64], captureLog: CaptureTimeLog? = nil,
        options: ConnectionOptions = ConnectionOptions(), group: any EventLoopGroup
    ) async throws(BraidClientError) -> (BraidSubscriber, JanusHandle) {
        guard !feeds.isEmpty else { throw .badArgument("subscribe to at least one feed") }
        let handle = try await session.attach()
        do throws(BraidClientError) {
            let requestedAt = NIODeadline.now()
            let attached = try await session.message(
                handle: handle, body: JanusRequest.joinSubscriber(room: room, feeds: feeds))
            guard attached.videoroom == "attached", let jsep = attached.jsep, jsep.type == "offer" else {
                throw JanusSession.error(
                    .malformed("reply to a subscriber join: \(attached.videoroom ?? attached.kind) without a JSEP offer"))
            }
            let local = try await JanusLocalPeer.make(options: options, group: group)
            do throws(BraidClientError) {
                let answer = try JanusSubscriberAnswer(
                    offer: jsep.sdp, credentials: local.credentials, fingerprint: local.certificate.fingerprint,
                    candidates: local.candidates)
                let transport = try PeerTransport(
                    socket: local.socket, local: local.credentials, certificate: local.certificate,
                    answer: answer.remote, iceLite: true)
                transport.installImpairments(options)
                let join = PeerJoin(
                    transport: transport, answer: answer.remote, resource: nil, requestedAt: requestedAt)
                let tracks = answer.remote.sections.enumerated().map { index, section in
                    OfferedTrack(kind: section.kind, trackID: "janus\(index)")
                }
                let candidates = try FailoverCandidates(origin: session.base, roomPath: session.base.path, fallbacks: [])
                let subscriber = BraidSubscriber(
                    join: join, tracks: tracks, candidates: candidates, decodeAudio: false, options: options,
                    group: group)
                if let captureLog { subscriber.media.captureTimeLookup = { captureLog.captureTime(pictureID: $0) } }
                transport.handler = subscriber
                // The lite agent must be listening before Janus, given the answer, starts its checks.
                let connected = transport.start()
                _ = try await session.message(handle: handle, body: JanusRequest.start(), jsep: ("answer", answer.sdp))
                try await JanusLocalPeer.wait(for: connected, transport: transport, timeout: options.timeout)
                return (subscriber, JanusHandle(id: handle, feed: nil))
            } catch {
                try? await local.socket.eventLoop.flatSubmit { local.socket.close() }.get()
                throw error
            }
        } catch {
            await session.detach(handle: handle)
            throw error
        }
    }
}

/// This side of one Janus PeerConnection: socket, credentials, certificate, host candidate.
struct JanusLocalPeer {
    var socket: PeerSocket
    var credentials: ICECredentials
    var certificate: DTLSCertificate
    var candidates: [SDPCandidate]
    var cname: String

    static func make(options: ConnectionOptions, group: any EventLoopGroup) async throws(BraidClientError) -> Self {
        let socket = try await PeerSocket.bind(host: options.localHost, on: group.next())
        let certificate: DTLSCertificate
        if let shared = options.certificate {
            certificate = shared
        } else {
            do {
                certificate = try DTLSCertificate(commonName: "braid-client")
            } catch {
                try? await socket.eventLoop.flatSubmit { socket.close() }.get()
                throw .dtlsFailed("creating a certificate: \(error)")
            }
        }
        var candidates: [SDPCandidate] = []
        if let local = socket.localAddress, options.localHost != "0.0.0.0", options.localHost != "::",
            let ip = local.ipAddress, let port = local.port, let portValue = UInt16(exactly: port)
        {
            let priority = ICECandidate.priority(
                typePreference: ICECandidate.hostTypePreference, localPreference: 65_535, component: 1)
            candidates.append(SDPCandidate(foundation: "1", priority: priority, address: ip, port: portValue))
        }
        let cname = "braid-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        return JanusLocalPeer(
            socket: socket, credentials: ICECredentials.random(), certificate: certificate, candidates: candidates,
            cname: cname)
    }

    /// Waits for `connected` (SRTP keyed) within `timeout`; closes the transport on failure.
    static func wait(
        for connected: EventLoopFuture<Void>, transport: PeerTransport, timeout: Duration
    ) async throws(BraidClientError) {
        let eventLoop = transport.eventLoop
        let timer = eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
            transport.connected.fail(BraidClientError.timeout("ICE and DTLS with Janus within \(timeout)"))
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
}
