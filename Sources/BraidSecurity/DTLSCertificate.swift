import Synchronization
internal import CBraidShims
internal import COpenSSL

/// A certificate fingerprint as carried in SDP `a=fingerprint`
/// ([RFC 8122 §5](https://www.rfc-editor.org/rfc/rfc8122#section-5)):
///
/// ```
/// fingerprint-attribute = "fingerprint" ":" hash-func SP fingerprint
/// hash-func             = "sha-1" / "sha-224" / "sha-256" / "sha-384" / "sha-512" / ...
/// fingerprint           = 2UHEX *(":" 2UHEX)    ; each byte in uppercase hex, colon separated
/// ```
public struct DTLSFingerprint: Hashable, Sendable, CustomStringConvertible {
    /// The hash functions this module computes.
    public enum Algorithm: String, Hashable, Sendable, CaseIterable {
        case sha1 = "sha-1"
        case sha256 = "sha-256"
        case sha384 = "sha-384"
        case sha512 = "sha-512"

        /// Digest length in bytes.
        public var digestLength: Int {
            switch self {
            case .sha1: 20
            case .sha256: 32
            case .sha384: 48
            case .sha512: 64
            }
        }

        /// The OpenSSL digest (a static object owned by OpenSSL).
        var evp: OpaquePointer? {
            switch self {
            case .sha1: EVP_sha1()
            case .sha256: EVP_sha256()
            case .sha384: EVP_sha384()
            case .sha512: EVP_sha512()
            }
        }
    }

    /// The hash function.
    public let algorithm: Algorithm
    /// The digest of the DER-encoded certificate.
    public let bytes: [UInt8]

    /// Wraps a digest, checking its length against `algorithm`.
    public init(algorithm: Algorithm, bytes: [UInt8]) throws(DTLSError) {
        guard bytes.count == algorithm.digestLength else {
            throw DTLSError(.badFingerprint, "a \(algorithm.rawValue) digest has \(algorithm.digestLength) bytes")
        }
        self.algorithm = algorithm
        self.bytes = bytes
    }

    /// Parses the value of an SDP `a=fingerprint:` attribute, e.g. `sha-256 AB:CD:...`.
    ///
    /// The hash name is matched case-insensitively (RFC 8122 §5: "case-insensitive") and lowercase hex is
    /// accepted from lenient peers.
    public init(sdpValue: some StringProtocol) throws(DTLSError) {
        let parts = sdpValue.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2 else {
            throw DTLSError(.badFingerprint, "expected 'hash-func fingerprint'")
        }
        guard let algorithm = Algorithm(rawValue: parts[0].lowercased()) else {
            throw DTLSError(.badFingerprint, "unsupported hash function \(parts[0])")
        }
        var digest: [UInt8] = []
        digest.reserveCapacity(algorithm.digestLength)
        for pair in parts[1].split(separator: ":", omittingEmptySubsequences: false) {
            guard pair.utf8.count == 2, let byte = UInt8(pair, radix: 16) else {
                throw DTLSError(.badFingerprint, "fingerprint bytes must be two hex digits separated by ':'")
            }
            digest.append(byte)
        }
        try self.init(algorithm: algorithm, bytes: digest)
    }

