internal import CBraidShims
import NIOCore

/// Writes one STUN message into a caller's `ByteBuffer`, attribute by attribute.
///
/// The builder only remembers where its message starts: every `append…` call takes the same buffer
/// `inout`, writes at its writer index and rewrites the header's length field, so the bytes in the buffer
/// are a complete, valid message after each call. Layouts follow
/// [RFC 8489 §5](https://www.rfc-editor.org/rfc/rfc8489#section-5) (header, see ``STUNMessage``) and
/// [§14](https://www.rfc-editor.org/rfc/rfc8489#section-14) (attributes, see ``STUNAttribute``), each value
/// padded to a multiple of 4 bytes.
///
/// Order rules are enforced: ``appendMessageIntegrity(key:to:)`` may be followed only by
/// ``appendFingerprint(to:)``, and nothing may follow FINGERPRINT (`.badAttribute` otherwise).
///
/// ```swift
/// var out = ByteBuffer()
/// var builder = STUNMessageBuilder(type: .bindingSuccessResponse, transactionID: request.transactionID, into: &out)
/// try builder.appendXORMappedAddress(source, to: &out)
/// try builder.appendMessageIntegrity(key: key, to: &out)
/// try builder.appendFingerprint(to: &out)
/// ```
///
/// - Warning: do not move the buffer's writer index, or write into it, between calls.
public struct STUNMessageBuilder: Sendable {
    private enum Stage: Sendable {
        case attributes
        case afterIntegrity
        case afterFingerprint
    }

    /// Index in the buffer where the message's header starts.
    public let messageStart: Int
    /// The byte written into padding. RFC 8489 allows any value; 0 is conventional. RFC 5769's samples
    /// pad with spaces (0x20).
    public var paddingByte: UInt8
    private var stage: Stage = .attributes
    /// The transaction ID, needed to XOR IPv6 addresses.
    public let transactionID: STUNTransactionID

    /// Writes the 20-byte header (length 0) at `buffer`'s writer index.
    public init(
        type: STUNMessageType,
        transactionID: STUNTransactionID,
        into buffer: inout ByteBuffer,
        paddingByte: UInt8 = 0
    ) {
        self.messageStart = buffer.writerIndex
        self.transactionID = transactionID
        self.paddingByte = paddingByte
        buffer.writeMultipleIntegers(
            type.rawValue,
            UInt16(0),
            STUNMessage.magicCookie,
            transactionID.high,
            transactionID.low
        )
    }

    /// Bytes of the message written so far.
    public func byteCount(in buffer: ByteBuffer) -> Int { buffer.writerIndex - self.messageStart }

    // MARK: Generic attributes

    /// Appends an attribute whose value is `value`, padded.
    ///
    /// - Throws: `.badLength` when the value or the message would exceed 65535 bytes, `.badAttribute` when
    ///   the order rules forbid another attribute here.
    public mutating func appendAttribute(
        _ type: STUNAttributeType,
        value: some Collection<UInt8>,
        to buffer: inout ByteBuffer
    ) throws(WireError) {
        try self.append(type, valueLength: value.count, to: &buffer) { $0.writeBytes(value) }
    }

    /// Appends an attribute whose value is the readable bytes of `value`.
    public mutating func appendAttribute(
        _ type: STUNAttributeType,
        value: ByteBuffer,
        to buffer: inout ByteBuffer
    ) throws(WireError) {
        try self.append(type, valueLength: value.readableBytes, to: &buffer) { $0.writeImmutableBuffer(value) }
    }

    // MARK: Typed attributes

    /// USERNAME (RFC 8489 §14.3): UTF-8, at most 513 bytes (`.badValue` otherwise).
    public mutating func appendUsername(_ username: String, to buffer: inout ByteBuffer) throws(WireError) {
        try self.appendText(.username, username, maxByteCount: STUNMessage.maxUsernameBytes, to: &buffer)
    }

