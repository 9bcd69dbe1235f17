import BraidICE
import BraidWire
import NIOCore
import Testing

/// The agent against the STUN test vectors of RFC 5769 §2.1–2.3.
@Suite struct ICERFC5769Tests {
    /// Bytes from hex digits; whitespace is ignored.
    static func hex(_ text: String) -> [UInt8] {
        let digits = text.filter(\.isHexDigit).map { UInt8(String($0), radix: 16)! }
        return stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
    }

    /// §2.1 Sample Request: USERNAME "evtj:h6vY", password "VOkJxbRl1RmTxUk/WvJxBt", with ICE-CONTROLLED.
    static let request = hex(
        """
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff
        80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf
        """
    )
    static let transactionID = STUNTransactionID(bytes: hex("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"))!
    /// XOR-MAPPED-ADDRESS of §2.2 (192.0.2.1:32853) and §2.3 ([2001:db8:1234:5678:11:2233:4455:6677]:32853).
    static let ipv4XORMappedAddress = hex("00 20 00 08 00 01 a1 47 e1 12 a6 43")
    static let ipv6XORMappedAddress = hex(
        "00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9"
    )

    let local = try! ICECredentials(ufrag: "evtj", password: "VOkJxbRl1RmTxUk/WvJxBt")
    let remote = try! ICECredentials(ufrag: "h6vY", password: "RemotePasswordNotInTheRFC")

    @Test func sampleRequestAuthenticatesAndGetsRoleConflict() throws {
        // The sample is sent by a controlled agent, so the lite agent (also controlled) answers 487,
        // authenticated with the sample's password.
        let agent = try ICELiteAgent(local: self.local, remote: self.remote, now: t0)
        let message = try STUNMessage(parsing: ByteBuffer(bytes: Self.request))
        var response = ByteBuffer()
        let source = try SocketAddress(ipAddress: "192.0.2.1", port: 32853)
        #expect(agent.handleBindingRequest(message: message, from: source, now: t0, responseInto: &response)
            == .respond(.error(.roleConflict)))
        let answer = try STUNMessage(parsing: response)
        #expect(answer.type == .bindingErrorResponse)
        #expect(answer.transactionID == Self.transactionID)
        #expect(try answer.errorCode()?.code == .roleConflict)
        try answer.validateIntegrity(key: self.local.integrityKey)
        try answer.validateFingerprint()

        // With another password the same bytes are unauthenticated.
        let stranger = try ICELiteAgent(
            local: try ICECredentials(ufrag: "evtj", password: "AnotherPassword0123456789"),
            remote: self.remote,
            now: t0
        )
        response.clear()
        #expect(stranger.handleBindingRequest(message: message, from: source, now: t0, responseInto: &response)
            == .respond(.error(.unauthenticated)))
    }

    @Test func successResponseCarriesTheRFCsXORMappedAddress() throws {
        let cases: [(String, [UInt8])] = [
            ("192.0.2.1", Self.ipv4XORMappedAddress),
            ("2001:db8:1234:5678:11:2233:4455:6677", Self.ipv6XORMappedAddress),
        ]
        for (ip, expected) in cases {
            let agent = try ICELiteAgent(local: self.local, remote: self.remote, now: t0)
            let check = try makeCheck(node: self.local, browser: self.remote, transactionID: Self.transactionID)
            var response = ByteBuffer()
            let source = try SocketAddress(ipAddress: ip, port: 32853)
            let outcome = agent.handleBindingRequest(message: check, from: source, now: t0, responseInto: &response)
            #expect(successCheck(outcome) != nil)
            // Header, then XOR-MAPPED-ADDRESS first: byte for byte the RFC's attribute.
            #expect(response.getBytes(at: STUNMessage.headerSize, length: expected.count) == expected)
            let answer = try STUNMessage(parsing: response)
            #expect(answer.transactionID == Self.transactionID)
            try answer.validateIntegrity(key: self.local.integrityKey)
            try answer.validateFingerprint()
        }
    }
}
