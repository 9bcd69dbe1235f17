import BraidICE
import BraidWire
import NIOCore
import Testing

@testable import BraidTransport

@Suite("Controlling ICE checks against the node's ICE-lite agent")
struct ICECheckerTests {
    static let client = try! ICECredentials(ufrag: "clientufrag", password: "clientpassword0123456789ab")
    static let node = try! ICECredentials(ufrag: "nodeufrag", password: "nodepassword0123456789abcd")
    static let nodeAddress = try! SocketAddress(ipAddress: "127.0.0.1", port: 5000)
    static let clientAddress = try! SocketAddress(ipAddress: "127.0.0.1", port: 40000)

    static func checker() -> ICEConnectivityChecker {
        ICEConnectivityChecker(
            local: client, remoteUfrag: node.ufrag, remotePassword: node.password, candidates: [nodeAddress])
    }

    @Test("A check carries USERNAME, PRIORITY, ICE-CONTROLLING, MESSAGE-INTEGRITY and FINGERPRINT")
    func requestFormat() throws {
        var checker = Self.checker()
        var sent: [(ByteBuffer, SocketAddress)] = []
        checker.start(now: .uptimeNanoseconds(0)) { sent.append(($0, $1)) }
        #expect(sent.count == 1)
        #expect(sent[0].1 == Self.nodeAddress)
        let message = try STUNMessage(parsing: sent[0].0)
        #expect(message.type == .bindingRequest)
        #expect(try message.username()?.string == "nodeufrag:clientufrag")
        #expect(try message.priority() == checker.priority)
        #expect(try message.iceControlling() == checker.tieBreaker)
        #expect(try message.useCandidate() == false)
        try message.validateIntegrity(key: Self.node.integrityKey)
        try message.validateFingerprint()
    }

    @Test("Check, nominate and connect against ICELiteAgent; the agent selects our address")
    func connectsToLiteAgent() throws {
        let clock = ContinuousClock()
        let agent = try ICELiteAgent(local: Self.node, remote: Self.client, now: clock.now)
        var checker = Self.checker()
        var outbox: [(ByteBuffer, SocketAddress)] = []
        var now = NIODeadline.uptimeNanoseconds(0)
        checker.start(now: now) { outbox.append(($0, $1)) }
        var rounds = 0
        while !outbox.isEmpty, rounds < 10 {
            rounds += 1
            let (request, _) = outbox.removeFirst()
            var response = ByteBuffer()
            let outcome = agent.handleBindingRequest(
                message: try STUNMessage(parsing: request), from: Self.clientAddress, now: clock.now,
                responseInto: &response)
            guard case .respond(.success) = outcome else {
                Issue.record("agent answered \(outcome)")
                return
            }
            now = now + .milliseconds(1)
            checker.handle(try STUNMessage(parsing: response), from: Self.nodeAddress, now: now) {
                outbox.append(($0, $1))
            }
        }
        #expect(checker.state == .connected(Self.nodeAddress))
        #expect(agent.nominatedAddress == STUNAddress(transport: Self.clientAddress))
        #expect(checker.responsesReceived == 2)
        #expect(checker.transactions.isEmpty)
    }

