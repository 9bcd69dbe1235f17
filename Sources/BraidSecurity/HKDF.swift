internal import COpenSSL

/// HKDF with SHA-256 ([RFC 5869](https://www.rfc-editor.org/rfc/rfc5869)): derives keys from a shared
/// secret, as mesh links key their SRTP from the cluster credential.
///
/// Built on OpenSSL's one-shot `HMAC`, so nothing is kept between calls. Key derivation runs once per
/// link and epoch, never per packet.
public enum HKDF {
    /// Output length of SHA-256.
    public static let hashLength = 32

    /// `HKDF-Extract(salt, ikm)` then `HKDF-Expand(prk, info, length)` (RFC 5869 §2.2, §2.3).
    ///
    /// - Precondition: `length` ≤ 255 × 32.
    public static func sha256(secret: [UInt8], salt: [UInt8] = [], info: [UInt8], length: Int) -> [UInt8] {
        precondition(length <= 255 * Self.hashLength, "HKDF-SHA256 output is at most 8160 bytes")
        // §2.2: an absent salt is HashLen zeros.
        let prk = Self.hmac(key: salt.isEmpty ? [UInt8](repeating: 0, count: Self.hashLength) : salt, data: secret)
        var output: [UInt8] = []
        output.reserveCapacity(length)
        var block: [UInt8] = []
        var counter: UInt8 = 1
        while output.count < length {
            block = Self.hmac(key: prk, data: block + info + [counter])
            output.append(contentsOf: block.prefix(length - output.count))
            counter &+= 1
        }
        return output
    }

    /// HMAC-SHA256 of `data` under `key`.
    public static func hmac(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.hashLength)
        var outLength: UInt32 = 0
        key.withUnsafeBufferPointer { key in
            data.withUnsafeBufferPointer { data in
                out.withUnsafeMutableBufferPointer { out in
                    _ = HMAC(
                        EVP_sha256(), key.baseAddress, Int32(key.count), data.baseAddress, data.count,
                        out.baseAddress, &outLength)
                }
            }
        }
        return out
    }
}
