import NIOCore

/// A STUN error response code, 300–699.
///
/// [RFC 8489 §14.8](https://www.rfc-editor.org/rfc/rfc8489#section-14.8) and
/// [RFC 8445 §7.3.1.1](https://www.rfc-editor.org/rfc/rfc8445#section-7.3.1.1) (487).
public struct STUNErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// The code, class × 100 + number.
    public let value: Int

    /// Fails outside 300–699 (classes 3 to 6, numbers 0 to 99).
    @inlinable
    public init?(_ value: Int) {
        guard (300...699).contains(value) else { return nil }
        self.value = value
    }

    @inlinable
    init(unchecked value: Int) { self.value = value }

    /// The hundreds digit, 3–6.
    @inlinable public var errorClass: Int { self.value / 100 }
    /// The last two digits, 0–99.
    @inlinable public var number: Int { self.value % 100 }

    /// 300 Try Alternate.
    public static let tryAlternate = STUNErrorCode(unchecked: 300)
    /// 400 Bad Request: malformed, or missing a required attribute (e.g. PRIORITY or FINGERPRINT in ICE).
    public static let badRequest = STUNErrorCode(unchecked: 400)
    /// 401 Unauthenticated: MESSAGE-INTEGRITY missing or wrong, or unknown USERNAME.
    public static let unauthenticated = STUNErrorCode(unchecked: 401)
    /// 420 Unknown Attribute: a comprehension-required attribute was not understood.
    public static let unknownAttribute = STUNErrorCode(unchecked: 420)
    /// 438 Stale Nonce.
    public static let staleNonce = STUNErrorCode(unchecked: 438)
    /// 487 Role Conflict (RFC 8445 §7.3.1.1).
    public static let roleConflict = STUNErrorCode(unchecked: 487)
    /// 500 Server Error.
    public static let serverError = STUNErrorCode(unchecked: 500)

    /// The reason phrase RFC 8489 §14.8 (and RFC 8445 for 487) suggests.
    public var defaultReason: String {
        switch self.value {
        case 300: "Try Alternate"
        case 400: "Bad Request"
        case 401: "Unauthenticated"
        case 403: "Forbidden"
        case 420: "Unknown Attribute"
        case 437: "Allocation Mismatch"
        case 438: "Stale Nonce"
        case 487: "Role Conflict"
        case 500: "Server Error"
        default: "Error"
        }
    }

    public var description: String { "\(self.value)" }
}

/// A decoded ERROR-CODE attribute: the code and its reason phrase, still in the receive buffer.
public struct STUNErrorCodeValue: Sendable, Hashable {
    /// The error code.
    public let code: STUNErrorCode
    /// The reason phrase (at most 763 bytes of UTF-8).
    public let reason: STUNText
}

extension STUNAttribute {
    /// Maximum size of the reason phrase: 128 characters of up to 6 bytes, less 5 (RFC 8489 §14.8).
    public static let maxReasonPhraseBytes = 763

    /// Decodes ERROR-CODE.
    ///
    /// [RFC 8489 §14.8](https://www.rfc-editor.org/rfc/rfc8489#section-14.8), Figure 7:
    ///
    /// ```
    ///  0                   1                   2                   3
    ///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |           Reserved, should be 0         |Class|     Number    |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |      Reason Phrase (variable)                                ..
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// ```
    ///
    /// - Throws: `.badAttribute` for fewer than 4 bytes or a reason longer than 763 bytes, `.badValue` for
    ///   a class outside 3–6, a number above 99, or a reason that is not UTF-8.
    public func errorCode() throws(WireError) -> STUNErrorCodeValue {
        guard self.length >= 4 else {
            throw WireError(.badAttribute, "ERROR-CODE needs at least 4 bytes, has \(self.length)")
        }
        guard self.length - 4 <= Self.maxReasonPhraseBytes else {
            throw WireError(.badAttribute, "ERROR-CODE reason has \(self.length - 4) bytes, at most 763 allowed")
        }
        let errorClass = Int(self.byte(2) & 0x07)
        let number = Int(self.byte(3))
        guard (3...6).contains(errorClass), number <= 99 else {
            throw WireError(.badValue, "ERROR-CODE class \(errorClass) number \(number) is not 300–699")
        }
        let reason = self.value.getSlice(at: self.value.readerIndex + 4, length: self.length - 4)!
        let valid = reason.withUnsafeReadableBytes { isValidUTF8($0) }
        guard valid else { throw WireError(.badValue, "ERROR-CODE reason is not valid UTF-8") }
        return STUNErrorCodeValue(
            code: STUNErrorCode(unchecked: errorClass * 100 + number),
            reason: STUNText(bytes: reason)
        )
    }

