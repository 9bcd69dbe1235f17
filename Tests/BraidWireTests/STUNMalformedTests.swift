import BraidWire
import NIOCore
import Testing

/// Builds a message by hand: header with `type`, RFC 5769's transaction ID, `body` as the attributes,
/// and a length field of `length` (default: the body's size).
private func message(
    type: UInt16 = 0x0001,
    cookie: UInt32 = 0x2112_A442,
    length: Int? = nil,
    body: [UInt8]
) -> [UInt8] {
    let length = length ?? body.count
    var out = ByteBuffer()
    out.writeMultipleIntegers(type, UInt16(truncatingIfNeeded: length), cookie)
    out.writeBytes(RFC5769.transactionID.bytes)
    out.writeBytes(body)
    return bytes(out)
}

/// One attribute, padded with zeros.
private func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
    [UInt8(type >> 8), UInt8(type & 0xFF), UInt8(value.count >> 8), UInt8(value.count & 0xFF)] + value
        + [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
}

private func parse(_ bytes: [UInt8]) throws -> STUNMessage { try STUNMessage(parsing: buffer(bytes)) }

@Suite struct STUNMalformedTests {
    @Test func headerErrors() {
        expectWireError(.truncated) { _ = try parse([]) }
        expectWireError(.truncated) { _ = try parse(Array(RFC5769.request[..<19])) }
        expectWireError(.unsupportedType) { _ = try parse(message(type: 0x4001, body: [])) }
        expectWireError(.unsupportedType) { _ = try parse(message(type: 0x8001, body: [])) }
        // RFC 3489 messages have no magic cookie.
        expectWireError(.badVersion) { _ = try parse(message(cookie: 0x1234_5678, body: [])) }
        expectWireError(.badLength) { _ = try parse(message(length: 2, body: [0, 0])) }
        expectWireError(.truncated) { _ = try parse(message(length: 8, body: [0, 0, 0, 0])) }
        expectWireError(.trailingBytes) { _ = try parse(message(length: 0, body: [0, 0, 0, 0])) }
    }

    @Test func everyTruncationIsRejected() {
        for vector in RFC5769.all {
            for count in 0..<vector.bytes.count {
                expectWireError(.truncated) { _ = try parse(Array(vector.bytes[..<count])) }
            }
        }
    }

    @Test func attributeOverrunningTheMessage() {
        // Claims 8 bytes of value, has 4.
        let body: [UInt8] = [0x00, 0x06, 0x00, 0x08, 0x61, 0x62, 0x63, 0x64]
        expectWireError(.badLength) { _ = try parse(message(body: body)) }
        // Padding of the last attribute missing: 5-byte value needs 8 bytes.
        let unpadded: [UInt8] = [0x00, 0x06, 0x00, 0x05, 0x61, 0x62, 0x63, 0x64]
        expectWireError(.badLength) { _ = try parse(message(body: unpadded)) }
    }

    @Test func attributeAfterFingerprintIsRejected() {
        let body = attribute(0x8028, [0, 0, 0, 0]) + attribute(0x0006, Array("a:b".utf8))
        expectWireError(.badAttribute) { _ = try parse(message(body: body)) }
        let twoFingerprints = attribute(0x8028, [0, 0, 0, 0]) + attribute(0x8028, [0, 0, 0, 0])
        expectWireError(.badAttribute) { _ = try parse(message(body: twoFingerprints)) }
    }

    @Test func wrongSizedIntegrityAndFingerprint() {
        let zeros = [UInt8](repeating: 0, count: 16)
        expectWireError(.badAttribute) { _ = try parse(message(body: attribute(0x0008, zeros))) }
        expectWireError(.badAttribute) { _ = try parse(message(body: attribute(0x8028, Array(zeros[..<8])))) }
        expectWireError(.badAttribute) { _ = try parse(message(body: attribute(0x001C, Array(zeros[..<12])))) }
    }

    /// RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY, except FINGERPRINT, are ignored; integrity and
    /// fingerprint still verify because each covers the message up to itself.
    @Test func attributesAfterIntegrityAreIgnored() throws {
        let key = STUNIntegrityKey(shortTermPassword: RFC5769.password)
        var out = ByteBuffer()
        var builder = STUNMessageBuilder(type: .bindingRequest, transactionID: RFC5769.transactionID, into: &out)
        try builder.appendPriority(7, to: &out)
        try builder.appendMessageIntegrity(key: key, to: &out)
        // Smuggle in a USERNAME and a second PRIORITY after MESSAGE-INTEGRITY, as an attacker could; the
        // builder's FINGERPRINT then covers them and fixes the length field.
        out.writeBytes(attribute(0x0006, Array("evil:user".utf8)) + attribute(0x0024, [0, 0, 0, 9]))
        try builder.appendFingerprint(to: &out)
        let message = try STUNMessage(parsing: out)
        #expect(message.attributes.map(\.type) == [.priority, .messageIntegrity, .fingerprint])
        #expect(try message.username() == nil)
        #expect(try message.priority() == 7)
        try message.validateIntegrity(key: key)
        try message.validateFingerprint()
    }

