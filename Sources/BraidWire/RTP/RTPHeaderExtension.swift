import NIOCore

/// The header extension block of an ``RTPPacket``, with its RFC 8285 elements.
///
/// [RFC 3550 §5.3.1](https://www.rfc-editor.org/rfc/rfc3550#section-5.3.1) defines the block: a 16-bit
/// profile-defined value, a 16-bit length in 32-bit words, then the data.
/// [RFC 8285](https://www.rfc-editor.org/rfc/rfc8285) defines two profiles that carry a list of (ID, value) elements.
///
/// One-byte form ([§4.2](https://www.rfc-editor.org/rfc/rfc8285#section-4.2)), profile 0xBEDE, IDs 1–14,
/// values of 1–16 bytes (L = length − 1). ID 0 is a padding byte; ID 15 ends processing of the block:
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |       0xBE    |    0xDE       |           length=3            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  ID   | L=0   |     data      |  ID   |  L=1  |   data...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///       ...data   |    0 (pad)    |    0 (pad)    |  ID   | L=3   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          data                                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Two-byte form ([§4.3](https://www.rfc-editor.org/rfc/rfc8285#section-4.3)), profile 0x100 followed by
/// 4 application bits, IDs 1–255, values of 0–255 bytes; a zero byte where an ID is expected is padding:
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |       0x10    |    0x00       |           length=3            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      ID       |     L=0       |     ID        |     L=1       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |       data    |    0 (pad)    |       ID      |      L=4      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          data                                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Blocks with any other profile are kept opaque: ``data`` is available, ``elements`` is empty.
public struct RTPHeaderExtension: Sendable {
    /// The two element encodings of RFC 8285.
    public enum Form: Hashable, Sendable {
        /// Profile 0xBEDE (§4.2).
        case oneByte
        /// Profile 0x100 + appbits (§4.3).
        case twoByte

        /// The form a profile value announces, or nil for a profile RFC 8285 does not define.
        @inlinable public init?(profile: UInt16) {
            if profile == 0xBEDE {
                self = .oneByte
            } else if profile & 0xFFF0 == 0x1000 {
                self = .twoByte
            } else {
                return nil
            }
        }
    }

    @usableFromInline let buffer: ByteBuffer
    /// The 16-bit "defined by profile" field.
    public let profile: UInt16
    @usableFromInline let packetBase: Int
    @usableFromInline let dataOffset: Int
    /// Length of the extension data in bytes (a multiple of 4).
    public let dataLength: Int

    @inlinable
    init(buffer: ByteBuffer, profile: UInt16, packetBase: Int, dataOffset: Int, dataLength: Int) {
        self.buffer = buffer
        self.profile = profile
        self.packetBase = packetBase
        self.dataOffset = dataOffset
        self.dataLength = dataLength
    }

    /// The RFC 8285 form, or nil when the profile is not one of RFC 8285's.
    @inlinable public var form: Form? { Form(profile: self.profile) }

    /// The 4 application-dependent bits of the two-byte form (0 for any other profile).
    @inlinable public var appBits: UInt8 { self.form == .twoByte ? UInt8(self.profile & 0x000F) : 0 }

    /// The extension data (after the profile/length word) as a slice of the packet.
    @inlinable public var data: ByteBuffer {
        self.buffer.getSlice(at: self.packetBase + self.dataOffset, length: self.dataLength) ?? ByteBuffer()
    }

    /// One RFC 8285 element.
    public struct Element: Sendable {
        /// The local identifier (1–14 in the one-byte form, 1–255 in the two-byte form).
        public let id: UInt8
        /// Offset of the first value byte from the start of the packet, for in-place rewriting.
        public let valueOffset: Int
        /// The value bytes, a slice of the packet.
        public let value: ByteBuffer

        @inlinable init(id: UInt8, valueOffset: Int, value: ByteBuffer) {
            self.id = id
            self.valueOffset = valueOffset
            self.value = value
        }

        /// Number of value bytes.
        @inlinable public var length: Int { self.value.readableBytes }
    }

