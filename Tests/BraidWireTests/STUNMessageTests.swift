import BraidWire
import NIOCore
import Testing

@Suite struct STUNRFC5769Tests {
    let key = STUNIntegrityKey(shortTermPassword: RFC5769.password)

    @Test func sampleRequestParsesAndVerifies() throws {
        let message = try STUNMessage(parsing: buffer(RFC5769.request))
        #expect(message.type == .bindingRequest)
        #expect(message.transactionID == RFC5769.transactionID)
        #expect(message.byteCount == 108)
        #expect(try message.software()?.string == "STUN test client")
        #expect(try message.priority() == 0x6E00_01FF)
        #expect(try message.iceControlled() == 0x932F_F9B1_5126_3B36)
        #expect(try message.iceControlling() == nil)
        #expect(try message.useCandidate() == false)
        let username = try #require(try message.username())
        #expect(username.string == "evtj:h6vY")
        #expect(username.equals("evtj:h6vY"))
        #expect(!username.equals("evtj:h6vZ"))
        #expect(message.attributes.map(\.type) == [
            .software, .priority, .iceControlled, .username, .messageIntegrity, .fingerprint,
        ])
        try message.verifyMessageIntegrity(password: RFC5769.password)
        try message.validateIntegrity(key: self.key)
        try message.validateFingerprint()
    }

    @Test func wrongPasswordFailsIntegrity() throws {
        let message = try STUNMessage(parsing: buffer(RFC5769.request))
        expectWireError(.integrityMismatch) { try message.verifyMessageIntegrity(password: "VOkJxbRl1RmTxUk/WvJxBu") }
        #expect(throws: WireError.self) { try message.validateIntegrity(key: STUNIntegrityKey(bytes: [])) }
    }

    @Test func sampleIPv4ResponseDecodesMappedAddress() throws {
        let message = try STUNMessage(parsing: buffer(RFC5769.ipv4Response))
        #expect(message.type == .bindingSuccessResponse)
        #expect(try message.software()?.string == "test vector")
        let address = try #require(try message.xorMappedAddress())
        #expect(address == STUNAddress(ipv4: 192, 0, 2, 1, port: 32853))
        #expect(address.description == "192.0.2.1:32853")
        try message.validateIntegrity(key: self.key)
        try message.validateFingerprint()
    }

    @Test func sampleIPv6ResponseDecodesMappedAddress() throws {
        let message = try STUNMessage(parsing: buffer(RFC5769.ipv6Response))
        let address = try #require(try message.xorMappedAddress())
        let expected = STUNAddress(bytes: hex("2001 0db8 1234 5678 0011 2233 4455 6677"), port: 32853)
        #expect(address == expected)
        #expect(address.description == "[2001:db8:1234:5678:11:2233:4455:6677]:32853")
        try message.validateIntegrity(key: self.key)
        try message.validateFingerprint()
    }

    /// Every single-byte change must be caught: by the parser, by MESSAGE-INTEGRITY or by FINGERPRINT.
    @Test(arguments: RFC5769.all.map(\.name))
    func everySingleByteChangeIsDetected(vector: String) throws {
        let original = try #require(RFC5769.all.first { $0.name == vector }?.bytes)
        for index in original.indices {
            for flip: UInt8 in [0x01, 0x80, 0xFF] {
                var corrupted = original
                corrupted[index] ^= flip
                guard let message = try? STUNMessage(parsing: buffer(corrupted)) else { continue }
                let integrityOK = (try? message.validateIntegrity(key: self.key)) != nil
                let fingerprintOK = (try? message.validateFingerprint()) != nil
                #expect(!(integrityOK && fingerprintOK), "byte \(index) ^ \(flip) went unnoticed in \(vector)")
            }
        }
    }

    /// The builder reproduces the RFC's bytes exactly (the samples pad with spaces).
    @Test func builderReproducesSampleRequest() throws {
        var out = ByteBuffer()
        var builder = STUNMessageBuilder(
            type: .bindingRequest,
            transactionID: RFC5769.transactionID,
            into: &out,
            paddingByte: 0x20
        )
        try builder.appendSoftware("STUN test client", to: &out)
        try builder.appendPriority(0x6E00_01FF, to: &out)
        try builder.appendICEControlled(tieBreaker: 0x932F_F9B1_5126_3B36, to: &out)
        try builder.appendUsername("evtj:h6vY", to: &out)
        try builder.appendMessageIntegrity(key: self.key, to: &out)
        try builder.appendFingerprint(to: &out)
        #expect(bytes(out) == RFC5769.request)
        #expect(builder.byteCount(in: out) == RFC5769.request.count)
    }

    @Test func builderReproducesSampleResponses() throws {
        let cases: [(STUNAddress, [UInt8])] = [
            (STUNAddress(ipv4: 192, 0, 2, 1, port: 32853), RFC5769.ipv4Response),
            (STUNAddress(bytes: hex("20010db8123456780011223344556677"), port: 32853)!, RFC5769.ipv6Response),
        ]
        for (address, expected) in cases {
            var out = ByteBuffer()
            try STUNMessageBuilder.writeBindingSuccessResponse(
                transactionID: RFC5769.transactionID,
                mappedAddress: address,
                key: self.key,
                software: "test vector",
                into: &out
            )
            // The helper pads with zeros; the RFC pads SOFTWARE with a space, covered by both hashes.
            var rfcPadded = bytes(out)
            rfcPadded[20 + 4 + 11] = 0x20
            #expect(rfcPadded != expected, "the padding byte must matter")

            var spaced = ByteBuffer()
            var builder = STUNMessageBuilder(
                type: .bindingSuccessResponse,
                transactionID: RFC5769.transactionID,
                into: &spaced,
                paddingByte: 0x20
            )
            try builder.appendSoftware("test vector", to: &spaced)
            try builder.appendXORMappedAddress(address, to: &spaced)
            try builder.appendMessageIntegrity(key: self.key, to: &spaced)
            try builder.appendFingerprint(to: &spaced)
            #expect(bytes(spaced) == expected)

            // The zero-padded form is a different but equally valid message.
            let parsed = try STUNMessage(parsing: out)
            try parsed.validateIntegrity(key: self.key)
            try parsed.validateFingerprint()
            #expect(try parsed.xorMappedAddress() == address)
        }
    }
}

