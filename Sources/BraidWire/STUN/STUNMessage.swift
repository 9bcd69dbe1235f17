import NIOCore

/// A parsed STUN message: a zero-copy view over the datagram that holds it.
///
/// [RFC 8489 §5](https://www.rfc-editor.org/rfc/rfc8489#section-5), Figure 2, the 20-byte header:
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |0 0|     STUN Message Type     |         Message Length        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         Magic Cookie                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// |                     Transaction ID (96 bits)                  |
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// followed by Message Length bytes of attributes (§14), each padded to a multiple of 4.
///
/// The throwing initializer validates the whole framing once: leading zero bits, magic cookie 0x2112A442,
/// a length that is a multiple of 4 and equals the bytes that follow the header, and attributes that
/// exactly tile the body. It records where MESSAGE-INTEGRITY and FINGERPRINT are and rejects any
/// attribute after FINGERPRINT (§14.7: it must be last). Attributes after MESSAGE-INTEGRITY (or
/// MESSAGE-INTEGRITY-SHA256) other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are skipped by
/// ``attributes`` and every lookup, as §14.5 and §14.6 require. Nothing is allocated: the view retains
/// the buffer and reads fields in place.
///
/// Typed values are decoded on demand by ``username()``, ``xorMappedAddress()``, ``priority()`` and the
/// like; integrity and fingerprint are checked by ``validateIntegrity(key:)`` and ``validateFingerprint()``.
public struct STUNMessage: Sendable {
    /// Size of the fixed header.
    public static let headerSize = 20
    /// The magic cookie, bytes 4–7 of every RFC 5389/8489 message.
    public static let magicCookie: UInt32 = 0x2112_A442

    /// The message bytes alone (reader index 0, exactly ``byteCount`` readable bytes).
    public let bytes: ByteBuffer
    /// Method and class.
    public let type: STUNMessageType
    /// The 96-bit transaction ID.
    public let transactionID: STUNTransactionID
    /// Offset of the first MESSAGE-INTEGRITY attribute, if the message has one.
    public let messageIntegrityOffset: Int?
    /// Offset of the FINGERPRINT attribute, if the message has one.
    public let fingerprintOffset: Int?
    /// Offset just past the first MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 attribute: after it, only
    /// those two and FINGERPRINT are looked at.
    @usableFromInline let integrityBoundary: Int?

    /// The method.
    @inlinable public var method: STUNMethod { self.type.method }
    /// The class.
    @inlinable public var messageClass: STUNClass { self.type.messageClass }
    /// Total size: header plus attributes.
    @inlinable public var byteCount: Int { self.bytes.readableBytes }

    /// Parses the readable bytes of `buffer`, which must hold exactly one STUN message (one datagram).
    ///
    /// - Throws: ``WireError`` with `.truncated` (shorter than the header or its length field),
    ///   `.trailingBytes` (bytes after the announced length), `.unsupportedType` (a leading bit set: not
    ///   STUN), `.badVersion` (no magic cookie: RFC 3489 STUN), `.badLength` (length not a multiple of 4,
    ///   or an attribute overrunning the message), `.badAttribute` (an attribute after FINGERPRINT, or a
    ///   MESSAGE-INTEGRITY/FINGERPRINT of the wrong size).
    public init(parsing buffer: ByteBuffer) throws(WireError) {
        let available = buffer.readableBytes
        guard available >= Self.headerSize,
            let (rawType, length, cookie, idHigh, idLow) = buffer.getMultipleIntegers(
                at: buffer.readerIndex,
                as: (UInt16, UInt16, UInt32, UInt32, UInt64).self
            )
        else {
            throw WireError(.truncated, "STUN header needs 20 bytes, have \(available)")
        }
        guard let type = STUNMessageType(rawValue: rawType) else {
            throw WireError(.unsupportedType, "leading bits of a STUN message must be zero")
        }
        guard cookie == Self.magicCookie else {
            throw WireError(.badVersion, "magic cookie is 0x\(String(cookie, radix: 16)), not 0x2112a442")
        }
        let bodyLength = Int(length)
        guard bodyLength % 4 == 0 else {
            throw WireError(.badLength, "message length \(bodyLength) is not a multiple of 4")
        }
        let total = Self.headerSize + bodyLength
        guard total <= available else {
            throw WireError(.truncated, "message length says \(total) bytes, datagram has \(available)")
        }
        guard total == available else {
            throw WireError(.trailingBytes, "\(available - total) bytes after the STUN message")
        }
        // `getSlice` shares the storage: a retain, not a copy.
        guard let bytes = buffer.getSlice(at: buffer.readerIndex, length: total) else {
            throw WireError(.truncated, "message length says \(total) bytes, datagram has \(available)")
        }

        var integrityOffset: Int?
        var fingerprintOffset: Int?
        var boundary: Int?
        var offset = Self.headerSize
        while offset < total {
            // The body length is a multiple of 4 and so is every padded attribute: 4 header bytes remain.
            guard let (rawAttributeType, rawLength) = bytes.getMultipleIntegers(at: offset, as: (UInt16, UInt16).self)
            else {
                throw WireError(.truncated, "attribute header at \(offset) runs past the message")
            }
            let attributeType = STUNAttributeType(rawValue: rawAttributeType)
            let valueLength = Int(rawLength)
            let paddedEnd = offset + 4 + ((valueLength + 3) & ~3)
            guard paddedEnd <= total else {
                throw WireError(
                    .badLength,
                    "\(attributeType) at \(offset) needs \(paddedEnd - offset) bytes, \(total - offset) remain"
                )
            }
            if fingerprintOffset != nil {
                throw WireError(.badAttribute, "\(attributeType) follows FINGERPRINT, which must be last")
            }
            switch attributeType {
            case .fingerprint:
                guard valueLength == 4 else {
                    throw WireError(.badAttribute, "FINGERPRINT must have 4 bytes of value, has \(valueLength)")
                }
                fingerprintOffset = offset
            case .messageIntegrity where boundary == nil:
                guard valueLength == 20 else {
                    throw WireError(.badAttribute, "MESSAGE-INTEGRITY must have 20 bytes of value, has \(valueLength)")
                }
                integrityOffset = offset
                boundary = paddedEnd
            case .messageIntegritySHA256 where boundary == nil:
                // §14.6: 16 to 32 bytes, a multiple of 4.
                guard valueLength >= 16, valueLength <= 32, valueLength % 4 == 0 else {
                    throw WireError(.badAttribute, "MESSAGE-INTEGRITY-SHA256 has \(valueLength) bytes of value")
                }
                boundary = paddedEnd
            default:
                break
            }
            offset = paddedEnd
        }

        self.bytes = bytes
        self.type = type
        self.transactionID = STUNTransactionID(high: idHigh, low: idLow)
        self.messageIntegrityOffset = integrityOffset
        self.fingerprintOffset = fingerprintOffset
        self.integrityBoundary = boundary
    }

