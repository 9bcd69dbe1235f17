import BraidICE
import BraidWire
import NIOCore
import Testing

@Suite struct ICELiteAgentTests {
    func makeAgent(now: ContinuousClock.Instant = t0) throws -> ICELiteAgent {
        try ICELiteAgent(local: nodeCredentials, remote: browserCredentials, now: now)
    }

    /// Sends a check and returns the outcome and the response bytes.
    func send(
        _ agent: ICELiteAgent,
        from source: SocketAddress = addressA,
        at now: ContinuousClock.Instant = t0,
        node: ICECredentials = nodeCredentials,
        browser: ICECredentials = browserCredentials,
        transactionID: STUNTransactionID = .random(),
        _ options: CheckOptions = CheckOptions()
    ) throws -> (ICELiteAgent.Outcome, ByteBuffer) {
        let check = try makeCheck(node: node, browser: browser, transactionID: transactionID, options)
        var response = ByteBuffer()
        let outcome = agent.handleBindingRequest(message: check, from: source, now: now, responseInto: &response)
        return (outcome, response)
    }

    /// Parses an error response and checks its code and whether it carries MESSAGE-INTEGRITY.
    func expectError(
        _ response: ByteBuffer,
        _ code: Int,
        transactionID: STUNTransactionID,
        authenticated: Bool
    ) throws {
        let message = try parseResponse(response)
        #expect(message.type == .bindingErrorResponse)
        #expect(message.transactionID == transactionID)
        #expect(try message.errorCode()?.code.value == code)
        try message.validateFingerprint()
        if authenticated {
            try message.validateIntegrity(key: nodeCredentials.integrityKey)
        } else {
            #expect(!message.hasMessageIntegrity)
        }
    }

    // MARK: Valid checks

    @Test func validCheckGetsAuthenticatedSuccessWithSourceAddress() throws {
        for source in [addressA, addressV6] {
            let agent = try self.makeAgent()
            let id = STUNTransactionID(high: 0xA1B2_C3D4, low: 0x0011_2233_4455_6677)
            let (outcome, response) = try self.send(agent, from: source, transactionID: id)
            let check = try #require(successCheck(outcome))
            #expect(check.address == stun(source))
            #expect(check.isNewPair && !check.nominated && check.evicted == nil && !check.completedRestart)

            let message = try parseResponse(response)
            #expect(message.type == .bindingSuccessResponse)
            #expect(message.transactionID == id)
            #expect(try message.xorMappedAddress() == STUNAddress(source))
            try message.validateIntegrity(key: nodeCredentials.integrityKey)
            try message.validateFingerprint()
            // Keyed with the node's password, not the browser's.
            #expect(throws: WireError.self) { try message.validateIntegrity(key: browserCredentials.integrityKey) }

            #expect(agent.state(now: t0) == .checking)
            #expect(agent.selectedAddress == stun(source))
            #expect(agent.nominatedAddress == nil)
            #expect(agent.hasConsent(stun(source), now: t0))
        }
    }

    @Test func responseIsAppendedAtTheWriterIndex() throws {
        let agent = try self.makeAgent()
        let check = try makeCheck(node: nodeCredentials, browser: browserCredentials)
        var response = ByteBuffer(bytes: [0xAB, 0xCD])
        let outcome = agent.handleBindingRequest(message: check, from: addressA, now: t0, responseInto: &response)
        #expect(successCheck(outcome) != nil)
        #expect(response.getBytes(at: 0, length: 2) == [0xAB, 0xCD])
        response.moveReaderIndex(forwardBy: 2)
        #expect(try parseResponse(response).transactionID == check.transactionID)
    }

    @Test func checkWithoutICEControllingIsStillAccepted() throws {
        // RFC 8445 §7.3.1.1 resolves conflicts only when a role attribute is present.
        let agent = try self.makeAgent()
        var options = CheckOptions()
        options.controlling = false
        let (outcome, _) = try self.send(agent, options)
        #expect(successCheck(outcome) != nil)
    }

