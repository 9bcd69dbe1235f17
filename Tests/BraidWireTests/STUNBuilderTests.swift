import BraidWire
import NIOCore
import Testing

@Suite struct STUNBuilderTests {
    let key = STUNIntegrityKey(shortTermPassword: "0123456789abcdefghijKL")
    let transactionID = STUNTransactionID(high: 0x0102_0304, low: 0x0506_0708_090A_0B0C)

    @Test func bindingSuccessResponseRoundTrips() throws {
        let addresses = [
            STUNAddress(ipv4: 127, 0, 0, 1, port: 50000),
            STUNAddress(bytes: hex("fe80 0000 0000 0000 0202 b3ff fe1e 8329"), port: 1)!,
            STUNAddress(ipv6High: 0, low: 1, port: 65535),
        ]
        for address in addresses {
            var out = ByteBuffer(bytes: [0xEE])  // a message need not start at index 0
            try STUNMessageBuilder.writeBindingSuccessResponse(
                transactionID: self.transactionID,
                mappedAddress: address,
                key: self.key,
                into: &out
            )
            out.moveReaderIndex(forwardBy: 1)
            let message = try STUNMessage(parsing: out)
            #expect(message.type == .bindingSuccessResponse)
            #expect(message.transactionID == self.transactionID)
            #expect(message.attributes.map(\.type) == [.xorMappedAddress, .messageIntegrity, .fingerprint])
            #expect(try message.xorMappedAddress() == address)
            try message.validateIntegrity(key: self.key)
            try message.validateFingerprint()
            expectWireError(.integrityMismatch) {
                try message.validateIntegrity(key: STUNIntegrityKey(shortTermPassword: "0123456789abcdefghijKM"))
            }
        }
    }

    @Test func roleConflictResponseCarriesIntegrity() throws {
        var out = ByteBuffer()
        try STUNMessageBuilder.writeErrorResponse(
            transactionID: self.transactionID,
            error: .roleConflict,
            key: self.key,
            into: &out
        )
        let message = try STUNMessage(parsing: out)
        #expect(message.type == .bindingErrorResponse)
        let error = try #require(try message.errorCode())
        #expect(error.code.value == 487)
        #expect(error.reason.string == "Role Conflict")
        try message.validateIntegrity(key: self.key)
        try message.validateFingerprint()
    }

    @Test func badRequestAndUnknownAttributeResponses() throws {
        var out = ByteBuffer()
        try STUNMessageBuilder.writeErrorResponse(
            transactionID: self.transactionID,
            error: .badRequest,
            reason: "PRIORITY missing",
            into: &out
        )
        let badRequest = try STUNMessage(parsing: out)
        #expect(try badRequest.errorCode()?.code == .badRequest)
        #expect(try badRequest.errorCode()?.reason.equals("PRIORITY missing") == true)
        #expect(!badRequest.hasMessageIntegrity)
        try badRequest.validateFingerprint()

        var unknown = ByteBuffer()
        try STUNMessageBuilder.writeErrorResponse(
            transactionID: self.transactionID,
            error: .unknownAttribute,
            unknownAttributes: [STUNAttributeType(rawValue: 0x7001), .realm],
            into: &unknown
        )
        let parsed = try STUNMessage(parsing: unknown)
        #expect(try parsed.errorCode()?.code.value == 420)
        let list = try #require(parsed.attribute(.unknownAttributes))
        #expect(try list.unknownAttributes().map(\.rawValue) == [0x7001, 0x0014])
        #expect(try STUNMessage(parsing: unknown).errorCode()?.reason.string == "Unknown Attribute")
        #expect(STUNErrorCode(300) == .tryAlternate)
        #expect(STUNErrorCode(299) == nil)
        #expect(STUNErrorCode(700) == nil)
    }

    @Test func connectivityCheckRoundTrips() throws {
        var out = ByteBuffer()
        var builder = STUNMessageBuilder(type: .bindingRequest, transactionID: self.transactionID, into: &out)
        try builder.appendUsername("remoteUfrag:localUfrag", to: &out)
        try builder.appendPriority(0x6E7F_1EFF, to: &out)
        try builder.appendICEControlling(tieBreaker: .max, to: &out)
        try builder.appendUseCandidate(to: &out)
        try builder.appendMessageIntegrity(key: self.key, to: &out)
        try builder.appendFingerprint(to: &out)
        let message = try STUNMessage(parsing: out)
        #expect(try message.username()?.string == "remoteUfrag:localUfrag")
        #expect(try message.priority() == 0x6E7F_1EFF)
        #expect(try message.iceControlling() == .max)
        #expect(try message.useCandidate())
        // Padding is zero by default: "remoteUfrag:localUfrag" is 22 bytes, padded to 24.
        #expect(out.getBytes(at: 20 + 4 + 22, length: 2) == [0, 0])
        try message.validateIntegrity(key: self.key)
        try message.validateFingerprint()
    }