    /// The elements in packet order; empty for a non-RFC 8285 profile.
    @inlinable public var elements: Elements { Elements(self) }

    /// The first element with local identifier `id`, if any.
    @inlinable public func element(id: UInt8) -> Element? {
        for element in self.elements where element.id == id {
            return element
        }
        return nil
    }

    /// The value of the first element with local identifier `id`, if any.
    @inlinable public func value(id: UInt8) -> ByteBuffer? { self.element(id: id)?.value }

    /// The elements of a header extension block, iterated without allocating.
    public struct Elements: Sequence, Sendable {
        @usableFromInline let header: RTPHeaderExtension
        @inlinable init(_ header: RTPHeaderExtension) { self.header = header }

        @inlinable public func makeIterator() -> Iterator {
            let start = self.header.packetBase + self.header.dataOffset
            return Iterator(
                header: self.header, form: self.header.form, cursor: start, end: start + self.header.dataLength)
        }

        /// Walks the block element by element.
        public struct Iterator: IteratorProtocol, Sendable {
            @usableFromInline let header: RTPHeaderExtension
            @usableFromInline let form: Form?
            @usableFromInline var cursor: Int
            @usableFromInline let end: Int

            @inlinable init(header: RTPHeaderExtension, form: Form?, cursor: Int, end: Int) {
                self.header = header
                self.form = form
                self.cursor = cursor
                self.end = end
            }

            @inlinable public mutating func next() -> Element? {
                guard let form = self.form else { return nil }
                // The packet initializer walked this block already, so this cannot throw; stop if it did.
                guard
                    let (id, index, length) = try? RTPHeaderExtension.nextElement(
                        in: self.header.buffer, form: form, cursor: &self.cursor, end: self.end),
                    let value = self.header.buffer.getSlice(at: index, length: length)
                else {
                    self.cursor = self.end
                    return nil
                }
                return Element(id: id, valueOffset: index - self.header.packetBase, value: value)
            }
        }
    }

    /// Reads the element at `cursor` and advances past it.
    ///
    /// Skips padding bytes. Returns nil at the end of the block, or at ID 15 in the one-byte form
    /// (RFC 8285 §4.2: "processing of the entire extension MUST terminate"), leaving `cursor` at `end`.
    /// A zero ID byte is padding in both forms; like libwebrtc, a one-byte-form ID 0 is skipped as a
    /// single byte whatever its L field holds.
    /// - Returns: the element's ID, the absolute index of its value and the value's length.
    @inlinable
    static func nextElement(
        in buffer: ByteBuffer, form: Form, cursor: inout Int, end: Int
    ) throws(WireError) -> (id: UInt8, index: Int, length: Int)? {
        while cursor < end {
            guard let head = buffer.getInteger(at: cursor, as: UInt8.self) else {
                throw WireError(.truncated, "extension element header outside the buffer")
            }
            switch form {
            case .oneByte:
                let id = head >> 4
                if id == 0 {
                    cursor += 1
                    continue
                }
                if id == 15 {
                    cursor = end
                    return nil
                }
                let length = Int(head & 0x0F) + 1
                let index = cursor + 1
                guard length <= end - index else {
                    throw WireError(
                        .badExtension, "one-byte element ID \(id) of \(length) bytes overruns the extension block")
                }
                cursor = index + length
                return (id, index, length)
            case .twoByte:
                if head == 0 {
                    cursor += 1
                    continue
                }
                guard cursor + 1 < end, let lengthByte = buffer.getInteger(at: cursor + 1, as: UInt8.self) else {
                    throw WireError(.badExtension, "two-byte element ID \(head) has no length byte")
                }
                let length = Int(lengthByte)
                let index = cursor + 2
                guard length <= end - index else {
                    throw WireError(
                        .badExtension, "two-byte element ID \(head) of \(length) bytes overruns the extension block")
                }
                cursor = index + length
                return (head, index, length)
            }
        }
        return nil
    }
}
