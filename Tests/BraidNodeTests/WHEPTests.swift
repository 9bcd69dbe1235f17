import BraidAccess
import BraidICE
import BraidNode
import BraidSecurity
import BraidWire
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// WHEP (draft-ietf-wish-whep) on a live node: the answer's shape and the error mapping.
@Suite("WHEP egress on a live node", .serialized)
struct WHEPTests {
    @Test("recvonly offer → 201 sendonly answer with one msid stream, a=ssrc and FID; status shows the session")
    func answerShape() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let ice = try ICECredentials(ufrag: "play", password: "PlayerPassword0123456789abc")
            let certificate = try DTLSCertificate(commonName: "whep-test-client")
            let offer = WHEPOffer.recvonly(ice: ice, fingerprint: certificate.fingerprint, videos: 3)
            let response = try await running.whip(.post, "/whep/lobby", contentType: "application/sdp", body: offer)
            #expect(response.status == .created)
            let location = try #require(response.headers[.location])
            #expect(location.hasPrefix("/whep/lobby/"))
            let etag = try #require(response.headers[.eTag])
            #expect(etag.hasPrefix("\"") && etag.hasSuffix("\""))
            #expect(response.headers[.contentType] == "application/sdp")
            #expect(response.headers[.accessControlAllowOrigin] == "*")
            let answer = String(buffer: try #require(response.body))
            let lines = answer.split(separator: "\r\n").map(String.init)

            // Four m-sections, each answered sendonly (the WHEP draft's direction rule).
            #expect(lines.filter { $0.hasPrefix("m=") }.count == 4)
            #expect(lines.filter { $0 == "a=sendonly" }.count == 4)
            #expect(!lines.contains("a=recvonly") && !lines.contains("a=sendrecv"))
            #expect(WHIPOffer.attribute("setup", in: answer) == "passive")

            // msid: one stream id for every section (A/V sync group), distinct track ids.
            let msids = lines.filter { $0.hasPrefix("a=msid:") }.map { $0.dropFirst("a=msid:".count) }
            #expect(msids.count == 4)
            let streams = Set(msids.compactMap { $0.split(separator: " ").first })
            #expect(streams.count == 1)
            #expect(Set(msids.compactMap { $0.split(separator: " ").last }).count == 4)

            // a=ssrc: one for audio, media + RTX for each video, tied by a=ssrc-group:FID; all distinct, non-zero.
            let groups = lines.filter { $0.hasPrefix("a=ssrc-group:FID ") }
            #expect(groups.count == 3)
            let ssrcLines = lines.filter { $0.hasPrefix("a=ssrc:") }
            #expect(ssrcLines.count == 7)
            let ssrcs = ssrcLines.compactMap { UInt32($0.dropFirst("a=ssrc:".count).split(separator: " ")[0]) }
            #expect(ssrcs.count == 7 && Set(ssrcs).count == 7 && !ssrcs.contains(0))
            for group in groups {
                let pair = group.split(separator: " ").dropFirst().compactMap { UInt32($0) }
                #expect(pair.count == 2 && pair.allSatisfy { ssrcs.contains($0) })
            }

            // The status shows direction, the negotiated codecs and the node's SSRCs per section.
            let status = try await running.status()
            let session = try #require(status.sessions.list.first)
            #expect(session.direction == .subscribe)
            #expect(session.sections.map(\.mid) == ["0", "1", "2", "3"])
            #expect(session.sections.first?.codec == "opus/48000/2 pt 111")
            #expect(session.sections.first?.rtxSSRC == nil)
            #expect(
                session.sections.dropFirst().allSatisfy { $0.codec == "VP8/90000 pt 96" && $0.rtxPayloadType == 97 })
            let announced = Set(session.sections.flatMap { [$0.ssrc, $0.rtxSSRC].compactMap { $0 } })
            #expect(announced == Set(ssrcs))
            let text = String(buffer: try #require(try await running.get("/").body))
            #expect(text.contains("subscribe"))
            #expect(text.contains("mid 1 video VP8/90000 pt 96 rtx 97"))

            // A WHIP URL cannot end a WHEP session; the WHEP one does.
            let id = String(location.dropFirst("/whep/lobby/".count))
            #expect(try await running.whip(.delete, "/whip/lobby/\(id)").status == .notFound)
            #expect(try await running.whip(.delete, location).status == .ok)
            #expect(try await running.whip(.delete, location).status == .notFound)
            #expect(try await running.status().sessions.count == 0)
        }
    }

    @Test("a check with the answer's credentials connects a WHEP session")
    func iceCheck() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let ice = try ICECredentials(ufrag: "pla2", password: "PlayerPassword0123456789abc")
            let certificate = try DTLSCertificate(commonName: "c")
            let offer = WHEPOffer.recvonly(ice: ice, fingerprint: certificate.fingerprint, videos: 1)
            let response = try await running.whip(.post, "/whep/room-2", contentType: "application/sdp", body: offer)
            #expect(response.status == .created)
            let answer = String(buffer: try #require(response.body))
            let ufrag = try #require(WHIPOffer.attribute("ice-ufrag", in: answer))
            let password = try #require(WHIPOffer.attribute("ice-pwd", in: answer))
            let peer = try await UDPPeer()
            let reply = try await STUNCheck.run(peer, running, username: "\(ufrag):pla2", password: password)
            #expect(reply == .bindingSuccessResponse)
            #expect(try await running.status().sessions.list.first?.iceState == "connected")
            try await peer.close()
        }
    }

    @Test("WHEP errors: 400 malformed or sendonly offer, 406 codecs, 415 type, 413 size, 404 unknown, 400 room")
    func errors() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let ice = try ICECredentials(ufrag: "pla3", password: "PlayerPassword0123456789abc")
            let certificate = try DTLSCertificate(commonName: "c")
            let malformed = try await running.whip(.post, "/whep/lobby", contentType: "application/sdp", body: "x\r\n")
            #expect(malformed.status == .badRequest)
            #expect(String(buffer: try #require(malformed.body)).contains("malformed SDP offer"))

            // A publisher's offer sent to WHEP: nothing to send to it.
            let publish = WHIPOffer.chromiumLike(ice: ice, fingerprint: certificate.fingerprint)
            let wrongWay = try await running.whip(.post, "/whep/lobby", contentType: "application/sdp", body: publish)
            #expect(wrongWay.status == .badRequest)
            #expect(String(buffer: try #require(wrongWay.body)).contains("recvonly"))
            // And a player's offer sent to WHIP: nothing to receive.
            let play = WHEPOffer.recvonly(ice: ice, fingerprint: certificate.fingerprint, videos: 1)
            let wrongWay2 = try await running.whip(.post, "/whip/lobby", contentType: "application/sdp", body: play)
            #expect(wrongWay2.status == .badRequest)

            let h264 = WHEPOffer.recvonly(ice: ice, fingerprint: certificate.fingerprint, videos: 1, onlyH264: true)
            let noCodec = try await running.whip(.post, "/whep/lobby", contentType: "application/sdp", body: h264)
            #expect(noCodec.status == .notAcceptable)
            #expect(String(buffer: try #require(noCodec.body)).contains("H264"))

            let wrongType = try await running.whip(.post, "/whep/lobby", contentType: "text/plain", body: play)
            #expect(wrongType.status == .unsupportedMediaType)
            let big = String(repeating: "a=x\r\n", count: 20_000)
            let tooLarge = try await running.whip(.post, "/whep/lobby", contentType: "application/sdp", body: big)
            #expect(tooLarge.status == .contentTooLarge)
            #expect(try await running.whip(.delete, "/whep/lobby/0123456789abcdef").status == .notFound)
            let badRoom = try await running.whip(.post, "/whep/a%2Fb", contentType: "application/sdp", body: play)
            #expect(badRoom.status == .badRequest)
            #expect(try await running.status().sessions.count == 0)

            let preflight = try await running.whip(.options, "/whep/lobby")
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[.accessControlAllowMethods]?.contains("POST") == true)
            let resource = try await running.whip(.options, "/whep/lobby/abc")
            #expect(resource.headers[.accessControlAllowMethods]?.contains("PATCH") == true)
        }
    }

    @Test("?participant= must name a live WHIP session of the same room: 400 otherwise, 201 when it does")
    func participantLink() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let certificate = try DTLSCertificate(commonName: "c")
            func whip(_ room: String, ufrag: String) async throws -> String {
                let ice = try ICECredentials(ufrag: ufrag, password: "PublisherPassword0123456789")
                let offer = WHIPOffer.chromiumLike(ice: ice, fingerprint: certificate.fingerprint)
                let response = try await running.whip(
                    .post, "/whip/\(room)", contentType: "application/sdp", body: offer)
                #expect(response.status == .created)
                let location = try #require(response.headers[.location])
                return String(location.dropFirst("/whip/\(room)/".count))
            }
            let ice = try ICECredentials(ufrag: "pla5", password: "PlayerPassword0123456789abc")
            let play = WHEPOffer.recvonly(ice: ice, fingerprint: certificate.fingerprint, videos: 1)
            func whep(_ query: String, room: String = "lobby") async throws -> (HTTPResponse.Status, String) {
                let response = try await running.whip(
                    .post, "/whep/\(room)\(query)", contentType: "application/sdp", body: play)
                return (response.status, response.body.map { String(buffer: $0) } ?? "")
            }

            let publisher = try await whip("lobby", ufrag: "pub1")
            let elsewhere = try await whip("other", ufrag: "pub2")
            #expect(publisher.count == 32 && elsewhere.count == 32)
            let unknown = String(repeating: "0123456789abcdef", count: 2)

            // Malformed: not a resource id (a URL, upper case, empty), or named twice.
            let malformed = [
                "?participant=/whip/lobby/\(publisher)", "?participant=\(publisher.uppercased())", "?participant=",
            ]
            for bad in malformed {
                let (status, reason) = try await whep(bad)
                #expect(status == .badRequest, "\(bad)")
                #expect(reason.contains("32 hex digits"), "\(bad): \(reason)")
            }
            let (twice, twiceReason) = try await whep("?participant=\(publisher)&participant=\(publisher)")
            #expect(twice == .badRequest && twiceReason.contains("at most one participant"))

            // Well-formed but not a live WHIP session of this room: unknown, of another room, a WHEP session.
            let (player, _) = try await whep("")
            #expect(player == .created)
            let players = try await running.status().sessions.list.filter { $0.direction == .subscribe }
            let playerID = try #require(players.first?.id)
            for id in [unknown, elsewhere, playerID] {
                let (status, reason) = try await whep("?participant=\(id)")
                #expect(status == .badRequest)
                #expect(reason.contains("participant \(id) is not a live WHIP session in room lobby"), "\(reason)")
            }
            // Right id, wrong room in the URL.
            let (otherRoom, _) = try await whep("?participant=\(publisher)", room: "other")
            #expect(otherRoom == .badRequest)
            // A WHIP session is its own participant.
            let ownIce = try ICECredentials(ufrag: "pub3", password: "PublisherPassword0123456789")
            let linkedWHIP = try await running.whip(
                .post, "/whip/lobby?participant=\(publisher)", contentType: "application/sdp",
                body: WHIPOffer.chromiumLike(ice: ownIce, fingerprint: certificate.fingerprint))
            #expect(linkedWHIP.status == .badRequest)
            #expect(String(buffer: try #require(linkedWHIP.body)).contains("a WHIP session is its own"))
            // None of the refused requests left a session behind: 2 WHIP + 1 WHEP.
            #expect(try await running.status().sessions.count == 3)

            // The publisher's own id, in its room: accepted.
            let (linked, _) = try await whep("?participant=\(publisher)")
            #expect(linked == .created)
            #expect(try await running.status().sessions.count == 4)

            // Once the WHIP session has ended its id no longer links.
            #expect(try await running.whip(.delete, "/whip/lobby/\(publisher)").status == .ok)
            let (ended, endedReason) = try await whep("?participant=\(publisher)")
            #expect(ended == .badRequest && endedReason.contains("not a live WHIP session"))
        }
    }

    @Test("the bearer hook guards WHEP creation (401) and a node without a media socket answers 503")
    func authorizerAndUnavailable() async throws {
        var logger = Logger(label: "braid.node.test")
        logger.logLevel = .warning
        let node = try NodeServer(configuration: try testConfiguration(), logger: logger) { token, room, _ in
            token == "secret-\(room ?? "")" ? nil : AccessDenial(.unauthorized, "a valid bearer token is required")
        }
        let ice = try ICECredentials(ufrag: "pla4", password: "PlayerPassword0123456789abc")
        let offer = WHEPOffer.recvonly(ice: ice, fingerprint: try DTLSCertificate(commonName: "c").fingerprint)
        try await node.application.test(.router) { client in
            let refused = try await client.execute(
                uri: "/whep/lobby",
                method: .post,
                headers: [.contentType: "application/sdp", .authorization: "Bearer wrong"],
                body: ByteBuffer(string: offer)
            )
            #expect(refused.status == .unauthorized)
            #expect(refused.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
            // DELETE needs the resource (the capability), not a token: an unknown one is 404.
            let anonymous = try await client.execute(
                uri: "/whep/lobby/abc",
                method: .delete
            )
            #expect(anonymous.status == .notFound)
            // Authorized, but the media socket is not bound in router tests.
            let accepted = try await client.execute(
                uri: "/whep/lobby",
                method: .post,
                headers: [.contentType: "application/sdp", .authorization: "bearer secret-lobby"],
                body: ByteBuffer(string: offer)
            )
            #expect(accepted.status == .serviceUnavailable)
        }
    }
}

