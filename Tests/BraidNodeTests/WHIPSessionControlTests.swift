import BraidICE
import BraidNode
import BraidSecurity
import BraidWire
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

/// `PATCH` (trickle ICE and ICE restarts, RFC 9725 §4.3) and the operator's bitrate cap, on a live node.
@Suite("WHIP/WHEP PATCH and max-bitrate on a live node", .serialized)
struct WHIPSessionControlTests {
    static let trickle = "application/trickle-ice-sdpfrag"

    /// Creates a session and returns its resource path, ETag and the node's ICE credentials.
    static func create(
        _ running: RunningNode,
        path: String,
        ice: ICECredentials
    ) async throws -> (location: String, etag: String, ufrag: String, password: String) {
        let certificate = try DTLSCertificate(commonName: "c")
        let offer =
            path.hasPrefix("/whep")
            ? WHEPOffer.recvonly(ice: ice, fingerprint: certificate.fingerprint, videos: 1)
            : WHIPOffer.chromiumLike(ice: ice, fingerprint: certificate.fingerprint)
        let response = try await running.whip(.post, path, contentType: "application/sdp", body: offer)
        try #require(response.status == .created)
        let answer = String(buffer: try #require(response.body))
        return (
            try #require(response.headers[.location]),
            try #require(response.headers[.eTag]),
            try #require(WHIPOffer.attribute("ice-ufrag", in: answer)),
            try #require(WHIPOffer.attribute("ice-pwd", in: answer))
        )
    }

    @Test("trickle → 204 and counted; missing If-Match 428; wrong ETag or * 412; 415; malformed 400; 404")
    func trickle() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let ice = try ICECredentials(ufrag: "tri1", password: "ClientPassword0123456789abc")
            let session = try await Self.create(running, path: "/whip/lobby", ice: ice)
            let fragment = [
                "a=ice-ufrag:tri1", "a=ice-pwd:ClientPassword0123456789abc", "m=audio 9 UDP/TLS/RTP/SAVPF 111",
                "a=mid:0", "a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0",
                "a=end-of-candidates",
            ].joined(separator: "\r\n") + "\r\n"

            let accepted = try await running.whip(
                .patch, session.location, contentType: Self.trickle, body: fragment, headers: [.ifMatch: session.etag])
            #expect(accepted.status == .noContent)
            #expect(accepted.headers[.accessControlAllowOrigin] == "*")
            let status = try #require(try await running.status().sessions.list.first)
            #expect(status.trickledCandidates == 1)
            #expect(status.iceRestarts == 0)

            let noCondition = try await running.whip(
                .patch, session.location, contentType: Self.trickle, body: fragment)
            #expect(noCondition.status == .preconditionRequired)
            let stale = try await running.whip(
                .patch, session.location, contentType: Self.trickle, body: fragment, headers: [.ifMatch: "\"nope\""])
            #expect(stale.status == .preconditionFailed)
            // `*` is for restarts only; a trickle must name the ICE session it belongs to.
            let wildcard = try await running.whip(
                .patch, session.location, contentType: Self.trickle, body: fragment, headers: [.ifMatch: "*"])
            #expect(wildcard.status == .preconditionFailed)
            // A list that names the current tag matches (RFC 9110 §13.1.1).
            let listed = try await running.whip(
                .patch, session.location, contentType: Self.trickle, body: fragment,
                headers: [.ifMatch: "\"old\", \(session.etag)"])
            #expect(listed.status == .noContent)

            let wrongType = try await running.whip(
                .patch, session.location, contentType: "application/sdp", body: fragment,
                headers: [.ifMatch: session.etag])
            #expect(wrongType.status == .unsupportedMediaType)
            let malformed = try await running.whip(
                .patch, session.location, contentType: Self.trickle, body: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n",
                headers: [.ifMatch: session.etag])
            #expect(malformed.status == .badRequest)
            let badCandidate = try await running.whip(
                .patch, session.location, contentType: Self.trickle, body: "a=candidate:1 1 udp x\r\n",
                headers: [.ifMatch: session.etag])
            #expect(badCandidate.status == .badRequest)
            let unknown = try await running.whip(
                .patch, "/whip/lobby/00000000000000000000000000000000", contentType: Self.trickle, body: fragment,
                headers: [.ifMatch: session.etag])
            #expect(unknown.status == .notFound)
            // The resource belongs to WHIP: the WHEP path does not know it.
            let id = session.location.dropFirst("/whip/lobby/".count)
            let otherKind = try await running.whip(
                .patch, "/whep/lobby/\(id)", contentType: Self.trickle, body: fragment,
                headers: [.ifMatch: session.etag])
            #expect(otherKind.status == .notFound)
            #expect(try #require(try await running.status().sessions.list.first).trickledCandidates == 2)
        }
    }

    @Test("ICE restart → 200 fragment with new credentials and ETag; old ones answer until the new ones are used")
    func restart() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let ice = try ICECredentials(ufrag: "rst1", password: "ClientPassword0123456789abc")
            let session = try await Self.create(running, path: "/whep/lobby", ice: ice)
            let peer = try await UDPPeer()
            let first = try await STUNCheck.run(
                peer, running, username: "\(session.ufrag):rst1", password: session.password)
            #expect(first == .bindingSuccessResponse)

            let fragment = [
                "a=ice-ufrag:rst2", "a=ice-pwd:NewClientPassword0123456789", "m=audio 9 UDP/TLS/RTP/SAVPF 111",
                "a=mid:0",
            ].joined(separator: "\r\n") + "\r\n"
            let response = try await running.whip(
                .patch, session.location, contentType: Self.trickle, body: fragment, headers: [.ifMatch: "*"])
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == Self.trickle)
            let newETag = try #require(response.headers[.eTag])
            #expect(newETag != session.etag)
            let body = String(buffer: try #require(response.body))
            let newUfrag = try #require(WHIPOffer.attribute("ice-ufrag", in: body))
            let newPassword = try #require(WHIPOffer.attribute("ice-pwd", in: body))
            #expect(newUfrag != session.ufrag && newPassword != session.password)
            #expect(newETag == "\"\(newUfrag)\"")
            #expect(body.contains("a=ice-lite\r\n"))
            #expect(body.contains("a=mid:0\r\n"))
            #expect(body.contains(" 127.0.0.1 \(running.mediaAddress.port ?? -1) typ host"))
            #expect(body.contains("a=end-of-candidates"))

            // The old ETag no longer matches; the new one does.
            let stale = try await running.whip(
                .patch, session.location, contentType: Self.trickle, body: "a=end-of-candidates\r\n",
                headers: [.ifMatch: session.etag])
            #expect(stale.status == .preconditionFailed)
            let current = try await running.whip(
                .patch, session.location, contentType: Self.trickle,
                body: "a=ice-ufrag:rst2\r\na=end-of-candidates\r\n", headers: [.ifMatch: newETag])
            #expect(current.status == .noContent)

            // Old credentials keep answering until the client checks with the new ones (RFC 8445 §9).
            let old = try await STUNCheck.run(
                peer, running, username: "\(session.ufrag):rst1", password: session.password)
            #expect(old == .bindingSuccessResponse)
            let new = try await STUNCheck.run(peer, running, username: "\(newUfrag):rst2", password: newPassword)
            #expect(new == .bindingSuccessResponse)
            let retired = try await STUNCheck.run(
                peer, running, username: "\(session.ufrag):rst1", password: session.password,
                timeout: .milliseconds(500))
            #expect(retired != .bindingSuccessResponse)

            let status = try #require(try await running.status().sessions.list.first)
            #expect(status.iceRestarts == 1)
            #expect(status.iceState == "connected")
            try await peer.close()
        }
    }

    @Test("a restart fragment without a password → 400")
    func restartWithoutPassword() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let ice = try ICECredentials(ufrag: "rst3", password: "ClientPassword0123456789abc")
            let session = try await Self.create(running, path: "/whip/lobby", ice: ice)
            let response = try await running.whip(
                .patch, session.location, contentType: Self.trickle, body: "a=ice-ufrag:rst4\r\n",
                headers: [.ifMatch: "*"])
            #expect(response.status == .badRequest)
            #expect(String(buffer: try #require(response.body)).contains("ice-pwd"))
        }
    }

    @Test("hostile PATCH bodies get 400 (or are bounded), and the session stays usable")
    func hostileFragments() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let ice = try ICECredentials(ufrag: "hst1", password: "ClientPassword0123456789abc")
            let session = try await Self.create(running, path: "/whip/lobby", ice: ice)
            let rejected: [String] = [
                "\u{00}\u{01}\u{02}\u{FF}",  // binary
                "a=ice-ufrag:x\r\na=ice-pwd:short\r\n",  // a restart with credentials outside RFC 8839 §5.4
                "a=ice-ufrag:bad ufrag!\r\na=ice-pwd:ClientPassword0123456789abcdef\r\n",
                "m=\r\n",
                "a=candidate:1 1 udp 99999999999 192.0.2.1 70000 typ host\r\n",
                "a=" + String(repeating: "x", count: 5000) + "\r\n",
            ]
            for body in rejected {
                let response = try await running.whip(
                    .patch, session.location, contentType: Self.trickle, body: body, headers: [.ifMatch: "*"])
                #expect(response.status == .badRequest, "body \(body.prefix(40))")
            }
            // Many candidates: all counted, the recorded list stays bounded (not observable here), 204.
            let many = (0..<500).map { "a=candidate:\($0) 1 udp 2122260223 192.0.2.1 \(1024 + $0) typ host" }
            let response = try await running.whip(
                .patch, session.location, contentType: Self.trickle,
                body: many.joined(separator: "\r\n") + "\r\n", headers: [.ifMatch: session.etag])
            #expect(response.status == .noContent)
            let status = try #require(try await running.status().sessions.list.first)
            #expect(status.trickledCandidates == 500)
            #expect(status.iceRestarts == 0)
            // The credentials did not change: a check with the original ones still succeeds.
            let peer = try await UDPPeer()
            let reply = try await STUNCheck.run(
                peer, running, username: "\(session.ufrag):hst1", password: session.password)
            #expect(reply == .bindingSuccessResponse)
            try await peer.close()
        }
    }

    @Test("max-bitrate: POST sets the cap (204), DELETE lifts it (204); 404 unknown id; 400 bad body; 415")
    func maximumBitrate() async throws {
        try await withRunningNode(try testConfiguration()) { running in
            let ice = try ICECredentials(ufrag: "cap1", password: "ClientPassword0123456789abc")
            let session = try await Self.create(running, path: "/whep/lobby", ice: ice)
            // Operator routes name the dashboard's session id, a one-way function of the secret resource.
            let id = WebRTCSessions.sessionID(ofResource: String(session.location.dropFirst("/whep/lobby/".count)))
            let path = "/api/v1/sessions/\(id)/max-bitrate"
            let json = "application/json"

            let set = try await running.whip(.post, path, contentType: json, body: #"{"bps": 300000}"#)
            #expect(set.status == .noContent)
            #expect(try await running.status().sessions.list.first?.maximumBitrate == 300_000)
            let text = String(buffer: try #require(try await running.get("/").body))
            #expect(text.contains("300000"))

            for bad in ["nope", "{}", #"{"bps": -5}"#, #"{"bps": 0}"#, #"{"bps": "fast"}"#, #"{"bps": 1.5}"#] {
                let response = try await running.whip(.post, path, contentType: json, body: bad)
                #expect(response.status == .badRequest, "body \(bad)")
            }
            #expect(try await running.status().sessions.list.first?.maximumBitrate == 300_000)
            let wrongType = try await running.whip(.post, path, contentType: "text/plain", body: #"{"bps": 1}"#)
            #expect(wrongType.status == .unsupportedMediaType)

            let lifted = try await running.whip(.delete, path)
            #expect(lifted.status == .noContent)
            #expect(try await running.status().sessions.list.first?.maximumBitrate == nil)

            let unknown = "/api/v1/sessions/00000000000000000000000000000000/max-bitrate"
            #expect(try await running.whip(.post, unknown, contentType: json, body: #"{"bps": 1}"#).status == .notFound)
            #expect(try await running.whip(.delete, unknown).status == .notFound)
        }
    }
}
