import BraidWire
public import NIOCore

/// The header of a FlexFEC repair packet's payload in the format browsers decode: `flexfec-03/90000`,
/// [draft-ietf-payload-flexible-fec-scheme-03 §4.2](https://datatracker.ietf.org/doc/html/draft-ietf-payload-flexible-fec-scheme-03#section-4.2),
/// flexible mask, one protected SSRC. libwebrtc's receiver parses only this draft's layout, not RFC 8627's
/// (its `ForwardErrorCorrection::CreateFlexfec` builds the `Flexfec03HeaderReader`).
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |R|F|P|X|  CC   |M| PT recovery |        length recovery        |   R = F = 0
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          TS recovery                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  SSRCCount=1  |                    reserved                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  SSRC of the protected stream                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            SN base            |k|          Mask [0-14]        |   k = 1: the mask ends here
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |k|                   Mask [15-45] (optional)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |k|                                                             |
/// +-+                   Mask [46-108] (optional)                  |
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  repair payload: XOR of the protected packets' bytes 12... (zero-padded to the longest)
/// ```
///
/// Mask bit `i` protects sequence number `SN base + i`. The first eight bytes are the XOR of the protected
/// packets' first two bytes (R and F cleared afterwards), of their lengths minus the 12-byte fixed header
/// and of their timestamps; a packet is rebuilt when exactly one of those it covers is missing.
public struct FlexFECHeader: Hashable, Sendable {
    /// Mask bits of the three mask sizes, and the header length each gives.
    static let maskBits = [15, 46, 109]
    static let headerLengths = [20, 24, 32]
    /// The most packets one repair can cover.
    public static let maximumSpan = 109

    /// XOR of the protected packets' first two bytes (R and F always 0).
    public var recoveryBytes: UInt16
    /// XOR of the protected packets' lengths minus 12.
    public var lengthRecovery: UInt16
    /// XOR of their timestamps.
    public var timestampRecovery: UInt32
    /// The protected SSRC.
    public var protectedSSRC: UInt32
    /// The sequence number of mask bit 0.
    public var sequenceNumberBase: UInt16
    /// The protected packets: bit `i` (`1 << i`) protects `sequenceNumberBase + i`, i < 109.
    public var mask: UInt128

    /// The protected packets' offsets from the base, in order.
    public var offsets: [Int] { (0..<Self.maximumSpan).filter { self.mask & (1 << $0) != 0 } }

    /// The header's length on the wire: the shortest mask that holds the highest bit set.
    public var length: Int {
        let highest = UInt128.bitWidth - 1 - self.mask.leadingZeroBitCount
        return Self.headerLengths[Self.maskBits.firstIndex { highest < $0 } ?? 2]
    }

    public init(
        recoveryBytes: UInt16, lengthRecovery: UInt16, timestampRecovery: UInt32, protectedSSRC: UInt32,
        sequenceNumberBase: UInt16, mask: UInt128
    ) {
        self.recoveryBytes = recoveryBytes & 0x3FFF
        self.lengthRecovery = lengthRecovery
        self.timestampRecovery = timestampRecovery
        self.protectedSSRC = protectedSSRC
        self.sequenceNumberBase = sequenceNumberBase
        self.mask = mask & ((1 << Self.maximumSpan) - 1)
    }

    /// Reads the header at the start of `payload` (the repair packet's RTP payload).
    public init(_ payload: ByteBuffer) throws(WireError) {
        let start = payload.readerIndex
        guard payload.readableBytes >= Self.headerLengths[0],
            let first = payload.getInteger(at: start, as: UInt16.self),
            let length = payload.getInteger(at: start + 2, as: UInt16.self),
            let timestamp = payload.getInteger(at: start + 4, as: UInt32.self),
            let ssrcCount = payload.getInteger(at: start + 8, as: UInt8.self),
            let ssrc = payload.getInteger(at: start + 12, as: UInt32.self),
            let base = payload.getInteger(at: start + 16, as: UInt16.self)
        else { throw WireError(.truncated, "FlexFEC payload shorter than its 20-byte header") }
        guard first & 0xC000 == 0 else { throw WireError(.badValue, "FlexFEC R or F bit set (only the flexible mask is supported)") }
        guard ssrcCount == 1 else { throw WireError(.badValue, "FlexFEC protecting \(ssrcCount) SSRCs") }
        // The mask: 15 bits behind k0, 31 more behind k1, 63 more behind k2; k = 1 ends it.
        var mask: UInt128 = 0
        var chunk = 0
        var bit = 0
        var position = start + 18
        while true {
            let chunkBytes = [2, 4, 8][chunk]
            guard position + chunkBytes <= payload.writerIndex else {
                throw WireError(.truncated, "FlexFEC mask cut short")
            }
            for index in 0..<chunkBytes {
                let byte = payload.getInteger(at: position + index, as: UInt8.self)!
                for b in (index == 0 ? 1 : 0)..<8 where byte & (0x80 >> b) != 0 {
                    mask |= 1 << (bit + index * 8 + b - 1)
                }
            }
            let ends = payload.getInteger(at: position, as: UInt8.self)! & 0x80 != 0
            bit += chunkBytes * 8 - 1
            position += chunkBytes
            if ends { break }
            chunk += 1
            guard chunk < 3 else { throw WireError(.badValue, "FlexFEC mask without a final k bit") }
        }
        guard mask != 0 else { throw WireError(.badValue, "FlexFEC mask protects nothing") }
        self.init(
            recoveryBytes: first, lengthRecovery: length, timestampRecovery: timestamp, protectedSSRC: ssrc,
            sequenceNumberBase: base, mask: mask)
    }

