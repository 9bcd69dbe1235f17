internal import COpus

/// What the first bytes of an Opus packet say, read without decoding it.
///
/// Used to decide whether in-band FEC can repair a lost packet: libopus 1.3 has no
/// `opus_packet_has_lbrr`, and decoding with `decode_fec = 1` returns concealment audio even when the
/// packet carries no LBRR data, so the flag is read from the bitstream itself.
public struct OpusPacketInfo: Hashable, Sendable {
    /// The coding mode of the packet (RFC 6716 §3.1, Table 2).
    public enum Mode: Hashable, Sendable {
        case silk
        case hybrid
        case celt
    }

    /// The TOC byte's configuration number, 0…31.
    public let configuration: UInt8
    /// SILK, Hybrid or CELT, from the configuration number.
    public let mode: Mode
    /// True when the `s` bit of the TOC byte marks a stereo packet.
    public let isStereo: Bool
    /// The number of Opus frames in the packet (1…48).
    public let frameCount: Int
    /// Duration of one Opus frame in units of 1/48000 s (120…2880).
    public let samplesPerFrameAt48kHz: Int
    /// True when the first Opus frame carries LBRR (in-band FEC) data for the previous frame, i.e.
    /// `decode_fec = 1` on this packet really recovers audio rather than concealing it.
    public let hasLBRR: Bool

    /// Reads the TOC byte and, for SILK and Hybrid packets, the LBRR flags of the first frame.
    ///
    /// The TOC byte (RFC 6716 §3.1):
    /// ```
    ///  0 1 2 3 4 5 6 7
    /// +-+-+-+-+-+-+-+-+
    /// | config  |s| c |
    /// +-+-+-+-+-+-+-+-+
    /// ```
    /// config 0–11 are SILK-only, 12–15 Hybrid, 16–31 CELT-only; `c` selects the framing (code 0–3,
    /// §3.2), which libopus' `opus_packet_parse` resolves to the first frame's bytes.
    ///
    /// The SILK layer of a frame starts with its header bits (RFC 6716 §4.2.3): one VAD flag per
    /// 20 ms SILK frame (one for 10 and 20 ms, two for 40 ms, three for 60 ms), then one LBRR flag,
    /// and the same again for the side channel of a stereo packet. They are the first symbols of the
    /// range coder and each has probability 1/2, so they are the top bits of the frame's first byte:
    /// ```
    ///  0 1 2 3 4 5 6 7            (mono, 20 ms)       0 1 2 3 4 5 6 7      (stereo, 20 ms)
    /// +-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
    /// |V|L|  ...      |                               |V|L|V|L|  ...  |
    /// +-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
    ///  V: VAD flag, L: LBRR flag                       mid     side
    /// ```
    /// - Throws: ``CodecError/Code/invalidPacket`` when the framing is malformed (RFC 6716 §3.4).
    public init(packet: UnsafeRawBufferPointer) throws(CodecError) {
        guard let base = packet.baseAddress, packet.count > 0 else {
            throw CodecError(.invalidPacket, "empty Opus packet")
        }
        guard let length = Int32(exactly: packet.count) else {
            throw CodecError(.invalidPacket, "Opus packet of \(packet.count) bytes")
        }
        let toc = packet[0]
        let configuration = toc >> 3
        self.configuration = configuration
        self.mode = configuration < 12 ? .silk : (configuration < 16 ? .hybrid : .celt)
        self.isStereo = toc & 0x04 != 0
        self.samplesPerFrameAt48kHz = Self.samplesPerFrame(configuration: configuration)

        let data = base.assumingMemoryBound(to: UInt8.self)
        // frames/size: the 48-entry arrays opus_packet_parse fills; on the stack, not the heap.
        let result: (count: Int32, firstByte: UInt8?) = withUnsafeTemporaryAllocation(
            of: UnsafePointer<UInt8>?.self,
            capacity: 48
        ) { frames in
            withUnsafeTemporaryAllocation(of: Int16.self, capacity: 48) { sizes in
                guard let sizeBase = sizes.baseAddress else { return (OPUS_INTERNAL_ERROR, nil) }
                let count = opus_packet_parse(data, length, nil, frames.baseAddress, sizeBase, nil)
                guard count > 0, sizes[0] > 0, let first = frames[0] else { return (count, nil) }
                return (count, first.pointee)
            }
        }
        guard result.count > 0 else { throw CodecError.opus(result.count, "opus_packet_parse") }
        self.frameCount = Int(result.count)

        guard self.mode != .celt, let firstByte = result.firstByte else {
            // CELT frames carry no LBRR; an empty first frame (DTX) carries nothing at all.
            self.hasLBRR = false
            return
        }
        // SILK frames in one Opus frame: 10 and 20 ms hold one, 40 ms two, 60 ms three (§4.2.2).
        let silkFrames = max(1, self.samplesPerFrameAt48kHz / 960)
        let midLBRR = (firstByte >> (7 - silkFrames)) & 1 == 1
        let sideLBRR = self.isStereo && (firstByte >> (6 - 2 * silkFrames)) & 1 == 1
        self.hasLBRR = midLBRR || sideLBRR
    }

    /// Convenience for byte arrays.
    public init(packet: [UInt8]) throws(CodecError) {
        var result: Result<OpusPacketInfo, CodecError> = .failure(CodecError(.invalidPacket, "unreadable"))
        packet.withUnsafeBytes { bytes in
            do throws(CodecError) {
                result = .success(try OpusPacketInfo(packet: bytes))
            } catch {
                result = .failure(error)
            }
        }
        self = try result.get()
    }

    /// Frame duration per RFC 6716 §3.1, Table 2, in samples at 48 kHz.
    private static func samplesPerFrame(configuration: UInt8) -> Int {
        let index = configuration & 3
        switch configuration {
        case 0..<12: return index == 3 ? 2880 : 480 << index  // SILK: 10, 20, 40, 60 ms
        case 12..<16: return 480 << (index & 1)  // Hybrid: 10, 20 ms
        default: return 120 << index  // CELT: 2.5, 5, 10, 20 ms
        }
    }
}
