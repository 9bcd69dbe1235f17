internal import CBraidShims
import NIOCore

/// The key of MESSAGE-INTEGRITY (HMAC-SHA1), computed once per credential and reused for every message.
public struct STUNIntegrityKey: Hashable, Sendable {
    /// The HMAC key bytes.
    public let bytes: [UInt8]

    /// A key given as raw bytes (e.g. a long-term key, MD5(username ":" realm ":" password), §9.2.2).
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// The short-term credential key of [RFC 8489 §9.1.1](https://www.rfc-editor.org/rfc/rfc8489#section-9.1.1):
    /// `key = OpaqueString(password)`.
    ///
    /// OpaqueString (RFC 8265 §4.2) only changes non-ASCII spaces and applies NFC. ICE passwords are
    /// 22 to 256 `ice-char`s (ALPHA / DIGIT / "+" / "/", RFC 8839 §5.4), on which it is the identity, so
    /// the key is the password's UTF-8 bytes. Non-ASCII passwords are used as given, not normalised.
    public init(shortTermPassword password: String) { self.bytes = Array(password.utf8) }
}

extension STUNMessage {
    /// Size of the MESSAGE-INTEGRITY attribute: 4-byte header and a 20-byte HMAC-SHA1.
    static let integrityAttributeSize = 24
    /// Size of the FINGERPRINT attribute: 4-byte header and a 4-byte CRC-32.
    static let fingerprintAttributeSize = 8
    /// XORed into the CRC-32 of FINGERPRINT so that it differs from other protocols' CRCs (§14.7).
    public static let fingerprintXOR: UInt32 = 0x5354_554E

    /// Whether the message carries a MESSAGE-INTEGRITY attribute.
    @inlinable public var hasMessageIntegrity: Bool { self.messageIntegrityOffset != nil }
    /// Whether the message carries a FINGERPRINT attribute.
    @inlinable public var hasFingerprint: Bool { self.fingerprintOffset != nil }

    /// Checks MESSAGE-INTEGRITY with HMAC-SHA1 under `key`.
    ///
    /// [RFC 8489 §14.5](https://www.rfc-editor.org/rfc/rfc8489#section-14.5): the HMAC covers the message
    /// up to, not including, MESSAGE-INTEGRITY, with the header's length field set as if the message ended
    /// just after MESSAGE-INTEGRITY (so a FINGERPRINT added later does not change it). The comparison takes
    /// the same time whatever the bytes.
    ///
    /// The covered bytes are copied to a temporary stack buffer (the length field differs from the wire)
    /// and hashed by an allocation-free C HMAC; messages over about 1 KiB may use a heap buffer instead,
    /// depending on the thread's stack.
    ///
    /// - Throws: `.badAttribute` when the message has no MESSAGE-INTEGRITY (answer 400 to a request that
    ///   also lacks USERNAME, else 401), `.integrityMismatch` when the HMAC differs (answer 401).
    public func validateIntegrity(key: STUNIntegrityKey) throws(WireError) {
        guard let integrityOffset = self.messageIntegrityOffset else {
            throw WireError(.badAttribute, "message has no MESSAGE-INTEGRITY")
        }
        let matches = key.bytes.withUnsafeBytes { key in
            self.bytes.withUnsafeReadableBytes { message in
                withUnsafeTemporaryAllocation(byteCount: integrityOffset, alignment: 1) { covered in
                    let prefix = UnsafeRawBufferPointer(rebasing: message[0..<integrityOffset])
                    covered.copyMemory(from: prefix)
                    Self.storeLength(integrityOffset + Self.integrityAttributeSize, in: covered)
                    return withUnsafeTemporaryAllocation(byteCount: 20, alignment: 1) { mac in
                        braid_hmac_sha1(key.baseAddress, key.count, covered.baseAddress, covered.count, mac.baseAddress)
                        let macStart = integrityOffset + 4
                        let received = UnsafeRawBufferPointer(rebasing: message[macStart..<(macStart + 20)])
                        return constantTimeEquals(UnsafeRawBufferPointer(mac), received)
                    }
                }
            }
        }
        guard matches else { throw WireError(.integrityMismatch, "MESSAGE-INTEGRITY does not match the key") }
    }