    /// Writes the header.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(self.recoveryBytes & 0x3FFF)
        buffer.writeInteger(self.lengthRecovery)
        buffer.writeInteger(self.timestampRecovery)
        buffer.writeInteger(UInt32(1) << 24)
        buffer.writeInteger(self.protectedSSRC)
        buffer.writeInteger(self.sequenceNumberBase)
        let chunks = Self.headerLengths.firstIndex(of: self.length)! + 1
        let maskStart = buffer.writerIndex
        buffer.writeRepeatingByte(0, count: self.length - 18)
        for offset in 0..<Self.maximumSpan where self.mask & (1 << offset) != 0 {
            let (index, bit) = Self.wirePosition(ofOffset: offset)
            let at = maskStart + index
            buffer.setInteger(buffer.getInteger(at: at, as: UInt8.self)! | (0x80 >> bit), at: at)
        }
        // k = 1 on the last chunk present.
        let lastChunkAt = maskStart + [0, 2, 6][chunks - 1]
        buffer.setInteger(buffer.getInteger(at: lastChunkAt, as: UInt8.self)! | 0x80, at: lastChunkAt)
    }

    /// Byte index (from the first mask byte) and bit (0 = most significant) of mask offset `offset`.
    static func wirePosition(ofOffset offset: Int) -> (Int, Int) {
        // Chunk 0: bits 1-15 of bytes 0-1; chunk 1: bits 1-31 of bytes 2-5; chunk 2: bits 1-63 of bytes 6-13.
        let (chunkStart, bitStart) = offset < 15 ? (0, 0) : offset < 46 ? (2, 15) : (6, 46)
        let position = offset - bitStart + 1
        return (chunkStart + position / 8, position % 8)
    }
}

/// Zeroes the data of the given one- or two-byte header extensions of an RTP packet in place
/// ([RFC 8285 §4](https://www.rfc-editor.org/rfc/rfc8285#section-4)). A FlexFEC receiver in libwebrtc
/// XORs its copies of received packets with the data of transport-wide sequence number, abs-send-time
/// and transmission offset zeroed (they are written after FEC is computed), so the sender computes its
/// repairs over the same bytes. Malformed extension blocks are left as they are.
func zeroExtensionData(_ packet: UnsafeMutableRawBufferPointer, ids: (UInt8, UInt8, UInt8)) {
    guard packet.count >= 12, packet[0] & 0x10 != 0 else { return }
    let start = 12 + Int(packet[0] & 0x0F) * 4
    guard start + 4 <= packet.count else { return }
    let profile = UInt16(packet[start]) << 8 | UInt16(packet[start + 1])
    let end = start + 4 + (Int(packet[start + 2]) << 8 | Int(packet[start + 3])) * 4
    guard end <= packet.count else { return }
    let oneByte = profile == 0xBEDE
    guard oneByte || profile & 0xFFF0 == 0x1000 else { return }
    var position = start + 4
    while position < end {
        let id: UInt8
        let length: Int
        if oneByte {
            guard packet[position] != 0 else { position += 1; continue }  // padding
            id = packet[position] >> 4
            guard id != 15 else { return }  // reserved: stop (RFC 8285 §4.2)
            length = Int(packet[position] & 0x0F) + 1
            position += 1
        } else {
            guard packet[position] != 0 else { position += 1; continue }
            guard position + 1 < end else { return }
            id = packet[position]
            length = Int(packet[position + 1])
            position += 2
        }
        guard position + length <= end else { return }
        if id == ids.0 || id == ids.1 || id == ids.2 {
            for index in position..<(position + length) { packet[index] = 0 }
        }
        position += length
    }
}

