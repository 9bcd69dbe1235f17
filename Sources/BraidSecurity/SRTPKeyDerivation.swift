internal import COpenSSL

/// The session keys one direction of an SRTP association runs on, derived from its master key and salt
/// ([RFC 3711 §4.3](https://www.rfc-editor.org/rfc/rfc3711#section-4.3)).
///
/// Both profiles derive with the AES-CM PRF under the master key; AEAD_AES_128_GCM pads its 96-bit master
/// salt with two zero octets to the 112 bits the PRF takes
/// ([RFC 7714 §11](https://www.rfc-editor.org/rfc/rfc7714#section-11)). The key derivation rate is 0, so
/// the keys are derived once, when the session is created, and `index DIV kdr` is 0.
///
/// | label | key | AES_CM_128_HMAC_SHA1_80 | AEAD_AES_128_GCM |
/// | --- | --- | --- | --- |
/// | 0x00 | SRTP encryption key | 16 octets | 16 octets |
/// | 0x01 | SRTP authentication key | 20 octets | — |
/// | 0x02 | SRTP salt | 14 octets | 12 octets |
/// | 0x03 | SRTCP encryption key | 16 octets | 16 octets |
/// | 0x04 | SRTCP authentication key | 20 octets | — |
/// | 0x05 | SRTCP salt | 14 octets | 12 octets |
///
/// The bytes are secret: ``wipe()`` overwrites them once the cipher contexts hold them.
struct SRTPSessionKeys {
    var rtpKey: [UInt8]
    var rtpAuthenticationKey: [UInt8]
    var rtpSalt: [UInt8]
    var rtcpKey: [UInt8]
    var rtcpAuthenticationKey: [UInt8]
    var rtcpSalt: [UInt8]

    /// Session keys given directly, as RFC 7714's test vectors state them (tests only).
    init(
        rtpKey: [UInt8],
        rtpAuthenticationKey: [UInt8],
        rtpSalt: [UInt8],
        rtcpKey: [UInt8],
        rtcpAuthenticationKey: [UInt8],
        rtcpSalt: [UInt8]
    ) {
        self.rtpKey = rtpKey
        self.rtpAuthenticationKey = rtpAuthenticationKey
        self.rtpSalt = rtpSalt
        self.rtcpKey = rtcpKey
        self.rtcpAuthenticationKey = rtcpAuthenticationKey
        self.rtcpSalt = rtcpSalt
    }

    /// Derives the six session keys of `profile` from one direction's master key.
    init(profile: SRTPProfile, masterKey: SRTPMasterKey) throws(SRTPError) {
        guard masterKey.key.count == profile.masterKeyLength, masterKey.salt.count == profile.masterSaltLength
        else {
            throw SRTPError(.badKeyLength, "master key or salt length does not match the profile")
        }
        let authenticationKeyLength = profile == .aesCM128HMACSHA1_80 ? 20 : 0
        let saltLength = profile.masterSaltLength  // session salt = master salt length (112 or 96 bits)
        func derive(_ label: UInt8, _ length: Int) throws(SRTPError) -> [UInt8] {
            try SRTPKeyDerivation.derive(label: label, masterKey: masterKey.key, masterSalt: masterKey.salt,
                                         length: length)
        }
        self.rtpKey = try derive(0x00, profile.masterKeyLength)
        self.rtpAuthenticationKey = try derive(0x01, authenticationKeyLength)
        self.rtpSalt = try derive(0x02, saltLength)
        self.rtcpKey = try derive(0x03, profile.masterKeyLength)
        self.rtcpAuthenticationKey = try derive(0x04, authenticationKeyLength)
        self.rtcpSalt = try derive(0x05, saltLength)
    }