/// Offers a WHEP player sends.
enum WHEPOffer {
    /// A Chromium-like offer with one recvonly audio and `videos` recvonly video transceivers (BUNDLE,
    /// rtcp-mux, actpass, Opus, VP8 with RTX): the pre-allocated transceivers of a WHEP player.
    static func recvonly(
        ice: ICECredentials,
        fingerprint: DTLSFingerprint,
        videos: Int = 3,
        onlyH264: Bool = false
    ) -> String {
        let mids = (0...videos).map(String.init)
        var lines = [
            "v=0", "o=- 5511731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
            "a=group:BUNDLE \(mids.joined(separator: " "))", "a=extmap-allow-mixed", "a=msid-semantic: WMS",
        ]
        func transport(mid: String) -> [String] {
            [
                "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0", "a=ice-ufrag:\(ice.ufrag)", "a=ice-pwd:\(ice.password)",
                "a=ice-options:trickle", "a=fingerprint:\(fingerprint.sdpValue)", "a=setup:actpass", "a=mid:\(mid)",
                "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid", "a=recvonly", "a=rtcp-mux",
            ]
        }
        lines += ["m=audio 9 UDP/TLS/RTP/SAVPF 111"] + transport(mid: "0")
        lines += ["a=rtpmap:111 opus/48000/2", "a=rtcp-fb:111 transport-cc", "a=fmtp:111 minptime=10;useinbandfec=1"]
        for mid in mids.dropFirst() {
            if onlyH264 {
                lines += ["m=video 9 UDP/TLS/RTP/SAVPF 102"] + transport(mid: mid)
                lines += ["a=rtpmap:102 H264/90000", "a=fmtp:102 packetization-mode=1;profile-level-id=42e01f"]
            } else {
                lines += ["m=video 9 UDP/TLS/RTP/SAVPF 96 97"] + transport(mid: mid) + ["a=rtcp-rsize"]
                lines += [
                    "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 goog-remb", "a=rtcp-fb:96 transport-cc",
                    "a=rtcp-fb:96 ccm fir", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli", "a=rtpmap:97 rtx/90000",
                    "a=fmtp:97 apt=96",
                ]
            }
        }
        if onlyH264 {
            // No common audio codec either, so nothing can be accepted.
            lines = lines.map { $0 == "m=audio 9 UDP/TLS/RTP/SAVPF 111" ? "m=audio 9 UDP/TLS/RTP/SAVPF 9" : $0 }
                .filter { !$0.contains(":111 ") }
            lines.insert("a=rtpmap:9 G722/8000", at: lines.firstIndex(of: "m=video 9 UDP/TLS/RTP/SAVPF 102") ?? 0)
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}

/// One ICE connectivity check over a peer socket.
enum STUNCheck {
    /// Sends a Binding request (``WHIPOffer/bindingRequest(username:password:transactionID:)``) and returns
    /// the type of the node's answer to it, or nil when none arrives within `timeout`.
    static func run(
        _ peer: UDPPeer,
        _ running: RunningNode,
        username: String,
        password: String,
        timeout: Duration = .seconds(3)
    ) async throws -> STUNMessageType? {
        let transactionID = STUNTransactionID.random()
        try await peer.send(
            try WHIPOffer.bindingRequest(username: username, password: password, transactionID: transactionID),
            to: running.mediaAddress
        )
        let reply = try? await peer.receive(timeout: timeout) { bytes in
            guard bytes.first.map({ $0 < 4 }) ?? false,
                let message = try? STUNMessage(parsing: ByteBuffer(bytes: bytes))
            else { return false }
            return message.transactionID == transactionID
        }
        guard let reply else { return nil }
        return try STUNMessage(parsing: ByteBuffer(bytes: reply)).type
    }
}
