import NIOCore

/// The table-of-contents byte that starts every Opus packet,
/// [RFC 6716 §3.1](https://www.rfc-editor.org/rfc/rfc6716#section-3.1).
///
/// ```
///  0 1 2 3 4 5 6 7
/// +-+-+-+-+-+-+-+-+
/// | config  |s| c |
/// +-+-+-+-+-+-+-+-+
/// ```
///
/// `config` (0–31) selects mode, audio bandwidth and frame duration (Table 2); `s` is the stereo flag;
/// `c` is the frame count code (§3.2): 0 = one frame, 1 = two equal frames, 2 = two frames of different
/// sizes, 3 = an arbitrary number of frames.
public struct OpusTOC: Hashable, Sendable {
    /// The coding mode of a configuration.
    public enum Mode: Hashable, Sendable {
        /// SILK only (configs 0–11).
        case silk
        /// SILK + CELT (configs 12–15).
        case hybrid
        /// CELT only (configs 16–31).
        case celt
    }

    /// The audio bandwidth of a configuration.
    public enum Bandwidth: Hashable, Sendable, Comparable {
        /// NB, 4 kHz.
        case narrowband
        /// MB, 6 kHz.
        case mediumband
        /// WB, 8 kHz.
        case wideband
        /// SWB, 12 kHz.
        case superwideband
        /// FB, 20 kHz.
        case fullband
    }

    /// The byte itself.
    public let rawValue: UInt8

    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A TOC byte from its fields.
    /// - Throws: `.badValue` if `configuration` exceeds 31 or `frameCountCode` exceeds 3.
    @inlinable
    public init(configuration: UInt8, isStereo: Bool, frameCountCode: UInt8) throws(WireError) {
        guard configuration <= 31, frameCountCode <= 3 else {
            throw WireError(.badValue, "Opus config \(configuration) / code \(frameCountCode) out of range")
        }
        self.rawValue = configuration << 3 | (isStereo ? 0x04 : 0) | frameCountCode
    }

    /// The configuration number, 0–31.
    @inlinable public var configuration: UInt8 { self.rawValue >> 3 }
    /// The s bit.
    @inlinable public var isStereo: Bool { self.rawValue & 0x04 != 0 }
    /// The c field, 0–3.
    @inlinable public var frameCountCode: UInt8 { self.rawValue & 0x03 }

    /// The mode (Table 2).
    @inlinable public var mode: Mode {
        switch self.configuration {
        case 0...11: .silk
        case 12...15: .hybrid
        default: .celt
        }
    }

    /// The audio bandwidth (Table 2).
    @inlinable public var bandwidth: Bandwidth {
        switch self.configuration {
        case 0...3: .narrowband
        case 4...7: .mediumband
        case 8...11: .wideband
        case 12...13: .superwideband
        case 14...15: .fullband
        case 16...19: .narrowband
        case 20...23: .wideband
        case 24...27: .superwideband
        default: .fullband
        }
    }

    /// The duration of each frame in samples at 48 kHz (2.5 ms = 120 … 60 ms = 2880).
    @inlinable public var samplesPerFrame: Int {
        let configuration = Int(self.configuration)
        switch configuration {
        case 0...11:
            // SILK: 10, 20, 40, 60 ms.
            switch configuration & 3 {
            case 0: return 480
            case 1: return 960
            case 2: return 1920
            default: return 2880
            }
        case 12...15:
            // Hybrid: 10, 20 ms.
            return configuration & 1 == 0 ? 480 : 960
        default:
            // CELT: 2.5, 5, 10, 20 ms.
            return 120 << (configuration & 3)
        }
    }
}

/// Frame count and duration of one Opus packet, with the packet-level checks of
/// [RFC 6716 §3.4](https://www.rfc-editor.org/rfc/rfc6716#section-3.4) (R1–R7).
///
/// Code 3 packets carry a frame count byte after the TOC (§3.2.5):
///
/// ```
///  0 1 2 3 4 5 6 7
/// +-+-+-+-+-+-+-+-+
/// |v|p|     M     |
/// +-+-+-+-+-+-+-+-+
/// ```
///
/// `v` = VBR, `p` = padding present, `M` = number of frames (1–48, at most 120 ms of audio).
public struct OpusPacketInfo: Hashable, Sendable {
    /// The table-of-contents byte.
    public let toc: OpusTOC
    /// Number of frames in the packet.
    public let frameCount: Int
    /// Number of padding bytes in a code 3 packet (length bytes excluded).
    public let paddingLength: Int

    /// Total duration in samples at 48 kHz.
    @inlinable public var durationSamples: Int { self.frameCount * self.toc.samplesPerFrame }

    /// Largest frame the RFC allows (R2).
    @usableFromInline static let maximumFrameLength = 1275
    /// Longest packet the RFC allows: 120 ms at 48 kHz (R5).
    @usableFromInline static let maximumSamples = 5760

