public import NIOCore

/// The common header every RTCP packet starts with.
///
/// [RFC 3550 §6.4.1](https://www.rfc-editor.org/rfc/rfc3550#section-6.4.1) (and every later RTCP type):
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|P|  count  |      PT       |             length            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// `count` is the report/source count, or the feedback message type (FMT) for RTPFB/PSFB; `length` is the
/// packet's size in 32-bit words minus one, header and padding included.
public struct RTCPHeader: Hashable, Sendable {
    /// The padding bit: the last octet of the packet counts the padding octets (itself included).
    public var padding: Bool
    /// The 5-bit count (RC, SC) or feedback message type (FMT).
    public var count: UInt8
    /// The packet type (200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, 205 RTPFB, 206 PSFB, 207 XR, ...).
    public var packetType: UInt8
    /// The raw length field: 32-bit words minus one.
    public var lengthInWordsMinusOne: UInt16

    /// The whole packet's size in bytes, header and padding included.
    public var byteCount: Int { (Int(self.lengthInWordsMinusOne) + 1) * 4 }

    public init(padding: Bool = false, count: UInt8, packetType: UInt8, lengthInWordsMinusOne: UInt16) {
        self.padding = padding
        self.count = count
        self.packetType = packetType
        self.lengthInWordsMinusOne = lengthInWordsMinusOne
    }

    /// Size of the fixed header in bytes.
    public static let size = 4
    /// The only RTP/RTCP version.
    public static let version: UInt8 = 2

    /// Reads and checks the header at `index`: version 2 and a length that fits before `end`.
    static func read(_ buffer: ByteBuffer, at index: Int, end: Int) throws(WireError) -> RTCPHeader {
        guard end - index >= RTCPHeader.size, let first = buffer.getInteger(at: index, as: UInt32.self) else {
            throw WireError(.truncated, "RTCP header needs 4 bytes, \(max(0, end - index)) remain")
        }
        let version = UInt8(truncatingIfNeeded: first >> 30)
        guard version == RTCPHeader.version else {
            throw WireError(.badVersion, "RTCP version \(version), expected 2")
        }
        let header = RTCPHeader(
            padding: (first >> 29) & 1 == 1,
            count: UInt8(truncatingIfNeeded: (first >> 24) & 0x1F),
            packetType: UInt8(truncatingIfNeeded: first >> 16),
            lengthInWordsMinusOne: UInt16(truncatingIfNeeded: first)
        )
        guard header.byteCount <= end - index else {
            throw WireError(.truncated, "RTCP packet announces \(header.byteCount) bytes, \(end - index) remain")
        }
        return header
    }

    /// The number of padding bytes at the end of a packet that has the P bit set.
    static func paddingCount(_ buffer: ByteBuffer, packetStart: Int, header: RTCPHeader) throws(WireError) -> Int {
        guard header.padding else { return 0 }
        let last = Int(buffer.getInteger(at: packetStart + header.byteCount - 1, as: UInt8.self) ?? 0)
        guard last > 0, last <= header.byteCount - RTCPHeader.size else {
            throw WireError(.badPadding, "RTCP padding count \(last) in a \(header.byteCount)-byte packet")
        }
        return last
    }
}

/// RTCP packet type numbers ([IANA RTP parameters](https://www.iana.org/assignments/rtp-parameters)).
public enum RTCPPacketType {
    public static let senderReport: UInt8 = 200
    public static let receiverReport: UInt8 = 201
    public static let sourceDescription: UInt8 = 202
    public static let goodbye: UInt8 = 203
    public static let application: UInt8 = 204
    /// Transport-layer feedback, [RFC 4585 §6.2](https://www.rfc-editor.org/rfc/rfc4585#section-6.2).
    public static let transportFeedback: UInt8 = 205
    /// Payload-specific feedback, [RFC 4585 §6.3](https://www.rfc-editor.org/rfc/rfc4585#section-6.3).
    public static let payloadFeedback: UInt8 = 206
    public static let extendedReport: UInt8 = 207
}

