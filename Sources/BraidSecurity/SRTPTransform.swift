internal import CBraidShims
internal import COpenSSL

/// One direction of an SRTP association on OpenSSL's EVP API: the implementation ``SRTPOutboundSession``
/// and ``SRTPInboundSession`` run by default (``LibSRTPBackend`` is the libsrtp2 reference).
///
/// **Packet formats.** SRTP ([RFC 3711 §3.1](https://www.rfc-editor.org/rfc/rfc3711#section-3.1); no MKI
/// is used). The RTP header, its CSRCs and its header extension stay in the clear; the payload (with any
/// padding) is encrypted; the tag follows it:
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+<+
/// |V=2|P|X|  CC   |M|     PT      |       sequence number         | |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |
/// |                           timestamp                           | |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |
/// |           synchronization source (SSRC) identifier            | |
/// +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+ |
/// |            contributing source (CSRC) identifiers             | |
/// |                               ....                            | |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |
/// |                   RTP extension (OPTIONAL)                    | |
/// +>+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+ |
/// | |                          payload  ...                       | |
/// | |                               +-------------------------------+ |
/// | |                               | RTP padding   | RTP pad count | |
/// +>+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+<+
/// | :                 authentication tag (80 bits)                : |   AES_CM_128_HMAC_SHA1_80
/// | :                 GCM tag (128 bits)                          : |   AEAD_AES_128_GCM
/// | +- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -+ |
/// |                                                                 |
/// +- Encrypted Portion                     Authenticated Portion ---+   (AES-CM: the tag covers
///                                                                         header + payload + ROC;
///                                                                         GCM: the header is the AAD)
/// ```
///
/// SRTCP ([RFC 3711 §3.4](https://www.rfc-editor.org/rfc/rfc3711#section-3.4),
/// [RFC 7714 §9](https://www.rfc-editor.org/rfc/rfc7714#section-9)): the first 8 octets (header and sender
/// SSRC) stay in the clear, the rest of the compound packet is encrypted, and a 32-bit word carries the
/// E flag (1: encrypted) and the 31-bit SRTCP index. The two profiles put the tag on different sides of it:
///
/// ```
/// AES_CM_128_HMAC_SHA1_80 (RFC 3711 §3.4)      AEAD_AES_128_GCM (RFC 7714 §9.2)
/// +--------------------------------+           +--------------------------------+
/// | V P RC | PT | length           |           | V P RC | PT | length           |  AAD
/// | SSRC of sender                 |           | SSRC of sender                 |  AAD
/// +================================+           +================================+
/// | encrypted report blocks,       |           | encrypted report blocks,       |
/// | further compound packets ...   |           | further compound packets ...   |
/// +--------------------------------+           +--------------------------------+
/// |E|      SRTCP index (31 bits)   |           | GCM tag (128 bits)             |
/// +--------------------------------+           +--------------------------------+
/// | authentication tag (80 bits)   |           |E|      SRTCP index (31 bits)   |  AAD
/// +--------------------------------+           +--------------------------------+
///   tag = HMAC over header, payload,             AAD = header || E+index; when E = 0 the whole
///   E+index                                      packet is AAD and only tagged (RFC 7714 §9.3)
/// ```
///
/// **Ciphers.** AEAD_AES_128_GCM ([RFC 7714 §8](https://www.rfc-editor.org/rfc/rfc7714#section-8)): one
/// AES-128-GCM pass, 16-octet tag, 12-octet IV ([§8.1](https://www.rfc-editor.org/rfc/rfc7714#section-8.1),
/// [§9.1](https://www.rfc-editor.org/rfc/rfc7714#section-9.1)):
///
/// ```
///          0  1  2  3  4  5  6  7  8  9 10 11              0  1  2  3  4  5  6  7  8  9 10 11
///        +--+--+--+--+--+--+--+--+--+--+--+--+           +--+--+--+--+--+--+--+--+--+--+--+--+
///   SRTP |00|00|   SSRC    |    ROC    | SEQ |    SRTCP  |00|00|   SSRC    |00|00|0+SRTCP idx |
///        +--+--+--+--+--+--+--+--+--+--+--+--+           +--+--+--+--+--+--+--+--+--+--+--+--+
///          XOR the 12-octet session salt = IV              XOR the 12-octet session salt = IV
/// ```
///
/// AES_CM_128_HMAC_SHA1_80 ([RFC 3711 §4.1.1](https://www.rfc-editor.org/rfc/rfc3711#section-4.1.1),
/// [§4.2.1](https://www.rfc-editor.org/rfc/rfc3711#section-4.2.1)): AES-128 counter mode from
/// `IV = (salt · 2^16) XOR (SSRC · 2^64) XOR (index · 2^16)`, then HMAC-SHA1 truncated to 80 bits over the
/// authenticated portion followed by the 32-bit ROC (SRTP) or over header, payload and E+index (SRTCP):
///
/// ```
///    0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
///  +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
///  |00|00|00|00|   SSRC    |  packet index (48)  |block counter, from 0
///  +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
///    XOR the 14-octet session salt (octets 0-13)
/// ```
///
/// **No allocation per packet.** The EVP cipher contexts (AES-128-GCM, or AES-128-CTR for AES-CM) are
/// created and keyed once per direction for SRTP and once for SRTCP; each packet only sets a new IV.
/// HMAC-SHA1 keeps the SHA-1 states after the padded key blocks and copies them per packet
/// (`braid_hmac_sha1_tag`): OpenSSL 3.0's `EVP_MAC`, `HMAC_CTX` and `EVP_MD_CTX` allocate a provider context
/// on every (re)initialisation, which is what this avoids. Per-SSRC state (rollover counter, replay
/// windows) lives in an ``SRTPStreamTable`` that allocates only when an SSRC is first seen.
///
/// **Index and replay rules** are libsrtp's, so both implementations accept, reject and number the same
/// packets; see ``SRTPStreamTable`` and `srtpEstimateIndex(highest:sequence:)`. State for a new SSRC is
/// created when a packet from it is protected, or when one from it first authenticates.
///
/// Not thread-safe: one instance is used from one event loop.
final class SRTPTransform {
    let profile: SRTPProfile
    /// `EVP_CIPHER_CTX *` keyed with the SRTP session key: AES-128-GCM or AES-128-CTR.
    private let rtpCipher: OpaquePointer
    /// `EVP_CIPHER_CTX *` keyed with the SRTCP session key.
    private let rtcpCipher: OpaquePointer
    /// The session salts, placed where the IV has them: AES-CM's 14 octets in the top 112 bits, GCM's 12
    /// octets in the top 96 bits of a big-endian 128-bit value.
    private let rtpSalt: UInt128
    private let rtcpSalt: UInt128
    /// AES-CM only: the prepared HMAC-SHA1 keys, SRTP's then SRTCP's (2 × BRAID_HMAC_SHA1_KEY_BYTES).
    private let authenticationKeys: UnsafeMutableRawPointer?
    private let streams: SRTPStreamTable
    /// Sending side: protect the same index twice (libsrtp `allow_repeat_tx`).
    private let allowRepeatTransmission: Bool