    // MARK: Credentials (RFC 8489 §9.1.3)

    @Test(arguments: [
        "brws:NodeUfrag0000001",  // sender's ufrag first: the wrong order
        "NodeUfrag0000001:other",  // right local ufrag, wrong remote one
        "NodeUfrag0000002:brws",  // another local ufrag
        "NodeUfrag0000001:brws:",  // trailing colon
        "NodeUfrag0000001brws",  // no colon
        "NodeUfrag0000001:",
        ":brws",
    ])
    func wrongUsernameGets401WithoutIntegrity(username: String) throws {
        let agent = try self.makeAgent()
        let id = STUNTransactionID.random()
        var options = CheckOptions()
        options.username = username
        let (outcome, response) = try self.send(agent, transactionID: id, options)
        #expect(outcome == .respond(.error(.unauthenticated)))
        try self.expectError(response, 401, transactionID: id, authenticated: false)
        #expect(agent.pairs.isEmpty)
        #expect(agent.state(now: t0) == .new)
    }

    @Test func wrongPasswordGets401() throws {
        let agent = try self.makeAgent()
        let id = STUNTransactionID.random()
        var options = CheckOptions()
        options.password = browserCredentials.password  // a client keying with its own password
        let (outcome, response) = try self.send(agent, transactionID: id, options)
        #expect(outcome == .respond(.error(.unauthenticated)))
        try self.expectError(response, 401, transactionID: id, authenticated: false)
        #expect(agent.pairs.isEmpty)
    }

    @Test func missingUsernameOrIntegrityGets400() throws {
        var noUsername = CheckOptions()
        noUsername.username = ""
        var noIntegrity = CheckOptions()
        noIntegrity.integrity = false
        for options in [noUsername, noIntegrity] {
            let agent = try self.makeAgent()
            let id = STUNTransactionID.random()
            let (outcome, response) = try self.send(agent, transactionID: id, options)
            #expect(outcome == .respond(.error(.badRequest)))
            try self.expectError(response, 400, transactionID: id, authenticated: false)
            #expect(agent.pairs.isEmpty)
        }
    }

    // MARK: Fingerprint, role, priority, unknown attributes

    @Test func missingFingerprintIsDroppedSilently() throws {
        let agent = try self.makeAgent()
        var options = CheckOptions()
        options.fingerprint = false
        let (outcome, response) = try self.send(agent, options)
        #expect(outcome == .drop(.missingFingerprint))
        #expect(response.readableBytes == 0)
        #expect(agent.pairs.isEmpty)
    }

    @Test func corruptFingerprintIsDroppedSilently() throws {
        let agent = try self.makeAgent()
        let check = try makeCheck(node: nodeCredentials, browser: browserCredentials)
        var bytes = check.bytes
        let last = bytes.writerIndex - 1
        bytes.setInteger(bytes.getInteger(at: last, as: UInt8.self)! ^ 0x01, at: last)
        var response = ByteBuffer()
        let outcome = agent.handleBindingRequest(
            message: try STUNMessage(parsing: bytes),
            from: addressA,
            now: t0,
            responseInto: &response
        )
        #expect(outcome == .drop(.badFingerprint))
        #expect(response.readableBytes == 0)
    }

    @Test func iceControlledGets487WithIntegrity() throws {
        let agent = try self.makeAgent()
        let id = STUNTransactionID.random()
        var options = CheckOptions()
        options.controlling = false
        options.controlled = true
        options.useCandidate = true
        let (outcome, response) = try self.send(agent, transactionID: id, options)
        #expect(outcome == .respond(.error(.roleConflict)))
        try self.expectError(response, 487, transactionID: id, authenticated: true)
        #expect(agent.pairs.isEmpty)
        #expect(agent.nominatedAddress == nil)
    }

    @Test func missingPriorityGets400WithIntegrity() throws {
        let agent = try self.makeAgent()
        let id = STUNTransactionID.random()
        var options = CheckOptions()
        options.priority = nil
        let (outcome, response) = try self.send(agent, transactionID: id, options)
        #expect(outcome == .respond(.error(.badRequest)))
        try self.expectError(response, 400, transactionID: id, authenticated: true)
        #expect(agent.pairs.isEmpty)
    }