    /// SOFTWARE (RFC 8489 §14.14): at most 763 bytes.
    public mutating func appendSoftware(_ software: String, to buffer: inout ByteBuffer) throws(WireError) {
        try self.appendText(.software, software, maxByteCount: STUNMessage.maxTextBytes, to: &buffer)
    }

    private mutating func appendText(
        _ type: STUNAttributeType,
        _ text: String,
        maxByteCount: Int,
        to buffer: inout ByteBuffer
    ) throws(WireError) {
        let count = text.utf8.count
        guard count <= maxByteCount else {
            throw WireError(.badValue, "\(type) of \(count) bytes exceeds \(maxByteCount)")
        }
        try self.append(type, valueLength: count, to: &buffer) { $0.writeString(text) }
    }

    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2; layout at ``STUNAttribute/address(xorWith:)``).
    public mutating func appendXORMappedAddress(_ address: STUNAddress, to buffer: inout ByteBuffer) throws(WireError) {
        try self.appendAddress(.xorMappedAddress, address, xor: true, to: &buffer)
    }

    /// MAPPED-ADDRESS (RFC 8489 §14.1), for clients that predate XOR-MAPPED-ADDRESS.
    public mutating func appendMappedAddress(_ address: STUNAddress, to buffer: inout ByteBuffer) throws(WireError) {
        try self.appendAddress(.mappedAddress, address, xor: false, to: &buffer)
    }

    private mutating func appendAddress(
        _ type: STUNAttributeType,
        _ address: STUNAddress,
        xor: Bool,
        to buffer: inout ByteBuffer
    ) throws(WireError) {
        let cookie = STUNMessage.magicCookie
        let port = address.port ^ (xor ? UInt16(truncatingIfNeeded: cookie >> 16) : 0)
        let family = address.family.rawValue
        switch address.family {
        case .ipv4:
            let ip = UInt32(truncatingIfNeeded: address.low) ^ (xor ? cookie : 0)
            try self.append(type, valueLength: 8, to: &buffer) { $0.writeMultipleIntegers(UInt8(0), family, port, ip) }
        case .ipv6:
            let maskHigh = xor ? UInt64(cookie) << 32 | UInt64(self.transactionID.high) : 0
            let maskLow = xor ? self.transactionID.low : 0
            try self.append(type, valueLength: 20, to: &buffer) {
                $0.writeMultipleIntegers(UInt8(0), family, port, address.high ^ maskHigh, address.low ^ maskLow)
            }
        }
    }

    /// PRIORITY (RFC 8445 §16.1).
    public mutating func appendPriority(_ priority: UInt32, to buffer: inout ByteBuffer) throws(WireError) {
        try self.append(.priority, valueLength: 4, to: &buffer) { $0.writeInteger(priority) }
    }

    /// USE-CANDIDATE (RFC 8445 §16.1): no value.
    public mutating func appendUseCandidate(to buffer: inout ByteBuffer) throws(WireError) {
        try self.append(.useCandidate, valueLength: 0, to: &buffer) { _ in }
    }

    /// ICE-CONTROLLED with its tie-breaker (RFC 8445 §16.1).
    public mutating func appendICEControlled(tieBreaker: UInt64, to buffer: inout ByteBuffer) throws(WireError) {
        try self.append(.iceControlled, valueLength: 8, to: &buffer) { $0.writeInteger(tieBreaker) }
    }

    /// ICE-CONTROLLING with its tie-breaker (RFC 8445 §16.1).
    public mutating func appendICEControlling(tieBreaker: UInt64, to buffer: inout ByteBuffer) throws(WireError) {
        try self.append(.iceControlling, valueLength: 8, to: &buffer) { $0.writeInteger(tieBreaker) }
    }

    /// ERROR-CODE (RFC 8489 §14.8; layout at ``STUNAttribute/errorCode()``). `reason` defaults to the
    /// code's ``STUNErrorCode/defaultReason``; at most 763 bytes.
    public mutating func appendErrorCode(
        _ code: STUNErrorCode,
        reason: String? = nil,
        to buffer: inout ByteBuffer
    ) throws(WireError) {
        let reason = reason ?? code.defaultReason
        let count = reason.utf8.count
        guard count <= STUNAttribute.maxReasonPhraseBytes else {
            throw WireError(.badValue, "ERROR-CODE reason of \(count) bytes exceeds 763")
        }
        try self.append(.errorCode, valueLength: 4 + count, to: &buffer) {
            $0.writeMultipleIntegers(UInt16(0), UInt8(code.errorClass), UInt8(code.number))
            $0.writeString(reason)
        }
    }

    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13), for a 420 response.
    public mutating func appendUnknownAttributes(
        _ types: some Collection<STUNAttributeType>,
        to buffer: inout ByteBuffer
    ) throws(WireError) {
        try self.append(.unknownAttributes, valueLength: 2 * types.count, to: &buffer) { out in
            for type in types { out.writeInteger(type.rawValue) }
        }
    }

    // MARK: Integrity and fingerprint

    /// Appends MESSAGE-INTEGRITY: HMAC-SHA1 under `key` of the message so far, with the length field
    /// already counting this attribute (RFC 8489 §14.5). Only FINGERPRINT may follow.
    public mutating func appendMessageIntegrity(key: STUNIntegrityKey, to buffer: inout ByteBuffer) throws(WireError) {
        guard self.stage == .attributes else {
            throw WireError(.badAttribute, "MESSAGE-INTEGRITY must come before FINGERPRINT, once")
        }
        let start = self.messageStart
        let attributeStart = buffer.writerIndex
        // Write the header and a zero MAC first: the length field must already count the attribute.
        try self.append(.messageIntegrity, valueLength: 20, to: &buffer) { $0.writeRepeatingByte(0, count: 20) }
        key.bytes.withUnsafeBytes { key in
            buffer.withVeryUnsafeMutableBytes { storage in
                // The MAC covers [start, attributeStart) and lands at attributeStart + 4: disjoint ranges.
                let covered = UnsafeRawBufferPointer(rebasing: storage[start..<attributeStart])
                let mac = storage.baseAddress! + attributeStart + 4
                braid_hmac_sha1(key.baseAddress, key.count, covered.baseAddress, covered.count, mac)
            }
        }
        self.stage = .afterIntegrity
    }

    /// Appends FINGERPRINT: CRC-32 of the message so far XOR 0x5354554E, with the length field already
    /// counting this attribute (RFC 8489 §14.7). Must be last.
    public mutating func appendFingerprint(to buffer: inout ByteBuffer) throws(WireError) {
        guard self.stage != .afterFingerprint else {
            throw WireError(.badAttribute, "FINGERPRINT may appear once, last")
        }
        let start = self.messageStart
        let attributeStart = buffer.writerIndex
        // STUNMessage.fingerprint(of:) counts the attribute in the length field itself.
        let crc = buffer.withVeryUnsafeBytes { storage in
            STUNMessage.fingerprint(of: UnsafeRawBufferPointer(rebasing: storage[start..<attributeStart]))
        }
        try self.append(.fingerprint, valueLength: 4, to: &buffer) { $0.writeInteger(crc) }
        self.stage = .afterFingerprint
    }

    // MARK: Core

    /// Writes one attribute: header, value (by `writeValue`, exactly `valueLength` bytes), padding; then
    /// updates the message length field. On error the buffer is unchanged.
    private mutating func append(
        _ type: STUNAttributeType,
        valueLength: Int,
        to buffer: inout ByteBuffer,
        writeValue: (inout ByteBuffer) -> Void
    ) throws(WireError) {
        switch self.stage {
        case .attributes: break
        case .afterIntegrity where type == .fingerprint: break
        case .afterIntegrity:
            throw WireError(.badAttribute, "only FINGERPRINT may follow MESSAGE-INTEGRITY, not \(type)")
        case .afterFingerprint:
            throw WireError(.badAttribute, "\(type) after FINGERPRINT, which must be last")
        }
        let padding = (4 - valueLength % 4) % 4
        guard let length16 = UInt16(exactly: valueLength) else {
            throw WireError(.badLength, "\(type) value of \(valueLength) bytes exceeds 65535")
        }
        let bodyLength = buffer.writerIndex - self.messageStart - STUNMessage.headerSize + 4 + valueLength + padding
        guard let body16 = UInt16(exactly: bodyLength) else {
            throw WireError(.badLength, "message body of \(bodyLength) bytes exceeds 65535")
        }
        buffer.writeMultipleIntegers(type.rawValue, length16)
        let valueStart = buffer.writerIndex
        writeValue(&buffer)
        assert(buffer.writerIndex - valueStart == valueLength, "attribute writer wrote the wrong length")
        buffer.writeRepeatingByte(self.paddingByte, count: padding)
        buffer.setInteger(body16, at: self.messageStart + 2)
    }
}