@Suite struct STUNHeaderTests {
    @Test func messageTypeInterleavesClassAndMethod() {
        #expect(STUNMessageType.bindingRequest.rawValue == 0x0001)
        #expect(STUNMessageType.bindingIndication.rawValue == 0x0011)
        #expect(STUNMessageType.bindingSuccessResponse.rawValue == 0x0101)
        #expect(STUNMessageType.bindingErrorResponse.rawValue == 0x0111)
        // TURN Allocate (0x003) error response is 0x0113 (RFC 8656 §18).
        let allocate = STUNMethod(rawValue: 0x003)!
        #expect(STUNMessageType(method: allocate, messageClass: .errorResponse).rawValue == 0x0113)
        #expect(STUNMethod(rawValue: 0x1000) == nil)
        #expect(STUNMessageType(rawValue: 0x4001) == nil)
        #expect(STUNMessageType(rawValue: 0x8001) == nil)
    }

    @Test func everyMessageTypeRoundTrips() throws {
        for method in UInt16(0)...0x0FFF {
            for messageClass in STUNClass.allCases {
                let type = STUNMessageType(method: STUNMethod(rawValue: method)!, messageClass: messageClass)
                #expect(type.rawValue & 0xC000 == 0)
                let decoded = try #require(STUNMessageType(rawValue: type.rawValue))
                #expect(decoded == type)
            }
        }
    }

    @Test func transactionIDBytes() {
        #expect(RFC5769.transactionID.bytes == hex("b7e7a701bc34d686fa87dfae"))
        #expect(RFC5769.transactionID.description == "b7e7a701bc34d686fa87dfae")
        #expect(STUNTransactionID(bytes: [1, 2, 3]) == nil)
        var generator = SplitMix64(state: 1)
        #expect(STUNTransactionID.random(using: &generator) != STUNTransactionID.random(using: &generator))
    }

    @Test func emptyBindingRequest() throws {
        var out = ByteBuffer()
        _ = STUNMessageBuilder(type: .bindingRequest, transactionID: RFC5769.transactionID, into: &out)
        #expect(bytes(out) == hex("0001 0000 2112a442 b7e7a701bc34d686fa87dfae"))
        let message = try STUNMessage(parsing: out)
        #expect(Array(message.attributes).isEmpty)
        #expect(!message.hasMessageIntegrity)
        #expect(!message.hasFingerprint)
        #expect(STUNMessage.hasSTUNHeader(out))
        expectWireError(.badAttribute) { try message.validateFingerprint() }
    }

    @Test func viewOfSliceUsesReaderIndex() throws {
        var datagram = ByteBuffer(bytes: [0xAA, 0xBB] + RFC5769.ipv4Response)
        datagram.moveReaderIndex(forwardBy: 2)
        let message = try STUNMessage(parsing: datagram)
        #expect(try message.xorMappedAddress() == STUNAddress(ipv4: 0xC000_0201, port: 32853))
        try message.validateIntegrity(key: STUNIntegrityKey(shortTermPassword: RFC5769.password))
        try message.validateFingerprint()
    }
}
