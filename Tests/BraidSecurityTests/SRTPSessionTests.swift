@_spi(SRTPReference) import BraidSecurity
import Testing

/// Byte arrays from hex strings (whitespace ignored), for vectors copied from published sources.
func bytes(_ hex: String) -> [UInt8] {
    let digits = hex.filter { !$0.isWhitespace }.map { $0 }
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

extension SRTPOutboundSession {
    /// Test convenience: protect into a fresh array (allocates, unlike the real API).
    func protectRTP(_ packet: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: packet.count + self.profile.rtpTrailerLength)
        let n = try packet.withUnsafeBytes { (source) throws -> Int in
            try out.withUnsafeMutableBytes { (destination) throws -> Int in
                try self.protectRTP(source, into: destination)
            }
        }
        return Array(out[..<n])
    }

    func protectRTCP(_ packet: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: packet.count + self.profile.rtcpTrailerLength)
        let n = try packet.withUnsafeBytes { (source) throws -> Int in
            try out.withUnsafeMutableBytes { (destination) throws -> Int in
                try self.protectRTCP(source, into: destination)
            }
        }
        return Array(out[..<n])
    }
}

extension SRTPInboundSession {
    func unprotectRTP(_ packet: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: packet.count)
        let n = try packet.withUnsafeBytes { (source) throws -> Int in
            try out.withUnsafeMutableBytes { (destination) throws -> Int in
                try self.unprotectRTP(source, into: destination)
            }
        }
        return Array(out[..<n])
    }

    func unprotectRTCP(_ packet: [UInt8]) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: packet.count)
        let n = try packet.withUnsafeBytes { (source) throws -> Int in
            try out.withUnsafeMutableBytes { (destination) throws -> Int in
                try self.unprotectRTCP(source, into: destination)
            }
        }
        return Array(out[..<n])
    }
}

/// Expects `body` to throw an ``SRTPError`` with `code` (whatever the library status).
func expectSRTPError(
    _ code: SRTPError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Any
) {
    do {
        _ = try body()
        Issue.record("expected SRTPError.\(code), nothing thrown", sourceLocation: sourceLocation)
    } catch let error as SRTPError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected SRTPError.\(code), got \(error)", sourceLocation: sourceLocation)
    }
}

/// An RTP packet (RFC 3550 §5.1): V=2, PT 111, the given sequence number, SSRC 0x11223344.
func rtpPacket(sequence: UInt16, payloadLength: Int = 160, fill: UInt8 = 0x5a) -> [UInt8] {
    [0x80, 111, UInt8(sequence >> 8), UInt8(sequence & 0xff), 0, 0, 0x03, 0xe8, 0x11, 0x22, 0x33, 0x44]
        + [UInt8](repeating: fill, count: payloadLength)
}

/// An RTCP receiver report with no report blocks (RFC 3550 §6.4.2).
let rtcpReceiverReport: [UInt8] = [0x80, 201, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44]

/// The master key the session tests share.
func testMasterKey(_ profile: SRTPProfile) throws -> SRTPMasterKey {
    try SRTPMasterKey(
        key: (0..<profile.masterKeyLength).map { UInt8($0 &* 7 &+ 1) },
        salt: (0..<profile.masterSaltLength).map { UInt8($0 &* 13 &+ 5) },
        profile: profile
    )
}

func sessionPair(_ profile: SRTPProfile, _ implementation: SRTPImplementation = .openSSL) throws
    -> (SRTPOutboundSession, SRTPInboundSession)
{
    let key = try testMasterKey(profile)
    return (
        try SRTPOutboundSession(profile: profile, masterKey: key, implementation: implementation),
        try SRTPInboundSession(profile: profile, masterKey: key, implementation: implementation)
    )
}

/// Every profile on every implementation: the session tests hold for the OpenSSL implementation and for
/// the libsrtp2 reference alike.
let profilesAndImplementations: [(SRTPProfile, SRTPImplementation)] = SRTPProfile.allCases.flatMap { profile in
    SRTPImplementation.allCases.map { (profile, $0) }
}

