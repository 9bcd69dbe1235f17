import BraidAccess
import BraidICE
import BraidNode
import BraidSecurity
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import Testing

/// Access tokens, resources as capabilities, the operator listener and the public dashboard.
@Suite("Access: tokens, capabilities, operator listener, public dashboard")
struct AccessTests {
    static let key = "test token key: 0123456789abcdef0123456789abcdef"

    // MARK: Tokens, socket-free

    @Test("a minted token verifies; expiry, signature, format, role and room are checked with reasons")
    func tokenChecks() async throws {
        let clock = NIOLockedValueBox(Date(timeIntervalSince1970: 1_800_000_000))
        let authority = TokenAuthority(key: Self.key, now: { clock.withLockedValue { $0 } })
        let publish = authority.mint(room: "lobby", role: .publish, lifetime: 60, subject: "alice")
        let claims = try authority.claims(of: publish)
        #expect(claims.room == "lobby" && claims.role == .publish && claims.subject == "alice")
        // publish covers play in its room, not another room, never operator routes.
        _ = try authority.authorize(token: publish, room: "lobby", action: .subscribe)
        #expect(throws: AccessDenial(.forbidden, "the token is for room lobby, not other")) {
            try authority.authorize(token: publish, room: "other", action: .publish)
        }
        #expect(throws: AccessDenial(.forbidden, "a publish token cannot use operator routes")) {
            try authority.authorize(token: publish, room: nil, action: .operate)
        }
        // A subscribe token cannot publish.
        let play = authority.mint(room: "lobby", role: .subscribe, lifetime: 60)
        _ = try authority.authorize(token: play, room: "lobby", action: .subscribe)
        #expect(throws: AccessDenial(.forbidden, "a subscribe token cannot publish")) {
            try authority.authorize(token: play, room: "lobby", action: .publish)
        }
        // Admin tokens: node-wide only with room "*".
        let admin = authority.mint(room: "*", role: .admin, lifetime: 60)
        _ = try authority.authorize(token: admin, room: nil, action: .operate)
        _ = try authority.authorize(token: admin, room: "any", action: .publish)
        let roomAdmin = authority.mint(room: "lobby", role: .admin, lifetime: 60)
        #expect(throws: AccessDenial.self) {
            try authority.authorize(token: roomAdmin, room: nil, action: .operate)
        }
        // Expiry against the injected clock.
        clock.withLockedValue { $0 = $0.addingTimeInterval(61) }
        do {
            _ = try authority.claims(of: publish)
            Issue.record("an expired token was accepted")
        } catch {
            #expect(error.status == .unauthorized && error.reason.contains("expired"))
        }
        // Another key, an altered payload, garbage, nothing, an oversized token.
        let stranger = TokenAuthority(key: String(Self.key.reversed()), now: { clock.withLockedValue { $0 } })
        let foreign = stranger.mint(room: "lobby", role: .publish, lifetime: 60)
        do {
            _ = try authority.claims(of: foreign)
            Issue.record("a token signed with another key was accepted")
        } catch {
            #expect(error.status == .unauthorized && error.reason.contains("signature"))
        }
        let fresh = authority.mint(room: "lobby", role: .subscribe, lifetime: 60)
        let parts = fresh.split(separator: ".").map(String.init)
        let forged = try Self.base64URL(
            JSONSerialization.data(withJSONObject: ["room": "lobby", "role": "admin", "exp": 4_000_000_000]))
        #expect(throws: AccessDenial.self) {
            try authority.claims(of: [parts[0], forged, parts[2]].joined(separator: "."))
        }
        #expect(throws: AccessDenial.self) { try authority.claims(of: "not a token") }
        #expect(throws: AccessDenial(.unauthorized, "a bearer token is required")) {
            try authority.authorize(token: nil, room: "lobby", action: .subscribe)
        }
        #expect(throws: AccessDenial.self) {
            try authority.claims(of: String(repeating: "a", count: TokenAuthority.maximumTokenLength + 1))
        }
    }

    @Test("HS256 verifies RFC 7515's example JWS (A.1); alg none, other algorithms and crit are refused")
    func rfc7515Example() throws {
        // RFC 7515 Appendix A.1: the key is a JWK "k" (base64url), the token's claims are not Braid's, so the
        // signature must verify and the claims must then be refused for lacking room and role.
        let key = try #require(Data(base64Encoded:
            "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ+EstJQLr/T+1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow=="))
        let authority = TokenAuthority(keyBytes: Array(key), now: { Date(timeIntervalSince1970: 1_300_000_000) })
        let example =
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
            + ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
            + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        do {
            _ = try authority.claims(of: example)
            Issue.record("claims without room and role were accepted")
        } catch {
            #expect(error.reason.contains("claims lack room, role or exp"))
        }
        // One flipped signature character: now it is the signature that fails.
        do {
            _ = try authority.claims(of: String(example.dropLast()) + "Y")
            Issue.record("an altered signature was accepted")
        } catch {
            #expect(error.reason.contains("signature does not verify"))
        }

        // Headers Braid refuses, each with a correct HS256 tag so only the header is at fault.
        let braid = TokenAuthority(key: Self.key, now: { Date(timeIntervalSince1970: 1_800_000_000) })
        let claims = try Self.base64URL(
            JSONSerialization.data(withJSONObject: ["room": "lobby", "role": "admin", "exp": 1_900_000_000]))
        for (header, reason) in [
            (#"{"alg":"none","typ":"JWT"}"#, "only HS256 is accepted"),
            (#"{"alg":"HS512","typ":"JWT"}"#, "only HS256 is accepted"),
            (#"{"alg":"HS256","crit":["b64"]}"#, "critical extensions"),
            (#"{"typ":"JWT"}"#, "not base64url-encoded JSON"),
        ] {
            let input = Self.base64URL(Data(header.utf8)) + "." + claims
            let tag = Self.base64URL(Data(HKDF.hmac(key: Array(Self.key.utf8), data: Array(input.utf8))))
            do {
                _ = try braid.claims(of: input + "." + tag)
                Issue.record("header \(header) was accepted")
            } catch {
                #expect(error.reason.contains(reason), "\(header): \(error.reason)")
            }
        }
        // The same claims under Braid's own header verify, and fractional NumericDates are read.
        let good = Self.base64URL(Data(#"{"alg":"HS256"}"#.utf8)) + "."
            + (try Self.base64URL(
                JSONSerialization.data(withJSONObject: ["room": "lobby", "role": "admin", "exp": 1_900_000_000.5])))
        let tag = Self.base64URL(Data(HKDF.hmac(key: Array(Self.key.utf8), data: Array(good.utf8))))
        #expect(try braid.claims(of: good + "." + tag).expires == Date(timeIntervalSince1970: 1_900_000_000.5))
        // Padding, the standard alphabet and a fourth part are format errors, not crashes.
        #expect(throws: AccessDenial.self) { try braid.claims(of: good + "." + tag + "=") }
        #expect(throws: AccessDenial.self) { try braid.claims(of: good + "." + tag + ".x") }
        #expect(throws: AccessDenial.self) { try braid.claims(of: "+" + good + "." + tag) }
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacing("+", with: "-").replacing("/", with: "_").replacing("=", with: "")
    }

    // MARK: Start-up refusal

    @Test("the node refuses to start open on a non-loopback address, and says why")
    func refusesOpenStart() throws {
        func configuration(_ flags: NodeConfigurationLayer) throws(ConfigurationError) -> NodeConfiguration {
            var flags = flags
            flags.httpPort = 0
            flags.mediaPort = 0
            flags.adminPort = 0
            flags.mediaAdvertisedAddresses = ["192.0.2.1"]
            return try NodeConfiguration.resolve(flags: flags, environment: [:])
        }
        do throws(ConfigurationError) {
            _ = try NodeServer(configuration: try configuration(NodeConfigurationLayer(httpAddress: "0.0.0.0")))
            Issue.record("a node without tokens started on 0.0.0.0")
        } catch {
            #expect(error.keyPath == "insecure_open")
            #expect(error.message.contains("no auth.token_key") && error.message.contains("--insecure-open"))
        }
        do throws(ConfigurationError) {
            _ = try NodeServer(configuration: try configuration(NodeConfigurationLayer(adminAddress: "0.0.0.0")))
            Issue.record("an operator listener on 0.0.0.0 was accepted")
        } catch {
            #expect(error.message.contains("admin.address"))
        }
        // Told explicitly, or with tokens, it starts.
        _ = try NodeServer(
            configuration: try configuration(NodeConfigurationLayer(httpAddress: "0.0.0.0", insecureOpen: true)))
        _ = try NodeServer(
            configuration: try configuration(NodeConfigurationLayer(httpAddress: "0.0.0.0", authTokenKey: Self.key)))
        // A short key is refused by validation.
        #expect(throws: ConfigurationError.self) {
            try configuration(NodeConfigurationLayer(authTokenKey: "short"))
        }
    }

    // MARK: Live node with tokens

    static func tokenConfiguration() throws -> NodeConfiguration {
        var configuration = try testConfiguration()
        configuration.auth.tokenKey = Self.key
        return configuration
    }

    @Test("WHIP/WHEP with tokens: 401 without or with a bad token, 403 for the wrong role or room, 201 with a good one")
    func liveTokens() async throws {
        let authority = TokenAuthority(key: Self.key)
        try await withRunningNode(try Self.tokenConfiguration()) { running in
            let certificate = try DTLSCertificate(commonName: "c")
            let ice = try ICECredentials(ufrag: "tok1", password: "ClientPassword0123456789abc")
            let publishOffer = WHIPOffer.chromiumLike(ice: ice, fingerprint: certificate.fingerprint)
            let playOffer = WHEPOffer.recvonly(ice: ice, fingerprint: certificate.fingerprint, videos: 1)
            func post(_ path: String, _ offer: String, token: String?) async throws -> (HTTPResponse.Status, String) {
                var headers: HTTPFields = [:]
                if let token { headers[.authorization] = "Bearer \(token)" }
                let response = try await running.whip(
                    .post, path, contentType: "application/sdp", body: offer, headers: headers)
                return (response.status, response.body.map { String(buffer: $0) } ?? "")
            }
            let none = try await post("/whip/lobby", publishOffer, token: nil)
            #expect(none.0 == .unauthorized && none.1.contains("bearer token is required"))
            let garbage = try await post("/whip/lobby", publishOffer, token: "abc.def.ghi")
            #expect(garbage.0 == .unauthorized)
            let expired = TokenAuthority(key: Self.key, now: { Date().addingTimeInterval(-7200) })
                .mint(room: "lobby", role: .publish, lifetime: 60)
            let late = try await post("/whip/lobby", publishOffer, token: expired)
            #expect(late.0 == .unauthorized && late.1.contains("expired"))
            let play = authority.mint(room: "lobby", role: .subscribe, lifetime: 600)
            let wrongRole = try await post("/whip/lobby", publishOffer, token: play)
            #expect(wrongRole.0 == .forbidden && wrongRole.1.contains("subscribe token cannot publish"))
            let elsewhere = authority.mint(room: "other", role: .publish, lifetime: 600)
            let wrongRoom = try await post("/whip/lobby", publishOffer, token: elsewhere)
            #expect(wrongRoom.0 == .forbidden && wrongRoom.1.contains("not lobby"))
            let publish = authority.mint(room: "lobby", role: .publish, lifetime: 600)
            #expect(try await post("/whip/lobby", publishOffer, token: publish).0 == .created)
            #expect(try await post("/whep/lobby", playOffer, token: play).0 == .created)
            // Operator routes on the public listener: refused without an admin token.
            let capped = try await running.whip(
                .post, "/api/v1/sessions/0123/max-bitrate", contentType: "application/json", body: "{\"bps\": 1000}",
                headers: [.authorization: "Bearer \(publish)"])
            #expect(capped.status == .forbidden)
            #expect(capped.headers[.accessControlAllowOrigin] == nil)
        }
    }

    @Test("a session id from the operator dashboard cannot end or restart the session; its Location can")
    func resourcesAreCapabilities() async throws {
        let authority = TokenAuthority(key: Self.key)
        try await withRunningNode(try Self.tokenConfiguration()) { running in
            let publish = authority.mint(room: "lobby", role: .publish, lifetime: 600)
            let certificate = try DTLSCertificate(commonName: "c")
            let ice = try ICECredentials(ufrag: "cap1", password: "ClientPassword0123456789abc")
            let created = try await running.whip(
                .post, "/whip/lobby", contentType: "application/sdp",
                body: WHIPOffer.chromiumLike(ice: ice, fingerprint: certificate.fingerprint),
                headers: [.authorization: "Bearer \(publish)"])
            try #require(created.status == .created)
            let location = try #require(created.headers[.location])
            let resource = String(location.dropFirst("/whip/lobby/".count))

            let operatorView = try await running.operatorStatus()
            let id = try #require(operatorView.sessions.list.first?.id)
            #expect(id != resource && !location.contains(id))
            #expect(id == WebRTCSessions.sessionID(ofResource: resource))

            // The id, even with an admin token, is no capability.
            let admin = authority.mint(room: "*", role: .admin, lifetime: 600)
            let byID = try await running.whip(.delete, "/whip/lobby/\(id)", headers: [.authorization: "Bearer \(admin)"])
            #expect(byID.status == .notFound)
            let restart = try await running.whip(
                .patch, "/whip/lobby/\(id)", contentType: "application/trickle-ice-sdpfrag",
                body: "a=ice-ufrag:evil\r\na=ice-pwd:EvilPassword0123456789abcd\r\n", headers: [.ifMatch: "*"])
            #expect(restart.status == .notFound)
            #expect(try await running.operatorStatus().sessions.count == 1)
            // The Location alone, with no token, ends it.
            let ended = try await running.whip(.delete, location)
            #expect(ended.status == .ok)
            #expect(try await running.operatorStatus().sessions.count == 0)
        }
    }

    @Test("the public dashboard shows counts, no session ids, client addresses or rooms; operators see them")
    func publicDashboard() async throws {
        let authority = TokenAuthority(key: Self.key)
        try await withRunningNode(try Self.tokenConfiguration()) { running in
            let publish = authority.mint(room: "secret-room", role: .publish, lifetime: 600)
            let certificate = try DTLSCertificate(commonName: "c")
            let ice = try ICECredentials(ufrag: "pub9", password: "ClientPassword0123456789abc")
            let created = try await running.whip(
                .post, "/whip/secret-room", contentType: "application/sdp",
                body: WHIPOffer.chromiumLike(ice: ice, fingerprint: certificate.fingerprint),
                headers: [.authorization: "Bearer \(publish)"])
            try #require(created.status == .created)
            // The session gets a remote address once ICE runs.
            let peer = try await UDPPeer()
            let answer = String(buffer: try #require(created.body))
            let ufrag = try #require(WHIPOffer.attribute("ice-ufrag", in: answer))
            let password = try #require(WHIPOffer.attribute("ice-pwd", in: answer))
            _ = try await STUNCheck.run(peer, running, username: "\(ufrag):pub9", password: password)
            let operatorView = try await running.operatorStatus()
            let session = try #require(operatorView.sessions.list.first)
            let clientPort = peer.localPort
            #expect(session.remoteAddress?.contains("\(clientPort)") == true)

            for path in ["/", "/api/v1/node"] {
                let response = try await running.get(path)
                #expect(response.status == .ok)
                let text = String(buffer: try #require(response.body))
                #expect(!text.contains(session.id), "\(path) leaks the session id")
                #expect(!text.contains("\(clientPort)"), "\(path) leaks the client address")
                #expect(!text.contains("secret-room"), "\(path) leaks the room name")
            }
            let publicStatus = try await running.status()
            #expect(publicStatus.sessions.count == 1 && publicStatus.sessions.list.isEmpty)
            // The public view is built at most once a second: a second request gets the same document.
            #expect(try await running.status().uptimeSeconds == publicStatus.uptimeSeconds)
            #expect(try await running.operatorStatus().uptimeSeconds != publicStatus.uptimeSeconds)
            for path in ["/api/v1/rooms", "/api/v1/rooms/secret-room"] {
                let response = try await running.get(path)
                #expect(response.status == .unauthorized || response.status == .forbidden)
            }
            // An admin token opens the full view on the public listener too.
            let admin = authority.mint(room: "*", role: .admin, lifetime: 600)
            let full = try await running.whip(.get, "/api/v1/node", headers: [.authorization: "Bearer \(admin)"])
            #expect(String(buffer: try #require(full.body)).contains(session.id))
            try await peer.close()
        }
    }
}

extension RunningNode {
    /// `GET /api/v1/node` on the operator listener, decoded.
    func operatorStatus() async throws -> NodeStatus {
        var waited = 0
        while self.node.operatorAddress == nil && waited < 500 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        let port = try #require(self.node.operatorAddress?.port)
        let response = try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
            try await client.get("/api/v1/node")
        }
        #expect(response.status == .ok)
        return try JSONDecoder().decode(NodeStatus.self, from: Data(try #require(response.body).readableBytesView))
    }
}