    private static let hmacKeyBytes = Int(BRAID_HMAC_SHA1_KEY_BYTES)

    /// Creates one direction from its master key.
    /// - Parameters:
    ///   - sending: true to protect (outbound), false to unprotect (inbound).
    ///   - replayWindowSize: SRTP replay window, 64..<32768 (libsrtp's range); the sending side uses 128
    ///     as libsrtp does for its repeat check.
    convenience init(
        profile: SRTPProfile,
        masterKey: SRTPMasterKey,
        sending: Bool,
        replayWindowSize: Int,
        allowRepeatTransmission: Bool
    ) throws(SRTPError) {
        var keys = try SRTPSessionKeys(profile: profile, masterKey: masterKey)
        defer { keys.wipe() }
        try self.init(
            profile: profile,
            sessionKeys: keys,
            sending: sending,
            replayWindowSize: replayWindowSize,
            allowRepeatTransmission: allowRepeatTransmission
        )
    }

    /// Creates one direction from already-derived session keys (RFC 7714's vectors give these; tests only
    /// otherwise).
    init(
        profile: SRTPProfile,
        sessionKeys keys: SRTPSessionKeys,
        sending: Bool,
        replayWindowSize: Int,
        allowRepeatTransmission: Bool
    ) throws(SRTPError) {
        // libsrtp accepts 64 ..< 0x8000 (srtp_stream_init).
        guard replayWindowSize >= 64, replayWindowSize < 0x8000 else {
            throw SRTPError(.badParameter, "replay window size must be in 64..<32768")
        }
        let aead = profile == .aeadAES128GCM
        guard keys.rtpKey.count == 16, keys.rtcpKey.count == 16,
            keys.rtpSalt.count == profile.masterSaltLength, keys.rtcpSalt.count == profile.masterSaltLength,
            aead || (keys.rtpAuthenticationKey.count == 20 && keys.rtcpAuthenticationKey.count == 20)
        else {
            throw SRTPError(.badKeyLength, "session key lengths do not match the profile")
        }
        let cipher = aead ? EVP_aes_128_gcm() : EVP_aes_128_ctr()
        // The sending side's GCM contexts encrypt, the receiving side's decrypt; counter mode is the same
        // keystream XOR both ways.
        let encrypt: Int32 = aead && !sending ? 0 : 1
        func makeContext(_ key: [UInt8]) -> OpaquePointer? {
            guard let context = EVP_CIPHER_CTX_new() else { return nil }
            let ok = key.withUnsafeBufferPointer { key in
                EVP_CipherInit_ex(context, cipher, nil, key.baseAddress, nil, encrypt) == 1
            }
            guard ok else {
                EVP_CIPHER_CTX_free(context)
                return nil
            }
            return context
        }
        guard let rtpCipher = makeContext(keys.rtpKey) else {
            throw SRTPError(.library, "cannot create the SRTP cipher context")
        }
        guard let rtcpCipher = makeContext(keys.rtcpKey) else {
            EVP_CIPHER_CTX_free(rtpCipher)
            throw SRTPError(.library, "cannot create the SRTCP cipher context")
        }
        self.profile = profile
        self.rtpCipher = rtpCipher
        self.rtcpCipher = rtcpCipher
        self.rtpSalt = Self.placeSalt(keys.rtpSalt)
        self.rtcpSalt = Self.placeSalt(keys.rtcpSalt)
        if aead {
            self.authenticationKeys = nil
        } else {
            let storage = UnsafeMutableRawPointer.allocate(byteCount: 2 * Self.hmacKeyBytes, alignment: 16)
            keys.rtpAuthenticationKey.withUnsafeBytes { key in
                braid_hmac_sha1_key_init(storage, key.baseAddress, key.count)
            }
            keys.rtcpAuthenticationKey.withUnsafeBytes { key in
                braid_hmac_sha1_key_init(storage + Self.hmacKeyBytes, key.baseAddress, key.count)
            }
            self.authenticationKeys = storage
        }
        self.streams = SRTPStreamTable(replayWindowSize: sending ? 128 : replayWindowSize)
        self.allowRepeatTransmission = allowRepeatTransmission
    }