    @Test("Forged or misdirected responses are rejected")
    func rejectsBadResponses() throws {
        var checker = Self.checker()
        var sent: [ByteBuffer] = []
        checker.start(now: .uptimeNanoseconds(0)) { buffer, _ in sent.append(buffer) }
        let request = try STUNMessage(parsing: sent[0])
        let mapped = STUNAddress(transport: Self.clientAddress)!
        // Signed with the wrong password.
        var forged = ByteBuffer()
        try STUNMessageBuilder.writeBindingSuccessResponse(
            transactionID: request.transactionID, mappedAddress: mapped, key: Self.client.integrityKey, into: &forged)
        checker.handle(try STUNMessage(parsing: forged), from: Self.nodeAddress, now: .uptimeNanoseconds(1)) { _, _ in }
        // Right key, wrong source address.
        var good = ByteBuffer()
        try STUNMessageBuilder.writeBindingSuccessResponse(
            transactionID: request.transactionID, mappedAddress: mapped, key: Self.node.integrityKey, into: &good)
        let other = try SocketAddress(ipAddress: "127.0.0.2", port: 5000)
        checker.handle(try STUNMessage(parsing: good), from: other, now: .uptimeNanoseconds(2)) { _, _ in }
        // Unknown transaction.
        var unknown = ByteBuffer()
        try STUNMessageBuilder.writeBindingSuccessResponse(
            transactionID: .random(), mappedAddress: mapped, key: Self.node.integrityKey, into: &unknown)
        checker.handle(try STUNMessage(parsing: unknown), from: Self.nodeAddress, now: .uptimeNanoseconds(3)) { _, _ in
        }
        #expect(checker.responsesRejected == 3)
        #expect(checker.state == .checking)
    }

    @Test("Unanswered checks are retransmitted with a doubling timeout, then connectivity fails")
    func retransmitsThenFails() {
        var checker = Self.checker()
        var times: [Int64] = []
        var now = NIODeadline.uptimeNanoseconds(0)
        checker.start(now: now) { _, _ in times.append(0) }
        while case .checking = checker.state, let deadline = checker.nextDeadline {
            now = deadline
            checker.handleTimer(now: now) { _, _ in times.append(Int64(now.uptimeNanoseconds / 1_000_000)) }
        }
        #expect(Array(times.prefix(5)) == [0, 100, 300, 700, 1500])
        #expect(times.count == 7)
        guard case .failed = checker.state else {
            Issue.record("expected failure, got \(checker.state)")
            return
        }
        #expect(now.uptimeNanoseconds == 10_000_000_000)
    }

    @Test("Consent: a check every 4-6 s on the selected pair; no answer for 30 s loses it")
    func consent() throws {
        let clock = ContinuousClock()
        let agent = try ICELiteAgent(local: Self.node, remote: Self.client, now: clock.now)
        var checker = Self.checker()
        var outbox: [ByteBuffer] = []
        var now = NIODeadline.uptimeNanoseconds(0)
        func pump() throws {
            while !outbox.isEmpty {
                var response = ByteBuffer()
                _ = agent.handleBindingRequest(
                    message: try STUNMessage(parsing: outbox.removeFirst()), from: Self.clientAddress, now: clock.now,
                    responseInto: &response)
                checker.handle(try STUNMessage(parsing: response), from: Self.nodeAddress, now: now) { buffer, _ in
                    outbox.append(buffer)
                }
            }
        }
        checker.start(now: now) { buffer, _ in outbox.append(buffer) }
        try pump()
        #expect(checker.state == .connected(Self.nodeAddress))
        let connectedAt = now
        // Answered consent keeps the pair for a minute.
        var consentTimes: [Int64] = []
        while now - connectedAt < .seconds(60), let deadline = checker.nextDeadline {
            now = deadline
            checker.handleTimer(now: now) { buffer, _ in
                outbox.append(buffer)
                consentTimes.append((now - connectedAt).nanoseconds / 1_000_000)
            }
            try pump()
        }
        #expect(checker.state == .connected(Self.nodeAddress))
        let gaps = zip(consentTimes.dropFirst(), consentTimes).map { $0 - $1 }
        #expect(consentTimes.count >= 10)
        #expect(gaps.allSatisfy { (4000...6000).contains($0) })
        // Now the peer goes silent.
        let silentFrom = now
        while case .connected = checker.state, let deadline = checker.nextDeadline {
            now = deadline
            checker.handleTimer(now: now) { _, _ in }
        }
        guard case .failed = checker.state else {
            Issue.record("expected consent failure")
            return
        }
        #expect(now - silentFrom <= .seconds(30))
        #expect(now - silentFrom >= .seconds(24))
    }
}