    /// Whether `buffer` starts like a STUN message (first two bits zero, magic cookie in place): a cheap
    /// check for a demultiplexer that sees STUN among other protocols. Does not validate the message.
    @inlinable
    public static func hasSTUNHeader(_ buffer: ByteBuffer) -> Bool {
        guard buffer.readableBytes >= headerSize,
            let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let cookie = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt32.self)
        else { return false }
        return first & 0xC0 == 0 && cookie == magicCookie
    }

    // MARK: Attributes

    /// The attributes that count, in wire order (those after MESSAGE-INTEGRITY other than
    /// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are skipped, RFC 8489 §14.5). Iterating allocates nothing.
    @inlinable
    public var attributes: STUNAttributes { STUNAttributes(message: self) }

    /// The first attribute of `type` that counts, or nil.
    @inlinable
    public func attribute(_ type: STUNAttributeType) -> STUNAttribute? {
        for attribute in self.attributes where attribute.type == type {
            return attribute
        }
        return nil
    }

    /// Whether an attribute of `type` is present (and counts).
    @inlinable
    public func contains(_ type: STUNAttributeType) -> Bool { self.attribute(type) != nil }

    /// The first comprehension-required attribute type that `isUnderstood` rejects, for a 420 response
    /// (RFC 8489 §6.3.1.1). Nil when every comprehension-required attribute is understood.
    @inlinable
    public func firstUnknownComprehensionRequiredAttribute(
        isUnderstood: (STUNAttributeType) -> Bool
    ) -> STUNAttributeType? {
        for attribute in self.attributes where attribute.type.isComprehensionRequired {
            if !isUnderstood(attribute.type) { return attribute.type }
        }
        return nil
    }
}

/// The attributes of a ``STUNMessage`` that count, as a sequence of ``STUNAttribute`` views.
public struct STUNAttributes: Sequence, Sendable {
    @usableFromInline let message: STUNMessage

    @inlinable
    init(message: STUNMessage) { self.message = message }

    @inlinable
    public func makeIterator() -> Iterator { Iterator(message: self.message) }

    /// Walks the attributes in wire order; the message's init has already checked every bound.
    public struct Iterator: IteratorProtocol, Sendable {
        @usableFromInline let bytes: ByteBuffer
        @usableFromInline let boundary: Int?
        @usableFromInline var offset: Int

        @inlinable
        init(message: STUNMessage) {
            self.bytes = message.bytes
            self.boundary = message.integrityBoundary
            self.offset = STUNMessage.headerSize
        }

        @inlinable
        public mutating func next() -> STUNAttribute? {
            while self.offset < self.bytes.readableBytes {
                guard let (rawType, rawLength) = self.bytes.getMultipleIntegers(
                    at: self.offset,
                    as: (UInt16, UInt16).self
                ) else { return nil }
                let type = STUNAttributeType(rawValue: rawType)
                let length = Int(rawLength)
                let start = self.offset
                self.offset += 4 + ((length + 3) & ~3)
                if let boundary = self.boundary, start >= boundary,
                    type != .fingerprint, type != .messageIntegritySHA256
                {
                    continue  // RFC 8489 §14.5: ignored after MESSAGE-INTEGRITY.
                }
                return STUNAttribute(type: type, offset: start, length: length, message: self.bytes)
            }
            return nil
        }
    }
}
