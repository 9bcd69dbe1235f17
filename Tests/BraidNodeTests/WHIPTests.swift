import BraidICE
import BraidNode
import BraidSecurity
import BraidWire
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

/// A WHIP publisher made of the project's own pieces, talking to a real node over loopback sockets.
@Suite("WHIP ingest on a live node", .serialized)
struct WHIPTests {
    // MARK: End to end

    @Test("POST offer → 201 answer; ICE check; DTLS to connected; SRTP counted; DELETE frees the session")
    func endToEnd() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let clientCertificate = try DTLSCertificate(commonName: "whip-test-client")
            let clientICE = try ICECredentials(ufrag: "cli1", password: "ClientPassword0123456789abc")
            let offer = WHIPOffer.chromiumLike(ice: clientICE, fingerprint: clientCertificate.fingerprint)

            // 1. Signalling over real HTTP.
            let response = try await running.whip(.post, "/whip/lobby", contentType: "application/sdp", body: offer)
            #expect(response.status == .created)
            let location = try #require(response.headers[.location])
            #expect(location.hasPrefix("/whip/lobby/"))
            #expect(response.headers[.eTag]?.isEmpty == false)
            #expect(response.headers[.contentType] == "application/sdp")
            #expect(response.headers[.accessControlAllowOrigin] == "*")
            #expect(response.headers[.accessControlExposeHeaders] == "Location, ETag")
            let answer = String(buffer: try #require(response.body))
            let serverUfrag = try #require(WHIPOffer.attribute("ice-ufrag", in: answer))
            let serverPassword = try #require(WHIPOffer.attribute("ice-pwd", in: answer))
            let fingerprintValue = try #require(WHIPOffer.attribute("fingerprint", in: answer))
            let serverFingerprint = try DTLSFingerprint(sdpValue: fingerprintValue)
            #expect(WHIPOffer.attribute("setup", in: answer) == "passive")
            // One host candidate per advertised address, carrying the bound media port.
            let candidate = try #require(WHIPOffer.attribute("candidate", in: answer))
            #expect(candidate.contains(" 127.0.0.1 \(running.mediaAddress.port ?? -1) typ host"))

            let status0 = try await running.status()
            #expect(status0.sessions.count == 1)
            #expect(status0.sessions.list.first?.room == "lobby")
            #expect(status0.sessions.list.first?.iceState == "new")

            // 2. ICE: a Binding request as a controlling browser sends it.
            let peer = try await UDPPeer()
            let stranger = try await UDPPeer()
            let transactionID = STUNTransactionID.random()
            try await peer.send(
                try WHIPOffer.bindingRequest(
                    username: "\(serverUfrag):\(clientICE.ufrag)",
                    password: serverPassword,
                    transactionID: transactionID
                ),
                to: running.mediaAddress
            )
            let stunReply = try await peer.receive { $0.first.map { $0 < 4 } ?? false }
            let message = try STUNMessage(parsing: ByteBuffer(bytes: stunReply))
            #expect(message.type == .bindingSuccessResponse)
            #expect(message.transactionID == transactionID)

            // Junk from a stranger during the session: counted as no_session, nothing else changes.
            try await stranger.send(Datagrams.rtp(payload: 40), to: running.mediaAddress)
            try await stranger.send(Datagrams.dtlsClientHello, to: running.mediaAddress)
            try await stranger.send(Datagrams.stunBindingRequest, to: running.mediaAddress)

            // 3. DTLS: our client against the node's server over the same UDP socket.
            let dtls = try DTLSEndpoint(
                role: .client,
                certificate: clientCertificate,
                remoteFingerprint: serverFingerprint
            )
            for record in dtls.start() { try await peer.send(record, to: running.mediaAddress) }
            let deadline = ContinuousClock.now + .seconds(10)
            while dtls.state == .handshaking, ContinuousClock.now < deadline {
                let datagram = try? await peer.receive(timeout: .milliseconds(300)) { first in
                    first.first.map { (20...63).contains($0) } ?? false
                }
                let records = try datagram.map { try dtls.receive($0) } ?? dtls.handleTimeout()
                for record in records { try await peer.send(record, to: running.mediaAddress) }
            }
            #expect(dtls.state == .connected)
            let srtp = try dtls.makeSRTPSession()

            // 4. SRTP: one garbage "SRTP" packet (fails authentication) and three real ones.
            try await peer.send(Datagrams.rtp(payload: 60, sequence: 99), to: running.mediaAddress)
            for sequence in UInt16(1)...3 {
                let packet = Datagrams.rtp(payload: 160, sequence: sequence)
                var protected = [UInt8](repeating: 0, count: packet.count + 64)
                let length = try packet.withUnsafeBytes { source in
                    try protected.withUnsafeMutableBytes { try srtp.protectRTP(source, into: $0) }
                }
                try await peer.send(Array(protected[..<length]), to: running.mediaAddress)
            }
            let status = try await LiveNodeTests.poll(running) { status in
                (status.sessions.list.first?.counters.rtpReceived.packets ?? 0) >= 3
            }
            let session = try #require(status.sessions.list.first)
            #expect(session.counters.rtpReceived.packets == 3)
            #expect(session.counters.unprotectFailures == 1)
            #expect(session.dtlsState == "connected")
            #expect(session.iceState == "connected")
            #expect(session.srtpProfile != nil)
            #expect(session.remoteAddress == "127.0.0.1:\(peer.localPort)")
            #expect(status.media.drops["no_session"] ?? 0 >= 3)
            // The node's own answers are counted as sent: at least one ICE success and its DTLS flights.
            #expect(status.media.sent["stun"]?.packets ?? 0 >= 1)
            #expect(status.media.sent["dtls"]?.packets ?? 0 >= 2)

            let text = String(buffer: try #require(try await running.get("/").body))
            #expect(text.contains("sessions        1"))

            // 5. DELETE ends it; a second DELETE finds nothing.
            let deleted = try await running.whip(.delete, location)
            #expect(deleted.status == .ok)
            let again = try await running.whip(.delete, location)
            #expect(again.status == .notFound)
            #expect(try await running.status().sessions.count == 0)
            try await peer.close()
            try await stranger.close()
        }
    }