@Suite("SRTP sessions (OpenSSL, and the libsrtp2 reference)")
struct SRTPSessionTests {
    @Test("the public initialisers run OpenSSL")
    func defaultImplementation() throws {
        let key = try testMasterKey(.aeadAES128GCM)
        #expect(try SRTPOutboundSession(profile: .aeadAES128GCM, masterKey: key).implementation == .openSSL)
        #expect(try SRTPInboundSession(profile: .aeadAES128GCM, masterKey: key).implementation == .openSSL)
        let keys = SRTPKeys(profile: .aeadAES128GCM, local: key, remote: key)
        let session = try SRTPSession(keys: keys)
        #expect(session.outbound.implementation == .openSSL && session.inbound.implementation == .openSSL)
    }

    @Test("RTP and RTCP round trip", arguments: profilesAndImplementations)
    func roundTrip(profile: SRTPProfile, implementation: SRTPImplementation) throws {
        let (sender, receiver) = try sessionPair(profile, implementation)
        for sequence in UInt16(1000)..<1010 {
            let plain = rtpPacket(sequence: sequence)
            let protected = try sender.protectRTP(plain)
            #expect(protected.count == plain.count + profile.rtpTrailerLength)
            #expect(Array(protected[..<12]) == Array(plain[..<12]), "the RTP header stays in the clear")
            #expect(Array(protected[12..<plain.count]) != Array(plain[12...]), "the payload is encrypted")
            #expect(try receiver.unprotectRTP(protected) == plain)
        }
        let protectedRTCP = try sender.protectRTCP(rtcpReceiverReport)
        #expect(protectedRTCP.count == rtcpReceiverReport.count + profile.rtcpTrailerLength)
        #expect(try receiver.unprotectRTCP(protectedRTCP) == rtcpReceiverReport)
    }

    @Test("protection leaves the source buffer untouched", arguments: profilesAndImplementations)
    func sourceUntouched(profile: SRTPProfile, implementation: SRTPImplementation) throws {
        let (sender, _) = try sessionPair(profile, implementation)
        let plain = rtpPacket(sequence: 7)
        let copy = plain
        _ = try sender.protectRTP(plain)
        #expect(plain == copy)
    }

    @Test("in-place unprotect of an owned buffer", arguments: profilesAndImplementations)
    func inPlace(profile: SRTPProfile, implementation: SRTPImplementation) throws {
        let (sender, receiver) = try sessionPair(profile, implementation)
        let plain = rtpPacket(sequence: 42, payloadLength: 1200)
        var packet = try sender.protectRTP(plain)
        let n = try packet.withUnsafeMutableBytes { (buffer) throws(SRTPError) -> Int in
            try receiver.unprotectRTP(inPlace: buffer)
        }
        #expect(Array(packet[..<n]) == plain)
        var rtcp = try sender.protectRTCP(rtcpReceiverReport)
        let m = try rtcp.withUnsafeMutableBytes { (buffer) throws(SRTPError) -> Int in
            try receiver.unprotectRTCP(inPlace: buffer)
        }
        #expect(Array(rtcp[..<m]) == rtcpReceiverReport)
    }

    @Test("a tampered packet fails authentication", arguments: profilesAndImplementations)
    func tampered(profile: SRTPProfile, implementation: SRTPImplementation) throws {
        let (sender, receiver) = try sessionPair(profile, implementation)
        for index in [3, 20, 100] {  // header, payload and near the tag
            var protected = try sender.protectRTP(rtpPacket(sequence: UInt16(index)))
            protected[index] ^= 0x01
            expectSRTPError(.authenticationFailed) { try receiver.unprotectRTP(protected) }
        }
        var rtcp = try sender.protectRTCP(rtcpReceiverReport)
        rtcp[rtcp.count - 1] ^= 0x80
        #expect(throws: SRTPError.self) { try receiver.unprotectRTCP(rtcp) }
        do {
            _ = try receiver.unprotectRTCP(rtcp)
            Issue.record("tampered SRTCP accepted")
        } catch let error as SRTPError {
            #expect(error.code == .authenticationFailed)
            #expect(error.libraryStatus == 7)
        }
    }

