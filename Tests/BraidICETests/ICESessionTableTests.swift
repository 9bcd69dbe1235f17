import BraidICE
import BraidWire
import NIOCore
import Testing

@Suite struct ICESessionTableTests {
    let otherNode = try! ICECredentials(ufrag: "OtherNodeUfrag02", password: "OtherNodePassword0123456789abcd")
    let otherBrowser = try! ICECredentials(ufrag: "ffox", password: "FirefoxPassword0123456789")

    func makeTable() throws -> (ICESessionTable<String>, first: ICESessionTable<String>.SessionID,
        second: ICESessionTable<String>.SessionID)
    {
        var table = ICESessionTable<String>(capacity: 4)
        let first = try table.insert(
            try ICELiteAgent(local: nodeCredentials, remote: browserCredentials, now: t0),
            context: "first"
        )
        let second = try table.insert(
            try ICELiteAgent(local: self.otherNode, remote: self.otherBrowser, now: t0),
            context: "second"
        )
        return (table, first, second)
    }

    func send(
        _ table: inout ICESessionTable<String>,
        node: ICECredentials,
        browser: ICECredentials,
        from source: SocketAddress,
        at now: ContinuousClock.Instant = t0,
        _ options: CheckOptions = CheckOptions()
    ) throws -> (ICESessionTable<String>.SessionID?, ICELiteAgent.Outcome) {
        let check = try makeCheck(node: node, browser: browser, options)
        var response = ByteBuffer()
        let result = table.handleSTUNDatagram(check.bytes, from: source, now: now, responseInto: &response)
        return (result.session, result.outcome)
    }

    @Test func newAddressIsRoutedByUfragThenByAddress() throws {
        var (table, first, second) = try self.makeTable()
        #expect(table.session(for: addressA) == nil)

        let (routed, outcome) = try self.send(
            &table,
            node: nodeCredentials,
            browser: browserCredentials,
            from: addressA
        )
        #expect(routed == first)
        #expect(successCheck(outcome) != nil)
        #expect(table.session(for: addressA) == first)
        #expect(table.session(for: stun(addressA)) == first)

        let (routedB, outcomeB) = try self.send(
            &table,
            node: self.otherNode,
            browser: self.otherBrowser,
            from: addressB
        )
        #expect(routedB == second)
        #expect(successCheck(outcomeB) != nil)
        #expect(table.session(for: addressB) == second)
        #expect(table.context(second) == "second")
        #expect(table.agent(second)?.selectedAddress == stun(addressB))
        #expect(table.addressCount == 2)
    }

    @Test func failedChecksDoNotMapTheAddress() throws {
        var (table, first, _) = try self.makeTable()
        var options = CheckOptions()
        options.password = "WrongPassword0123456789abc"
        let (routed, outcome) = try self.send(
            &table,
            node: nodeCredentials,
            browser: browserCredentials,
            from: addressA,
            options
        )
        #expect(routed == first)
        #expect(outcome == .respond(.error(.unauthenticated)))
        #expect(table.session(for: addressA) == nil)
    }

