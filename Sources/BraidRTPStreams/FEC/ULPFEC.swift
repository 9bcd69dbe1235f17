import BraidWire
public import NIOCore

/// The payload header of a ULPFEC repair ([RFC 5109 §7.3](https://www.rfc-editor.org/rfc/rfc5109#section-7.3)
/// FEC header and [§7.4](https://www.rfc-editor.org/rfc/rfc5109#section-7.4) level-0 header), as browsers
/// send and decode it inside RED (`ulpfec/90000` as a RED block, RFC 2198): one protection level, covering
/// whole packets.
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |E|L|P|X|  CC   |M| PT recovery |            SN base            |   E = 0; L = 1: 48-bit mask
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          TS recovery                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |        length recovery        |       protection length       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |             mask              |   mask cont. (L = 1 only)     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   mask cont. (L = 1 only)     |  protected bytes: XOR of the packets' bytes 12... (zero-padded)
/// ```
///
/// Mask bit `i` (0: the most significant bit of the first mask byte) protects `SN base + i`. The recovery
/// fields are the XOR of the protected packets' P, X, CC, M and PT, of their timestamps and of their
/// lengths minus the 12-byte fixed header. The protected packets are the media packets as the receiver
/// sees them with the RED header taken off (its block's payload type in the RTP header).
public struct ULPFECHeader: Hashable, Sendable {
    /// The most packets one repair can cover (the long mask).
    public static let maximumSpan = 48

    /// XOR of the protected packets' second to eighth bits of byte 0 and their byte 1 (P, X, CC, M, PT).
    public var recoveryBytes: UInt16
    /// The sequence number of mask bit 0.
    public var sequenceNumberBase: UInt16
    /// XOR of their timestamps.
    public var timestampRecovery: UInt32
    /// XOR of their lengths minus 12.
    public var lengthRecovery: UInt16
    /// Bytes of XOR data after the header.
    public var protectionLength: UInt16
    /// The protected packets: bit `i` (`1 << i`) protects `sequenceNumberBase + i`, i < 48.
    public var mask: UInt64

    /// Whether the 48-bit mask is needed (a packet at offset 16 or more).
    public var longMask: Bool { self.mask >> 16 != 0 }
    /// The header's length on the wire: 14 bytes, 18 with the long mask.
    public var length: Int { self.longMask ? 18 : 14 }
    /// The protected packets' offsets from the base, in order.
    public var offsets: [Int] { (0..<Self.maximumSpan).filter { self.mask & (1 << $0) != 0 } }

    public init(
        recoveryBytes: UInt16, sequenceNumberBase: UInt16, timestampRecovery: UInt32, lengthRecovery: UInt16,
        protectionLength: UInt16, mask: UInt64
    ) {
        self.recoveryBytes = recoveryBytes & 0x3FFF
        self.sequenceNumberBase = sequenceNumberBase
        self.timestampRecovery = timestampRecovery
        self.lengthRecovery = lengthRecovery
        self.protectionLength = protectionLength
        self.mask = mask & ((1 << Self.maximumSpan) - 1)
    }

    /// Reads the header at the start of `payload` (the ULPFEC block of a RED packet).
    public init(_ payload: ByteBuffer) throws(WireError) {
        let start = payload.readerIndex
        guard payload.readableBytes >= 14,
            let first = payload.getInteger(at: start, as: UInt16.self),
            let base = payload.getInteger(at: start + 2, as: UInt16.self),
            let timestamp = payload.getInteger(at: start + 4, as: UInt32.self),
            let length = payload.getInteger(at: start + 8, as: UInt16.self),
            let protection = payload.getInteger(at: start + 10, as: UInt16.self)
        else { throw WireError(.truncated, "ULPFEC payload shorter than its 14-byte header") }
        guard first & 0x8000 == 0 else { throw WireError(.badValue, "ULPFEC E bit set (no header extension is defined)") }
        let long = first & 0x4000 != 0
        let maskBytes = long ? 6 : 2
        guard payload.readableBytes >= 12 + maskBytes else { throw WireError(.truncated, "ULPFEC mask cut short") }
        var wire: UInt64 = 0
        for index in 0..<maskBytes {
            wire = wire << 8 | UInt64(payload.getInteger(at: start + 12 + index, as: UInt8.self)!)
        }
        // Wire bit order: offset 0 is the most significant bit of the first byte.
        var mask: UInt64 = 0
        for offset in 0..<(maskBytes * 8) where wire & (1 << (maskBytes * 8 - 1 - offset)) != 0 { mask |= 1 << offset }
        guard mask != 0 else { throw WireError(.badValue, "ULPFEC mask protects nothing") }
        guard payload.readableBytes >= 12 + maskBytes + Int(protection) else {
            throw WireError(.truncated, "ULPFEC protection length \(protection) beyond the payload")
        }
        self.init(
            recoveryBytes: first, sequenceNumberBase: base, timestampRecovery: timestamp, lengthRecovery: length,
            protectionLength: protection, mask: mask)
    }