    @Test func unknownComprehensionRequiredAttributeGets420() throws {
        let agent = try self.makeAgent()
        let id = STUNTransactionID.random()
        var options = CheckOptions()
        options.extraAttribute = STUNAttributeType(rawValue: 0x0030)
        let (outcome, response) = try self.send(agent, transactionID: id, options)
        #expect(outcome == .respond(.error(.unknownAttribute)))
        try self.expectError(response, 420, transactionID: id, authenticated: true)
        let unknown = try #require(try parseResponse(response).attribute(.unknownAttributes)?.unknownAttributes())
        #expect(Array(unknown) == [STUNAttributeType(rawValue: 0x0030)])

        // An unknown comprehension-optional attribute is ignored.
        options.extraAttribute = STUNAttributeType(rawValue: 0xC001)
        #expect(successCheck(try self.send(agent, options).0) != nil)
    }

    @Test func nonRequestsAreDropped() throws {
        let agent = try self.makeAgent()
        for (type, reason) in [
            (STUNMessageType.bindingIndication, ICELiteAgent.DropReason.indication),
            (.bindingSuccessResponse, .notBindingRequest),
            (.bindingErrorResponse, .notBindingRequest),
            (STUNMessageType(method: STUNMethod(rawValue: 0x003)!, messageClass: .request), .notBindingRequest),
        ] {
            var options = CheckOptions()
            options.type = type
            let (outcome, response) = try self.send(agent, options)
            #expect(outcome == .drop(reason))
            #expect(response.readableBytes == 0)
        }
        #expect(agent.pairs.isEmpty)
    }

    // MARK: Nomination

    @Test func nominationAndRenominationAcrossAddresses() throws {
        let agent = try self.makeAgent()
        var nominate = CheckOptions()
        nominate.useCandidate = true

        let first = try #require(successCheck(try self.send(agent, from: addressA, nominate).0))
        #expect(first.nominated && first.isNewPair)
        #expect(agent.state(now: t0) == .connected(stun(addressA)))

        // A plain check from B: a new validated pair, but A stays selected.
        let second = try #require(successCheck(try self.send(agent, from: addressB, at: t0 + .seconds(1)).0))
        #expect(second.isNewPair && !second.nominated)
        #expect(agent.latestValidatedAddress == stun(addressB))
        #expect(agent.selectedAddress == stun(addressA))
        #expect(agent.state(now: t0 + .seconds(1)) == .connected(stun(addressA)))
        #expect(agent.hasConsent(stun(addressB), now: t0 + .seconds(1)))

        // B nominated: re-selection (RFC 8445 §8.1.1).
        _ = try self.send(agent, from: addressB, at: t0 + .seconds(2), nominate)
        #expect(agent.state(now: t0 + .seconds(2)) == .connected(stun(addressB)))
        #expect(agent.pairs.filter(\.nominated).map(\.address) == [stun(addressB)])

        // And back to A.
        let back = try #require(successCheck(try self.send(agent, from: addressA, at: t0 + .seconds(3), nominate).0))
        #expect(!back.isNewPair && back.nominated)
        #expect(agent.selectedAddress == stun(addressA))
        #expect(agent.pairs.filter(\.nominated).map(\.address) == [stun(addressA)])
        #expect(agent.pairs.count == 2)
    }

    @Test func pairListIsBoundedAndKeepsTheNominatedPair() throws {
        let agent = try self.makeAgent()
        var nominate = CheckOptions()
        nominate.useCandidate = true
        _ = try self.send(agent, from: address(0), at: t0, nominate)
        var evicted: [STUNAddress] = []
        for index in 1...12 {
            let (outcome, _) = try self.send(agent, from: address(index), at: t0 + .seconds(index))
            let check = try #require(successCheck(outcome))
            if let gone = check.evicted { evicted.append(gone) }
        }
        #expect(agent.pairs.count == ICELiteAgent.maxPairs)
        #expect(agent.pairs.contains { $0.address == stun(address(0)) })
        // The stalest unnominated pairs went first, in order.
        #expect(evicted == (1...5).map { stun(address($0)) })
        #expect(agent.state(now: t0 + .seconds(5)) == .connected(stun(address(0))))
    }