extension STUNMessageBuilder {
    /// Writes a complete Binding success response to a request with `transactionID`: XOR-MAPPED-ADDRESS
    /// (the request's source address), MESSAGE-INTEGRITY under `key` and FINGERPRINT, as an ICE agent
    /// answers a connectivity check (RFC 8445 §7.3.1.4, RFC 8489 §14.2/14.5/14.7).
    ///
    /// - Parameters:
    ///   - software: an optional SOFTWARE attribute.
    public static func writeBindingSuccessResponse(
        transactionID: STUNTransactionID,
        mappedAddress: STUNAddress,
        key: STUNIntegrityKey,
        software: String? = nil,
        into buffer: inout ByteBuffer
    ) throws(WireError) {
        let start = buffer.writerIndex
        do throws(WireError) {
            var builder = STUNMessageBuilder(type: .bindingSuccessResponse, transactionID: transactionID, into: &buffer)
            if let software { try builder.appendSoftware(software, to: &buffer) }
            try builder.appendXORMappedAddress(mappedAddress, to: &buffer)
            try builder.appendMessageIntegrity(key: key, to: &buffer)
            try builder.appendFingerprint(to: &buffer)
        } catch {
            buffer.moveWriterIndex(to: start)
            throw error
        }
    }

    /// Writes a complete error response: ERROR-CODE, UNKNOWN-ATTRIBUTES when given (for 420),
    /// MESSAGE-INTEGRITY when `key` is given, then FINGERPRINT.
    ///
    /// Per RFC 8489 §6.3.4 and §9.1.3 a 400 or 401 caused by missing or bad credentials carries no
    /// MESSAGE-INTEGRITY (pass `key: nil`); a 487 Role Conflict to an authenticated check does (RFC 8445
    /// §7.3.1.1).
    public static func writeErrorResponse(
        method: STUNMethod = .binding,
        transactionID: STUNTransactionID,
        error code: STUNErrorCode,
        reason: String? = nil,
        unknownAttributes: [STUNAttributeType] = [],
        key: STUNIntegrityKey? = nil,
        software: String? = nil,
        into buffer: inout ByteBuffer
    ) throws(WireError) {
        let start = buffer.writerIndex
        do throws(WireError) {
            var builder = STUNMessageBuilder(
                type: STUNMessageType(method: method, messageClass: .errorResponse),
                transactionID: transactionID,
                into: &buffer
            )
            if let software { try builder.appendSoftware(software, to: &buffer) }
            try builder.appendErrorCode(code, reason: reason, to: &buffer)
            if !unknownAttributes.isEmpty { try builder.appendUnknownAttributes(unknownAttributes, to: &buffer) }
            if let key { try builder.appendMessageIntegrity(key: key, to: &buffer) }
            try builder.appendFingerprint(to: &buffer)
        } catch {
            buffer.moveWriterIndex(to: start)
            throw error
        }
    }
}