/// Feedback message types (the FMT field) this module parses.
public enum RTCPFeedbackFormat {
    /// RTPFB generic NACK, RFC 4585 §6.2.1.
    public static let genericNACK: UInt8 = 1
    /// RTPFB transport-wide congestion control feedback.
    public static let transportWideCC: UInt8 = 15
    /// PSFB picture loss indication, RFC 4585 §6.3.1.
    public static let pictureLossIndication: UInt8 = 1
    /// PSFB full intra request, RFC 5104 §4.3.1.
    public static let fullIntraRequest: UInt8 = 4
    /// PSFB application layer feedback (REMB lives here).
    public static let applicationLayer: UInt8 = 15
}

/// One RTCP packet located inside a buffer: a zero-copy slice (`bytes`, header at offset 0) plus the
/// end of its body, padding excluded. Every typed view is built from one of these.
struct RTCPPacketSlice {
    let header: RTCPHeader
    /// The packet from its first header byte; `bytes.readerIndex == 0`.
    let bytes: ByteBuffer
    /// Offset of the first padding byte (or the packet end when there is none).
    let bodyEnd: Int

    var bodyLength: Int { self.bodyEnd - RTCPHeader.size }

    /// Parses exactly one packet that fills `buffer`'s readable bytes.
    init(single buffer: ByteBuffer) throws(WireError) {
        let bytes = buffer.getSlice(at: buffer.readerIndex, length: buffer.readableBytes) ?? ByteBuffer()
        let header = try RTCPHeader.read(bytes, at: 0, end: bytes.readableBytes)
        guard header.byteCount == bytes.readableBytes else {
            throw WireError(.trailingBytes, "RTCP packet of \(header.byteCount) bytes in \(bytes.readableBytes)")
        }
        let pad = try RTCPHeader.paddingCount(bytes, packetStart: 0, header: header)
        self.init(header: header, bytes: bytes, bodyEnd: header.byteCount - pad)
    }

    init(header: RTCPHeader, bytes: ByteBuffer, bodyEnd: Int) {
        self.header = header
        self.bytes = bytes
        self.bodyEnd = bodyEnd
    }

    func expect(type: UInt8, format: UInt8? = nil, _ name: StaticString) throws(WireError) {
        guard self.header.packetType == type, format.map({ $0 == self.header.count }) ?? true else {
            throw WireError(
                .unsupportedType,
                "expected \(name), found PT \(self.header.packetType) count/FMT \(self.header.count)"
            )
        }
    }
}

extension ByteBuffer {
    /// Reads an integer that validation already proved in range; yields 0 rather than trapping if not.
    @inline(__always)
    func rtcpU32(_ index: Int) -> UInt32 { self.getInteger(at: index, as: UInt32.self) ?? 0 }
    @inline(__always)
    func rtcpU16(_ index: Int) -> UInt16 { self.getInteger(at: index, as: UInt16.self) ?? 0 }
    @inline(__always)
    func rtcpU8(_ index: Int) -> UInt8 { self.getInteger(at: index, as: UInt8.self) ?? 0 }
}

/// Shared pieces of every RTCP builder.
@usableFromInline
enum RTCPWriter {
    /// Throws unless `buffer` can take `size` more bytes without growing.
    @usableFromInline
    static func requireCapacity(_ buffer: ByteBuffer, _ size: Int) throws(WireError) {
        guard buffer.writableBytes >= size else {
            throw WireError(.badLength, "RTCP builder needs \(size) writable bytes, buffer has \(buffer.writableBytes)")
        }
    }

    /// Writes a header for a packet of `byteCount` bytes (a multiple of 4, at least 4, at most 262144).
    @usableFromInline
    static func writeHeader(
        _ buffer: inout ByteBuffer,
        count: UInt8,
        packetType: UInt8,
        byteCount: Int
    ) throws(WireError) {
        guard byteCount >= 4, byteCount % 4 == 0, let words = UInt16(exactly: byteCount / 4 - 1) else {
            throw WireError(.badLength, "RTCP packet of \(byteCount) bytes cannot be encoded")
        }
        guard count < 32 else { throw WireError(.badValue, "RTCP count/FMT \(count) does not fit 5 bits") }
        buffer.writeInteger(UInt8(0x80 | count))
        buffer.writeInteger(packetType)
        buffer.writeInteger(words)
    }
}
