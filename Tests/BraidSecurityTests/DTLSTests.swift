import BraidSecurity
import Testing

/// Shared identities: key generation is the slow part of setting up an endpoint.
let clientCertificate = try! DTLSCertificate(commonName: "client")
let serverCertificate = try! DTLSCertificate(commonName: "server")

/// A client and a server wired to each other's real fingerprints unless told otherwise.
func endpoints(
    clientProfiles: [SRTPProfile] = [.aeadAES128GCM, .aesCM128HMACSHA1_80],
    serverProfiles: [SRTPProfile] = [.aeadAES128GCM, .aesCM128HMACSHA1_80],
    clientExpects: DTLSFingerprint = serverCertificate.fingerprint,
    serverExpects: DTLSFingerprint = clientCertificate.fingerprint,
    mtu: Int = 1200
) throws -> (client: DTLSEndpoint, server: DTLSEndpoint) {
    let timers = (initial: Duration.milliseconds(40), maximum: Duration.milliseconds(160))
    let client = try DTLSEndpoint(
        role: .client,
        certificate: clientCertificate,
        remoteFingerprint: clientExpects,
        configuration: .init(srtpProfiles: clientProfiles, mtu: mtu, initialRetransmitTimeout: timers.initial,
                             maximumRetransmitTimeout: timers.maximum)
    )
    let server = try DTLSEndpoint(
        role: .server,
        certificate: serverCertificate,
        remoteFingerprint: serverExpects,
        configuration: .init(srtpProfiles: serverProfiles, mtu: mtu, initialRetransmitTimeout: timers.initial,
                             maximumRetransmitTimeout: timers.maximum)
    )
    return (client, server)
}

func isDone(_ endpoint: DTLSEndpoint) -> Bool {
    switch endpoint.state {
    case .handshaking: false
    case .connected, .failed, .closed: true
    }
}

/// What a pump saw.
struct PumpLog {
    var datagrams: [(from: DTLSRole, bytes: [UInt8])] = []
    var dropped = 0
    var timeoutsHandled = 0
}

/// Carries datagrams between the two endpoints in process, dropping those `drop` selects (given the
/// sender, the sender's datagram index and the bytes), and waits out retransmission timers when nothing is in
/// flight. Stops when neither side is handshaking or after `maximumTimeouts` timer firings.
///
/// The bound counts timer firings, not wall time: when other suites keep the test process's few threads
/// busy, a sleep can end seconds late, and a wall-clock deadline would then fail a handshake that is fine.
func pump(
    _ client: DTLSEndpoint,
    _ server: DTLSEndpoint,
    drop: (DTLSRole, Int, [UInt8]) -> Bool = { _, _, _ in false },
    maximumTimeouts: Int = 30
) async throws -> PumpLog {
    var log = PumpLog()
    var sent: [DTLSRole: Int] = [.client: 0, .server: 0]
    var queue: [(to: DTLSRole, bytes: [UInt8])] = []
    func enqueue(_ datagrams: [[UInt8]], from sender: DTLSRole) {
        for datagram in datagrams {
            let index = sent[sender]!
            sent[sender] = index + 1
            log.datagrams.append((sender, datagram))
            if drop(sender, index, datagram) {
                log.dropped += 1
            } else {
                queue.append((sender == .client ? .server : .client, datagram))
            }
        }
    }
    let clock = ContinuousClock()
    enqueue(client.start(), from: .client)
    enqueue(server.start(), from: .server)
    while log.timeoutsHandled <= maximumTimeouts {
        if !queue.isEmpty {
            let (target, bytes) = queue.removeFirst()
            let endpoint = target == .client ? client : server
            if case .handshaking = endpoint.state {} else if case .connected = endpoint.state {} else { continue }
            enqueue(try endpoint.receive(bytes), from: target)
            continue
        }
        if isDone(client) && isDone(server) { break }
        // Nothing in flight: wait for the earliest retransmission timer, then fire both.
        let now = clock.now
        let deadlines = [client.nextTimeout(now: now), server.nextTimeout(now: now)].compactMap { $0 }
        guard let next = deadlines.min() else { break }
        try await Task.sleep(until: next + .milliseconds(1), clock: clock)
        log.timeoutsHandled += 1
        enqueue(client.handleTimeout(), from: .client)
        enqueue(server.handleTimeout(), from: .server)
    }
    return log
}