    /// Decodes UNKNOWN-ATTRIBUTES: a list of 16-bit attribute types.
    ///
    /// [RFC 8489 §14.13](https://www.rfc-editor.org/rfc/rfc8489#section-14.13), Figure 8:
    ///
    /// ```
    ///  0                   1                   2                   3
    ///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |      Attribute 1 Type         |       Attribute 2 Type        |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |      Attribute 3 Type         |       Attribute 4 Type    ...
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// ```
    ///
    /// - Throws: `.badAttribute` when the length is odd.
    public func unknownAttributes() throws(WireError) -> STUNUnknownAttributes {
        guard self.length % 2 == 0 else {
            throw WireError(.badAttribute, "UNKNOWN-ATTRIBUTES has odd length \(self.length)")
        }
        return STUNUnknownAttributes(value: self.value)
    }
}

/// The attribute types listed in UNKNOWN-ATTRIBUTES, read in place.
public struct STUNUnknownAttributes: Sequence, Sendable {
    @usableFromInline let value: ByteBuffer

    @inlinable
    init(value: ByteBuffer) { self.value = value }

    /// How many types are listed.
    @inlinable
    public var count: Int { self.value.readableBytes / 2 }

    @inlinable
    public func makeIterator() -> Iterator { Iterator(value: self.value) }

    public struct Iterator: IteratorProtocol, Sendable {
        @usableFromInline var value: ByteBuffer

        @inlinable
        init(value: ByteBuffer) { self.value = value }

        @inlinable
        public mutating func next() -> STUNAttributeType? {
            self.value.readInteger(as: UInt16.self).map(STUNAttributeType.init(rawValue:))
        }
    }
}

extension STUNMessage {
    /// Maximum size of USERNAME (RFC 8489 §14.3).
    public static let maxUsernameBytes = 513
    /// Maximum size of SOFTWARE, REALM and NONCE (RFC 8489 §14.9, §14.10, §14.14).
    public static let maxTextBytes = 763

    /// USERNAME (RFC 8489 §14.3), e.g. `"<receiver ufrag>:<sender ufrag>"` in ICE (RFC 8445 §7.2.2).
    public func username() throws(WireError) -> STUNText? {
        try self.attribute(.username)?.text(maxByteCount: Self.maxUsernameBytes)
    }

    /// SOFTWARE (RFC 8489 §14.14).
    public func software() throws(WireError) -> STUNText? {
        try self.attribute(.software)?.text(maxByteCount: Self.maxTextBytes)
    }

    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2), un-XORed with this message's transaction ID.
    public func xorMappedAddress() throws(WireError) -> STUNAddress? {
        try self.attribute(.xorMappedAddress)?.address(xorWith: self.transactionID)
    }

    /// MAPPED-ADDRESS (RFC 8489 §14.1), kept for RFC 3489 servers.
    public func mappedAddress() throws(WireError) -> STUNAddress? {
        try self.attribute(.mappedAddress)?.address(xorWith: nil)
    }

    /// PRIORITY (RFC 8445 §7.1.1, §16.1).
    public func priority() throws(WireError) -> UInt32? {
        try self.attribute(.priority)?.uInt32()
    }

    /// Whether USE-CANDIDATE is present (RFC 8445 §7.1.2); throws if it has a value.
    public func useCandidate() throws(WireError) -> Bool {
        guard let attribute = self.attribute(.useCandidate) else { return false }
        try attribute.requireEmpty()
        return true
    }

    /// The tie-breaker of ICE-CONTROLLED (RFC 8445 §7.1.3), if present.
    public func iceControlled() throws(WireError) -> UInt64? {
        try self.attribute(.iceControlled)?.uInt64()
    }

    /// The tie-breaker of ICE-CONTROLLING (RFC 8445 §7.1.3), if present.
    public func iceControlling() throws(WireError) -> UInt64? {
        try self.attribute(.iceControlling)?.uInt64()
    }

    /// ERROR-CODE (RFC 8489 §14.8), if present.
    public func errorCode() throws(WireError) -> STUNErrorCodeValue? {
        try self.attribute(.errorCode)?.errorCode()
    }
}
