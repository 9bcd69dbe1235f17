@testable import BraidSecurity
import Testing

/// OpenSSL's server-side default caches every handshake's session (the peer's certificate included) in the
/// shared context for 300 s: memory that outlived the WebRTC sessions, which never resume.
@Suite struct DTLSSessionCacheTests {
    @Test("completed handshakes leave no session in the shared context's cache")
    func noSessionCache() async throws {
        let identity = try DTLSCertificate(commonName: "cache")
        for _ in 0..<3 {
            let (client, server) = try endpoints(clientExpects: identity.fingerprint, serverIdentity: identity)
            _ = try await pump(client, server)
            #expect(server.state == .connected)
        }
        #expect(identity.cachedSessionCount == 0)
    }
}