/// The sending side of FlexFEC toward a browser: keeps the last packets sent on one SSRC (with their
/// transport-wide sequence number, abs-send-time and transmission-offset data zeroed, as the receiver
/// sees them) and writes XOR repairs over the newest of them (``XORPacketWindow``).
///
/// Storage is one slab made in `init`; nothing is allocated per packet or per repair. Only packets
/// actually kept are ever named in a mask: a receiver missing exactly one packet of a repair rebuilds it
/// from the others, so a mask bit for a packet never sent would make it invent one.
public struct FlexFECEncoder {
    private var window: XORPacketWindow
    /// Packets kept.
    public var capacity: Int { self.window.capacity }
    /// Packets kept in a row (consecutive sequence numbers).
    public var count: Int { self.window.count }
    /// Kept since the last repair.
    public var unprotected: Int { self.window.unprotected }
    /// Extension ids whose data the receiver zeroes (0: none).
    public var mutableExtensionIDs: (UInt8, UInt8, UInt8) {
        get { self.window.mutableExtensionIDs }
        set { self.window.mutableExtensionIDs = newValue }
    }

    public init(capacity: Int = 16, maximumPacketSize: Int = 1500, mutableExtensionIDs: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        self.window = XORPacketWindow(
            capacity: max(1, min(capacity, FlexFECHeader.maximumSpan)), maximumPacketSize: maximumPacketSize,
            mutableExtensionIDs: mutableExtensionIDs)
    }

    /// Bytes held.
    public var footprint: Int { self.window.footprint }

    /// Keeps a packet just sent (plain RTP, before SRTP). A sequence number that does not follow the last
    /// one starts a new run.
    public mutating func add(_ packet: ByteBuffer, sequenceNumber: UInt16) {
        self.window.add(packet, sequenceNumber: sequenceNumber, maximumGap: 1)
    }

    /// Forgets the kept packets (the stream's source changed).
    public mutating func reset() { self.window.reset() }

    /// Writes a repair payload (header and XOR) over the newest `span` kept packets (all kept ones when
    /// fewer) protecting `ssrc`, into `buffer`. Returns false when nothing is kept.
    public mutating func writeRepair(protecting ssrc: UInt32, span: Int, into buffer: inout ByteBuffer) -> Bool {
        guard let cover = self.window.cover(span: span, maximumOffset: FlexFECHeader.maximumSpan) else { return false }
        let header = FlexFECHeader(
            recoveryBytes: cover.recoveryBytes, lengthRecovery: cover.lengthRecovery,
            timestampRecovery: cover.timestampRecovery, protectedSSRC: ssrc, sequenceNumberBase: cover.base,
            mask: cover.mask)
        header.write(into: &buffer)
        self.window.writeXOR(of: cover, into: &buffer)
        return true
    }
}

/// The receiving side of FlexFEC, as libwebrtc decodes it: a repair rebuilds the one packet it covers
/// that is missing. Used by tests and fuzzing to check the encoder against the format; packets are kept
/// as given (the caller zeroes mutable extension data as the sender did).
public struct FlexFECDecoder {
    private var packets = XORRecoveryStore()
    /// The protected SSRC.
    public let ssrc: UInt32
    /// Repairs that did not parse, protect another SSRC, or did not fit the packets they cover.
    public var repairsDiscarded: Int { self.packets.repairsDiscarded }

    public init(ssrc: UInt32) { self.ssrc = ssrc }

    /// A media packet arrived (plain RTP).
    public mutating func received(_ packet: ByteBuffer, sequenceNumber: UInt16) {
        self.packets.keep(packet, sequenceNumber: sequenceNumber)
    }

    /// A repair's payload arrived: the packet it rebuilds, if exactly one it covers is missing.
    public mutating func repairReceived(_ payload: ByteBuffer) -> ByteBuffer? {
        guard let header = try? FlexFECHeader(payload), header.protectedSSRC == self.ssrc else {
            self.packets.discard()
            return nil
        }
        return self.packets.rebuild(
            base: header.sequenceNumberBase, offsets: header.offsets, recoveryBytes: header.recoveryBytes,
            lengthRecovery: header.lengthRecovery, timestampRecovery: header.timestampRecovery,
            repair: Array(payload.readableBytesView.dropFirst(header.length)), ssrc: self.ssrc)
    }
}