    @Test func orderRulesAreEnforced() throws {
        var out = ByteBuffer()
        var builder = STUNMessageBuilder(type: .bindingRequest, transactionID: self.transactionID, into: &out)
        try builder.appendMessageIntegrity(key: self.key, to: &out)
        let afterIntegrity = out.writerIndex
        expectWireError(.badAttribute) { try builder.appendPriority(1, to: &out) }
        expectWireError(.badAttribute) { try builder.appendMessageIntegrity(key: self.key, to: &out) }
        #expect(out.writerIndex == afterIntegrity, "a refused attribute must leave the buffer unchanged")
        try builder.appendFingerprint(to: &out)
        expectWireError(.badAttribute) { try builder.appendFingerprint(to: &out) }
        expectWireError(.badAttribute) { try builder.appendUseCandidate(to: &out) }
        let message = try STUNMessage(parsing: out)
        try message.validateIntegrity(key: self.key)
        try message.validateFingerprint()
    }

    @Test func sizeLimitsAreEnforced() throws {
        var out = ByteBuffer()
        var builder = STUNMessageBuilder(type: .bindingRequest, transactionID: self.transactionID, into: &out)
        expectWireError(.badValue) { try builder.appendUsername(String(repeating: "u", count: 514), to: &out) }
        try builder.appendUsername(String(repeating: "u", count: 513), to: &out)
        expectWireError(.badValue) { try builder.appendSoftware(String(repeating: "s", count: 764), to: &out) }
        expectWireError(.badValue) {
            try builder.appendErrorCode(.serverError, reason: String(repeating: "r", count: 764), to: &out)
        }
        expectWireError(.badLength) {
            let tooLong = [UInt8](repeating: 0, count: 65536)
            try builder.appendAttribute(STUNAttributeType(rawValue: 0x8123), value: tooLong, to: &out)
        }
        // Fill up to the 65535-byte body limit, then one more attribute must be refused.
        let before = out.writerIndex
        let filler = [UInt8](repeating: 7, count: 65535 - 4 - (before - 20) - 8)
        try builder.appendAttribute(STUNAttributeType(rawValue: 0x8123), value: filler, to: &out)
        expectWireError(.badLength) { try builder.appendPriority(1, to: &out) }
        let message = try STUNMessage(parsing: out)
        #expect(message.byteCount <= 20 + 65535)
        #expect(message.attributes.map(\.type).count == 2)
    }

    @Test func addressConversions() throws {
        let v4 = try SocketAddress(ipAddress: "192.0.2.1", port: 32853)
        let address = try STUNAddress(v4)
        #expect(address == STUNAddress(ipv4: 0xC000_0201, port: 32853))
        #expect(address.ipv4 == 0xC000_0201)
        #expect(try address.socketAddress().ipAddress == "192.0.2.1")
        #expect(try address.socketAddress().port == 32853)

        let v6 = try SocketAddress(ipAddress: "2001:db8::1", port: 443)
        let address6 = try STUNAddress(v6)
        #expect(address6.description == "[2001:db8::1]:443")
        #expect(address6.ipv4 == nil)
        #expect(try address6.socketAddress().ipAddress == "2001:db8::1")

        #expect(STUNAddress(ipv6High: 0, low: 0, port: 0).description == "[::]:0")
        #expect(STUNAddress(ipv6High: 0, low: 1, port: 1).description == "[::1]:1")
        #expect(STUNAddress(ipv6High: 0x2001_0DB8_0000_0000, low: 0x0001_0000_0000_0001, port: 2).description
            == "[2001:db8::1:0:0:1]:2")
        #expect(STUNAddress(bytes: [1, 2, 3], port: 0) == nil)
        expectWireError(.unsupportedType) { _ = try STUNAddress(SocketAddress(unixDomainSocketPath: "/tmp/x")) }
    }

    @Test func crc32MatchesTheStandardCheckValue() throws {
        // The CRC-32 check value of "123456789" is 0xCBF43926; FINGERPRINT XORs it with 0x5354554E. Build a
        // message whose covered bytes we know and compare against a CRC computed independently here.
        var out = ByteBuffer()
        var builder = STUNMessageBuilder(type: .bindingIndication, transactionID: self.transactionID, into: &out)
        try builder.appendFingerprint(to: &out)
        let covered = Array(bytes(out)[..<20])
        #expect(out.getInteger(at: 24, as: UInt32.self) == referenceCRC32(covered) ^ 0x5354_554E)
        #expect(referenceCRC32(Array("123456789".utf8)) == 0xCBF4_3926)
    }
}

/// Bitwise CRC-32 (no table), as a reference independent of the library's table-driven one.
private func referenceCRC32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}