    @Test("a session whose consent expires is removed by the consent timer")
    func consentExpiry() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            running.node.media.sessions.iceTimeouts = try ICELiteAgent.Timeouts(
                disconnected: .milliseconds(200),
                expiry: .milliseconds(600)
            )
            let ice = try ICECredentials(ufrag: "cli3", password: "ClientPassword0123456789abc")
            let certificate = try DTLSCertificate(commonName: "c")
            let offer = WHIPOffer.chromiumLike(ice: ice, fingerprint: certificate.fingerprint)
            let response = try await running.whip(.post, "/whip/lobby", contentType: "application/sdp", body: offer)
            #expect(response.status == .created)
            let answer = String(buffer: try #require(response.body))
            let ufrag = try #require(WHIPOffer.attribute("ice-ufrag", in: answer))
            let password = try #require(WHIPOffer.attribute("ice-pwd", in: answer))
            let peer = try await UDPPeer()
            try await peer.send(
                try WHIPOffer.bindingRequest(username: "\(ufrag):cli3", password: password, transactionID: .random()),
                to: running.mediaAddress
            )
            _ = try await peer.receive { $0.first.map { $0 < 4 } ?? false }
            #expect(try await running.status().sessions.list.first?.iceState == "connected")
            // No more checks: failed after 0.6 s, swept within the next second.
            let status = try await LiveNodeTests.poll(running) { $0.sessions.count == 0 }
            #expect(status.sessions.list.isEmpty)
            // Its ufrag is gone: a late check is no one's.
            let dropsBefore = status.media.drops["no_session"] ?? 0
            try await peer.send(
                try WHIPOffer.bindingRequest(username: "\(ufrag):cli3", password: password, transactionID: .random()),
                to: running.mediaAddress
            )
            _ = try await LiveNodeTests.poll(running) { ($0.media.drops["no_session"] ?? 0) > dropsBefore }
            try await peer.close()
        }
    }

    // MARK: Errors and CORS

    @Test("malformed SDP → 400 with a reason")
    func malformedOffer() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let response = try await running.whip(
                .post, "/whip/lobby", contentType: "application/sdp", body: "hello\r\n")
            #expect(response.status == .badRequest)
            let reason = String(buffer: try #require(response.body))
            #expect(reason.contains("malformed SDP offer"))
            #expect(response.headers[.accessControlAllowOrigin] == "*")
            #expect(try await running.status().sessions.count == 0)
        }
    }

    @Test("an offer of unsupported codecs → 406 naming them")
    func noCommonCodec() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let ice = try ICECredentials(ufrag: "cli2", password: "ClientPassword0123456789abc")
            let certificate = try DTLSCertificate(commonName: "c")
            let offer = WHIPOffer.chromiumLike(ice: ice, fingerprint: certificate.fingerprint, onlyH264AndG722: true)
            let response = try await running.whip(.post, "/whip/lobby", contentType: "application/sdp", body: offer)
            #expect(response.status == .notAcceptable)
            let reason = String(buffer: try #require(response.body))
            #expect(reason.contains("H264") || reason.contains("G722"), "reason: \(reason)")
        }
    }

    @Test("wrong content type → 415; oversized body → 413; unknown resource → 404 (DELETE and PATCH)")
    func otherErrors() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let wrongType = try await running.whip(.post, "/whip/lobby", contentType: "application/json", body: "{}")
            #expect(wrongType.status == .unsupportedMediaType)
            let big = String(repeating: "a=x\r\n", count: 20_000)
            let tooLarge = try await running.whip(.post, "/whip/lobby", contentType: "application/sdp", body: big)
            #expect(tooLarge.status == .contentTooLarge)
            let unknown = try await running.whip(.delete, "/whip/lobby/0123456789abcdef")
            #expect(unknown.status == .notFound)
            let patch = try await running.whip(
                .patch, "/whip/lobby/x", contentType: "application/trickle-ice-sdpfrag", body: "a=ice-ufrag:abcd",
                headers: [.ifMatch: "*"])
            #expect(patch.status == .notFound)
            let badRoom = try await running.whip(.post, "/whip/l%20b", contentType: "application/sdp", body: "v=0")
            #expect(badRoom.status == .badRequest)
        }
    }

    @Test("OPTIONS preflight allows the WHIP methods and headers from any origin")
    func preflight() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let response = try await running.whip(.options, "/whip/lobby")
            #expect(response.status == .noContent)
            #expect(response.headers[.accessControlAllowOrigin] == "*")
            #expect(response.headers[.accessControlAllowMethods]?.contains("POST") == true)
            let allowed = try #require(response.headers[.accessControlAllowHeaders])
            for header in ["Content-Type", "Authorization", "If-Match"] { #expect(allowed.contains(header)) }
            let resource = try await running.whip(.options, "/whip/lobby/abc")
            #expect(resource.headers[.accessControlAllowMethods]?.contains("DELETE") == true)
        }
    }
}

