import NIOCore

/// The VP8 payload descriptor, [RFC 7741 §4.2](https://www.rfc-editor.org/rfc/rfc7741#section-4.2).
///
/// ```
///        0 1 2 3 4 5 6 7                      0 1 2 3 4 5 6 7
///       +-+-+-+-+-+-+-+-+                    +-+-+-+-+-+-+-+-+
///       |X|R|N|S|R| PID | (REQUIRED)         |X|R|N|S|R| PID | (REQUIRED)
///       +-+-+-+-+-+-+-+-+                    +-+-+-+-+-+-+-+-+
///  X:   |I|L|T|K| RSV   | (OPTIONAL)    X:   |I|L|T|K| RSV   | (OPTIONAL)
///       +-+-+-+-+-+-+-+-+                    +-+-+-+-+-+-+-+-+
///  I:   |M| PictureID   | (OPTIONAL)    I:   |M| PictureID   | (OPTIONAL)
///       +-+-+-+-+-+-+-+-+                    +-+-+-+-+-+-+-+-+
///  L:   |   TL0PICIDX   | (OPTIONAL)         |   PictureID   |
///       +-+-+-+-+-+-+-+-+                    +-+-+-+-+-+-+-+-+
///  T/K: |TID|Y| KEYIDX  | (OPTIONAL)    L:   |   TL0PICIDX   | (OPTIONAL)
///       +-+-+-+-+-+-+-+-+                    +-+-+-+-+-+-+-+-+
///                                       T/K: |TID|Y| KEYIDX  | (OPTIONAL)
///                                            +-+-+-+-+-+-+-+-+
///        7-bit PictureID (M = 0)              15-bit PictureID (M = 1)
/// ```
///
/// At most 6 bytes, so it is decoded into plain values (no buffer is retained). R bits are ignored on
/// input and written as 0. TID/Y are meaningful only with T = 1 and KEYIDX only with K = 1; the byte
/// is present when either is set.
public struct VP8PayloadDescriptor: Hashable, Sendable {
    /// The PictureID field with its width, which the M bit encodes.
    public enum PictureID: Hashable, Sendable {
        /// M = 0: 7 bits (0–127).
        case short(UInt8)
        /// M = 1: 15 bits (0–32767).
        case long(UInt16)

        /// The numeric value.
        @inlinable public var value: UInt16 {
            switch self {
            case .short(let value): UInt16(value)
            case .long(let value): value
            }
        }

        /// Bytes the field takes on the wire.
        @inlinable public var byteCount: Int {
            switch self {
            case .short: 1
            case .long: 2
            }
        }

        /// The same width holding `value` modulo the width (PictureIDs wrap).
        @inlinable public func withValue(_ value: UInt16) -> PictureID {
            switch self {
            case .short: .short(UInt8(truncatingIfNeeded: value) & 0x7F)
            case .long: .long(value & 0x7FFF)
            }
        }
    }

    /// N: the frame can be discarded without affecting any other frame.
    public var isNonReference: Bool
    /// S: the first packet of a VP8 partition.
    public var isStartOfPartition: Bool
    /// PID: the VP8 partition index, 0–7.
    public var partitionIndex: UInt8
    /// I: the picture identifier.
    public var pictureID: PictureID?
    /// L: the temporal level 0 picture index.
    public var tl0PicIndex: UInt8?
    /// T: the temporal layer index (TID), 0–3.
    public var temporalLayerIndex: UInt8?
    /// Y: layer sync; meaningful only with ``temporalLayerIndex``.
    public var isLayerSync: Bool
    /// K: the temporal key frame index (KEYIDX), 0–31.
    public var keyIndex: UInt8?

    @inlinable
    public init(
        isNonReference: Bool = false,
        isStartOfPartition: Bool,
        partitionIndex: UInt8 = 0,
        pictureID: PictureID? = nil,
        tl0PicIndex: UInt8? = nil,
        temporalLayerIndex: UInt8? = nil,
        isLayerSync: Bool = false,
        keyIndex: UInt8? = nil
    ) {
        self.isNonReference = isNonReference
        self.isStartOfPartition = isStartOfPartition
        self.partitionIndex = partitionIndex
        self.pictureID = pictureID
        self.tl0PicIndex = tl0PicIndex
        self.temporalLayerIndex = temporalLayerIndex
        self.isLayerSync = isLayerSync
        self.keyIndex = keyIndex
    }

    /// S = 1 and PID = 0: the first packet of a frame.
    @inlinable public var isStartOfFrame: Bool { self.isStartOfPartition && self.partitionIndex == 0 }

    /// Whether the X byte is needed.
    @inlinable var hasExtendedControlBits: Bool {
        self.pictureID != nil || self.tl0PicIndex != nil || self.temporalLayerIndex != nil || self.keyIndex != nil
    }

    /// Bytes ``write(into:)`` appends.
    @inlinable public var encodedLength: Int {
        guard self.hasExtendedControlBits else { return 1 }
        var length = 2 + (self.pictureID?.byteCount ?? 0)
        if self.tl0PicIndex != nil { length += 1 }
        if self.temporalLayerIndex != nil || self.keyIndex != nil { length += 1 }
        return length
    }