    @Test("a packet keyed differently fails authentication", arguments: profilesAndImplementations)
    func wrongKey(profile: SRTPProfile, implementation: SRTPImplementation) throws {
        let (sender, _) = try sessionPair(profile, implementation)
        let other = try SRTPInboundSession(
            profile: profile,
            masterKey: SRTPMasterKey(
                key: [UInt8](repeating: 9, count: profile.masterKeyLength),
                salt: [UInt8](repeating: 9, count: profile.masterSaltLength),
                profile: profile
            ),
            implementation: implementation
        )
        let protected = try sender.protectRTP(rtpPacket(sequence: 1))
        expectSRTPError(.authenticationFailed) { try other.unprotectRTP(protected) }
    }

    @Test("replayed and too-old packets are rejected", arguments: profilesAndImplementations)
    func replay(profile: SRTPProfile, implementation: SRTPImplementation) throws {
        let (sender, receiver) = try sessionPair(profile, implementation)
        let first = try sender.protectRTP(rtpPacket(sequence: 100))
        _ = try receiver.unprotectRTP(first)
        expectSRTPError(.replayed) { try receiver.unprotectRTP(first) }

        // Move the window 200 packets ahead: sequence 100 is now behind a 128-packet window.
        let old = try sender.protectRTP(rtpPacket(sequence: 101))
        let late = try sender.protectRTP(rtpPacket(sequence: 300))
        _ = try receiver.unprotectRTP(late)
        expectSRTPError(.replayTooOld) { try receiver.unprotectRTP(old) }

        let rtcp = try sender.protectRTCP(rtcpReceiverReport)
        _ = try receiver.unprotectRTCP(rtcp)
        expectSRTPError(.replayed) { try receiver.unprotectRTCP(rtcp) }
    }

    @Test("a larger replay window accepts what the default rejects", arguments: SRTPImplementation.allCases)
    func replayWindowSize(implementation: SRTPImplementation) throws {
        let profile = SRTPProfile.aeadAES128GCM
        let key = try SRTPMasterKey(key: [UInt8](repeating: 1, count: 16), salt: [UInt8](repeating: 2, count: 12),
                                    profile: profile)
        let sender = try SRTPOutboundSession(profile: profile, masterKey: key, implementation: implementation)
        let wide = try SRTPInboundSession(profile: profile, masterKey: key, replayWindowSize: 1024,
                                          implementation: implementation)
        let old = try sender.protectRTP(rtpPacket(sequence: 10))
        _ = try wide.unprotectRTP(sender.protectRTP(rtpPacket(sequence: 500)))
        #expect(try wide.unprotectRTP(old) == rtpPacket(sequence: 10))
        expectSRTPError(.badParameter) {
            try SRTPInboundSession(profile: profile, masterKey: key, replayWindowSize: 10,
                                   implementation: implementation)
        }
        expectSRTPError(.badParameter) {
            try SRTPInboundSession(profile: profile, masterKey: key, replayWindowSize: 0x8000,
                                   implementation: implementation)
        }
    }

    @Test("wrong key and salt lengths are rejected", arguments: SRTPProfile.allCases)
    func badKeyLength(profile: SRTPProfile) {
        expectSRTPError(.badKeyLength) {
            try SRTPMasterKey(key: [UInt8](repeating: 0, count: 15), salt: [UInt8](repeating: 0, count: 14),
                              profile: profile)
        }
        expectSRTPError(.badKeyLength) {
            try SRTPMasterKey(key: [UInt8](repeating: 0, count: 16),
                              salt: [UInt8](repeating: 0, count: profile.masterSaltLength + 1), profile: profile)
        }
        expectSRTPError(.badKeyLength) {
            try SRTPKeys(keyingMaterial: [UInt8](repeating: 0, count: profile.keyingMaterialLength - 1),
                         profile: profile, role: .client)
        }
    }

