import NIOCore

/// Writes an RTP fixed header and a one-byte-form header extension block straight into memory: the
/// forwarding hot path, where ``RTPHeaderExtensionBuilder`` and `ByteBuffer.writeRTPPacket` cost one
/// bounds-, uniqueness- and exclusivity-checked write per field.
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|P|X|  CC   |M|     PT      |       sequence number         |   RFC 3550 §5.1
/// |                           timestamp                           |
/// |                             SSRC                              |
/// |                       CSRC list (CC × 4)                      |
/// |      0xBE     |      0xDE     |   length (32-bit words)       |   RFC 8285 §4.2
/// |  ID   |  L-1  |   data ...    |  ID   |  L-1  |   data ...    |
/// |                 ... elements, zero padding to 32 bits         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// The one-byte form carries IDs 1–14 with 1–16 bytes each; an element outside that makes the writer
/// ``isValid`` false, and the caller falls back to the general builder (two-byte form, RFC 8285 §4.3).
/// The output is byte-identical to what the general builder writes for the same elements in the same order.
public struct RTPHeaderWriter {
    /// The largest header this writer produces: 12 + 15 CSRCs + 4 + 14 elements of 17 bytes, padded.
    public static let maximumLength = 12 + 60 + 4 + 14 * 17 + 3

    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let capacity: Int
    /// Bytes written so far.
    @usableFromInline var length = 0
    @usableFromInline var extensionStart = -1
    /// False once an element did not fit the one-byte form or the memory.
    @usableFromInline var isValid = true

    /// A writer into `memory` (``maximumLength`` bytes are always enough) that starts with the fixed header.
    @inlinable
    public init(
        into memory: UnsafeMutableRawBufferPointer, header: RTPHeader, csrcs: some Collection<UInt32>
    ) {
        self.base = memory.baseAddress!
        self.capacity = memory.count
        let count = min(csrcs.count, 15)
        guard memory.count >= 12 + 4 * count + 4, header.payloadType <= 127 else {
            self.isValid = false
            return
        }
        self.base.storeBytes(of: 0x80 | UInt8(count), as: UInt8.self)
        self.base.storeBytes(of: header.payloadType | (header.marker ? 0x80 : 0), toByteOffset: 1, as: UInt8.self)
        self.base.storeBytes(of: header.sequenceNumber.bigEndian, toByteOffset: 2, as: UInt16.self)
        self.base.storeBytes(of: header.timestamp.bigEndian, toByteOffset: 4, as: UInt32.self)
        self.base.storeBytes(of: header.ssrc.bigEndian, toByteOffset: 8, as: UInt32.self)
        self.length = 12
        for csrc in csrcs.prefix(15) {
            self.base.storeBytes(of: csrc.bigEndian, toByteOffset: self.length, as: UInt32.self)
            self.length += 4
        }
    }

    /// Opens the extension block on the first element.
    @inlinable
    mutating func element(id: UInt8, length: Int) -> UnsafeMutableRawPointer? {
        guard self.isValid, (1...14).contains(id), (1...16).contains(length),
            self.length + 4 + 1 + length + 3 <= self.capacity
        else {
            self.isValid = false
            return nil
        }
        if self.extensionStart < 0 {
            self.extensionStart = self.length
            self.base.storeBytes(of: UInt16(0xBEDE).bigEndian, toByteOffset: self.length, as: UInt16.self)
            self.length += 4
        }
        self.base.storeBytes(of: id << 4 | UInt8(length - 1), toByteOffset: self.length, as: UInt8.self)
        let value = self.base + self.length + 1
        self.length += 1 + length
        return value
    }

    /// Appends an element with `bytes` as its value.
    @inlinable
    public mutating func append(id: UInt8, bytes: UnsafeRawBufferPointer) {
        guard let value = self.element(id: id, length: bytes.count), let source = bytes.baseAddress else { return }
        value.copyMemory(from: source, byteCount: bytes.count)
    }

    /// Appends an element whose value is the readable bytes of `buffer`.
    @inlinable
    public mutating func append(id: UInt8, value buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { self.append(id: id, bytes: $0) }
    }

    /// Appends an element whose value is the low `length` bytes of `value`, big-endian (abs-send-time: 3,
    /// transport-wide sequence number: 2).
    @inlinable
    public mutating func append(id: UInt8, bigEndian value: UInt64, length: Int) {
        guard let out = self.element(id: id, length: length) else { return }
        for index in 0..<length {
            out.storeBytes(
                of: UInt8(truncatingIfNeeded: value >> (8 * UInt64(length - 1 - index))), toByteOffset: index,
                as: UInt8.self)
        }
    }

    /// Closes the extension block (zero padding, the length word, the X bit) and returns the header's
    /// length, or nil if an element did not fit (nothing useful was written then).
    @inlinable
    public mutating func finish() -> Int? {
        guard self.isValid else { return nil }
        guard self.extensionStart >= 0 else { return self.length }
        while (self.length - self.extensionStart) % 4 != 0 {
            self.base.storeBytes(of: 0, toByteOffset: self.length, as: UInt8.self)
            self.length += 1
        }
        let words = UInt16(truncatingIfNeeded: (self.length - self.extensionStart - 4) / 4)
        self.base.storeBytes(of: words.bigEndian, toByteOffset: self.extensionStart + 2, as: UInt16.self)
        self.base.storeBytes(of: self.base.load(as: UInt8.self) | 0x10, as: UInt8.self)
        return self.length
    }
}