    @Test func authenticatedMediaMovesTheSelectionOnlyToAConsentedPair() throws {
        let agent = try self.makeAgent()
        var nominate = CheckOptions()
        nominate.useCandidate = true
        _ = try self.send(agent, from: addressA, at: t0, nominate)
        _ = try self.send(agent, from: addressB, at: t0 + .seconds(1))

        // Media from an address that never passed a check cannot take the selection.
        #expect(!agent.followMedia(from: stun(addressV6), now: t0 + .seconds(2)))
        // Media already on the selected pair changes nothing.
        #expect(!agent.followMedia(from: stun(addressA), now: t0 + .seconds(2)))
        #expect(agent.followMedia(from: stun(addressB), now: t0 + .seconds(2)))
        #expect(agent.state(now: t0 + .seconds(2)) == .connected(stun(addressB)))
        #expect(agent.pairs.filter(\.nominated).map(\.address) == [stun(addressB)])
        // Once A's consent has expired, media from it cannot take the selection back.
        _ = try self.send(agent, from: addressB, at: t0 + .seconds(25))
        #expect(!agent.followMedia(from: stun(addressA), now: t0 + .seconds(30)))
        #expect(agent.selectedAddress == stun(addressB))
    }

    // MARK: Consent (RFC 7675)

    @Test func sessionWithoutAnyCheckFailsAfter30Seconds() throws {
        let agent = try self.makeAgent()
        #expect(agent.state(now: t0) == .new)
        #expect(agent.nextDeadline(after: t0) == t0 + .seconds(30))
        #expect(agent.state(now: t0 + .milliseconds(29_999)) == .new)
        #expect(agent.state(now: t0 + .seconds(30)) == .failed)
        #expect(agent.nextDeadline(after: t0 + .seconds(30)) == nil)
    }

    @Test func consentExpiresThirtySecondsAfterTheLastValidCheck() throws {
        let agent = try self.makeAgent()
        var nominate = CheckOptions()
        nominate.useCandidate = true
        let start = t0 + .seconds(2)
        _ = try self.send(agent, at: start, nominate)
        #expect(agent.nextDeadline(after: start) == start + .seconds(10))
        #expect(agent.state(now: start + .milliseconds(9_999)) == .connected(stun(addressA)))
        #expect(agent.state(now: start + .seconds(10)) == .disconnected)
        #expect(agent.nextDeadline(after: start + .seconds(10)) == start + .seconds(30))
        #expect(agent.state(now: start + .milliseconds(29_999)) == .disconnected)
        #expect(agent.hasConsent(stun(addressA), now: start + .milliseconds(29_999)))
        #expect(agent.state(now: start + .seconds(30)) == .failed)
        #expect(!agent.hasConsent(stun(addressA), now: start + .seconds(30)))

        // Failure is final: a late valid check does not revive the session.
        let (late, response) = try self.send(agent, at: start + .seconds(31), nominate)
        #expect(late == .drop(.sessionExpired))
        #expect(response.readableBytes == 0)
        #expect(agent.state(now: start + .seconds(31)) == .failed)
        #expect(agent.nextDeadline(after: start + .seconds(31)) == nil)
    }

    @Test func periodicChecksKeepConsentAlive() throws {
        let agent = try self.makeAgent()
        var nominate = CheckOptions()
        nominate.useCandidate = true
        _ = try self.send(agent, at: t0, nominate)
        // Consent checks every 5 s (RFC 7675 §5.1) for two minutes, state sampled each second.
        var now = t0
        for second in 1...120 {
            now = t0 + .seconds(second)
            if second % 5 == 0 {
                #expect(successCheck(try self.send(agent, at: now).0) != nil)
            }
            #expect(agent.state(now: now) == .connected(stun(addressA)))
        }
        #expect(agent.nextDeadline(after: now) == now + .seconds(10))
    }

