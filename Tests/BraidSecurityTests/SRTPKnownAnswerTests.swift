@testable import BraidSecurity
import Testing

// Known-answer vectors from the RFCs, checked against the OpenSSL implementation's pieces: the AES-CM
// keystream and key derivation of RFC 3711 Appendix B, and the AEAD_AES_128_GCM packets of RFC 7714 §16
// and §17, which are stated under *session* keys (no master key), so they are fed to `SRTPTransform`
// directly rather than through the public sessions.

@Suite("SRTP known answers (RFC 3711 Appendix B, RFC 7714 §16-17)")
struct SRTPKnownAnswerTests {
    // MARK: RFC 3711 Appendix B.2: AES-CM keystream

    @Test("B.2: AES-CM keystream segment")
    func aesCMKeystream() throws {
        // Session key 2B7E1516…, SSRC 0, ROC 0, SEQ 0, session salt F0F1…FD (already shifted): the counter
        // blocks start at F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000 and the segment is 65282 blocks long.
        let key = bytes("2B7E151628AED2A6ABF7158809CF4F3C")
        let start = bytes("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
        let stream = try SRTPKeyDerivation.keystream(key: key, counterBlock: start, length: 65282 * 16)
        func block(_ number: Int) -> [UInt8] { Array(stream[(number * 16)..<(number * 16 + 16)]) }
        #expect(block(0) == bytes("E03EAD0935C95E80E166B16DD92B4EB4"))
        #expect(block(1) == bytes("D23513162B02D0F72A43A2FE4A5F97AB"))
        #expect(block(2) == bytes("41E95B3BB0A2E8DD477901E4FCA894C0"))
        #expect(block(0xFEFF) == bytes("EC8CDF7398607CB0F2D21675EA9EA1E4"))
        #expect(block(0xFF00) == bytes("362B7C3C6773516318A077D7FC5073AE"))
        #expect(block(0xFF01) == bytes("6A2CC3787889374FBEB4C81B17BA6C44"))
    }

    // MARK: RFC 3711 Appendix B.3: key derivation

    @Test("B.3: key derivation of the cipher key, cipher salt and auth key")
    func keyDerivation() throws {
        let masterKey = bytes("E1F97A0D3E018BE0D64FA32C06DE4139")
        let masterSalt = bytes("0EC675AD498AFEEBB6960B3AABE6")
        #expect(
            try SRTPKeyDerivation.derive(label: 0x00, masterKey: masterKey, masterSalt: masterSalt, length: 16)
                == bytes("C61E7A93744F39EE10734AFE3FF7A087"))
        #expect(
            try SRTPKeyDerivation.derive(label: 0x02, masterKey: masterKey, masterSalt: masterSalt, length: 14)
                == bytes("30CBBC08863D8C85D49DB34A9AE1"))
        // The appendix derives a 94-octet auth key; SHA1-80 uses its first 20 octets.
        let authKey = bytes(
            """
            CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
            E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
            6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2
            """)
        #expect(
            try SRTPKeyDerivation.derive(label: 0x01, masterKey: masterKey, masterSalt: masterSalt, length: 94)
                == authKey)

        // The session keys of the profile are those prefixes.
        let keys = try SRTPSessionKeys(
            profile: .aesCM128HMACSHA1_80,
            masterKey: SRTPMasterKey(key: masterKey, salt: masterSalt, profile: .aesCM128HMACSHA1_80)
        )
        #expect(keys.rtpKey == bytes("C61E7A93744F39EE10734AFE3FF7A087"))
        #expect(keys.rtpSalt == bytes("30CBBC08863D8C85D49DB34A9AE1"))
        #expect(keys.rtpAuthenticationKey == Array(authKey[..<20]))
        #expect(keys.rtcpKey.count == 16 && keys.rtcpKey != keys.rtpKey)
        #expect(keys.rtcpSalt.count == 14 && keys.rtcpAuthenticationKey.count == 20)
    }

    @Test("AEAD_AES_128_GCM derives a 96-bit session salt from a zero-padded 96-bit master salt")
    func gcmKeyDerivation() throws {
        let master = try SRTPMasterKey(key: Array(0..<16), salt: Array(16..<28), profile: .aeadAES128GCM)
        let keys = try SRTPSessionKeys(profile: .aeadAES128GCM, masterKey: master)
        let padded = Array(UInt8(16)..<28) + [0, 0]
        #expect(keys.rtpKey == (try SRTPKeyDerivation.derive(label: 0, masterKey: master.key, masterSalt: padded,
                                                             length: 16)))
        #expect(keys.rtpSalt == (try SRTPKeyDerivation.derive(label: 2, masterKey: master.key, masterSalt: padded,
                                                              length: 12)))
        #expect(keys.rtpAuthenticationKey.isEmpty && keys.rtcpAuthenticationKey.isEmpty)
        #expect(keys.rtcpSalt.count == 12)
    }

    // MARK: RFC 7714 §16 and §17: AEAD_AES_128_GCM under given session keys

    /// Key 00 01 … 0f and salt "Quid pro quo" for SRTP and SRTCP alike, as §16 and §17 use.
    private func rfc7714(sending: Bool) throws -> SRTPTransform {
        let key = Array(UInt8(0)..<16)
        let salt = Array("Quid pro quo".utf8)
        return try SRTPTransform(
            profile: .aeadAES128GCM,
            sessionKeys: SRTPSessionKeys(
                rtpKey: key, rtpAuthenticationKey: [], rtpSalt: salt,
                rtcpKey: key, rtcpAuthenticationKey: [], rtcpSalt: salt
            ),
            sending: sending,
            replayWindowSize: 128,
            allowRepeatTransmission: true
        )
    }

    private let rfc7714RTP = bytes(
        """
        8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973 20646976
        69736120 696e2070 61727465 73207472 6573
        """)
    private let rfc7714SRTP = bytes(
        """
        8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5
        0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1 6a9152cf 765ee439
        0cce
        """)
    private let rfc7714RTCP = bytes(
        """
        81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
        deadbeef deadbeef deadbeef deadbeef deadbeef
        """)

    @Test("§16.1.1: SRTP AEAD_AES_128_GCM encryption")
    func rfc7714SRTPEncryption() throws {
        let sender = try rfc7714(sending: true)
        #expect(try transform(rfc7714RTP, extra: 16) { try sender.protectRTP($0, into: $1) } == rfc7714SRTP)
    }

    @Test("§16.1.2: SRTP AEAD_AES_128_GCM decryption, and a flipped bit anywhere fails")
    func rfc7714SRTPDecryption() throws {
        let receiver = try rfc7714(sending: false)
        #expect(try transform(rfc7714SRTP) { try receiver.unprotectRTP($0, into: $1) } == rfc7714RTP)
        for index in [3, 12, 30, rfc7714SRTP.count - 1] {
            var altered = rfc7714SRTP
            altered[index] ^= 0x01
            let fresh = try rfc7714(sending: false)
            expectSRTPError(.authenticationFailed) {
                try transform(altered) { try fresh.unprotectRTP($0, into: $1) }
            }
        }
    }

    @Test("§17.1: SRTCP AEAD_AES_128_GCM encryption and tagging, SRTCP index 0x5d4")
    func rfc7714SRTCPEncryption() throws {
        let expected = bytes(
            """
            81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d
            c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872
            45d9eade 800005d4
            """)
        let sender = try rfc7714(sending: true)
        sender.setNextRTCPIndex(ssrc: 0x4d61_7273, 0x5d4)
        #expect(try transform(rfc7714RTCP, extra: 20) { try sender.protectRTCP($0, into: $1) } == expected)
        let receiver = try rfc7714(sending: false)
        #expect(try transform(expected) { try receiver.unprotectRTCP($0, into: $1) } == rfc7714RTCP)
    }

    @Test("§17.3: an SRTCP packet tagged but not encrypted (E = 0) verifies, and is returned unchanged")
    func rfc7714SRTCPTagOnly() throws {
        let tagged = bytes(
            """
            81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930 4c756e61
            deadbeef deadbeef deadbeef deadbeef deadbeef 841dd968 3dd78ec9 2ae58790
            125f62b3 000005d4
            """)
        let receiver = try rfc7714(sending: false)
        #expect(try transform(tagged) { try receiver.unprotectRTCP($0, into: $1) } == rfc7714RTCP)
        var altered = tagged
        altered[20] ^= 0x40  // inside the (unencrypted, authenticated) report
        expectSRTPError(.authenticationFailed) {
            try transform(altered) { try rfc7714(sending: false).unprotectRTCP($0, into: $1) }
        }
    }
}

/// Runs `body` from `input` into a fresh buffer `extra` bytes longer and returns what it wrote.
func transform(
    _ input: [UInt8],
    extra: Int = 0,
    _ body: (UnsafeRawBufferPointer, UnsafeMutableRawBufferPointer) throws -> Int
) throws -> [UInt8] {
    var output = [UInt8](repeating: 0, count: input.count + extra)
    let written = try input.withUnsafeBytes { source in
        try output.withUnsafeMutableBytes { destination in try body(source, destination) }
    }
    return Array(output[..<written])
}
