import BraidICE
import BraidWire
import NIOCore
import Testing

@Suite struct ICECredentialsTests {
    static let iceChars = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")

    @Test func randomCredentialsHaveRFC8839ShapeAndAreUsable() throws {
        for _ in 0..<100 {
            let credentials = ICECredentials.random()
            #expect(credentials.ufrag.count == 16)
            #expect(credentials.password.count == 32)
            #expect(credentials.ufrag.allSatisfy(Self.iceChars.contains))
            #expect(credentials.password.allSatisfy(Self.iceChars.contains))
            // They pass our own SDP validation and can be indexed.
            #expect(try ICECredentials(ufrag: credentials.ufrag, password: credentials.password) == credentials)
            #expect(credentials.ufragKey != nil)
            #expect(credentials.integrityKey.bytes == Array(credentials.password.utf8))
        }
        #expect(ICECredentials.random() != ICECredentials.random())
    }

    @Test func injectedGeneratorIsDeterministicAndCoversTheAlphabet() throws {
        var a = SeededGenerator(seed: 1)
        var b = SeededGenerator(seed: 1)
        var c = SeededGenerator(seed: 2)
        let first = ICECredentials.random(using: &a)
        #expect(first == ICECredentials.random(using: &b))
        #expect(first != ICECredentials.random(using: &c))

        var seen = Set<Character>()
        var generator = SeededGenerator(seed: 3)
        for _ in 0..<200 {
            let credentials = ICECredentials.random(using: &generator)
            seen.formUnion(credentials.ufrag)
            seen.formUnion(credentials.password)
        }
        #expect(seen == Self.iceChars)
    }

    @Test(arguments: [
        ("abc", "0123456789012345678901"),  // ufrag too short
        ("abcd", "012345678901234567890"),  // password too short
        (String(repeating: "u", count: 257), "0123456789012345678901"),
        ("abcd", String(repeating: "p", count: 257)),
        ("ab:d", "0123456789012345678901"),  // ':' would break USERNAME
        ("abcd", "01234567890123456789 1"),
        ("abcé", "0123456789012345678901"),
        ("abcd", "012345678901234567890-"),
    ])
    func sdpCredentialsAreValidated(ufrag: String, password: String) {
        #expect(throws: ICEError.self) { try ICECredentials(ufrag: ufrag, password: password) }
    }

    @Test func boundaryLengthsAreAccepted() throws {
        _ = try ICECredentials(ufrag: "a+/9", password: "0123456789012345678901")
        _ = try ICECredentials(ufrag: String(repeating: "u", count: 256), password: String(repeating: "p", count: 256))
    }

    @Test func descriptionHidesThePassword() {
        #expect(!"\(nodeCredentials)".contains(nodeCredentials.password))
        #expect("\(nodeCredentials)".contains(nodeCredentials.ufrag))
    }
}

@Suite struct ICECandidateTests {
    @Test func priorityFollowsRFC8445() {
        // (2^24)*126 + (2^8)*65535 + (256 - 1): the common host candidate value.
        #expect(ICECandidate.priority(typePreference: 126, localPreference: 65535, component: 1) == 2_130_706_431)
        #expect(ICECandidate.priority(typePreference: 126, localPreference: 65535, component: 2) == 2_130_706_430)
        #expect(ICECandidate.priority(typePreference: 126, localPreference: 0, component: 1) == 2_113_929_471)
        #expect(ICECandidate.priority(typePreference: 100, localPreference: 65535, component: 1) == 1_694_498_815)
        #expect(ICECandidate.priority(typePreference: 0, localPreference: 0, component: 256) == 0)
    }

    @Test func hostCandidateAttributes() throws {
        let v4 = try ICECandidate(address: try SocketAddress(ipAddress: "203.0.113.5", port: 3478))
        #expect(v4.attributeValue == "candidate:1 1 udp 2130706431 203.0.113.5 3478 typ host")
        #expect(v4.sdpLine == "a=candidate:1 1 udp 2130706431 203.0.113.5 3478 typ host")

        let v6 = try ICECandidate(
            foundation: "2",
            address: try SocketAddress(ipAddress: "2001:db8::1", port: 50000),
            localPreference: 65534
        )
        #expect(v6.priority == 2_130_706_175)
        #expect(v6.attributeValue == "candidate:2 1 udp 2130706175 2001:db8::1 50000 typ host")
    }

    @Test func badFieldsAreRefused() throws {
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 9)
        #expect(throws: ICEError.self) { try ICECandidate(foundation: "", address: address) }
        #expect(throws: ICEError.self) { try ICECandidate(foundation: "a b", address: address) }
        #expect(throws: ICEError.self) {
            try ICECandidate(foundation: String(repeating: "f", count: 33), address: address)
        }
        #expect(throws: ICEError.self) { try ICECandidate(address: address, component: 0) }
        #expect(throws: ICEError.self) {
            try ICECandidate(address: try SocketAddress(unixDomainSocketPath: "/tmp/braid.sock"))
        }
    }
}
