public import NIOCore

/// The primary block of a RED payload
/// ([RFC 2198 §3](https://www.rfc-editor.org/rfc/rfc2198#section-3)).
///
/// ```
///  0                   1                    2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |F|   block PT  |  timestamp offset         |   block length    |   F = 1: a redundant block follows
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |0|   Block PT  |                                                   F = 0: the last header, primary
/// +-+-+-+-+-+-+-+-+
/// | redundant block data ... | primary block data ...              |
/// ```
///
/// The primary data is what is left after the headers and the redundant blocks.
public struct REDPrimaryBlock: Sendable, Hashable {
    /// Payload type of the primary encoding.
    public var payloadType: UInt8
    /// Offset of the primary data from the start of the RED payload.
    public var offset: Int
    /// Length of the primary data.
    public var length: Int

    /// Parses the readable bytes of `payload`; nil when the headers overrun it.
    public init?(_ payload: ByteBuffer) {
        var cursor = payload.readerIndex
        let end = payload.writerIndex
        var redundantBytes = 0
        while true {
            guard let first = payload.getInteger(at: cursor, as: UInt8.self) else { return nil }
            if first & 0x80 == 0 {
                cursor += 1
                let offset = cursor - payload.readerIndex + redundantBytes
                let length = end - payload.readerIndex - offset
                guard length >= 0 else { return nil }
                self.payloadType = first & 0x7F
                self.offset = offset
                self.length = length
                return
            }
            guard let word = payload.getInteger(at: cursor, as: UInt32.self) else { return nil }
            redundantBytes += Int(word & 0x3FF)
            cursor += 4
        }
    }

    /// Rewrites every block header whose PT is `from` to `to`, in place (headers were validated by init).
    static func rewriteBlockPayloadTypes(in buffer: inout ByteBuffer, payloadAt start: Int, from: UInt8, to: UInt8) {
        var cursor = start
        while let first = buffer.getInteger(at: cursor, as: UInt8.self) {
            if first & 0x7F == from { buffer.setInteger(first & 0x80 | to & 0x7F, at: cursor) }
            if first & 0x80 == 0 { return }
            cursor += 4
        }
    }
}

/// Width and height from a VP8 key frame header
/// ([RFC 6386 §9.1](https://www.rfc-editor.org/rfc/rfc6386#section-9.1)): after the 3-byte frame tag come
/// the start code `9d 01 2a` and two little-endian 16-bit fields, each a 14-bit size and a 2-bit scale.
func vp8KeyframeDimensions(_ data: ByteBuffer) -> (width: Int, height: Int)? {
    let start = data.readerIndex
    guard data.readableBytes >= 10,
        data.getInteger(at: start + 3, as: UInt8.self) == 0x9D,
        data.getInteger(at: start + 4, as: UInt8.self) == 0x01,
        data.getInteger(at: start + 5, as: UInt8.self) == 0x2A,
        let width = data.getInteger(at: start + 6, endianness: .little, as: UInt16.self),
        let height = data.getInteger(at: start + 8, endianness: .little, as: UInt16.self)
    else { return nil }
    return (Int(width & 0x3FFF), Int(height & 0x3FFF))
}

/// Measures a bitrate over fixed windows: the rate of the last complete window.
struct RateMeter {
    private var bytes = 0
    private var windowStart: NIODeadline?
    /// Bits per second over the last complete window.
    private(set) var bitsPerSecond = 0
    /// Packets counted since creation.
    private(set) var packets = 0
    /// Bytes counted since creation.
    private(set) var totalBytes = 0

    mutating func add(bytes: Int, now: NIODeadline, window: TimeAmount) {
        self.roll(now: now, window: window)
        self.bytes += bytes
        self.packets += 1
        self.totalBytes += bytes
    }

    /// Closes the window if it has run its length (called on every packet and from the tick).
    mutating func roll(now: NIODeadline, window: TimeAmount) {
        guard let start = self.windowStart else {
            self.windowStart = now
            return
        }
        let elapsed = (now - start).nanoseconds
        guard elapsed >= window.nanoseconds, elapsed > 0 else { return }
        // A window several times too long (no packets, no tick) still gives the average over it.
        let bits = Double(self.bytes) * 8
        self.bitsPerSecond = Int(bits * 1e9 / Double(elapsed))
        self.bytes = 0
        self.windowStart = now
    }
}

extension NIODeadline {
    /// Microseconds on the monotonic clock, as the congestion controller counts time.
    var microseconds: Int64 { Int64(truncatingIfNeeded: self.uptimeNanoseconds / 1000) }
}