    /// Validates the Opus packet in the readable bytes of `packet`.
    /// - Throws: `.truncated` (empty, or a length/count byte missing), `.badLength` (frame lengths that
    ///   contradict the packet size, R2–R4, R6, R7), `.badValue` (code 3 with M = 0 or over 120 ms, R5).
    @inlinable
    public init(_ packet: ByteBuffer) throws(WireError) {
        var cursor = packet.readerIndex
        let end = packet.writerIndex
        guard let tocByte = packet.getInteger(at: cursor, as: UInt8.self) else {
            throw WireError(.truncated, "empty Opus packet (R1)")
        }
        cursor += 1
        let toc = OpusTOC(rawValue: tocByte)
        let maxFrame = Self.maximumFrameLength

        /// Reads a §3.2.1 frame length (1 or 2 bytes).
        func readFrameLength(_ cursor: inout Int) throws(WireError) -> Int {
            guard cursor < end, let first = packet.getInteger(at: cursor, as: UInt8.self) else {
                throw WireError(.truncated, "Opus frame length byte missing")
            }
            cursor += 1
            guard first >= 252 else { return Int(first) }
            guard cursor < end, let second = packet.getInteger(at: cursor, as: UInt8.self) else {
                throw WireError(.truncated, "Opus two-byte frame length missing its second byte")
            }
            cursor += 1
            return Int(second) * 4 + Int(first)
        }

        switch toc.frameCountCode {
        case 0:
            guard end - cursor <= maxFrame else {
                throw WireError(.badLength, "Opus code 0 frame of \(end - cursor) bytes exceeds 1275 (R2)")
            }
            self.frameCount = 1
            self.paddingLength = 0
        case 1:
            let remaining = end - cursor
            guard remaining % 2 == 0 else {
                throw WireError(.badLength, "Opus code 1 packet has an odd \(remaining) bytes of frames (R3)")
            }
            guard remaining / 2 <= maxFrame else {
                throw WireError(.badLength, "Opus code 1 frames of \(remaining / 2) bytes exceed 1275 (R2)")
            }
            self.frameCount = 2
            self.paddingLength = 0
        case 2:
            let first = try readFrameLength(&cursor)
            let remaining = end - cursor
            guard first <= remaining else {
                throw WireError(.badLength, "Opus code 2 first frame of \(first) bytes overruns the packet (R4)")
            }
            guard remaining - first <= maxFrame else {
                throw WireError(.badLength, "Opus code 2 second frame exceeds 1275 bytes (R2)")
            }
            self.frameCount = 2
            self.paddingLength = 0
        default:
            guard cursor < end, let countByte = packet.getInteger(at: cursor, as: UInt8.self) else {
                throw WireError(.truncated, "Opus code 3 packet has no frame count byte (R6)")
            }
            cursor += 1
            let count = Int(countByte & 0x3F)
            guard count >= 1 else {
                throw WireError(.badValue, "Opus code 3 packet with 0 frames (R5)")
            }
            guard count * toc.samplesPerFrame <= Self.maximumSamples else {
                throw WireError(
                    .badValue,
                    "Opus code 3 packet of \(count) frames lasts \(count * toc.samplesPerFrame / 48) ms > 120 ms (R5)")
            }
            // Padding length (§3.2.5): bytes of 255 add 254 and continue; the last byte adds its value.
            var padding = 0
            if countByte & 0x40 != 0 {
                while true {
                    guard cursor < end, let byte = packet.getInteger(at: cursor, as: UInt8.self) else {
                        throw WireError(.truncated, "Opus code 3 padding length runs past the packet (R6)")
                    }
                    cursor += 1
                    padding += byte == 255 ? 254 : Int(byte)
                    if byte != 255 { break }
                }
            }
            guard padding <= end - cursor else {
                throw WireError(.badLength, "Opus code 3 padding of \(padding) bytes overruns the packet (R6)")
            }
            let frameEnd = end - padding
            if countByte & 0x80 != 0 {
                // VBR (R7): M − 1 explicit lengths, the last frame takes the rest.
                var total = 0
                for _ in 1..<count {
                    let length = try readFrameLength(&cursor)
                    guard length <= maxFrame else {
                        throw WireError(.badLength, "Opus frame of \(length) bytes exceeds 1275 (R2)")
                    }
                    total += length
                }
                guard cursor <= frameEnd, total <= frameEnd - cursor else {
                    throw WireError(.badLength, "Opus code 3 VBR frame lengths overrun the packet (R7)")
                }
                guard frameEnd - cursor - total <= maxFrame else {
                    throw WireError(.badLength, "Opus code 3 last frame exceeds 1275 bytes (R7)")
                }
            } else {
                // CBR (R6): the remaining bytes split evenly into M frames.
                let remaining = frameEnd - cursor
                guard remaining % count == 0 else {
                    throw WireError(
                        .badLength, "Opus code 3 CBR: \(remaining) bytes do not split into \(count) frames (R6)")
                }
                guard remaining / count <= maxFrame else {
                    throw WireError(.badLength, "Opus code 3 CBR frames exceed 1275 bytes (R6)")
                }
            }
            self.frameCount = count
            self.paddingLength = padding
        }
        self.toc = toc
    }
}