    @Test func unknownUfragAndMalformedDatagramsAreDropped() throws {
        var (table, _, _) = try self.makeTable()
        let stranger = try ICECredentials(ufrag: "Stranger", password: "StrangerPassword012345678")
        let (routed, outcome) = try self.send(&table, node: stranger, browser: browserCredentials, from: addressA)
        #expect(routed == nil)
        #expect(outcome == .drop(.unknownUsername))

        var response = ByteBuffer()
        let garbage = ByteBuffer(bytes: [0x00, 0x01, 0x00, 0x00, 0x21, 0x12])
        #expect(table.handleSTUNDatagram(garbage, from: addressA, now: t0, responseInto: &response).outcome
            == .drop(.malformed))
        #expect(response.readableBytes == 0)
    }

    @Test func addressMovesToTheSessionItsCheckNames() throws {
        var (table, first, second) = try self.makeTable()
        _ = try self.send(&table, node: nodeCredentials, browser: browserCredentials, from: addressA)
        #expect(table.session(for: addressA) == first)

        // The same 5-tuple now carries checks for the second session (e.g. a reused client port).
        let (routed, outcome) = try self.send(&table, node: self.otherNode, browser: self.otherBrowser, from: addressA)
        #expect(routed == second)
        #expect(successCheck(outcome) != nil)
        #expect(table.session(for: addressA) == second)
        #expect(table.agent(first)?.pairs.isEmpty == true)
        #expect(table.agent(first)?.selectedAddress == nil)
    }

    @Test func evictedPairsLeaveTheAddressIndex() throws {
        var (table, first, _) = try self.makeTable()
        for index in 0..<12 {
            let (routed, _) = try self.send(
                &table,
                node: nodeCredentials,
                browser: browserCredentials,
                from: address(index),
                at: t0 + .seconds(index)
            )
            #expect(routed == first)
        }
        #expect(table.addressCount == ICELiteAgent.maxPairs)
        #expect(table.session(for: address(0)) == nil)
        #expect(table.session(for: address(11)) == first)
    }

    @Test func removeClearsEveryKey() throws {
        var (table, first, second) = try self.makeTable()
        _ = try self.send(&table, node: nodeCredentials, browser: browserCredentials, from: addressA)
        let removed = table.remove(first)
        #expect(removed?.context == "first")
        #expect(table.count == 1)
        #expect(table.session(for: addressA) == nil)
        #expect(table.addressCount == 0)
        let (routed, outcome) = try self.send(
            &table,
            node: nodeCredentials,
            browser: browserCredentials,
            from: addressA
        )
        #expect(routed == nil && outcome == .drop(.unknownUsername))
        #expect(table.remove(first) == nil)
        #expect(table.agent(second) != nil)
    }

    @Test func capacityAndDuplicateUfragsAreRefused() throws {
        var table = ICESessionTable<Int>(capacity: 1)
        _ = try table.insert(try ICELiteAgent(local: nodeCredentials, remote: browserCredentials, now: t0), context: 1)
        #expect(throws: ICEError.self) {
            try table.insert(try ICELiteAgent(local: self.otherNode, remote: browserCredentials, now: t0), context: 2)
        }
        var roomy = ICESessionTable<Int>(capacity: 8)
        _ = try roomy.insert(try ICELiteAgent(local: nodeCredentials, remote: browserCredentials, now: t0), context: 1)
        do {
            _ = try roomy.insert(
                try ICELiteAgent(local: nodeCredentials, remote: self.otherBrowser, now: t0),
                context: 2
            )
            Issue.record("a duplicate local ufrag was accepted")
        } catch {
            #expect(error.code == .duplicateUfrag)
        }
        #expect(roomy.count == 1)
    }

    @Test func restartThroughTheTableIndexesTheNewUfragAndRetiresTheOld() throws {
        var (table, first, second) = try self.makeTable()
        _ = try self.send(&table, node: nodeCredentials, browser: browserCredentials, from: addressA)
        var generator = SeededGenerator(seed: 42)
        let newNode = ICECredentials.random(using: &generator)
        let newBrowser = ICECredentials.random(using: &generator)
        try table.restart(first, newLocal: newNode, newRemote: newBrowser)

        // Old credentials from a new address still reach the session during the restart.
        let (oldRouted, oldOutcome) = try self.send(
            &table,
            node: nodeCredentials,
            browser: browserCredentials,
            from: addressB
        )
        #expect(oldRouted == first && successCheck(oldOutcome)?.completedRestart == false)

        let (newRouted, newOutcome) = try self.send(
            &table,
            node: newNode,
            browser: newBrowser,
            from: address(3),
            at: t0 + .seconds(1)
        )
        #expect(newRouted == first && successCheck(newOutcome)?.completedRestart == true)

        // The old ufrag is gone from the index.
        let (retired, outcome) = try self.send(
            &table,
            node: nodeCredentials,
            browser: browserCredentials,
            from: address(4)
        )
        #expect(retired == nil && outcome == .drop(.unknownUsername))

        // A restart may not take another session's ufrag.
        #expect(throws: ICEError.self) { try table.restart(first, newLocal: self.otherNode, newRemote: newBrowser) }
        table.remove(second)
        #expect(throws: ICEError.self) { try table.restart(second, newLocal: self.otherNode, newRemote: newBrowser) }
    }

    @Test func failedSessionsAreRemovedWithTheirAddresses() throws {
        var (table, first, second) = try self.makeTable()
        _ = try self.send(&table, node: nodeCredentials, browser: browserCredentials, from: addressA, at: t0)
        _ = try self.send(
            &table,
            node: self.otherNode,
            browser: self.otherBrowser,
            from: addressB,
            at: t0 + .seconds(20)
        )
        #expect(table.removeFailedSessions(now: t0 + .seconds(29)).isEmpty)
        #expect(table.removeFailedSessions(now: t0 + .seconds(30)) == ["first"])
        #expect(table.agent(first) == nil && table.session(for: addressA) == nil)
        #expect(table.session(for: addressB) == second)
    }

    @Test func socketAddressConversionMatchesBraidWire() throws {
        for text in ["0.0.0.0", "127.0.0.1", "192.0.2.255", "::", "::1", "2001:db8::7", "fe80::1:2:3:4", "ffff::ffff"] {
            for port in [0, 1, 3478, 65535] {
                let socket = try SocketAddress(ipAddress: text, port: port)
                #expect(STUNAddress(transport: socket) == (try STUNAddress(socket)))
            }
        }
        #expect(STUNAddress(transport: try SocketAddress(unixDomainSocketPath: "/tmp/x")) == nil)
    }

    @Test func ufragKeyComparesExactBytes() throws {
        #expect(ICEUfragKey("abcd") == ICEUfragKey("abcd"))
        #expect(ICEUfragKey("abcd") != ICEUfragKey("abce"))
        #expect(ICEUfragKey("abcd") != ICEUfragKey("abcdA"))
        #expect(ICEUfragKey(String(repeating: "x", count: 32)) != nil)
        #expect(ICEUfragKey(String(repeating: "x", count: 33)) == nil)
        #expect(ICEUfragKey("") == nil)
        #expect(ICEUfragKey(nodeCredentials.ufrag) == nodeCredentials.ufragKey)
    }
}