// MARK: - Helpers

extension RunningNode {
    /// One HTTP request over a new TCP connection.
    func whip(
        _ method: HTTPRequest.Method,
        _ path: String,
        contentType: String? = nil,
        body: String? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> TestClient.Response {
        var headers = extra
        if let contentType { headers[.contentType] = contentType }
        let request = TestClient.Request(
            path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        return try await TestClient.withClient(host: "127.0.0.1", port: self.httpPort) { client in
            try await client.execute(request)
        }
    }
}

/// A UDP socket on loopback that sends and collects datagrams.
final class UDPPeer: Sendable {
    private let channel: any Channel
    private let inbox: Inbox

    /// Received datagrams, in order, with waiters.
    final class Inbox: ChannelInboundHandler, Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let datagrams = NIOLockedValueBox<[[UInt8]]>([])

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = Self.unwrapInboundIn(data)
            self.datagrams.withLockedValue { $0.append(Array(envelope.data.readableBytesView)) }
        }
    }

    init() async throws {
        let inbox = Inbox()
        self.inbox = inbox
        self.channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(inbox) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var localPort: Int { self.channel.localAddress?.port ?? -1 }

    func send(_ bytes: [UInt8], to address: SocketAddress) async throws {
        try await self.channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: bytes)))
            .get()
    }

    func send(_ buffer: ByteBuffer, to address: SocketAddress) async throws {
        try await self.channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer)).get()
    }

    /// The first received datagram that `matches` (others are discarded), or ``TestTimeout``.
    func receive(
        timeout: Duration = .seconds(5),
        where matches: @escaping @Sendable ([UInt8]) -> Bool
    ) async throws -> [UInt8] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let found: [UInt8]? = self.inbox.datagrams.withLockedValue { queue in
                while !queue.isEmpty {
                    let next = queue.removeFirst()
                    if matches(next) { return next }
                }
                return nil
            }
            if let found { return found }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw TestTimeout(what: "datagram")
    }

    func close() async throws { try await self.channel.close() }
}

