import NIOCore

/// A header extension value with a fixed wire encoding, decoded from and encoded to an element's bytes.
public protocol RTPHeaderExtensionValue: Sendable {
    /// Decodes an element's value bytes (the readable bytes of `value`).
    /// - Throws: ``WireError`` `.badExtension` when the length or content is not this extension's.
    init(extensionValue value: ByteBuffer) throws(WireError)

    /// Number of bytes ``write(to:at:)`` writes.
    var encodedLength: Int { get }

    /// Writes the value at absolute index `index` (growing capacity if needed, not moving indices).
    /// - Returns: the number of bytes written, ``encodedLength``.
    @discardableResult
    func write(to buffer: inout ByteBuffer, at index: Int) -> Int
}

/// A media identifier (`sdes:mid`, RFC 9143 §15), RTP stream identifier (`sdes:rtp-stream-id`,
/// RFC 8852 §3.1) or repaired stream identifier (`sdes:repaired-rtp-stream-id`, RFC 8852 §3.2).
///
/// The value is carried as the SDES item text without terminator. It is kept as a slice of the
/// packet; compare with ``matches(_:)`` on the hot path, and use ``string`` where a `String` is wanted.
public struct RTPStreamIdentifier: RTPHeaderExtensionValue, Hashable, CustomStringConvertible {
    /// The identifier bytes (1–255 bytes of text).
    public let bytes: ByteBuffer

    /// Wraps identifier bytes from a packet.
    /// - Throws: `.badExtension` if the value is empty.
    @inlinable
    public init(extensionValue value: ByteBuffer) throws(WireError) {
        guard value.readableBytes > 0 else {
            throw WireError(.badExtension, "empty SDES identifier extension")
        }
        self.bytes = value
    }

    /// An identifier to send, from text of 1–255 UTF-8 bytes.
    /// - Throws: `.badValue` for an empty or over-long identifier.
    public init(_ text: String) throws(WireError) {
        let count = text.utf8.count
        guard (1...255).contains(count) else {
            throw WireError(.badValue, "SDES identifier must be 1-255 bytes, got \(count)")
        }
        self.bytes = ByteBuffer(string: text)
    }

    /// The identifier as text (allocates; invalid UTF-8 is repaired).
    public var string: String { String(decoding: self.bytes.readableBytesView, as: UTF8.self) }

    /// Whether the identifier equals `text`, byte for byte, without allocating.
    @inlinable public func matches(_ text: String) -> Bool {
        self.bytes.readableBytesView.elementsEqual(text.utf8)
    }

    public var description: String { self.string }

    @inlinable public var encodedLength: Int { self.bytes.readableBytes }

    @inlinable @discardableResult
    public func write(to buffer: inout ByteBuffer, at index: Int) -> Int {
        buffer.setBuffer(self.bytes, at: index)
    }
}

/// The abs-send-time extension (`http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time`).
///
/// Three bytes: the send time in seconds as an unsigned 6.18 fixed-point number, i.e. bits 14–37 of
/// the 64-bit NTP timestamp. It wraps every 64 seconds.
///
/// ```
///  0                   1                   2
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  ID   | len=2 |   absolute send time (6.18)   |...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
public struct AbsSendTime: RTPHeaderExtensionValue, Hashable {
    /// The 24-bit raw value.
    public let rawValue: UInt32

    /// Wraps a raw 24-bit value (higher bits are dropped: the field wraps).
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue & 0xFF_FFFF }

    /// The abs-send-time of a 64-bit NTP timestamp (UQ32.32 seconds).
    @inlinable public init(ntpTimestamp: UInt64) {
        self.rawValue = UInt32(truncatingIfNeeded: ntpTimestamp >> 14) & 0xFF_FFFF
    }

    /// The abs-send-time of a monotonic time in microseconds (taken modulo the 64 s wrap).
    @inlinable public init(microseconds: UInt64) {
        let wrapped = microseconds % 64_000_000
        self.rawValue = UInt32(truncatingIfNeeded: (wrapped << 18) / 1_000_000) & 0xFF_FFFF
    }

    /// The value in seconds, 0 ..< 64.
    @inlinable public var seconds: Double { Double(self.rawValue) / 262_144 }

    @inlinable
    public init(extensionValue value: ByteBuffer) throws(WireError) {
        guard value.readableBytes == 3,
            let (high, low) = value.getMultipleIntegers(at: value.readerIndex, as: (UInt8, UInt16).self)
        else {
            throw WireError(.badExtension, "abs-send-time must be 3 bytes, got \(value.readableBytes)")
        }
        self.rawValue = UInt32(high) << 16 | UInt32(low)
    }

    @inlinable public var encodedLength: Int { 3 }

    @inlinable @discardableResult
    public func write(to buffer: inout ByteBuffer, at index: Int) -> Int {
        buffer.setMultipleIntegers(
            UInt8(truncatingIfNeeded: self.rawValue >> 16), UInt16(truncatingIfNeeded: self.rawValue), at: index)
    }
}