@Suite("DTLS endpoints (OpenSSL over memory BIOs)")
struct DTLSEndpointTests {
    @Test("handshake: both connected, same keys, GCM preferred, SRTP works both ways")
    func handshake() async throws {
        let (client, server) = try endpoints()
        let log = try await pump(client, server)
        #expect(client.state == .connected)
        #expect(server.state == .connected)
        #expect(log.dropped == 0)
        #expect(log.datagrams.allSatisfy { $0.bytes.count <= 1200 })
        #expect(client.negotiatedProfile == .aeadAES128GCM)
        #expect(server.negotiatedProfile == .aeadAES128GCM)
        #expect(client.peerCertificateFingerprint == serverCertificate.fingerprint)
        #expect(server.peerCertificateFingerprint == clientCertificate.fingerprint)

        let clientMaterial = try client.exportSRTPKeyingMaterial()
        let serverMaterial = try server.exportSRTPKeyingMaterial()
        #expect(clientMaterial.count == 56)
        #expect(clientMaterial == serverMaterial)
        #expect(clientMaterial != [UInt8](repeating: 0, count: 56))
        #expect(try client.srtpKeys().local == server.srtpKeys().remote)

        let clientSRTP = try client.makeSRTPSession()
        let serverSRTP = try server.makeSRTPSession()
        #expect(clientSRTP.profile == .aeadAES128GCM)
        let media = rtpPacket(sequence: 1, payloadLength: 1000)
        #expect(try serverSRTP.inbound.unprotectRTP(clientSRTP.outbound.protectRTP(media)) == media)
        #expect(try clientSRTP.inbound.unprotectRTP(serverSRTP.outbound.protectRTP(media)) == media)
        #expect(try serverSRTP.inbound.unprotectRTCP(clientSRTP.outbound.protectRTCP(rtcpReceiverReport))
            == rtcpReceiverReport)
        // A session keyed for the wrong direction must not verify.
        expectSRTPError(.authenticationFailed) {
            try clientSRTP.inbound.unprotectRTP(clientSRTP.outbound.protectRTP(rtpPacket(sequence: 2)))
        }
    }

    @Test("AES_CM_128_HMAC_SHA1_80 is agreed when only one side offers GCM", arguments: [true, false])
    func cmOnly(clientHasOnlyCM: Bool) async throws {
        let (client, server) = try endpoints(
            clientProfiles: clientHasOnlyCM ? [.aesCM128HMACSHA1_80] : [.aeadAES128GCM, .aesCM128HMACSHA1_80],
            serverProfiles: clientHasOnlyCM ? [.aeadAES128GCM, .aesCM128HMACSHA1_80] : [.aesCM128HMACSHA1_80]
        )
        _ = try await pump(client, server)
        #expect(client.state == .connected)
        #expect(server.state == .connected)
        #expect(client.negotiatedProfile == .aesCM128HMACSHA1_80)
        #expect(server.negotiatedProfile == .aesCM128HMACSHA1_80)
        let material = try client.exportSRTPKeyingMaterial()
        #expect(material.count == 60)
        #expect(material == (try server.exportSRTPKeyingMaterial()))
        let clientSRTP = try client.makeSRTPSession()
        let serverSRTP = try server.makeSRTPSession()
        let media = rtpPacket(sequence: 9)
        #expect(try serverSRTP.inbound.unprotectRTP(clientSRTP.outbound.protectRTP(media)) == media)
        #expect(try clientSRTP.inbound.unprotectRTP(serverSRTP.outbound.protectRTP(media)) == media)
    }

    @Test("a wrong expected fingerprint on the server fails the handshake on both sides")
    func serverRejectsFingerprint() async throws {
        let stranger = try DTLSCertificate(commonName: "stranger")
        let (client, server) = try endpoints(serverExpects: stranger.fingerprint)
        _ = try await pump(client, server)
        guard case .failed(let error) = server.state else {
            Issue.record("server state \(server.state)")
            return
        }
        #expect(error.code == .fingerprintMismatch)
        guard case .failed = client.state else {
            Issue.record("client should have received the alert, state \(client.state)")
            return
        }
        #expect(client.negotiatedProfile == nil)
        #expect(throws: DTLSError(.notConnected, "")) { try server.exportSRTPKeyingMaterial() }
        #expect(throws: DTLSError(.notUsable, "")) {
            try server.receive([0x16, 0xfe, 0xfd] + [UInt8](repeating: 0, count: 10))
        }
    }

    @Test("a wrong expected fingerprint on the client fails the handshake")
    func clientRejectsFingerprint() async throws {
        let stranger = try DTLSCertificate(commonName: "stranger")
        let (client, server) = try endpoints(clientExpects: stranger.fingerprint)
        _ = try await pump(client, server)
        guard case .failed(let error) = client.state else {
            Issue.record("client state \(client.state)")
            return
        }
        #expect(error.code == .fingerprintMismatch)
        #expect(server.state != .connected)
        #expect(throws: DTLSError(.notConnected, "")) { try client.makeSRTPSession() }
    }

    @Test("lost flights are retransmitted by handleTimeout", arguments: [
        [(DTLSRole.client, 0)],                    // the ClientHello
        [(DTLSRole.server, 0)],                    // the server's first flight
        [(DTLSRole.client, 1)],                    // the client's second flight
        [(DTLSRole.client, 0), (.client, 1), (.server, 0), (.server, 1)],  // several, in a row
    ])
    func lostFlights(drops: [(DTLSRole, Int)]) async throws {
        let (client, server) = try endpoints()
        let log = try await pump(client, server, drop: { role, index, _ in drops.contains { $0 == (role, index) } })
        #expect(log.dropped == drops.count)
        #expect(log.timeoutsHandled >= 1)
        #expect(client.state == .connected)
        #expect(server.state == .connected)
        #expect(try client.exportSRTPKeyingMaterial() == server.exportSRTPKeyingMaterial())
    }

    @Test("a lost final server flight is resent when the client retransmits, after the server connected")
    func lostFinalFlight() async throws {
        let (client, server) = try endpoints()
        var droppedOnce = false
        // The server's final flight is what it sends as it becomes connected.
        let log = try await pump(client, server, drop: { role, _, _ in
            guard role == .server, !droppedOnce, server.state == .connected else { return false }
            droppedOnce = true
            return true
        })
        #expect(log.dropped == 1)
        #expect(client.state == .connected)
        #expect(server.state == .connected)
        #expect(try client.exportSRTPKeyingMaterial() == server.exportSRTPKeyingMaterial())
    }

    @Test("a small MTU fragments the flights and every datagram fits")
    func smallMTU() async throws {
        let (client, server) = try endpoints(mtu: 300)
        let log = try await pump(client, server)
        #expect(client.state == .connected)
        #expect(server.state == .connected)
        #expect(log.datagrams.allSatisfy { $0.bytes.count <= 300 })
        #expect(log.datagrams.contains { $0.bytes.count > 250 }, "records are packed, not sent one by one")
    }

    @Test("an unanswered client times out after its retransmissions")
    func timeout() async throws {
        let client = try DTLSEndpoint(
            role: .client,
            certificate: clientCertificate,
            remoteFingerprint: serverCertificate.fingerprint,
            configuration: .init(
                initialRetransmitTimeout: .milliseconds(20),
                maximumRetransmitTimeout: .milliseconds(20)
            )
        )
        #expect(client.nextTimeout(now: ContinuousClock.now) == nil, "no timer before start")
        #expect(client.start().count == 1)
        var retransmissions = 0
        var firings = 0
        let clock = ContinuousClock()
        // Bounded by timer firings rather than wall time, for the reason given at `pump`.
        while case .handshaking = client.state, firings < 100 {
            firings += 1
            guard let next = client.nextTimeout(now: clock.now) else { break }
            try await Task.sleep(until: next + .milliseconds(1), clock: clock)
            if !client.handleTimeout().isEmpty { retransmissions += 1 }
        }
        guard case .failed(let error) = client.state else {
            Issue.record("state \(client.state)")
            return
        }
        #expect(error.code == .timedOut)
        #expect(retransmissions >= 10)
    }

    @Test("handleTimeout before the deadline does nothing")
    func earlyTimeout() throws {
        let client = try DTLSEndpoint(
            role: .client,
            certificate: clientCertificate,
            remoteFingerprint: serverCertificate.fingerprint,
            configuration: .init(initialRetransmitTimeout: .seconds(2), maximumRetransmitTimeout: .seconds(4))
        )
        #expect(client.start().count == 1)
        let remaining = try #require(client.timeoutRemaining)
        #expect(remaining > .seconds(1) && remaining <= .seconds(2))
        let now = ContinuousClock.now
        let deadline = try #require(client.nextTimeout(now: now))
        #expect(deadline - now <= remaining && deadline - now > .seconds(1))
        #expect(client.handleTimeout().isEmpty)
    }

    @Test("garbage datagrams are rejected with a typed error and do not disturb the handshake")
    func garbage() async throws {
        let (client, server) = try endpoints()
        var generator = SystemRandomNumberGenerator()
        let junk: [[UInt8]] = [
            [],
            [0x16],
            [0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0x00],           // header cut short
            [0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00],     // length beyond the datagram
            [0x17, 0x03, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],           // TLS, not DTLS, version
            [0x40] + [UInt8](repeating: 0, count: 20),                  // content type out of range
            (0..<300).map { _ in UInt8.random(in: 0...255, using: &generator) },
        ]
        for bytes in junk {
            #expect(throws: DTLSError(.malformedDatagram, "")) { try server.receive(bytes) }
            #expect(throws: DTLSError(.malformedDatagram, "")) { try client.receive(bytes) }
        }
        #expect(server.state == .handshaking)
        _ = try await pump(client, server)
        #expect(client.state == .connected)
        #expect(server.state == .connected)

        // Well-formed record headers around random bodies reach OpenSSL: an encrypted-epoch record that
        // fails its integrity check is silently dropped (RFC 6347 §4.1.2.7).
        for _ in 0..<50 {
            let body = (0..<48).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let record: [UInt8] = [0x17, 0xfe, 0xfd, 0x00, 0x01, 0, 0, 0, 0, 0, 0x63, 0x00, 48] + body
            _ = try server.receive(record)
        }
        #expect(server.state == .connected)

        // So are plaintext-epoch handshake and alert records with random bodies after the handshake, which
        // OpenSSL reports as errors: the association (and its exported SRTP keys) stays up.
        for contentType: UInt8 in [0x14, 0x15, 0x16] {
            for _ in 0..<20 {
                let body = (0..<40).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let record: [UInt8] = [contentType, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x70, 0x00, 40] + body
                _ = try server.receive(record)
            }
        }
        #expect(server.state == .connected)
        #expect(server.negotiatedProfile == .aeadAES128GCM)
    }

    @Test("a random handshake record during the handshake fails cleanly or is ignored")
    func garbageHandshakeRecord() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let (_, server) = try endpoints()
            let body = (0..<40).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let record: [UInt8] = [0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 40] + body
            _ = try server.receive(record)
            switch server.state {
            case .handshaking, .failed: break
            case .connected, .closed: Issue.record("garbage cannot complete or close a handshake")
            }
        }
    }

    @Test("application data and close_notify")
    func applicationDataAndClose() async throws {
        let (client, server) = try endpoints()
        _ = try await pump(client, server)
        #expect(throws: DTLSError(.notConnected, "")) {
            try DTLSEndpoint(role: .client, certificate: clientCertificate,
                             remoteFingerprint: serverCertificate.fingerprint).sendApplicationData([1])
        }
        let largest = client.maximumApplicationDataLength
        #expect(largest > 1000 && largest < 1200)
        #expect(throws: DTLSError(.badParameter, "")) {
            try client.sendApplicationData([UInt8](repeating: 7, count: largest + 1))
        }
        for _ in 0..<3 {
            let datagrams = try client.sendApplicationData([UInt8](repeating: 7, count: largest))
            #expect(datagrams.count == 1)
            #expect(datagrams[0].count <= 1200)
            #expect(try server.receive(datagrams[0]).isEmpty)
        }
        #expect(server.discardedApplicationBytes == 3 * largest)
        #expect(server.state == .connected)

        let goodbye = client.close()
        #expect(client.state == .closed)
        #expect(goodbye.count == 1)
        _ = try server.receive(goodbye[0])
        #expect(server.state == .closed)
        #expect(client.close().isEmpty)
        #expect(throws: DTLSError(.notUsable, "")) { try client.receive(goodbye[0]) }
    }

    @Test("a compact client keeps its keys, fingerprint and a close_notify the server accepts")
    func compactClientCloses() async throws {
        let (client, server) = try endpoints()
        #expect(!client.compact())  // not connected yet
        _ = try await pump(client, server)
        let keys = try client.exportSRTPKeyingMaterial()
        let fingerprint = client.peerCertificateFingerprint
        #expect(!server.compact())  // a server keeps its state for retransmitted flights
        #expect(client.compact())
        #expect(client.isCompact && client.state == .connected)
        #expect(try client.exportSRTPKeyingMaterial() == keys)
        #expect(client.peerCertificateFingerprint == fingerprint)
        #expect(client.maximumApplicationDataLength == 0)
        #expect(throws: DTLSError(.notUsable, "")) { try client.sendApplicationData([1]) }
        #expect(client.timeoutRemaining == nil && client.handleTimeout().isEmpty)

        // Records other than alerts are counted and change nothing.
        let data = try server.sendApplicationData([1, 2, 3])
        #expect(try client.receive(data[0]).isEmpty)
        #expect(client.rejectedRecords == 1 && client.state == .connected)

        // The close_notify prepared at compaction is a valid record for the server.
        let goodbye = client.close()
        #expect(client.state == .closed)
        #expect(goodbye.count == 1)
        _ = try server.receive(goodbye[0])
        #expect(server.state == .closed)
        #expect(client.close().isEmpty)
    }

    @Test("a compact client closes on the server's alert")
    func compactClientSeesAlert() async throws {
        let (client, server) = try endpoints()
        _ = try await pump(client, server)
        #expect(client.compact())
        let goodbye = server.close()
        #expect(try client.receive(goodbye[0]).isEmpty)
        #expect(client.state == .closed)
    }

    @Test("bad configuration is rejected")
    func badConfiguration() {
        for configuration in [
            DTLSEndpoint.Configuration(srtpProfiles: []),
            DTLSEndpoint.Configuration(mtu: 100),
            DTLSEndpoint.Configuration(initialRetransmitTimeout: .milliseconds(5)),
            DTLSEndpoint.Configuration(initialRetransmitTimeout: .seconds(2), maximumRetransmitTimeout: .seconds(1)),
        ] {
            #expect(throws: DTLSError(.badParameter, "")) {
                try DTLSEndpoint(role: .server, certificate: serverCertificate,
                                 remoteFingerprint: clientCertificate.fingerprint, configuration: configuration)
            }
        }
    }
}