    /// Writes the header (the XOR data follows it).
    public func write(into buffer: inout ByteBuffer) {
        let long = self.longMask
        buffer.writeInteger(self.recoveryBytes & 0x3FFF | (long ? 0x4000 : 0))
        buffer.writeInteger(self.sequenceNumberBase)
        buffer.writeInteger(self.timestampRecovery)
        buffer.writeInteger(self.lengthRecovery)
        buffer.writeInteger(self.protectionLength)
        let bits = long ? 48 : 16
        var wire: UInt64 = 0
        for offset in 0..<bits where self.mask & (1 << offset) != 0 { wire |= 1 << (bits - 1 - offset) }
        for index in stride(from: bits / 8 - 1, through: 0, by: -1) {
            buffer.writeInteger(UInt8(truncatingIfNeeded: wire >> (8 * index)))
        }
    }
}

/// The sending side of ULPFEC inside RED toward a browser (RFC 5109 over RFC 2198): keeps the media
/// packets sent on one SSRC as the receiver will see them once it has taken the RED header off (the media
/// payload type, mutable extension data zeroed) and writes XOR repairs over the newest of them.
///
/// Unlike FlexFEC, the repairs travel on the media SSRC and take sequence numbers of the media stream, so
/// the protected packets are not consecutive: a run continues across gaps of up to ``maximumGap`` numbers
/// (the repairs between them), and a mask names only packets kept. Storage is one slab made in `init`.
public struct ULPFECEncoder {
    private var window: XORPacketWindow
    /// Numbers a run may skip between two media packets (the repairs sent between them).
    public static let maximumGap: UInt16 = 4

    /// Packets kept in the current run.
    public var count: Int { self.window.count }
    /// Kept since the last repair.
    public var unprotected: Int { self.window.unprotected }

    public init(capacity: Int = 16, maximumPacketSize: Int = 1500, mutableExtensionIDs: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        self.window = XORPacketWindow(
            capacity: max(1, min(capacity, ULPFECHeader.maximumSpan)), maximumPacketSize: maximumPacketSize,
            mutableExtensionIDs: mutableExtensionIDs)
    }

    /// Bytes held.
    public var footprint: Int { self.window.footprint }

    /// Keeps a media packet just sent, without its RED header (plain RTP with the media payload type,
    /// before SRTP).
    public mutating func add(_ packet: ByteBuffer, sequenceNumber: UInt16) {
        self.window.add(packet, sequenceNumber: sequenceNumber, maximumGap: Self.maximumGap)
    }

    /// Forgets the kept packets (the stream's source changed).
    public mutating func reset() { self.window.reset() }

    /// Writes a repair (ULPFEC header and XOR, without the RED block header) over the newest `span` kept
    /// packets but the newest `skippingNewest` (fewer when fewer are kept, or when the run's gaps would push
    /// the oldest past the mask's 48 numbers), into `buffer`. Returns false when nothing is left to cover.
    public mutating func writeRepair(span: Int, skippingNewest skipped: Int = 0, into buffer: inout ByteBuffer) -> Bool {
        guard let cover = self.window.cover(span: span, skippingNewest: skipped, maximumOffset: ULPFECHeader.maximumSpan),
            cover.longest <= Int(UInt16.max)
        else { return false }
        let header = ULPFECHeader(
            recoveryBytes: cover.recoveryBytes, sequenceNumberBase: cover.base,
            timestampRecovery: cover.timestampRecovery, lengthRecovery: cover.lengthRecovery,
            protectionLength: UInt16(cover.longest), mask: UInt64(truncatingIfNeeded: cover.mask))
        header.write(into: &buffer)
        self.window.writeXOR(of: cover, into: &buffer)
        return true
    }
}