    @Test func typedDecoderErrors() throws {
        let longReason = [UInt8](repeating: 0x61, count: 764)
        let cases: [(body: [UInt8], code: WireError.Code, decode: (STUNMessage) throws -> Void)] = [
            (attribute(0x0024, [0, 0, 1]), .badAttribute, { _ = try $0.priority() }),
            (attribute(0x8029, [0, 0, 0, 0]), .badAttribute, { _ = try $0.iceControlled() }),
            (attribute(0x802A, [UInt8](repeating: 1, count: 9)), .badAttribute, { _ = try $0.iceControlling() }),
            (attribute(0x0025, [1]), .badAttribute, { _ = try $0.useCandidate() }),
            (attribute(0x0006, [UInt8](repeating: 0x61, count: 514)), .badAttribute, { _ = try $0.username() }),
            (attribute(0x0006, [0x61, 0xC0, 0x80]), .badValue, { _ = try $0.username() }),  // overlong NUL
            (attribute(0x0006, [0xED, 0xA0, 0x80]), .badValue, { _ = try $0.username() }),  // surrogate
            (attribute(0x0020, [0, 3, 0, 0, 0, 0, 0, 0]), .badValue, { _ = try $0.xorMappedAddress() }),
            (attribute(0x0020, [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), .badAttribute, { _ = try $0.xorMappedAddress() }),
            (attribute(0x0020, [0, 2, 0, 0, 0, 0, 0, 0]), .badAttribute, { _ = try $0.xorMappedAddress() }),
            (attribute(0x0020, [0, 1]), .badAttribute, { _ = try $0.xorMappedAddress() }),
            (attribute(0x0009, [0, 0, 4]), .badAttribute, { _ = try $0.errorCode() }),
            (attribute(0x0009, [0, 0, 7, 0]), .badValue, { _ = try $0.errorCode() }),
            (attribute(0x0009, [0, 0, 2, 99]), .badValue, { _ = try $0.errorCode() }),
            (attribute(0x0009, [0, 0, 4, 100]), .badValue, { _ = try $0.errorCode() }),
            (attribute(0x0009, [0, 0, 4, 0, 0xFF]), .badValue, { _ = try $0.errorCode() }),
            (attribute(0x0009, [0, 0, 4, 0] + longReason), .badAttribute, { _ = try $0.errorCode() }),
            (attribute(0x000A, [0, 1, 0]), .badAttribute, { try $0.attribute(.unknownAttributes)?.requireEvenList() }),
            ([], .badAttribute, { try $0.validateIntegrity(key: STUNIntegrityKey(bytes: [1])) }),
        ]
        for (index, testCase) in cases.enumerated() {
            let parsed = try parse(message(body: testCase.body))
            let error = #expect(throws: WireError.self, "case \(index)") { try testCase.decode(parsed) }
            #expect(error?.code == testCase.code, "case \(index): \(String(describing: error))")
        }
    }

    @Test func wellFormedTypedValues() throws {
        let body = attribute(0x0009, [0xFF, 0xFF, 0xFC, 87] + Array("Role Conflict".utf8))  // reserved bits ignored
            + attribute(0x000A, [0x00, 0x31, 0x77, 0x77])
            + attribute(0x0001, [0xEE, 0x01, 0x12, 0x34, 10, 0, 0, 1])  // MAPPED-ADDRESS, first byte ignored
            + attribute(0x0006, Array("ünïcode:ok".utf8))
            + attribute(0x0025, [])
        let parsed = try parse(message(type: 0x0111, body: body))
        #expect(parsed.type == .bindingErrorResponse)
        let error = try #require(try parsed.errorCode())
        #expect(error.code == .roleConflict)
        #expect(error.code.errorClass == 4 && error.code.number == 87)
        #expect(error.reason.string == "Role Conflict")
        let unknown = try #require(parsed.attribute(.unknownAttributes))
        #expect(try unknown.unknownAttributes().map(\.rawValue) == [0x0031, 0x7777])
        #expect(try parsed.mappedAddress() == STUNAddress(ipv4: 10, 0, 0, 1, port: 0x1234))
        #expect(try parsed.username()?.string == "ünïcode:ok")
        #expect(try parsed.useCandidate())
        #expect(parsed.firstUnknownComprehensionRequiredAttribute { $0 != .unknownAttributes } == .unknownAttributes)
        #expect(parsed.firstUnknownComprehensionRequiredAttribute { _ in true } == nil)
    }
}

extension STUNAttribute {
    fileprivate func requireEvenList() throws { _ = try self.unknownAttributes() }
}