/// SDP and STUN a browser would send.
enum WHIPOffer {
    /// An offer shaped like Chromium's for a WHIP publisher: BUNDLE, rtcp-mux, actpass, Opus and VP8.
    static func chromiumLike(
        ice: ICECredentials,
        fingerprint: DTLSFingerprint,
        onlyH264AndG722: Bool = false
    ) -> String {
        let audioCodecs =
            onlyH264AndG722
            ? ["a=rtpmap:9 G722/8000"]
            : ["a=rtpmap:111 opus/48000/2", "a=rtcp-fb:111 transport-cc", "a=fmtp:111 minptime=10;useinbandfec=1"]
        let videoCodecs =
            onlyH264AndG722
            ? ["a=rtpmap:102 H264/90000", "a=fmtp:102 packetization-mode=1;profile-level-id=42e01f"]
            : [
                "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 goog-remb", "a=rtcp-fb:96 transport-cc", "a=rtcp-fb:96 ccm fir",
                "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli", "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
            ]
        let audioPT = onlyH264AndG722 ? "9" : "111"
        let videoPT = onlyH264AndG722 ? "102" : "96 97"
        func transport(mid: String) -> [String] {
            [
                "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0", "a=ice-ufrag:\(ice.ufrag)", "a=ice-pwd:\(ice.password)",
                "a=ice-options:trickle", "a=fingerprint:\(fingerprint.sdpValue)", "a=setup:actpass", "a=mid:\(mid)",
                "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid", "a=sendonly",
                "a=msid:stream track-\(mid)", "a=rtcp-mux",
            ]
        }
        var lines = [
            "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
            "a=extmap-allow-mixed", "a=msid-semantic: WMS stream",
            "m=audio 9 UDP/TLS/RTP/SAVPF \(audioPT)",
        ]
        lines += transport(mid: "0") + audioCodecs + ["a=ssrc:1111 cname:whiptest"]
        lines += ["m=video 9 UDP/TLS/RTP/SAVPF \(videoPT)"]
        lines += transport(mid: "1") + ["a=rtcp-rsize"] + videoCodecs + ["a=ssrc:2222 cname:whiptest"]
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// The value of the first `a=<name>:` line.
    static func attribute(_ name: String, in sdp: String) -> String? {
        let prefix = "a=\(name):"
        for line in sdp.split(whereSeparator: \.isNewline) where line.hasPrefix(prefix) {
            return String(line.dropFirst(prefix.count))
        }
        return nil
    }

    /// A connectivity check as Chromium sends it (RFC 8445 §7.1): USERNAME, PRIORITY, ICE-CONTROLLING,
    /// USE-CANDIDATE, MESSAGE-INTEGRITY with the node's password, FINGERPRINT.
    static func bindingRequest(
        username: String,
        password: String,
        transactionID: STUNTransactionID
    ) throws -> ByteBuffer {
        var out = ByteBuffer()
        var builder = STUNMessageBuilder(type: .bindingRequest, transactionID: transactionID, into: &out)
        try builder.appendUsername(username, to: &out)
        try builder.appendPriority(0x6E7F_1EFF, to: &out)
        try builder.appendICEControlling(tieBreaker: 0x0102_0304_0506_0708, to: &out)
        try builder.appendUseCandidate(to: &out)
        try builder.appendMessageIntegrity(key: STUNIntegrityKey(shortTermPassword: password), to: &out)
        try builder.appendFingerprint(to: &out)
        return out
    }
}