    deinit {
        // EVP_CIPHER_CTX_free cleanses the key schedules.
        EVP_CIPHER_CTX_free(self.rtpCipher)
        EVP_CIPHER_CTX_free(self.rtcpCipher)
        if let keys = self.authenticationKeys {
            braid_cleanse(keys, 2 * Self.hmacKeyBytes)
            keys.deallocate()
        }
        self.streams.destroy()
    }

    /// A session salt as the top octets of a big-endian 128-bit value.
    private static func placeSalt(_ salt: [UInt8]) -> UInt128 {
        var value: UInt128 = 0
        for byte in salt { value = value << 8 | UInt128(byte) }
        return value << UInt128(8 * (16 - salt.count))
    }

    /// How many SSRCs have state (tests).
    var streamCount: Int { self.streams.count }

    /// Makes the next SRTCP packet from `ssrc` carry `index` (tests: RFC 7714 §17 uses index 0x5d4).
    func setNextRTCPIndex(ssrc: UInt32, _ index: UInt32) {
        let slot = self.streams.findOrInsert(ssrc)
        self.streams.state(slot).pointee.rtcpIndex = index &- 1
    }

    // MARK: - Protect (sending side)

    /// Prefetches what ``protectRTP(_:into:)`` reads, a level per stage: the stream table's header and the
    /// RTP cipher context, then the streams' states and the cipher's key schedule and GHASH table.
    func prefetch(stage: Int) {
        switch stage {
        case 0:
            self.streams.prefetch(stage: 0)
            braid_prefetch(UnsafeRawPointer(self.rtpCipher))
        case 1:
            self.streams.prefetch(stage: 1)
            if let data = EVP_CIPHER_CTX_get_cipher_data(self.rtpCipher) {
                braid_prefetch_lines(data, Self.cipherDataLines)
            }
        default:
            break
        }
    }

    /// Cache lines of OpenSSL's AES-GCM state read per packet: the AES-128 key schedule (176 bytes) and the
    /// GCM context with its 256-byte GHASH table.
    private static let cipherDataLines: CInt = 10

