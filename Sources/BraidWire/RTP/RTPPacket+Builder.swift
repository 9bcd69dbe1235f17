import NIOCore

/// The fixed-header fields of an RTP packet to build
/// ([RFC 3550 §5.1](https://www.rfc-editor.org/rfc/rfc3550#section-5.1); diagram on ``RTPPacket``).
public struct RTPHeader: Hashable, Sendable {
    /// The M bit.
    public var marker: Bool
    /// Payload type, 0–127.
    public var payloadType: UInt8
    /// Sequence number.
    public var sequenceNumber: UInt16
    /// Media timestamp.
    public var timestamp: UInt32
    /// Synchronization source.
    public var ssrc: UInt32

    @inlinable
    public init(marker: Bool = false, payloadType: UInt8, sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32) {
        self.marker = marker
        self.payloadType = payloadType
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.ssrc = ssrc
    }
}

extension RTPPacket {
    /// The fixed-header fields of this packet.
    @inlinable public var header: RTPHeader {
        RTPHeader(
            marker: self.marker, payloadType: self.payloadType, sequenceNumber: self.sequenceNumber,
            timestamp: self.timestamp, ssrc: self.ssrc)
    }
}

/// Collects header extension elements for
/// ``NIOCore/ByteBuffer/writeRTPPacket(_:csrcs:extensions:payload:paddingLength:)``.
///
/// Values are staged in a `ByteBuffer` the builder owns; pass the same builder (after ``removeAll()``)
/// for every packet and its storage is reused, so the steady state allocates nothing.
///
/// The RFC 8285 form is chosen when the block is written: the one-byte form
/// ([§4.2](https://www.rfc-editor.org/rfc/rfc8285#section-4.2)) when every ID is 1–14 and every value is
/// 1–16 bytes, otherwise the two-byte form ([§4.3](https://www.rfc-editor.org/rfc/rfc8285#section-4.3)),
/// which the peer must have accepted with `a=extmap-allow-mixed`. Alternatively the builder can hold one
/// opaque block with any profile (``setRaw(profile:data:)``), e.g. to forward a block verbatim.
public struct RTPHeaderExtensionBuilder: Sendable {
    /// Staged elements as `id, length, value…` triples; or the raw block data in raw mode.
    @usableFromInline var storage: ByteBuffer
    @usableFromInline var valueBytes: Int = 0
    @usableFromInline var requiresTwoByteForm = false
    @usableFromInline var rawProfile: UInt16?
    /// Number of staged elements (0 in raw mode).
    @inlinable public var count: Int { self.stagedCount }
    @usableFromInline var stagedCount: Int = 0
    /// Write the two-byte form even when the one-byte form would do.
    public var prefersTwoByteForm = false
    /// The 4 application bits written in a two-byte-form profile (RFC 8285 §4.3).
    public var appBits: UInt8 = 0

    /// A builder that stages values in `storage` (cleared; its capacity is reused).
    @inlinable public init(storage: ByteBuffer = ByteBuffer()) {
        self.storage = storage
        self.storage.clear()
    }

    /// Forgets every element and any raw block, keeping the storage capacity.
    @inlinable public mutating func removeAll() {
        self.storage.clear()
        self.valueBytes = 0
        self.requiresTwoByteForm = false
        self.rawProfile = nil
        self.stagedCount = 0
    }

    /// Whether nothing is staged (then no extension block is written and X stays 0).
    @inlinable public var isEmpty: Bool { self.count == 0 && self.rawProfile == nil }

    /// The form the block will be written in, or nil when empty or raw.
    @inlinable public var form: RTPHeaderExtension.Form? {
        guard self.count > 0, self.rawProfile == nil else { return nil }
        return self.requiresTwoByteForm || self.prefersTwoByteForm ? .twoByte : .oneByte
    }

    /// Bytes the block takes in a packet: the 4-byte profile/length word plus the data padded to 32 bits.
    @inlinable public var encodedLength: Int {
        if self.rawProfile != nil { return 4 + self.storage.readableBytes }
        guard let form = self.form else { return 0 }
        let data = self.valueBytes + self.count * (form == .oneByte ? 1 : 2)
        return 4 + ((data + 3) & ~3)
    }

    /// Stages an element with raw value bytes.
    /// - Throws: `.badValue` for ID 0 or an ID already staged, `.badLength` for a value over 255 bytes,
    ///   `.badExtension` when the builder holds a raw block.
    @inlinable
    public mutating func append(id: UInt8, bytes: some Collection<UInt8>) throws(WireError) {
        let length = try self.checkAppend(id: id, length: bytes.count)
        self.storage.writeMultipleIntegers(id, length)
        self.storage.writeBytes(bytes)
        self.commit(id: id, length: Int(length))
    }

    /// Stages an element whose value is the readable bytes of `value`.
    @inlinable
    public mutating func append(id: UInt8, value: ByteBuffer) throws(WireError) {
        let length = try self.checkAppend(id: id, length: value.readableBytes)
        self.storage.writeMultipleIntegers(id, length)
        self.storage.writeImmutableBuffer(value)
        self.commit(id: id, length: Int(length))
    }

    /// Stages a typed value under local ID `id`.
    @inlinable
    public mutating func append(_ value: some RTPHeaderExtensionValue, id: UInt8) throws(WireError) {
        let length = try self.checkAppend(id: id, length: value.encodedLength)
        self.storage.writeMultipleIntegers(id, length)
        let written = value.write(to: &self.storage, at: self.storage.writerIndex)
        self.storage.moveWriterIndex(forwardBy: written)
        self.commit(id: id, length: Int(length))
    }