    @Test("a destination without room for the trailer is rejected", arguments: profilesAndImplementations)
    func destinationTooSmall(profile: SRTPProfile, implementation: SRTPImplementation) throws {
        let (sender, receiver) = try sessionPair(profile, implementation)
        let plain = rtpPacket(sequence: 1)
        var small = [UInt8](repeating: 0xee, count: plain.count + profile.rtpTrailerLength - 1)
        plain.withUnsafeBytes { source in
            small.withUnsafeMutableBytes { destination in
                expectSRTPError(.bufferTooSmall) { try sender.protectRTP(source, into: destination) }
            }
        }
        #expect(small.allSatisfy { $0 == 0xee }, "nothing written on failure")
        var rtcpSmall = [UInt8](repeating: 0, count: rtcpReceiverReport.count + profile.rtcpTrailerLength - 1)
        rtcpReceiverReport.withUnsafeBytes { source in
            rtcpSmall.withUnsafeMutableBytes { destination in
                expectSRTPError(.bufferTooSmall) { try sender.protectRTCP(source, into: destination) }
            }
        }
        let protected = try sender.protectRTP(plain)
        var tooShort = [UInt8](repeating: 0, count: protected.count - 1)
        protected.withUnsafeBytes { source in
            tooShort.withUnsafeMutableBytes { destination in
                expectSRTPError(.bufferTooSmall) { try receiver.unprotectRTP(source, into: destination) }
            }
        }
    }