/// The transport-wide sequence number
/// (`http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01`, §2).
///
/// ```
///  0                   1                   2
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  ID   | L=1   |transport-wide sequence number |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
public struct TransportSequenceNumber: RTPHeaderExtensionValue, Hashable {
    /// The 16-bit per-transport counter.
    public let value: UInt16

    @inlinable public init(_ value: UInt16) { self.value = value }

    @inlinable
    public init(extensionValue value: ByteBuffer) throws(WireError) {
        guard value.readableBytes == 2, let number = value.getInteger(at: value.readerIndex, as: UInt16.self) else {
            throw WireError(.badExtension, "transport-wide sequence number must be 2 bytes, got \(value.readableBytes)")
        }
        self.value = number
    }

    @inlinable public var encodedLength: Int { 2 }

    @inlinable @discardableResult
    public func write(to buffer: inout ByteBuffer, at index: Int) -> Int {
        buffer.setInteger(self.value, at: index)
    }
}

/// The client-to-mixer audio level, [RFC 6464 §3](https://www.rfc-editor.org/rfc/rfc6464#section-3)
/// (`urn:ietf:params:rtp-hdrext:ssrc-audio-level`).
///
/// ```
///  0                   1
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  ID   | len=0 |V| level       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
public struct AudioLevel: RTPHeaderExtensionValue, Hashable {
    /// The V flag: the sender's voice activity detector believes this packet holds speech.
    public let voiceActivity: Bool
    /// The level in −dBov, 0 (loudest) to 127 (silence).
    public let level: UInt8

    /// A level to send; `level` above 127 is clamped to 127 (quieter than −127 dBov is still silence).
    @inlinable public init(voiceActivity: Bool, level: UInt8) {
        self.voiceActivity = voiceActivity
        self.level = min(level, 127)
    }

    @inlinable
    public init(extensionValue value: ByteBuffer) throws(WireError) {
        guard value.readableBytes == 1, let byte = value.getInteger(at: value.readerIndex, as: UInt8.self) else {
            throw WireError(.badExtension, "audio level must be 1 byte, got \(value.readableBytes)")
        }
        self.voiceActivity = byte & 0x80 != 0
        self.level = byte & 0x7F
    }

    @inlinable public var encodedLength: Int { 1 }

    @inlinable @discardableResult
    public func write(to buffer: inout ByteBuffer, at index: Int) -> Int {
        buffer.setInteger((self.voiceActivity ? 0x80 : 0) | self.level, at: index)
    }
}

/// The absolute capture time (`http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time`).
///
/// 8 bytes: capture time as a 64-bit NTP timestamp (UQ32.32 seconds), optionally followed by 8 bytes:
/// the estimated offset of the capturer's clock to the sender's, a signed Q32.32 number of seconds.
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  ID   | len=7 |     absolute capture timestamp (bit 0-23)     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |             absolute capture timestamp (bit 24-55)            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  ... (56-63)  |
/// +-+-+-+-+-+-+-+-+
/// (len=15 adds the 64-bit estimated capture clock offset after the timestamp)
/// ```
public struct AbsCaptureTime: RTPHeaderExtensionValue, Hashable {
    /// Capture time, NTP UQ32.32.
    public let captureTimestamp: UInt64
    /// Estimated capture clock offset, signed Q32.32, when present.
    public let estimatedCaptureClockOffset: Int64?

    @inlinable public init(captureTimestamp: UInt64, estimatedCaptureClockOffset: Int64? = nil) {
        self.captureTimestamp = captureTimestamp
        self.estimatedCaptureClockOffset = estimatedCaptureClockOffset
    }

    @inlinable
    public init(extensionValue value: ByteBuffer) throws(WireError) {
        let start = value.readerIndex
        switch value.readableBytes {
        case 8:
            self.captureTimestamp = value.getInteger(at: start, as: UInt64.self) ?? 0
            self.estimatedCaptureClockOffset = nil
        case 16:
            self.captureTimestamp = value.getInteger(at: start, as: UInt64.self) ?? 0
            self.estimatedCaptureClockOffset = value.getInteger(at: start + 8, as: Int64.self) ?? 0
        default:
            throw WireError(.badExtension, "abs-capture-time must be 8 or 16 bytes, got \(value.readableBytes)")
        }
    }

    @inlinable public var encodedLength: Int { self.estimatedCaptureClockOffset == nil ? 8 : 16 }

    @inlinable @discardableResult
    public func write(to buffer: inout ByteBuffer, at index: Int) -> Int {
        buffer.setInteger(self.captureTimestamp, at: index)
        if let offset = self.estimatedCaptureClockOffset {
            buffer.setInteger(offset, at: index + 8)
            return 16
        }
        return 8
    }
}