    /// Protects one RTP packet from `packet` into `destination` (which may be the same memory) and returns
    /// the SRTP packet's length. `packet` is only read.
    func protectRTP(_ packet: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer)
        throws(SRTPError) -> Int
    {
        let tagLength = self.profile.rtpTrailerLength
        guard packet.count >= 12, let source = packet.baseAddress else {
            throw SRTPError(.badParameter, "packet shorter than its fixed header")
        }
        guard packet.count <= Int(Int32.max) - tagLength else {
            throw SRTPError(.badParameter, "packet too large")
        }
        guard destination.count >= packet.count + tagLength, let target = destination.baseAddress else {
            throw SRTPError(.bufferTooSmall, "destination cannot hold the packet and its trailer")
        }
        let length = packet.count
        guard let headerLength = rtpHeaderLength(source, length) else {
            throw malformed("RTP header (CSRCs, extension) longer than the packet")
        }
        let ssrc = loadUInt32(source, 8)
        let slot = self.streams.findOrInsert(ssrc)
        let (index, delta) = srtpEstimateIndex(
            highest: self.streams.state(slot).pointee.rtpIndex, sequence: loadUInt16(source, 2))
        switch self.streams.checkRTP(slot, delta: delta) {
        case .fresh: break
        case .replayed: guard self.allowRepeatTransmission else { throw replayed() }
        case .tooOld: throw tooOld()
        }
        self.streams.acceptRTP(slot, delta: delta)

        let input = prepareInput(source, length, target)
        if input != UnsafeRawPointer(target) { target.copyMemory(from: input, byteCount: headerLength) }
        let payloadLength = length - headerLength
        let ok: Bool
        if self.profile == .aeadAES128GCM {
            var iv = (self.rtpSalt ^ UInt128(ssrc) << 80 ^ UInt128(index) << 32).bigEndian
            ok = withUnsafeBytes(of: &iv) { iv in
                gcmSeal(self.rtpCipher, iv: iv.baseAddress!, aad: input, aadLength: headerLength,
                        input: input + headerLength, output: target + headerLength, length: payloadLength,
                        tag: target + length)
            }
        } else {
            var iv = (self.rtpSalt ^ UInt128(ssrc) << 64 ^ UInt128(index) << 16).bigEndian
            ok = withUnsafeBytes(of: &iv) { iv in
                ctrXOR(self.rtpCipher, iv: iv.baseAddress!, input: input + headerLength,
                       output: target + headerLength, length: payloadLength)
            }
            guard ok else { throw cipherFailure() }
            // tag = HMAC-SHA1(k_a, authenticated portion || ROC)[0..<10] (RFC 3711 §4.2).
            var roc = UInt32(truncatingIfNeeded: index >> 16).bigEndian
            var digest: SHA1Digest = (0, 0, 0)
            withUnsafeBytes(of: &roc) { roc in
                withUnsafeMutableBytes(of: &digest) { digest in
                    braid_hmac_sha1_tag(self.authenticationKeys!, target, length, roc.baseAddress, 4,
                                        digest.baseAddress)
                }
            }
            withUnsafeBytes(of: &digest) { digest in
                (target + length).copyMemory(from: digest.baseAddress!, byteCount: tagLength)
            }
        }
        guard ok else { throw cipherFailure() }
        return length + tagLength
    }