@Suite("DTLS certificates and fingerprints")
struct DTLSCertificateTests {
    @Test("SHA-256 fingerprint: 32 bytes, uppercase hex with colons, SDP form")
    func fingerprintFormat() throws {
        let certificate = try DTLSCertificate(commonName: "braid-test")
        let fingerprint = certificate.fingerprint
        #expect(fingerprint.algorithm == .sha256)
        #expect(fingerprint.bytes.count == 32)
        let hex = fingerprint.hexString
        #expect(hex.count == 32 * 3 - 1)
        let groups = hex.split(separator: ":", omittingEmptySubsequences: false)
        #expect(groups.count == 32)
        #expect(groups.allSatisfy { $0.count == 2 && $0.allSatisfy { "0123456789ABCDEF".contains($0) } })
        #expect(fingerprint.sdpValue == "sha-256 " + hex)
        #expect(try DTLSFingerprint(sdpValue: fingerprint.sdpValue) == fingerprint)
        #expect(try DTLSFingerprint(sdpValue: "SHA-256 " + hex.lowercased()) == fingerprint)
        #expect(certificate.fingerprint(.sha384).bytes.count == 48)
        #expect(certificate.fingerprint(.sha1).hexString.count == 59)
        // Two certificates never share a key, hence never a fingerprint.
        #expect(try DTLSCertificate().fingerprint != fingerprint)
    }