    /// Checks MESSAGE-INTEGRITY for a short-term credential: the key is the password (see
    /// ``STUNIntegrityKey/init(shortTermPassword:)``). Prefer ``validateIntegrity(key:)`` with a key made
    /// once per session: this overload copies the password into an array.
    public func verifyMessageIntegrity(password: String) throws(WireError) {
        try self.validateIntegrity(key: STUNIntegrityKey(shortTermPassword: password))
    }

    /// Checks FINGERPRINT.
    ///
    /// [RFC 8489 §14.7](https://www.rfc-editor.org/rfc/rfc8489#section-14.7): the value is the CRC-32 of
    /// the message up to, not including, FINGERPRINT (with the length field counting FINGERPRINT), XORed
    /// with 0x5354554E.
    ///
    /// - Throws: `.badAttribute` when the message has no FINGERPRINT, `.fingerprintMismatch` when it is
    ///   wrong.
    public func validateFingerprint() throws(WireError) {
        guard let fingerprintOffset = self.fingerprintOffset else {
            throw WireError(.badAttribute, "message has no FINGERPRINT")
        }
        let expected = self.bytes.withUnsafeReadableBytes { message in
            Self.fingerprint(of: UnsafeRawBufferPointer(rebasing: message[0..<fingerprintOffset]))
        }
        let received = self.bytes.getInteger(at: fingerprintOffset + 4, as: UInt32.self)
        guard received == expected else {
            throw WireError(.fingerprintMismatch, "FINGERPRINT does not match the message")
        }
    }

    /// FINGERPRINT's value for a message whose attributes before FINGERPRINT are `prefix` (header first).
    static func fingerprint(of prefix: UnsafeRawBufferPointer) -> UInt32 {
        // The length field must count the FINGERPRINT attribute; fold the patched header in first.
        let length = prefix.count - headerSize + fingerprintAttributeSize
        var crc = CRC32()
        crc.update(UnsafeRawBufferPointer(rebasing: prefix[0..<2]))
        crc.update(byte: UInt8(truncatingIfNeeded: length >> 8))
        crc.update(byte: UInt8(truncatingIfNeeded: length))
        crc.update(UnsafeRawBufferPointer(rebasing: prefix[4...]))
        return crc.value ^ fingerprintXOR
    }

    /// Writes the message length field (bytes 2–3) for a message of `total` bytes.
    static func storeLength(_ total: Int, in header: UnsafeMutableRawBufferPointer) {
        let length = total - headerSize
        header[2] = UInt8(truncatingIfNeeded: length >> 8)
        header[3] = UInt8(truncatingIfNeeded: length)
    }
}

/// Compares two buffers of the same size in time independent of their contents.
func constantTimeEquals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for i in 0..<a.count {
        difference |= a[i] ^ b[i]
    }
    return difference == 0
}

/// CRC-32 as in ISO/IEC 13239, IEEE 802.3 and zlib (reflected polynomial 0xEDB88320, initial and final
/// XOR 0xFFFFFFFF), which RFC 8489 §14.7 names for FINGERPRINT.
struct CRC32 {
    /// The byte-at-a-time table, computed once on first use.
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 {
            c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1
        }
        return c
    }

    private var state: UInt32 = 0xFFFF_FFFF

    init() {}

    mutating func update(byte: UInt8) {
        self.state = Self.table[Int((self.state ^ UInt32(byte)) & 0xFF)] ^ (self.state >> 8)
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        Self.table.withUnsafeBufferPointer { table in
            var state = self.state
            for byte in bytes {
                state = table[Int((state ^ UInt32(byte)) & 0xFF)] ^ (state >> 8)
            }
            self.state = state
        }
    }

    var value: UInt32 { self.state ^ 0xFFFF_FFFF }
}