    /// Protects one RTCP compound packet into `destination` and returns the SRTCP packet's length.
    func protectRTCP(_ packet: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer)
        throws(SRTPError) -> Int
    {
        let trailerLength = self.profile.rtcpTrailerLength
        guard packet.count >= 8, let source = packet.baseAddress else {
            throw SRTPError(.badParameter, "packet shorter than its fixed header")
        }
        guard packet.count <= Int(Int32.max) - trailerLength else {
            throw SRTPError(.badParameter, "packet too large")
        }
        guard destination.count >= packet.count + trailerLength, let target = destination.baseAddress else {
            throw SRTPError(.bufferTooSmall, "destination cannot hold the packet and its trailer")
        }
        let length = packet.count
        let ssrc = loadUInt32(source, 4)
        let slot = self.streams.findOrInsert(ssrc)
        guard let index = self.streams.nextRTCPIndex(slot) else {
            throw SRTPError(.library, "SRTCP index exhausted: the master key must be replaced",
                            libraryStatus: SRTPStatus.keyExpired)
        }
        var word = (0x8000_0000 | index).bigEndian  // E = 1: encrypted
        let input = prepareInput(source, length, target)
        if input != UnsafeRawPointer(target) { target.copyMemory(from: input, byteCount: 8) }
        let ok: Bool
        if self.profile == .aeadAES128GCM {
            // header | encrypted payload | tag | E+index; AAD = header || E+index (RFC 7714 §9.2).
            var iv = (self.rtcpSalt ^ UInt128(ssrc) << 80 ^ UInt128(index) << 32).bigEndian
            ok = withUnsafeBytes(of: &word) { word in
                withUnsafeBytes(of: &iv) { iv in
                    gcmSeal(self.rtcpCipher, iv: iv.baseAddress!, aad: input, aadLength: 8,
                            aad2: word.baseAddress!, aad2Length: 4, input: input + 8, output: target + 8,
                            length: length - 8, tag: target + length)
                }
            }
            withUnsafeBytes(of: &word) { word in
                (target + length + 16).copyMemory(from: word.baseAddress!, byteCount: 4)
            }
        } else {
            // header | encrypted payload | E+index | tag; tag = HMAC over all before it (RFC 3711 §3.4).
            var iv = (self.rtcpSalt ^ UInt128(ssrc) << 64 ^ UInt128(index) << 16).bigEndian
            ok = withUnsafeBytes(of: &iv) { iv in
                ctrXOR(self.rtcpCipher, iv: iv.baseAddress!, input: input + 8, output: target + 8,
                       length: length - 8)
            }
            withUnsafeBytes(of: &word) { word in
                (target + length).copyMemory(from: word.baseAddress!, byteCount: 4)
            }
            var digest: SHA1Digest = (0, 0, 0)
            withUnsafeMutableBytes(of: &digest) { digest in
                braid_hmac_sha1_tag(self.authenticationKeys! + Self.hmacKeyBytes, target, length + 4, nil, 0,
                                    digest.baseAddress)
            }
            withUnsafeBytes(of: &digest) { digest in
                (target + length + 4).copyMemory(from: digest.baseAddress!, byteCount: 10)
            }
        }
        guard ok else { throw cipherFailure() }
        return length + trailerLength
    }

    // MARK: - Unprotect (receiving side)

    /// Verifies and decrypts one SRTP packet from `packet` into `destination` (which may be the same
    /// memory) and returns the RTP packet's length.
    func unprotectRTP(_ packet: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer)
        throws(SRTPError) -> Int
    {
        let tagLength = self.profile.rtpTrailerLength
        guard packet.count >= 12, let source = packet.baseAddress else {
            throw SRTPError(.badParameter, "packet shorter than its fixed header")
        }
        guard packet.count <= Int(Int32.max) else {
            throw SRTPError(.badParameter, "packet too large")
        }
        guard destination.count >= packet.count, let target = destination.baseAddress else {
            throw SRTPError(.bufferTooSmall, "destination cannot hold the packet and its trailer")
        }
        let length = packet.count
        guard let headerLength = rtpHeaderLength(source, length), headerLength + tagLength <= length else {
            throw malformed("SRTP packet shorter than its header and tag")
        }
        let ssrc = loadUInt32(source, 8)
        let sequence = loadUInt16(source, 2)
        let known = self.streams.find(ssrc)
        let index: UInt64
        let delta: Int
        if let slot = known {
            (index, delta) = srtpEstimateIndex(highest: self.streams.state(slot).pointee.rtpIndex,
                                               sequence: sequence)
            switch self.streams.checkRTP(slot, delta: delta) {
            case .fresh: break
            case .replayed: throw replayed()
            case .tooOld: throw tooOld()
            }
        } else {
            // A new SSRC starts at ROC 0 with this packet as its highest index (libsrtp's template stream).
            index = UInt64(sequence)
            delta = Int(sequence)
        }

        let input = prepareInput(source, length, target)
        let payloadLength = length - headerLength - tagLength
        if self.profile == .aeadAES128GCM {
            var iv = (self.rtpSalt ^ UInt128(ssrc) << 80 ^ UInt128(index) << 32).bigEndian
            let ok = withUnsafeBytes(of: &iv) { iv in
                gcmOpen(self.rtpCipher, iv: iv.baseAddress!, aad: input, aadLength: headerLength,
                        input: input + headerLength, output: target + headerLength, length: payloadLength,
                        tag: input + headerLength + payloadLength)
            }
            guard ok else { throw authenticationFailed() }
        } else {
            var roc = UInt32(truncatingIfNeeded: index >> 16).bigEndian
            var digest: SHA1Digest = (0, 0, 0)
            withUnsafeBytes(of: &roc) { roc in
                withUnsafeMutableBytes(of: &digest) { digest in
                    braid_hmac_sha1_tag(self.authenticationKeys!, input, length - tagLength, roc.baseAddress, 4,
                                        digest.baseAddress)
                }
            }
            let matches = withUnsafeBytes(of: &digest) { digest in
                CRYPTO_memcmp(digest.baseAddress, input + length - tagLength, tagLength) == 0
            }
            guard matches else { throw authenticationFailed() }
            var iv = (self.rtpSalt ^ UInt128(ssrc) << 64 ^ UInt128(index) << 16).bigEndian
            let ok = withUnsafeBytes(of: &iv) { iv in
                ctrXOR(self.rtpCipher, iv: iv.baseAddress!, input: input + headerLength,
                       output: target + headerLength, length: payloadLength)
            }
            guard ok else { throw cipherFailure() }
        }
        if input != UnsafeRawPointer(target) { target.copyMemory(from: input, byteCount: headerLength) }
        let slot = known ?? self.streams.insert(ssrc)
        self.streams.acceptRTP(slot, delta: delta)
        return length - tagLength
    }