    @Test("hex formatting of known bytes")
    func knownHex() throws {
        let fingerprint = try DTLSFingerprint(algorithm: .sha256, bytes: Array(0..<32).map { UInt8($0 * 8) })
        #expect(fingerprint.hexString.hasPrefix("00:08:10:18:20:28:30:38:40:48:50:58:60:68:70:78:80:88"))
        #expect(fingerprint.hexString.hasSuffix("E0:E8:F0:F8"))
    }

    @Test("malformed fingerprint attributes are rejected", arguments: [
        "", "sha-256", "md5 AB:CD", "sha-256 AB:CD", "sha-256 ABC:DE",
        "sha-256 " + String(repeating: "AB:", count: 32) + "AB",  // 33 bytes
        "sha-256 " + String(repeating: "ZZ:", count: 31) + "ZZ",
        "sha-256 " + String(repeating: "AB:", count: 31) + "AB extra",
        "sha-256 :" + String(repeating: "AB:", count: 31) + "AB",
    ])
    func badFingerprint(text: String) {
        #expect(throws: DTLSError(.badFingerprint, "")) { try DTLSFingerprint(sdpValue: text) }
    }

    @Test("PEM round trip keeps the identity, and the reloaded certificate handshakes")
    func pemRoundTrip() async throws {
        let original = try DTLSCertificate(commonName: "persisted")
        let pem = try original.pemEncoded()
        #expect(pem.hasPrefix("-----BEGIN CERTIFICATE-----\n"))
        #expect(pem.contains("-----BEGIN PRIVATE KEY-----\n"))
        let reloaded = try DTLSCertificate(pem: pem)
        #expect(reloaded.fingerprint == original.fingerprint)
        #expect(try reloaded.pemEncoded() == pem)

        let client = try DTLSEndpoint(role: .client, certificate: reloaded,
                                      remoteFingerprint: serverCertificate.fingerprint)
        let server = try DTLSEndpoint(role: .server, certificate: serverCertificate,
                                      remoteFingerprint: original.fingerprint)
        _ = try await pump(client, server)
        #expect(client.state == .connected)
        #expect(server.state == .connected)
    }