    /// Replaces the contents with one opaque block: `profile` and `data` (a multiple of 4 bytes).
    /// - Throws: `.badLength` when `data` is not a whole number of 32-bit words or exceeds 65535 words.
    @inlinable
    public mutating func setRaw(profile: UInt16, data: ByteBuffer) throws(WireError) {
        let length = data.readableBytes
        guard length % 4 == 0, length / 4 <= Int(UInt16.max) else {
            throw WireError(.badLength, "raw extension data of \(length) bytes is not 0-65535 32-bit words")
        }
        self.removeAll()
        self.rawProfile = profile
        self.storage.writeImmutableBuffer(data)
    }

    @inlinable
    mutating func checkAppend(id: UInt8, length: Int) throws(WireError) -> UInt8 {
        guard self.rawProfile == nil else {
            throw WireError(.badExtension, "cannot add elements to a raw extension block")
        }
        guard id != 0 else {
            throw WireError(.badValue, "extension ID 0 is reserved for padding (RFC 8285 §4.2)")
        }
        guard let length8 = UInt8(exactly: length) else {
            throw WireError(.badLength, "extension value of \(length) bytes exceeds 255")
        }
        var cursor = self.storage.readerIndex
        while let (staged, stagedLength) = self.storage.getMultipleIntegers(at: cursor, as: (UInt8, UInt8).self) {
            guard staged != id else {
                throw WireError(.badValue, "extension ID \(id) added twice")
            }
            cursor += 2 + Int(stagedLength)
        }
        return length8
    }

    @inlinable
    mutating func commit(id: UInt8, length: Int) {
        self.stagedCount += 1
        self.valueBytes += length
        if id > 14 || length == 0 || length > 16 {
            self.requiresTwoByteForm = true
        }
    }

    /// Appends the block (profile/length word and padded data) to `buffer`.
    @inlinable
    func write(into buffer: inout ByteBuffer) {
        if let profile = self.rawProfile {
            buffer.writeMultipleIntegers(profile, UInt16(truncatingIfNeeded: self.storage.readableBytes / 4))
            buffer.writeImmutableBuffer(self.storage)
            return
        }
        guard let form = self.form else { return }
        let total = self.encodedLength
        let profile: UInt16 = form == .oneByte ? 0xBEDE : 0x1000 | UInt16(self.appBits & 0x0F)
        let start = buffer.writerIndex
        buffer.writeMultipleIntegers(profile, UInt16(truncatingIfNeeded: (total - 4) / 4))
        var cursor = self.storage.readerIndex
        while let (id, length) = self.storage.getMultipleIntegers(at: cursor, as: (UInt8, UInt8).self),
            let value = self.storage.getSlice(at: cursor + 2, length: Int(length))
        {
            switch form {
            case .oneByte: buffer.writeInteger(id << 4 | (length - 1))
            case .twoByte: buffer.writeMultipleIntegers(id, length)
            }
            buffer.writeImmutableBuffer(value)
            cursor += 2 + Int(length)
        }
        buffer.writeRepeatingByte(0, count: total - (buffer.writerIndex - start))
    }
}

extension ByteBuffer {
    /// Appends one RTP packet ([RFC 3550 §5.1](https://www.rfc-editor.org/rfc/rfc3550#section-5.1)).
    ///
    /// Reserves the whole packet's size once, so a buffer with enough capacity is never reallocated.
    ///
    /// - Parameters:
    ///   - header: the fixed-header fields.
    ///   - csrcs: up to 15 contributing sources.
    ///   - extensions: header extension elements (nil or empty: no extension, X = 0).
    ///   - payload: the readable bytes are copied as the payload.
    ///   - paddingLength: 0 for none, else 1–255 padding bytes including the count byte (sets P).
    /// - Returns: the number of bytes written.
    /// - Throws: `.badValue` for a payload type over 127, more than 15 CSRCs or padding over 255.
    @discardableResult @inlinable
    public mutating func writeRTPPacket(
        _ header: RTPHeader,
        csrcs: some Collection<UInt32> = EmptyCollection<UInt32>(),
        extensions: RTPHeaderExtensionBuilder? = nil,
        payload: ByteBuffer,
        paddingLength: Int = 0
    ) throws(WireError) -> Int {
        guard header.payloadType <= 127 else {
            throw WireError(.badValue, "payload type \(header.payloadType) exceeds 127")
        }
        let csrcCount = csrcs.count
        guard csrcCount <= 15 else {
            throw WireError(.badValue, "\(csrcCount) CSRCs, at most 15 fit the CC field")
        }
        guard (0...255).contains(paddingLength) else {
            throw WireError(.badValue, "padding of \(paddingLength) bytes, must be 0-255")
        }
        let extensionLength = extensions?.encodedLength ?? 0
        let total = 12 + 4 * csrcCount + extensionLength + payload.readableBytes + paddingLength
        self.reserveCapacity(minimumWritableBytes: total)

        var first = 0x80 | UInt8(csrcCount)
        if paddingLength > 0 { first |= 0x20 }
        if extensionLength > 0 { first |= 0x10 }
        let second = header.payloadType | (header.marker ? 0x80 : 0)
        self.writeMultipleIntegers(first, second, header.sequenceNumber, header.timestamp, header.ssrc)
        for csrc in csrcs.prefix(15) {
            self.writeInteger(csrc)
        }
        if extensionLength > 0, let extensions {
            extensions.write(into: &self)
        }
        self.writeImmutableBuffer(payload)
        if paddingLength > 0 {
            self.writeRepeatingByte(0, count: paddingLength - 1)
            self.writeInteger(UInt8(paddingLength))
        }
        return total
    }
}