    /// Parses the descriptor at the start of the readable bytes of `payload`.
    ///
    /// The descriptor's size is ``encodedLength`` unless the sender set X with no optional field
    /// (then it is 2); ``VP8Payload`` reports the exact size.
    /// - Throws: `.truncated` when the descriptor runs past the end.
    @inlinable
    public init(_ payload: ByteBuffer) throws(WireError) {
        let (descriptor, _) = try Self.parse(payload, at: payload.readerIndex, end: payload.writerIndex)
        self = descriptor
    }

    /// Parses the descriptor at absolute `index`, reading no byte at or after `end`; returns it and its
    /// size in bytes.
    @inlinable
    static func parse(_ buffer: ByteBuffer, at index: Int, end: Int) throws(WireError) -> (Self, Int) {
        func byte(_ at: Int) -> UInt8? { at < end ? buffer.getInteger(at: at, as: UInt8.self) : nil }
        guard let first = byte(index) else {
            throw WireError(.truncated, "empty VP8 payload")
        }
        var descriptor = VP8PayloadDescriptor(
            isNonReference: first & 0x20 != 0, isStartOfPartition: first & 0x10 != 0,
            partitionIndex: first & 0x07)
        var cursor = index + 1
        guard first & 0x80 != 0 else { return (descriptor, 1) }
        guard let control = byte(cursor) else {
            throw WireError(.truncated, "VP8 descriptor X bit set but the extension byte is missing")
        }
        cursor += 1
        if control & 0x80 != 0 {
            guard let high = byte(cursor) else {
                throw WireError(.truncated, "VP8 descriptor I bit set but the PictureID is missing")
            }
            if high & 0x80 != 0 {
                guard let low = byte(cursor + 1) else {
                    throw WireError(.truncated, "VP8 15-bit PictureID is missing its second byte")
                }
                descriptor.pictureID = .long(UInt16(high & 0x7F) << 8 | UInt16(low))
                cursor += 2
            } else {
                descriptor.pictureID = .short(high)
                cursor += 1
            }
        }
        if control & 0x40 != 0 {
            guard let tl0 = byte(cursor) else {
                throw WireError(.truncated, "VP8 descriptor L bit set but TL0PICIDX is missing")
            }
            descriptor.tl0PicIndex = tl0
            cursor += 1
        }
        if control & 0x30 != 0 {
            guard let tk = byte(cursor) else {
                throw WireError(.truncated, "VP8 descriptor T/K bit set but the TID/KEYIDX byte is missing")
            }
            if control & 0x20 != 0 {
                descriptor.temporalLayerIndex = tk >> 6
                descriptor.isLayerSync = tk & 0x20 != 0
            }
            if control & 0x10 != 0 {
                descriptor.keyIndex = tk & 0x1F
            }
            cursor += 1
        }
        return (descriptor, cursor - index)
    }

    /// Appends the descriptor to `buffer`.
    /// - Throws: `.badValue` when a field exceeds its width (PID > 7, short PictureID > 127,
    ///   long PictureID > 32767, TID > 3, KEYIDX > 31).
    /// - Returns: the number of bytes written.
    @discardableResult @inlinable
    public func write(into buffer: inout ByteBuffer) throws(WireError) -> Int {
        guard self.partitionIndex <= 7 else {
            throw WireError(.badValue, "VP8 partition index \(self.partitionIndex) exceeds 7")
        }
        var first = self.partitionIndex
        if self.isNonReference { first |= 0x20 }
        if self.isStartOfPartition { first |= 0x10 }
        guard self.hasExtendedControlBits else {
            buffer.writeInteger(first)
            return 1
        }
        first |= 0x80
        var control: UInt8 = 0
        if self.pictureID != nil { control |= 0x80 }
        if self.tl0PicIndex != nil { control |= 0x40 }
        if self.temporalLayerIndex != nil { control |= 0x20 }
        if self.keyIndex != nil { control |= 0x10 }
        var tk: UInt8 = 0
        if let tid = self.temporalLayerIndex {
            guard tid <= 3 else { throw WireError(.badValue, "VP8 TID \(tid) exceeds 3") }
            tk |= tid << 6 | (self.isLayerSync ? 0x20 : 0)
        }
        if let keyIndex = self.keyIndex {
            guard keyIndex <= 31 else { throw WireError(.badValue, "VP8 KEYIDX \(keyIndex) exceeds 31") }
            tk |= keyIndex
        }
        let start = buffer.writerIndex
        switch self.pictureID {
        case .short(let id):
            guard id <= 0x7F else { throw WireError(.badValue, "7-bit VP8 PictureID \(id) exceeds 127") }
            buffer.writeMultipleIntegers(first, control, id)
        case .long(let id):
            guard id <= 0x7FFF else { throw WireError(.badValue, "15-bit VP8 PictureID \(id) exceeds 32767") }
            buffer.writeMultipleIntegers(first, control, 0x8000 | id)
        case nil:
            buffer.writeMultipleIntegers(first, control)
        }
        if let tl0 = self.tl0PicIndex { buffer.writeInteger(tl0) }
        if self.temporalLayerIndex != nil || self.keyIndex != nil { buffer.writeInteger(tk) }
        return buffer.writerIndex - start
    }