    /// Verifies and decrypts one SRTCP packet into `destination` and returns the RTCP packet's length.
    func unprotectRTCP(_ packet: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer)
        throws(SRTPError) -> Int
    {
        let trailerLength = self.profile.rtcpTrailerLength
        guard packet.count >= 8, let source = packet.baseAddress else {
            throw SRTPError(.badParameter, "packet shorter than its fixed header")
        }
        guard packet.count <= Int(Int32.max) else {
            throw SRTPError(.badParameter, "packet too large")
        }
        guard destination.count >= packet.count, let target = destination.baseAddress else {
            throw SRTPError(.bufferTooSmall, "destination cannot hold the packet and its trailer")
        }
        let length = packet.count
        guard length >= 8 + trailerLength else {
            throw malformed("SRTCP packet shorter than its header and trailer")
        }
        let ssrc = loadUInt32(source, 4)
        let known = self.streams.find(ssrc)
        let aead = self.profile == .aeadAES128GCM
        // GCM: ... | tag | E+index.   AES-CM: ... | E+index | tag.
        let wordOffset = aead ? length - 4 : length - 14
        let word = loadUInt32(source, wordOffset)
        let encrypted = word & 0x8000_0000 != 0
        let index = word & 0x7fff_ffff
        if !aead && !encrypted {
            // libsrtp refuses an unencrypted SRTCP packet when the policy encrypts (srtp_err_status_cant_check).
            throw SRTPError(.library, "SRTCP packet not encrypted (E flag clear)",
                            libraryStatus: SRTPStatus.cantCheck)
        }
        let verdict = known.map { self.streams.checkRTCP($0, index: index) } ?? .fresh
        switch verdict {
        case .fresh: break
        case .replayed: throw replayed()
        case .tooOld: throw tooOld()
        }

        let input = prepareInput(source, length, target)
        let plainLength = length - trailerLength
        if aead {
            var iv = (self.rtcpSalt ^ UInt128(ssrc) << 80 ^ UInt128(index) << 32).bigEndian
            let tag = input + plainLength
            let wordPointer = input + wordOffset
            let ok = withUnsafeBytes(of: &iv) { iv -> Bool in
                if encrypted {
                    // AAD = header || E+index; the rest up to the tag is cipher (RFC 7714 §9.2).
                    return gcmOpen(self.rtcpCipher, iv: iv.baseAddress!, aad: input, aadLength: 8,
                                   aad2: wordPointer, aad2Length: 4, input: input + 8, output: target + 8,
                                   length: plainLength - 8, tag: tag)
                }
                // E = 0: tagged only, the whole packet and E+index are AAD (RFC 7714 §9.3).
                return gcmOpen(self.rtcpCipher, iv: iv.baseAddress!, aad: input, aadLength: plainLength,
                               aad2: wordPointer, aad2Length: 4, input: input, output: target, length: 0,
                               tag: tag)
            }
            guard ok else { throw authenticationFailed() }
            if input != UnsafeRawPointer(target) {
                target.copyMemory(from: input, byteCount: encrypted ? 8 : plainLength)
            }
        } else {
            var digest: SHA1Digest = (0, 0, 0)
            withUnsafeMutableBytes(of: &digest) { digest in
                braid_hmac_sha1_tag(self.authenticationKeys! + Self.hmacKeyBytes, input, length - 10, nil, 0,
                                    digest.baseAddress)
            }
            let matches = withUnsafeBytes(of: &digest) { digest in
                CRYPTO_memcmp(digest.baseAddress, input + length - 10, 10) == 0
            }
            guard matches else { throw authenticationFailed() }
            var iv = (self.rtcpSalt ^ UInt128(ssrc) << 64 ^ UInt128(index) << 16).bigEndian
            let ok = withUnsafeBytes(of: &iv) { iv in
                ctrXOR(self.rtcpCipher, iv: iv.baseAddress!, input: input + 8, output: target + 8,
                       length: plainLength - 8)
            }
            guard ok else { throw cipherFailure() }
            if input != UnsafeRawPointer(target) { target.copyMemory(from: input, byteCount: 8) }
        }
        let slot = known ?? self.streams.insert(ssrc)
        self.streams.acceptRTCP(slot, index: index)
        return plainLength
    }
}