    /// Overwrites every key with zeros.
    mutating func wipe() {
        for index in self.rtpKey.indices { self.rtpKey[index] = 0 }
        for index in self.rtpAuthenticationKey.indices { self.rtpAuthenticationKey[index] = 0 }
        for index in self.rtpSalt.indices { self.rtpSalt[index] = 0 }
        for index in self.rtcpKey.indices { self.rtcpKey[index] = 0 }
        for index in self.rtcpAuthenticationKey.indices { self.rtcpAuthenticationKey[index] = 0 }
        for index in self.rtcpSalt.indices { self.rtcpSalt[index] = 0 }
    }
}

/// The SRTP key derivation function: the AES-CM PRF of
/// [RFC 3711 §4.3.1](https://www.rfc-editor.org/rfc/rfc3711#section-4.3.1) and
/// [§4.3.3](https://www.rfc-editor.org/rfc/rfc3711#section-4.3.3), with key derivation rate 0.
///
/// ```
///   key_id = label || (index DIV kdr)          8 + 48 bits; with kdr = 0 the index part is 0
///        x = key_id XOR master_salt            112 bits, key_id right-aligned
///   output = AES-CM(master_key, IV = x * 2^16) the first n octets of the keystream
///
///    0   1   2   3   4   5   6   7   8   9  10  11  12  13  14  15     AES-CM input block (octets)
///  +---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
///  |          master salt (112 bits)                       | block |
///  |                           ^ label XORed into octet 7  |counter|
///  +---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+---+
/// ```
enum SRTPKeyDerivation {
    /// The first `length` octets of the PRF for `label` under `masterKey` and `masterSalt` (a 96-bit salt
    /// is padded with two zero octets on the right, as RFC 7714 §11 and libsrtp do).
    static func derive(label: UInt8, masterKey: [UInt8], masterSalt: [UInt8], length: Int) throws(SRTPError)
        -> [UInt8]
    {
        guard length > 0 else { return [] }
        var block = [UInt8](repeating: 0, count: 16)
        for (offset, byte) in masterSalt.prefix(14).enumerated() { block[offset] = byte }
        block[7] ^= label
        defer { for index in block.indices { block[index] = 0 } }
        return try self.keystream(key: masterKey, counterBlock: block, length: length)
    }

    /// `length` octets of AES-128 counter-mode keystream from `counterBlock`
    /// ([RFC 3711 §4.1.1](https://www.rfc-editor.org/rfc/rfc3711#section-4.1.1)): AES of the block, of the
    /// block + 1, … (OpenSSL's AES-128-CTR increments the whole 128-bit block; SRTP's 16-bit block counter
    /// starts at 0 and never carries for packets under 1 MiB, so the two agree).
    static func keystream(key: [UInt8], counterBlock: [UInt8], length: Int) throws(SRTPError) -> [UInt8] {
        guard key.count == 16, counterBlock.count == 16, length >= 0, length <= Int(Int32.max) else {
            throw SRTPError(.badParameter, "AES-CM keystream needs a 16-octet key and counter block")
        }
        guard let context = EVP_CIPHER_CTX_new() else {
            throw SRTPError(.library, "EVP_CIPHER_CTX_new failed")
        }
        defer { EVP_CIPHER_CTX_free(context) }
        var output = [UInt8](repeating: 0, count: length)
        let ok = key.withUnsafeBufferPointer { key in
            counterBlock.withUnsafeBufferPointer { counter in
                output.withUnsafeMutableBufferPointer { output -> Bool in
                    guard EVP_EncryptInit_ex(context, EVP_aes_128_ctr(), nil, key.baseAddress, counter.baseAddress)
                        == 1
                    else { return false }
                    guard let out = output.baseAddress, output.count > 0 else { return true }
                    var written: Int32 = 0
                    // Encrypting zeros in place yields the keystream itself.
                    return EVP_EncryptUpdate(context, out, &written, out, Int32(output.count)) == 1
                }
            }
        }
        guard ok else { throw SRTPError(.library, "AES-CM keystream failed") }
        return output
    }
}