    /// Rewrites PictureID and/or TL0PICIDX of the descriptor at absolute `index` of `buffer`, in place,
    /// reading nothing at or after `end` (default: the buffer's writer index).
    ///
    /// The PictureID keeps the width it has on the wire; `pictureID` is taken modulo that width, so a
    /// forwarder can keep the sequence continuous across source switches. Nil arguments are left alone.
    /// - Throws: `.truncated` if no valid descriptor is at `index`; `.badValue` when asked to set a
    ///   field the descriptor does not carry.
    @inlinable
    public static func rewrite(
        pictureID: UInt16? = nil, tl0PicIndex: UInt8? = nil, in buffer: inout ByteBuffer, at index: Int,
        end: Int? = nil
    ) throws(WireError) {
        let end = end ?? buffer.writerIndex
        let (descriptor, _) = try Self.parse(buffer, at: index, end: end)
        // Offsets follow from the flags: first byte, X byte, then PictureID, then TL0PICIDX.
        if let pictureID {
            switch descriptor.pictureID {
            case .short: buffer.setInteger(UInt8(truncatingIfNeeded: pictureID) & 0x7F, at: index + 2)
            case .long: buffer.setInteger(0x8000 | pictureID & 0x7FFF, at: index + 2)
            case nil: throw WireError(.badValue, "VP8 descriptor carries no PictureID to rewrite")
            }
        }
        if let tl0PicIndex {
            guard descriptor.tl0PicIndex != nil else {
                throw WireError(.badValue, "VP8 descriptor carries no TL0PICIDX to rewrite")
            }
            buffer.setInteger(tl0PicIndex, at: index + 2 + (descriptor.pictureID?.byteCount ?? 0))
        }
    }
}

/// A VP8 RTP payload: the descriptor, keyframe detection and the VP8 data after the descriptor.
///
/// The first byte of the VP8 data of a frame's first packet is the start of the VP8 payload header,
/// [RFC 7741 §4.3](https://www.rfc-editor.org/rfc/rfc7741#section-4.3):
///
/// ```
///  0 1 2 3 4 5 6 7
/// +-+-+-+-+-+-+-+-+
/// |Size0|H| VER |P|
/// +-+-+-+-+-+-+-+-+
/// ```
///
/// P is the inverse key frame flag: 0 means a key frame.
public struct VP8Payload: Sendable {
    /// The decoded descriptor.
    public let descriptor: VP8PayloadDescriptor
    /// Size of the descriptor on the wire (1–6 bytes).
    public let descriptorLength: Int
    /// The VP8 data after the descriptor (a slice of the payload; at least one byte).
    public let data: ByteBuffer

    /// Parses an RTP payload (its readable bytes) carrying VP8.
    /// - Throws: `.truncated` when the descriptor is cut short or no VP8 data follows it.
    @inlinable
    public init(_ payload: ByteBuffer) throws(WireError) {
        let (descriptor, length) = try VP8PayloadDescriptor.parse(
            payload, at: payload.readerIndex, end: payload.writerIndex)
        guard length < payload.readableBytes,
            let data = payload.getSlice(at: payload.readerIndex + length, length: payload.readableBytes - length)
        else {
            throw WireError(.truncated, "VP8 payload has no data after its \(length)-byte descriptor")
        }
        self.descriptor = descriptor
        self.descriptorLength = length
        self.data = data
    }

    /// S = 1 and PID = 0: this packet starts a frame.
    @inlinable public var isStartOfFrame: Bool { self.descriptor.isStartOfFrame }

    /// Whether this packet starts a key frame (S = 1, PID = 0 and P = 0 in the payload header).
    @inlinable public var isKeyFrame: Bool {
        guard self.isStartOfFrame, let header = self.data.getInteger(at: self.data.readerIndex, as: UInt8.self)
        else { return false }
        return header & 0x01 == 0
    }
}

extension RTPPacket {
    /// Rewrites the VP8 descriptor at the start of this packet's payload in place
    /// (see ``VP8PayloadDescriptor/rewrite(pictureID:tl0PicIndex:in:at:end:)``).
    @inlinable
    public mutating func rewriteVP8Descriptor(pictureID: UInt16? = nil, tl0PicIndex: UInt8? = nil) throws(WireError) {
        guard self.payloadLength > 0 else {
            throw WireError(.truncated, "RTP packet has no payload")
        }
        try VP8PayloadDescriptor.rewrite(
            pictureID: pictureID, tl0PicIndex: tl0PicIndex, in: &self.storage, at: self.payloadIndex,
            end: self.payloadIndex + self.payloadLength)
    }
}