    @Test("bad PEM is rejected")
    func badPEM() throws {
        let a = try DTLSCertificate().pemEncoded()
        let b = try DTLSCertificate().pemEncoded()
        let certificateOfA = String(a[..<a.firstRange(of: "-----BEGIN PRIVATE KEY-----")!.lowerBound])
        let keyOfB = String(b[b.firstRange(of: "-----BEGIN PRIVATE KEY-----")!.lowerBound...])
        for text in ["", "hello", certificateOfA, keyOfB, certificateOfA + keyOfB,
                     a.replacing("M", with: "*")] {
            #expect(throws: DTLSError(.badCertificate, "")) { try DTLSCertificate(pem: text) }
        }
        // Key first, certificate second, is still one identity.
        let keyOfA = String(a[a.firstRange(of: "-----BEGIN PRIVATE KEY-----")!.lowerBound...])
        #expect(try DTLSCertificate(pem: keyOfA + certificateOfA).fingerprint == DTLSCertificate(pem: a).fingerprint)
    }

    @Test("bad certificate parameters are rejected")
    func badParameters() {
        #expect(throws: DTLSError(.badParameter, "")) { try DTLSCertificate(validityDays: 0) }
        #expect(throws: DTLSError(.badCertificate, "")) { try DTLSCertificate(commonName: "") }
        #expect(throws: DTLSError(.badCertificate, "")) {
            try DTLSCertificate(commonName: String(repeating: "x", count: 65))
        }
    }
}