    @Test func checksOnAnotherPairDoNotHideTheSelectedPairsSilence() throws {
        let agent = try self.makeAgent()
        var nominate = CheckOptions()
        nominate.useCandidate = true
        _ = try self.send(agent, from: addressA, at: t0, nominate)
        _ = try self.send(agent, from: addressB, at: t0 + .seconds(8))
        #expect(agent.state(now: t0 + .seconds(10)) == .disconnected)
        #expect(agent.nextDeadline(after: t0 + .seconds(10)) == t0 + .seconds(38))
        #expect(agent.state(now: t0 + .seconds(35)) == .disconnected)
        #expect(agent.state(now: t0 + .seconds(38)) == .failed)
    }

    @Test func timeoutsAreValidated() throws {
        #expect(throws: ICEError.self) { try ICELiteAgent.Timeouts(disconnected: .seconds(30), expiry: .seconds(30)) }
        #expect(throws: ICEError.self) { try ICELiteAgent.Timeouts(disconnected: .zero, expiry: .seconds(30)) }
        let short = try ICELiteAgent.Timeouts(disconnected: .seconds(2), expiry: .seconds(5))
        let agent = try ICELiteAgent(local: nodeCredentials, remote: browserCredentials, timeouts: short, now: t0)
        _ = try self.send(agent, at: t0)
        #expect(agent.state(now: t0 + .seconds(2)) == .disconnected)
        #expect(agent.state(now: t0 + .seconds(5)) == .failed)
    }

    // MARK: Restart

    @Test func restartAcceptsOldCredentialsUntilNewOnesAreUsed() throws {
        let agent = try self.makeAgent()
        var nominate = CheckOptions()
        nominate.useCandidate = true
        _ = try self.send(agent, at: t0, nominate)

        var generator = SeededGenerator(seed: 7)
        let newNode = ICECredentials.random(using: &generator)
        let newBrowser = ICECredentials.random(using: &generator)
        try agent.restart(newLocal: newNode, newRemote: newBrowser)
        #expect(agent.local == newNode && agent.remote == newBrowser)
        #expect(agent.previous?.local == nodeCredentials)
        // Media keeps flowing on the selected pair during the restart.
        #expect(agent.state(now: t0 + .seconds(1)) == .connected(stun(addressA)))

        // Old credentials still work, and the response is keyed with the old password.
        let (old, oldResponse) = try self.send(agent, at: t0 + .seconds(1))
        #expect(successCheck(old)?.completedRestart == false)
        try parseResponse(oldResponse).validateIntegrity(key: nodeCredentials.integrityKey)

        // The first check with the new credentials completes the restart.
        let (new, newResponse) = try self.send(
            agent,
            from: addressB,
            at: t0 + .seconds(2),
            node: newNode,
            browser: newBrowser,
            nominate
        )
        let check = try #require(successCheck(new))
        #expect(check.completedRestart && check.nominated)
        try parseResponse(newResponse).validateIntegrity(key: newNode.integrityKey)
        #expect(agent.previous == nil)
        #expect(agent.state(now: t0 + .seconds(2)) == .connected(stun(addressB)))

        // Now the old credentials are refused.
        let (refused, _) = try self.send(agent, at: t0 + .seconds(3))
        #expect(refused == .respond(.error(.unauthenticated)))
    }

    @Test func restartRefusesALocalUfragTooLongToIndex() throws {
        let agent = try self.makeAgent()
        let long = try ICECredentials(ufrag: String(repeating: "u", count: 33), password: nodeCredentials.password)
        #expect(throws: ICEError.self) { try agent.restart(newLocal: long, newRemote: browserCredentials) }
        #expect(throws: ICEError.self) { try ICELiteAgent(local: long, remote: browserCredentials, now: t0) }
        #expect(agent.local == nodeCredentials)
    }
}
