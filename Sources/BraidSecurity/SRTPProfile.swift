/// An SRTP protection profile this module can negotiate over DTLS and run (on OpenSSL, see `SRTPTransform`).
///
/// The DTLS-SRTP identifiers come from the IANA "DTLS-SRTP Protection Profiles" registry
/// ([RFC 5764 §4.1.2](https://www.rfc-editor.org/rfc/rfc5764#section-4.1.2) and
/// [RFC 7714 §14.2](https://www.rfc-editor.org/rfc/rfc7714#section-14.2)):
///
/// ```
/// SRTP_AES128_CM_HMAC_SHA1_80 = {0x00, 0x01}
/// SRTP_AEAD_AES_128_GCM       = {0x00, 0x07}
/// ```
///
/// Prefer ``aeadAES128GCM``: one AES-GCM pass is about three times cheaper per packet than AES-CM plus
/// HMAC-SHA1 (`Benchmarks/README.md`) and its tag is the whole trailer.
public enum SRTPProfile: Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// AES-128 counter mode with an 80-bit HMAC-SHA1 tag ([RFC 3711](https://www.rfc-editor.org/rfc/rfc3711)).
    case aesCM128HMACSHA1_80
    /// AES-128 in Galois/Counter Mode with a 16-byte tag ([RFC 7714](https://www.rfc-editor.org/rfc/rfc7714)).
    case aeadAES128GCM

    /// The two-byte SRTPProtectionProfile value carried in the DTLS `use_srtp` extension.
    public var dtlsProfileID: UInt16 {
        switch self {
        case .aesCM128HMACSHA1_80: 0x0001
        case .aeadAES128GCM: 0x0007
        }
    }

    /// The profile's name in the IANA registry (and in OpenSSL's `use_srtp` list).
    public var dtlsProfileName: String {
        switch self {
        case .aesCM128HMACSHA1_80: "SRTP_AES128_CM_SHA1_80"
        case .aeadAES128GCM: "SRTP_AEAD_AES_128_GCM"
        }
    }

    /// Looks a profile up by its DTLS `use_srtp` identifier; `nil` for profiles this module does not run.
    public init?(dtlsProfileID: UInt16) {
        switch dtlsProfileID {
        case 0x0001: self = .aesCM128HMACSHA1_80
        case 0x0007: self = .aeadAES128GCM
        default: return nil
        }
    }

    /// Master key length in bytes (both profiles use AES-128).
    public var masterKeyLength: Int { 16 }

    /// Master salt length in bytes: 112 bits for AES-CM (RFC 3711 §8.2), 96 bits for AES-GCM (RFC 7714 §12).
    public var masterSaltLength: Int {
        switch self {
        case .aesCM128HMACSHA1_80: 14
        case .aeadAES128GCM: 12
        }
    }

    /// Bytes of `EXTRACTOR-dtls_srtp` keying material the profile needs: 2 × (key + salt)
    /// ([RFC 5764 §4.2](https://www.rfc-editor.org/rfc/rfc5764#section-4.2)).
    public var keyingMaterialLength: Int { 2 * (self.masterKeyLength + self.masterSaltLength) }

    /// Bytes SRTP protection appends to an RTP packet (the authentication tag; no MKI is used).
    public var rtpTrailerLength: Int {
        switch self {
        case .aesCM128HMACSHA1_80: 10
        case .aeadAES128GCM: 16
        }
    }

    /// Bytes SRTCP protection appends to an RTCP packet: the 4-byte E flag + SRTCP index, plus the tag
    /// ([RFC 3711 §3.4](https://www.rfc-editor.org/rfc/rfc3711#section-3.4),
    /// [RFC 7714 §9.2](https://www.rfc-editor.org/rfc/rfc7714#section-9.2)).
    public var rtcpTrailerLength: Int { 4 + self.rtpTrailerLength }

    public var description: String { self.dtlsProfileName }
}

/// One direction's SRTP master key and master salt.
///
/// The bytes are secret; this type does not print them.
public struct SRTPMasterKey: Hashable, Sendable, CustomStringConvertible {
    /// The master key (16 bytes for the profiles here).
    public let key: [UInt8]
    /// The master salt (14 bytes for AES-CM, 12 for AES-GCM).
    public let salt: [UInt8]

    /// Checks the lengths against `profile`.
    /// - Throws: ``SRTPError`` with code ``SRTPError/Code/badKeyLength``.
    public init(key: [UInt8], salt: [UInt8], profile: SRTPProfile) throws(SRTPError) {
        guard key.count == profile.masterKeyLength else {
            throw SRTPError(.badKeyLength, "master key length does not match the profile")
        }
        guard salt.count == profile.masterSaltLength else {
            throw SRTPError(.badKeyLength, "master salt length does not match the profile")
        }
        self.key = key
        self.salt = salt
    }

    public var description: String { "SRTPMasterKey(\(self.key.count)+\(self.salt.count) bytes)" }
}

/// Which end of the DTLS handshake this side was; it decides which half of the exported keying
/// material protects what we send.
public enum DTLSRole: Hashable, Sendable {
    /// Sent the ClientHello (SDP `a=setup:active`).
    case client
    /// Answered the ClientHello (SDP `a=setup:passive`).
    case server
}

/// The master keys for both directions of one DTLS-SRTP association.
public struct SRTPKeys: Hashable, Sendable {
    /// The negotiated profile.
    public let profile: SRTPProfile
    /// Protects what this side sends.
    public let local: SRTPMasterKey
    /// Unprotects what the peer sends.
    public let remote: SRTPMasterKey

    /// Pairs two master keys for `profile`.
    public init(profile: SRTPProfile, local: SRTPMasterKey, remote: SRTPMasterKey) {
        self.profile = profile
        self.local = local
        self.remote = remote
    }

    /// Splits DTLS exported keying material ([RFC 5764 §4.2](https://www.rfc-editor.org/rfc/rfc5764#section-4.2)):
    ///
    /// ```
    /// +---------------------+---------------------+-------------+-------------+
    /// | client write key    | server write key    | client salt | server salt |
    /// +---------------------+---------------------+-------------+-------------+
    ///   key length            key length            salt length   salt length
    /// ```
    ///
    /// The client protects with the client key and salt; the server with the server's.
    /// - Throws: ``SRTPError`` with code ``SRTPError/Code/badKeyLength`` when the material is not exactly
    ///   ``SRTPProfile/keyingMaterialLength`` bytes.
    public init(keyingMaterial: some Collection<UInt8>, profile: SRTPProfile, role: DTLSRole) throws(SRTPError) {
        let material = Array(keyingMaterial)
        guard material.count == profile.keyingMaterialLength else {
            throw SRTPError(.badKeyLength, "keying material length does not match the profile")
        }
        let keyLength = profile.masterKeyLength
        let saltLength = profile.masterSaltLength
        let clientKey = Array(material[0..<keyLength])
        let serverKey = Array(material[keyLength..<(2 * keyLength)])
        let clientSalt = Array(material[(2 * keyLength)..<(2 * keyLength + saltLength)])
        let serverSalt = Array(material[(2 * keyLength + saltLength)...])
        let client = try SRTPMasterKey(key: clientKey, salt: clientSalt, profile: profile)
        let server = try SRTPMasterKey(key: serverKey, salt: serverSalt, profile: profile)
        self.profile = profile
        switch role {
        case .client:
            self.local = client
            self.remote = server
        case .server:
            self.local = server
            self.remote = client
        }
    }
}