    @Test("garbage and truncated input give typed errors", arguments: profilesAndImplementations)
    func garbage(profile: SRTPProfile, implementation: SRTPImplementation) throws {
        let (sender, receiver) = try sessionPair(profile, implementation)
        expectSRTPError(.badParameter) { try sender.protectRTP([]) }
        expectSRTPError(.badParameter) { try sender.protectRTP([0x80, 0, 0]) }
        expectSRTPError(.badParameter) { try receiver.unprotectRTP([]) }
        expectSRTPError(.badParameter) { try receiver.unprotectRTCP([0x80, 200]) }
        var generator = SystemRandomNumberGenerator()
        for length in [8, 9, 11, 12, 13, 20, 21, 27, 28, 29, 30, 31, 64, 200, 1500] {
            for _ in 0..<20 {
                var junk = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                junk[0] = 0x80 | (junk[0] & 0x3f)  // keep V=2 so it gets past the header check
                #expect(throws: SRTPError.self) { try receiver.unprotectRTP(junk) }
                #expect(throws: SRTPError.self) { try receiver.unprotectRTCP(junk) }
            }
        }
        // An RTP header announcing CSRCs and an extension that are not there.
        #expect(throws: SRTPError.self) {
            try receiver.unprotectRTP([0x9f, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4] + [UInt8](repeating: 0, count: 16))
        }
    }

    // MARK: Known-answer vectors

    // RFC 3711 Appendix B gives AES-CM keystream and key-derivation vectors, and RFC 7714 §16-17 gives
    // packets under already-derived *session* keys; SRTPKnownAnswerTests checks the OpenSSL implementation
    // against those through its internals (libsrtp's public API takes only master keys). The packet-level
    // answers below are libsrtp's own reference packets (cisco/libsrtp test/srtp_driver.c, srtp_validate()
    // and srtp_validate_gcm()): master key || salt, plaintext and expected SRTP/SRTCP output for SSRC
    // 0xcafebabe. They pin the key derivation, the cipher, the tag and the trailer layout together, for both
    // implementations.

    @Test("libsrtp reference packets: AES_CM_128_HMAC_SHA1_80", arguments: SRTPImplementation.allCases)
    func knownAnswerAESCM(implementation: SRTPImplementation) throws {
        let keyAndSalt = bytes("e1f97a0d3e018be0d64fa32c06de4139 0ec675ad498afeebb6960b3aabe6")
        let key = try SRTPMasterKey(key: Array(keyAndSalt[..<16]), salt: Array(keyAndSalt[16...]),
                                    profile: .aesCM128HMACSHA1_80)
        let rtp = bytes("800f1234decafbadcafebabe abababababababababababababababab")
        let srtp = bytes("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb")
        let rtcp = bytes("81c8000bcafebabe abababababababababababababababab")
        let srtcp = bytes("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798")

        let sender = try SRTPOutboundSession(profile: .aesCM128HMACSHA1_80, masterKey: key,
                                             implementation: implementation)
        #expect(try sender.protectRTP(rtp) == srtp)
        #expect(try sender.protectRTCP(rtcp) == srtcp)
        let receiver = try SRTPInboundSession(profile: .aesCM128HMACSHA1_80, masterKey: key,
                                              implementation: implementation)
        #expect(try receiver.unprotectRTP(srtp) == rtp)
        #expect(try receiver.unprotectRTCP(srtcp) == rtcp)
    }

    @Test("libsrtp reference packets: AEAD_AES_128_GCM", arguments: SRTPImplementation.allCases)
    func knownAnswerGCM(implementation: SRTPImplementation) throws {
        let keyAndSalt = bytes("000102030405060708090a0b0c0d0e0f a0a1a2a3a4a5a6a7a8a9aaab")
        let key = try SRTPMasterKey(key: Array(keyAndSalt[..<16]), salt: Array(keyAndSalt[16...]),
                                    profile: .aeadAES128GCM)
        let rtp = bytes("800f1234decafbadcafebabe abababababababababababababababab")
        let srtp = bytes(
            "800f1234decafbadcafebabe c5002ede04cfdd2eb91159e0880aa06e d2976826f796b201df3131a127e8a392"
        )
        let rtcp = bytes("81c8000bcafebabe abababababababababababababababab")
        let srtcp = bytes(
            "81c8000bcafebabe c98b8b5df0392a55852b6c21ac8e7025 c52c6fbea2b3b446ea31123ba88ce61e 80000001"
        )

        let sender = try SRTPOutboundSession(profile: .aeadAES128GCM, masterKey: key,
                                             implementation: implementation)
        #expect(try sender.protectRTP(rtp) == srtp)
        #expect(try sender.protectRTCP(rtcp) == srtcp)
        let receiver = try SRTPInboundSession(profile: .aeadAES128GCM, masterKey: key,
                                              implementation: implementation)
        #expect(try receiver.unprotectRTP(srtp) == rtp)
        #expect(try receiver.unprotectRTCP(srtcp) == rtcp)
    }

    @Test("keying material splits per RFC 5764 §4.2 and the two roles mirror each other")
    func keyingMaterialLayout() throws {
        let profile = SRTPProfile.aesCM128HMACSHA1_80
        let material = (0..<profile.keyingMaterialLength).map { UInt8($0) }
        let client = try SRTPKeys(keyingMaterial: material, profile: profile, role: .client)
        let server = try SRTPKeys(keyingMaterial: material, profile: profile, role: .server)
        #expect(client.local.key == Array(0..<16))
        #expect(client.remote.key == Array(16..<32))
        #expect(client.local.salt == Array(32..<46))
        #expect(client.remote.salt == Array(46..<60))
        #expect(server.local == client.remote)
        #expect(server.remote == client.local)
        #expect(SRTPProfile.aeadAES128GCM.keyingMaterialLength == 56)
        #expect(SRTPProfile(dtlsProfileID: 0x0007) == .aeadAES128GCM)
        #expect(SRTPProfile(dtlsProfileID: 0x0001) == .aesCM128HMACSHA1_80)
        #expect(SRTPProfile(dtlsProfileID: 0x0002) == nil)

        let clientSession = try SRTPSession(keys: client)
        let serverSession = try SRTPSession(keys: server)
        let plain = rtpPacket(sequence: 5)
        #expect(try serverSession.inbound.unprotectRTP(clientSession.outbound.protectRTP(plain)) == plain)
        #expect(try clientSession.inbound.unprotectRTP(serverSession.outbound.protectRTP(plain)) == plain)
    }
}