// MARK: - Helpers

/// The `srtp_err_status_t` numbers this implementation reports in ``SRTPError/libraryStatus``, the same
/// as libsrtp's for the same failure, so errors from both implementations compare equal.
enum SRTPStatus {
    static let badParameter: Int32 = 2
    static let authenticationFailed: Int32 = 7
    static let cipherFailed: Int32 = 8
    static let replayed: Int32 = 9
    static let tooOld: Int32 = 10
    static let cantCheck: Int32 = 14
    static let keyExpired: Int32 = 15
}

@inline(never)
private func replayed(file: StaticString = #fileID, line: UInt = #line) -> SRTPError {
    SRTPError(.replayed, "packet index already received", libraryStatus: SRTPStatus.replayed, file: file,
              line: line)
}

@inline(never)
private func tooOld(file: StaticString = #fileID, line: UInt = #line) -> SRTPError {
    SRTPError(.replayTooOld, "packet index older than the replay window", libraryStatus: SRTPStatus.tooOld,
              file: file, line: line)
}

@inline(never)
private func authenticationFailed(file: StaticString = #fileID, line: UInt = #line) -> SRTPError {
    SRTPError(.authenticationFailed, "authentication tag mismatch", libraryStatus: SRTPStatus.authenticationFailed,
              file: file, line: line)
}

@inline(never)
private func malformed(_ reason: StaticString, file: StaticString = #fileID, line: UInt = #line) -> SRTPError {
    SRTPError(.badParameter, reason, libraryStatus: SRTPStatus.badParameter, file: file, line: line)
}

@inline(never)
private func cipherFailure(file: StaticString = #fileID, line: UInt = #line) -> SRTPError {
    SRTPError(.library, "OpenSSL cipher failure", libraryStatus: SRTPStatus.cipherFailed, file: file, line: line)
}

/// 20 octets of SHA-1 output on the stack.
private typealias SHA1Digest = (UInt64, UInt64, UInt32)