    /// The digest as uppercase hex pairs joined by colons: `AB:CD:...`.
    public var hexString: String {
        let digits = Array("0123456789ABCDEF".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(self.bytes.count * 3)
        for (index, byte) in self.bytes.enumerated() {
            if index > 0 { text.append(UInt8(ascii: ":")) }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The SDP attribute value: `sha-256 AB:CD:...`.
    public var sdpValue: String { "\(self.algorithm.rawValue) \(self.hexString)" }

    public var description: String { self.sdpValue }

    /// Computes the fingerprint of an `X509 *` with `algorithm`.
    static func of(certificate: OpaquePointer, algorithm: Algorithm) -> DTLSFingerprint? {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard X509_digest(certificate, algorithm.evp, &digest, &length) == 1,
            Int(length) == algorithm.digestLength
        else { return nil }
        return try? DTLSFingerprint(algorithm: algorithm, bytes: Array(digest[..<Int(length)]))
    }
}

/// A DTLS identity: a self-signed ECDSA P-256 X.509 certificate and its private key.
///
/// WebRTC authenticates DTLS by the certificate's fingerprint in the signalled SDP, not by a CA, so a
/// self-signed certificate is the norm; P-256 keeps handshake flights small. One certificate can serve
/// every connection of a node.
///
/// The type is `@unchecked Sendable` because it never changes after `init` and OpenSSL allows concurrent
/// read-only use of an `X509` and `EVP_PKEY` (each SSL context takes its own reference).
public final class DTLSCertificate: @unchecked Sendable {
    /// `X509 *`, owned.
    let certificate: OpaquePointer
    /// `EVP_PKEY *`, owned.
    let privateKey: OpaquePointer

    /// The SHA-256 fingerprint to put in SDP (`a=fingerprint:sha-256 ...`).
    public let fingerprint: DTLSFingerprint

    /// One configured `SSL_CTX` per SRTP profile list, shared by every ``DTLSEndpoint`` of this identity
    /// (each holds a reference): a context costs tens of KB and a node has thousands of endpoints.
    /// OpenSSL allows `SSL_new` on one context from several threads once it is configured.
    let sharedContexts = Mutex<[String: OpaquePointer]>([:])

    /// Generates a fresh key and a self-signed certificate.
    /// - Parameters:
    ///   - commonName: the subject and issuer CN.
    ///   - validityDays: days from now until `notAfter`. `notBefore` is back-dated one day so that peers
    ///     whose clocks run slow still accept the certificate.
    public init(commonName: String = "braid", validityDays: Int = 30) throws(DTLSError) {
        guard validityDays > 0, validityDays <= 3650 else {
            throw DTLSError(.badParameter, "validity must be 1...3650 days")
        }
        guard let keyRaw = braid_evp_pkey_ec_p256_generate() else {
            throw DTLSError(.badCertificate, "P-256 key generation failed: \(openSSLErrors())")
        }
        let key = OpaquePointer(keyRaw)
        guard let x509 = X509_new() else {
            EVP_PKEY_free(key)
            throw DTLSError(.badCertificate, "X509_new failed")
        }
        do throws(DTLSError) {
            try Self.fill(x509, key: key, commonName: commonName, validityDays: validityDays)
        } catch {
            X509_free(x509)
            EVP_PKEY_free(key)
            throw error
        }
        guard let fingerprint = DTLSFingerprint.of(certificate: x509, algorithm: .sha256) else {
            X509_free(x509)
            EVP_PKEY_free(key)
            throw DTLSError(.badCertificate, "cannot hash the certificate")
        }
        self.certificate = x509
        self.privateKey = key
        self.fingerprint = fingerprint
    }

    private static func fill(
        _ x509: OpaquePointer,
        key: OpaquePointer,
        commonName: String,
        validityDays: Int
    ) throws(DTLSError) {
        guard X509_set_version(x509, 2) == 1 else {  // 2 means X.509 v3
            throw DTLSError(.badCertificate, "X509_set_version failed")
        }
        // A random positive 127-bit serial (RFC 5280 §4.1.2.2: positive, at most 20 octets).
        var serial = [UInt8](repeating: 0, count: 16)
        guard RAND_bytes(&serial, Int32(serial.count)) == 1 else {
            throw DTLSError(.badCertificate, "RAND_bytes failed")
        }
        serial[0] = (serial[0] & 0x7f) | 0x01
        guard let number = BN_bin2bn(serial, Int32(serial.count), nil) else {
            throw DTLSError(.badCertificate, "BN_bin2bn failed")
        }
        defer { BN_free(number) }
        guard BN_to_ASN1_INTEGER(number, X509_get_serialNumber(x509)) != nil else {
            throw DTLSError(.badCertificate, "cannot set the serial number")
        }
        let day = 86_400
        guard X509_gmtime_adj(X509_getm_notBefore(x509), -day) != nil,
            X509_gmtime_adj(X509_getm_notAfter(x509), validityDays * day) != nil
        else {
            throw DTLSError(.badCertificate, "cannot set the validity period")
        }
        guard X509_set_pubkey(x509, key) == 1 else {
            throw DTLSError(.badCertificate, "X509_set_pubkey failed")
        }
        guard let name = X509_get_subject_name(x509) else {
            throw DTLSError(.badCertificate, "no subject name")
        }
        let cn = Array(commonName.utf8)
        guard !cn.isEmpty, cn.count <= 64,  // ub-common-name (RFC 5280 Appendix A)
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, cn, Int32(cn.count), -1, 0) == 1
        else {
            throw DTLSError(.badCertificate, "common name must be 1...64 UTF-8 bytes")
        }
        guard X509_set_issuer_name(x509, name) == 1 else {
            throw DTLSError(.badCertificate, "X509_set_issuer_name failed")
        }
        guard X509_sign(x509, key, EVP_sha256()) > 0 else {
            throw DTLSError(.badCertificate, "X509_sign failed: \(openSSLErrors())")
        }
    }

    /// Loads a certificate and its private key from PEM text, as written by ``pemEncoded()``.
    ///
    /// The blocks may come in either order; the key must belong to the certificate.
    public init(pem: String) throws(DTLSError) {
        let text = Array(pem.utf8)
        guard !text.isEmpty, let length = Int32(exactly: text.count) else {
            throw DTLSError(.badCertificate, "empty or oversized PEM")
        }
        ERR_clear_error()
        let loaded: (OpaquePointer?, OpaquePointer?) = text.withUnsafeBytes { raw in
            let certificateBIO = BIO_new_mem_buf(raw.baseAddress, length)
            defer { BIO_free(certificateBIO) }
            let keyBIO = BIO_new_mem_buf(raw.baseAddress, length)
            defer { BIO_free(keyBIO) }
            return (PEM_read_bio_X509(certificateBIO, nil, nil, nil), PEM_read_bio_PrivateKey(keyBIO, nil, nil, nil))
        }
        guard let x509 = loaded.0, let key = loaded.1 else {
            if let x509 = loaded.0 { X509_free(x509) }
            if let key = loaded.1 { EVP_PKEY_free(key) }
            throw DTLSError(.badCertificate, "PEM needs a CERTIFICATE and a PRIVATE KEY block: \(openSSLErrors())")
        }
        guard X509_check_private_key(x509, key) == 1,
            let fingerprint = DTLSFingerprint.of(certificate: x509, algorithm: .sha256)
        else {
            X509_free(x509)
            EVP_PKEY_free(key)
            throw DTLSError(.badCertificate, "the private key does not match the certificate")
        }
        self.certificate = x509
        self.privateKey = key
        self.fingerprint = fingerprint
    }

    deinit {
        for context in self.sharedContexts.withLock({ $0.values }) { SSL_CTX_free(context) }
        X509_free(self.certificate)
        EVP_PKEY_free(self.privateKey)
    }

    /// The fingerprint with another hash function, for peers that signal e.g. `sha-384`.
    public func fingerprint(_ algorithm: DTLSFingerprint.Algorithm) -> DTLSFingerprint {
        // Hashing an in-memory certificate with a built-in digest cannot fail short of memory exhaustion.
        DTLSFingerprint.of(certificate: self.certificate, algorithm: algorithm)!
    }

    /// The certificate followed by its unencrypted PKCS #8 private key, in PEM, for persistence.
    ///
    /// - Warning: the text contains the private key; store it with restrictive permissions.
    public func pemEncoded() throws(DTLSError) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw DTLSError(.library, "BIO_new failed") }
        defer { BIO_free(bio) }
        guard PEM_write_bio_X509(bio, self.certificate) == 1,
            PEM_write_bio_PrivateKey(bio, self.privateKey, nil, nil, 0, nil, nil) == 1
        else {
            throw DTLSError(.badCertificate, "PEM encoding failed: \(openSSLErrors())")
        }
        let pending = Int(BIO_ctrl_pending(bio))
        var text = [UInt8](repeating: 0, count: pending)
        let read = BIO_read(bio, &text, Int32(pending))
        guard read == Int32(pending) else { throw DTLSError(.library, "BIO_read failed") }
        return String(decoding: text, as: UTF8.self)
    }
}

/// Drains OpenSSL's thread-local error queue into one line.
func openSSLErrors() -> String {
    var messages: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        messages.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    return messages.isEmpty ? "no OpenSSL error" : messages.joined(separator: "; ")
}