/// The receiving side of ULPFEC as libwebrtc decodes it: a repair rebuilds the one packet it covers that
/// is missing. Used by tests and fuzzing to check the encoder against the format; media packets are given
/// as the receiver sees them without their RED header (mutable extension data zeroed as the sender did).
public struct ULPFECDecoder {
    private var packets = XORRecoveryStore()
    /// The protected SSRC (the media SSRC, which the repairs travel on).
    public let ssrc: UInt32
    /// Repairs that did not parse or did not fit the packets they cover.
    public var repairsDiscarded: Int { self.packets.repairsDiscarded }

    public init(ssrc: UInt32) { self.ssrc = ssrc }

    /// A media packet arrived (plain RTP, RED header taken off).
    public mutating func received(_ packet: ByteBuffer, sequenceNumber: UInt16) {
        self.packets.keep(packet, sequenceNumber: sequenceNumber)
    }

    /// A repair's ULPFEC block arrived: the packet it rebuilds, if exactly one it covers is missing.
    public mutating func repairReceived(_ payload: ByteBuffer) -> ByteBuffer? {
        guard let header = try? ULPFECHeader(payload) else {
            self.packets.discard()
            return nil
        }
        let data = payload.readableBytesView.dropFirst(header.length).prefix(Int(header.protectionLength))
        return self.packets.rebuild(
            base: header.sequenceNumberBase, offsets: header.offsets, recoveryBytes: header.recoveryBytes,
            lengthRecovery: header.lengthRecovery, timestampRecovery: header.timestampRecovery, repair: Array(data),
            ssrc: self.ssrc)
    }
}

/// The media packets an XOR decoder holds (the newest 192, as libwebrtc's receiver keeps), and the rebuild
/// both FEC formats share: the one missing packet of a repair is the XOR of the repair with the others.
/// Repairs that cannot be used honestly (unparsable, or lengths that do not fit) are counted, never guessed.
struct XORRecoveryStore {
    private var packets: [UInt16: [UInt8]] = [:]
    private(set) var repairsDiscarded = 0

    mutating func keep(_ packet: ByteBuffer, sequenceNumber: UInt16) {
        self.packets[sequenceNumber] = Array(packet.readableBytesView)
        if self.packets.count > 4 * 48 {
            self.packets = self.packets.filter { sequenceNumber &- $0.key < 192 }
        }
    }

    /// A repair the caller could not read (or that protects another stream): counted.
    mutating func discard() { self.repairsDiscarded += 1 }

    /// The packet a repair over `base + offsets` rebuilds when exactly one of them is missing; nil when
    /// none or several are, or when a length does not fit the repair (a forged or corrupted one: counted).
    mutating func rebuild(
        base: UInt16, offsets: [Int], recoveryBytes: UInt16, lengthRecovery: UInt16, timestampRecovery: UInt32,
        repair: [UInt8], ssrc: UInt32
    ) -> ByteBuffer? {
        let numbers = offsets.map { base &+ UInt16($0) }
        let missing = numbers.filter { self.packets[$0] == nil }
        guard missing.count == 1, let lost = missing.first else { return nil }
        var first = recoveryBytes
        var length = lengthRecovery
        var timestamp = timestampRecovery
        var repair = repair
        for number in numbers where number != lost {
            let packet = self.packets[number]!
            first ^= UInt16(packet[0]) << 8 | UInt16(packet[1])
            length ^= UInt16(truncatingIfNeeded: packet.count - 12)
            timestamp ^= UInt32(packet[4]) << 24 | UInt32(packet[5]) << 16 | UInt32(packet[6]) << 8 | UInt32(packet[7])
            guard packet.count - 12 <= repair.count else {
                self.discard()
                return nil
            }
            for index in 0..<(packet.count - 12) { repair[index] ^= packet[12 + index] }
        }
        guard Int(length) <= repair.count else {
            self.discard()
            return nil
        }
        var rebuilt = ByteBuffer()
        rebuilt.writeInteger((first | 0x8000) & 0xBFFF)
        rebuilt.writeInteger(lost)
        rebuilt.writeInteger(timestamp)
        rebuilt.writeInteger(ssrc)
        rebuilt.writeBytes(repair[0..<Int(length)])
        self.packets[lost] = Array(rebuilt.readableBytesView)
        return rebuilt
    }
}