@inline(__always)
private func loadUInt32(_ pointer: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    UInt32(bigEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}

@inline(__always)
private func loadUInt16(_ pointer: UnsafeRawPointer, _ offset: Int) -> UInt16 {
    UInt16(bigEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}

/// Length of the RTP header with its CSRC list and header extension
/// ([RFC 3550 §5.1](https://www.rfc-editor.org/rfc/rfc3550#section-5.1),
/// [§5.3.1](https://www.rfc-editor.org/rfc/rfc3550#section-5.3.1)), or nil when `length` octets cannot hold
/// it (libsrtp's `srtp_validate_rtp_header`; like libsrtp, the version bits are not checked).
@inline(__always)
private func rtpHeaderLength(_ packet: UnsafeRawPointer, _ length: Int) -> Int? {
    guard length >= 12 else { return nil }
    let first = packet.load(as: UInt8.self)
    var headerLength = 12 + 4 * Int(first & 0x0f)
    if first & 0x10 != 0 {
        guard length >= headerLength + 4 else { return nil }
        headerLength += 4 + 4 * Int(loadUInt16(packet, headerLength + 2))
    }
    return headerLength <= length ? headerLength : nil
}

/// Where a transform reads from: `source` itself when it is the destination or does not overlap it (the
/// cipher then writes from one to the other); otherwise the destination, after moving the packet there
/// (OpenSSL allows input and output to be equal, not to partly overlap).
@inline(__always)
private func prepareInput(_ source: UnsafeRawPointer, _ length: Int, _ target: UnsafeMutableRawPointer)
    -> UnsafeRawPointer
{
    let targetStart = UnsafeRawPointer(target)
    if targetStart == source || targetStart >= source + length || source >= targetStart + length {
        return source
    }
    target.copyMemory(from: source, byteCount: length)  // memmove
    return targetStart
}

@inline(__always)
private func bytes(_ pointer: UnsafeRawPointer) -> UnsafePointer<UInt8> {
    pointer.assumingMemoryBound(to: UInt8.self)
}

@inline(__always)
private func mutableBytes(_ pointer: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt8> {
    pointer.assumingMemoryBound(to: UInt8.self)
}

/// XORs `length` octets of AES-128 counter-mode keystream starting at counter block `iv` into `output`.
@inline(__always)
private func ctrXOR(
    _ context: OpaquePointer,
    iv: UnsafeRawPointer,
    input: UnsafeRawPointer,
    output: UnsafeMutableRawPointer,
    length: Int
) -> Bool {
    guard EVP_EncryptInit_ex(context, nil, nil, nil, bytes(iv)) == 1 else { return false }
    guard length > 0 else { return true }
    var written: Int32 = 0
    return EVP_EncryptUpdate(context, mutableBytes(output), &written, bytes(input), Int32(length)) == 1
}

/// The part of an AES-GCM operation both directions share: a new IV, AAD `aad` then `aad2`, then `length`
/// octets from `input` to `output` (`encrypt` chooses the direction).
@inline(__always)
private func gcmUpdate(
    _ context: OpaquePointer,
    encrypt: Bool,
    iv: UnsafeRawPointer,
    aad: UnsafeRawPointer,
    aadLength: Int,
    aad2: UnsafeRawPointer?,
    aad2Length: Int,
    input: UnsafeRawPointer,
    output: UnsafeMutableRawPointer,
    length: Int
) -> Bool {
    var written: Int32 = 0
    guard EVP_CipherInit_ex(context, nil, nil, nil, bytes(iv), encrypt ? 1 : 0) == 1,
        EVP_CipherUpdate(context, nil, &written, bytes(aad), Int32(aadLength)) == 1
    else { return false }
    if let aad2, aad2Length > 0 {
        guard EVP_CipherUpdate(context, nil, &written, bytes(aad2), Int32(aad2Length)) == 1 else { return false }
    }
    guard length > 0 else { return true }
    return EVP_CipherUpdate(context, mutableBytes(output), &written, bytes(input), Int32(length)) == 1
}

/// One AES-GCM encryption: AAD `aad` then `aad2`, `length` octets from `input` to `output`, the 16-octet
/// tag written at `tag`.
@inline(__always)
private func gcmSeal(
    _ context: OpaquePointer,
    iv: UnsafeRawPointer,
    aad: UnsafeRawPointer,
    aadLength: Int,
    aad2: UnsafeRawPointer? = nil,
    aad2Length: Int = 0,
    input: UnsafeRawPointer,
    output: UnsafeMutableRawPointer,
    length: Int,
    tag: UnsafeMutableRawPointer
) -> Bool {
    var written: Int32 = 0
    guard
        gcmUpdate(
            context, encrypt: true, iv: iv, aad: aad, aadLength: aadLength, aad2: aad2, aad2Length: aad2Length,
            input: input, output: output, length: length),
        EVP_CipherFinal_ex(context, mutableBytes(output + length), &written) == 1
    else { return false }
    return EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, 16, tag) == 1
}

/// One AES-GCM decryption and tag check; false when the tag does not verify. OpenSSL reports a mismatch
/// without touching its error queue, so a forged packet costs no allocation.
@inline(__always)
private func gcmOpen(
    _ context: OpaquePointer,
    iv: UnsafeRawPointer,
    aad: UnsafeRawPointer,
    aadLength: Int,
    aad2: UnsafeRawPointer? = nil,
    aad2Length: Int = 0,
    input: UnsafeRawPointer,
    output: UnsafeMutableRawPointer,
    length: Int,
    tag: UnsafeRawPointer
) -> Bool {
    guard
        gcmUpdate(
            context, encrypt: false, iv: iv, aad: aad, aadLength: aadLength, aad2: aad2, aad2Length: aad2Length,
            input: input, output: output, length: length)
    else { return false }
    // OpenSSL copies the expected tag into the context; the pointer is not written through.
    guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, 16, UnsafeMutableRawPointer(mutating: tag)) == 1
    else { return false }
    var written: Int32 = 0
    return EVP_CipherFinal_ex(context, mutableBytes(output + length), &written) == 1
}
