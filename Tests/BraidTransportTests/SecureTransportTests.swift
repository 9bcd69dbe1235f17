import BraidICE
import BraidSecurity
import BraidWire
import NIOCore
import Testing

@testable import BraidTransport

/// A node-side transport (ICE-lite, DTLS server) and a client-side one (controlling ICE, DTLS client)
/// wired back to back in memory: what one hands its `send` closure is queued, and `pump()` delivers the
/// queue in order, demultiplexed as RFC 7983 says, until it is empty. No socket, no event loop.
final class BackToBack {
    static let nodeCredentials = try! ICECredentials(ufrag: "nodeufrag", password: "nodepassword0123456789abcd")
    static let clientCredentials = try! ICECredentials(ufrag: "clientufrag", password: "clientpassword0123456789ab")
    static let nodeAddress = try! SocketAddress(ipAddress: "127.0.0.1", port: 40000)
    static let clientAddress = try! SocketAddress(ipAddress: "127.0.0.1", port: 50000)
    static let nodeCertificate = try! DTLSCertificate(commonName: "node")
    static let clientCertificate = try! DTLSCertificate(commonName: "client")
    /// The node retransmits after 40 ms, so that a retransmission test waits that long, not a second. The
    /// client waits 2 s: its endpoint would otherwise handle its own expired timer as it reads the node's
    /// retransmission (OpenSSL does on every read) and resend its ClientHello too, which is not the case
    /// under test.
    static let nodeDTLSConfiguration = DTLSEndpoint.Configuration(
        initialRetransmitTimeout: .milliseconds(40), maximumRetransmitTimeout: .milliseconds(400))
    static let clientDTLSConfiguration = DTLSEndpoint.Configuration(initialRetransmitTimeout: .seconds(2))

    struct Datagram {
        var data: ByteBuffer
        var from: SocketAddress
        var to: SocketAddress
    }

    let clock = ContinuousClock()
    let agent: ICELiteAgent
    let node: SecureTransport
    let client: SecureTransport
    var queue: [Datagram] = []
    /// Drops queued datagrams for which this returns true (a lossy network).
    var drop: (Datagram, DatagramKind) -> Bool = { _, _ in false }
    /// Decrypted media, per side, as (isRTCP, plain bytes).
    var nodeReceived: [(Bool, [UInt8])] = []
    var clientReceived: [(Bool, [UInt8])] = []
    var nodeResults: [SecureTransport.UnprotectResult] = []
    var clientResults: [SecureTransport.UnprotectResult] = []
    var nodeDTLS: [SecureTransport.DTLSReceipt] = []
    var nodeScratch = ByteBufferAllocator().buffer(capacity: 2048)
    var clientScratch = ByteBufferAllocator().buffer(capacity: 2048)
    /// The client's ICE clock (NIO deadlines: its timers run on an event loop).
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)

    init() throws {
        self.agent = try ICELiteAgent(local: Self.nodeCredentials, remote: Self.clientCredentials, now: self.clock.now)
        let serverDTLS = try DTLSEndpoint(
            role: .server, certificate: Self.nodeCertificate, remoteFingerprint: Self.clientCertificate.fingerprint,
            configuration: Self.nodeDTLSConfiguration)
        self.node = SecureTransport(ice: .lite(self.agent), dtls: serverDTLS)
        let checker = ICEConnectivityChecker(
            local: Self.clientCredentials, remoteUfrag: Self.nodeCredentials.ufrag,
            remotePassword: Self.nodeCredentials.password, candidates: [Self.nodeAddress])
        let clientDTLS = try DTLSEndpoint(
            role: .client, certificate: Self.clientCertificate, remoteFingerprint: Self.nodeCertificate.fingerprint,
            configuration: Self.clientDTLSConfiguration)
        self.client = SecureTransport(ice: .controlling(checker), dtls: clientDTLS)
    }

    /// The `send` closure of the node's calls.
    func fromNode(_ data: ByteBuffer, _ to: SocketAddress) {
        self.queue.append(Datagram(data: data, from: Self.nodeAddress, to: to))
    }

    /// The `send` closure of the client's calls.
    func fromClient(_ data: ByteBuffer, _ to: SocketAddress) {
        self.queue.append(Datagram(data: data, from: Self.clientAddress, to: to))
    }

    /// Delivers queued datagrams until none is left.
    func pump() throws {
        var rounds = 0
        while !self.queue.isEmpty {
            rounds += 1
            guard rounds < 1000 else { throw TestFailure("the transports keep talking") }
            let datagram = self.queue.removeFirst()
            let kind = DatagramKind(classifying: datagram.data.readableBytesView)
            if self.drop(datagram, kind) { continue }
            if datagram.to == Self.nodeAddress {
                self.deliverToNode(datagram.data, kind: kind, from: datagram.from)
            } else {
                self.deliverToClient(datagram.data, kind: kind, from: datagram.from)
            }
        }
    }

    /// What the node's media socket does with a datagram: STUN through the agent (the node's session table
    /// would route it there), the rest through the transport.
    func deliverToNode(_ data: ByteBuffer, kind: DatagramKind, from source: SocketAddress) {
        switch kind {
        case .stun:
            guard let message = try? STUNMessage(parsing: data) else { return }
            var response = ByteBuffer()
            let outcome = self.agent.handleBindingRequest(
                message: message, from: source, now: self.clock.now, responseInto: &response)
            self.node.checkAnswered(outcome, from: source)
            if case .respond = outcome { self.fromNode(response, source) }
        case .dtls:
            self.nodeDTLS.append(self.node.receiveDTLS(data, from: source, now: self.clock.now, send: self.fromNode))
        case .rtp, .rtcp:
            let result = self.node.unprotect(
                data, isRTCP: kind == .rtcp, from: source, now: self.clock.now, into: &self.nodeScratch)
            self.nodeResults.append(result)
            if result == .unprotected {
                self.nodeReceived.append((kind == .rtcp, Array(self.nodeScratch.readableBytesView)))
            }
        default:
            break
        }
    }

    func deliverToClient(_ data: ByteBuffer, kind: DatagramKind, from source: SocketAddress) {
        switch kind {
        case .stun:
            self.now = self.now + .milliseconds(1)
            _ = self.client.receiveSTUN(data, from: source, now: self.now, send: self.fromClient)
        case .dtls:
            _ = self.client.receiveDTLS(data, from: source, now: self.clock.now, send: self.fromClient)
        case .rtp, .rtcp:
            let result = self.client.unprotect(
                data, isRTCP: kind == .rtcp, from: source, now: self.clock.now, into: &self.clientScratch)
            self.clientResults.append(result)
            if result == .unprotected {
                self.clientReceived.append((kind == .rtcp, Array(self.clientScratch.readableBytesView)))
            }
        default:
            break
        }
    }

    /// ICE checks and nomination, then the DTLS handshake, all delivered.
    func connect() throws {
        self.client.startICE(now: self.now, send: self.fromClient)
        try self.pump()
    }

    /// A plain RTP packet: version 2, payload type 96, `sequence`, SSRC 0x1234_5678, a 20-byte payload.
    static func rtp(sequence: UInt16) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeBytes([0x80, 96])
        buffer.writeInteger(sequence)
        buffer.writeInteger(UInt32(sequence) &* 960)
        buffer.writeInteger(UInt32(0x1234_5678))
        buffer.writeBytes((0..<20).map { UInt8(truncatingIfNeeded: Int(sequence) &+ $0) })
        return buffer
    }

    /// A plain RTCP receiver report without report blocks from SSRC `ssrc`.
    static func rtcp(ssrc: UInt32) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeBytes([0x80, 201, 0, 1])
        buffer.writeInteger(ssrc)
        return buffer
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@Suite("SecureTransport: node-side (lite, DTLS server) and client-side (controlling, DTLS client) back to back")
struct SecureTransportTests {
    @Test("ICE check and nomination, DTLS handshake, SRTP and SRTCP both ways")
    func connectsAndCarriesMediaBothWays() throws {
        let wire = try BackToBack()
        try wire.connect()
        #expect(wire.client.checker?.state == .connected(BackToBack.nodeAddress))
        #expect(wire.agent.nominatedAddress == STUNAddress(transport: BackToBack.clientAddress))
        #expect(wire.node.dtlsState == .connected && wire.client.dtlsState == .connected)
        #expect(wire.node.isKeyed && wire.client.isKeyed)
        #expect(wire.node.srtpProfile == .aeadAES128GCM && wire.client.srtpProfile == .aeadAES128GCM)
        #expect(wire.node.destination == BackToBack.clientAddress)
        #expect(wire.client.destination == BackToBack.nodeAddress)
        #expect(wire.node.retransmitDelay == nil && wire.client.retransmitDelay == nil)
        #expect(wire.nodeDTLS.allSatisfy { if case .accepted = $0 { true } else { false } })

        // Client → node: RTP, protected into the client's own buffer (as BraidClient sends).
        var outgoing = ByteBuffer()
        for sequence in UInt16(1)...3 {
            outgoing.clear()
            let packet = BackToBack.rtp(sequence: sequence)
            let sent = wire.client.protect(packet, isRTCP: false, appendingTo: &outgoing)
            let destination = try #require(sent)
            #expect(outgoing.readableBytes > packet.readableBytes)  // encrypted, with its tag
            wire.fromClient(outgoing, destination)
        }
        // Node → client: RTP and RTCP, each protected into a fresh buffer (as the node forwards).
        let down = BackToBack.rtp(sequence: 100)
        let (protected, destination) = try #require(wire.node.protect(down, isRTCP: false))
        wire.fromNode(protected, destination)
        let report = BackToBack.rtcp(ssrc: 7)
        let (protectedReport, reportDestination) = try #require(wire.node.protect(report, isRTCP: true))
        wire.fromNode(protectedReport, reportDestination)
        #expect(Array(down.readableBytesView) == Array(BackToBack.rtp(sequence: 100).readableBytesView))  // untouched
        try wire.pump()

        let expected = (UInt16(1)...3).map { Array(BackToBack.rtp(sequence: $0).readableBytesView) }
        #expect(wire.nodeReceived.map(\.1) == expected)
        #expect(wire.clientReceived.count == 2)
        #expect(wire.clientReceived.first?.1 == Array(down.readableBytesView))
        #expect(wire.clientReceived.last?.0 == true)
        #expect(wire.clientReceived.last?.1 == Array(report.readableBytesView))
        #expect(wire.node.counters.rtpPacketsReceived == 3 && wire.node.counters.unprotectFailures == 0)
        #expect(wire.node.counters.rtpPacketsSent == 1 && wire.node.counters.rtcpPacketsSent == 1)
        #expect(wire.node.counters.rtpBytesSent == UInt64(protected.readableBytes))
        #expect(wire.client.counters.rtpPacketsSent == 3)
        #expect(wire.client.counters.rtpPacketsReceived == 1 && wire.client.counters.rtcpPacketsReceived == 1)
        #expect(wire.client.counters.unprotectFailures == 0)

        // A replay is refused and counted as a duplicate, not as a failure.
        wire.fromClient(outgoing, BackToBack.nodeAddress)
        try wire.pump()
        #expect(wire.nodeResults.last == .failed)
        #expect(wire.node.counters.duplicatesDropped == 1)
        #expect(wire.node.counters.unprotectFailures == 0)
    }

    @Test("A dropped DTLS flight is retransmitted when the transport's timer says so")
    func retransmitsADroppedFlight() async throws {
        let wire = try BackToBack()
        // The node's first flight (ServerHello … ServerHelloDone) is lost once.
        var droppedNodeFlight = 0
        wire.drop = { datagram, kind in
            guard kind == .dtls, datagram.from == BackToBack.nodeAddress, droppedNodeFlight == 0 else { return false }
            droppedNodeFlight += 1
            return true
        }
        try wire.connect()
        #expect(droppedNodeFlight == 1)
        #expect(wire.node.dtlsState == .handshaking && !wire.node.isKeyed)
        let delay = try #require(wire.node.retransmitDelay)
        #expect(delay <= .milliseconds(40))
        // Early: nothing is due yet, nothing is sent.
        #expect(wire.node.handleRetransmitTimeout(send: wire.fromNode) == .unchanged)
        #expect(wire.queue.isEmpty)
        try await Task.sleep(for: .nanoseconds(delay.nanoseconds) + .milliseconds(5))
        #expect(wire.node.handleRetransmitTimeout(send: wire.fromNode) == .unchanged)
        #expect(!wire.queue.isEmpty)
        #expect(wire.queue.allSatisfy { $0.to == BackToBack.clientAddress })
        try wire.pump()
        #expect(wire.node.isKeyed && wire.client.isKeyed)
        #expect(wire.node.retransmitDelay == nil)
    }

    @Test("After connection a forged DTLS record is dropped, garbage is rejected, and media keeps flowing")
    func forgedRecordAfterConnectionIsIgnored() throws {
        let wire = try BackToBack()
        try wire.connect()
        #expect(wire.node.isKeyed)
        // Well-framed records with random bodies from the peer's (spoofable) address: an application_data
        // record of the encrypted epoch fails its integrity check, a plaintext-epoch handshake record is out
        // of place. The endpoint drops both; the association and its keys stay (RFC 6347 §4.1.2.7).
        var forged = ByteBuffer()
        forged.writeBytes([23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0, 48])
        forged.writeBytes((0..<48).map { _ in UInt8.random(in: 0...255) })
        var forgedHandshake = ByteBuffer()
        forgedHandshake.writeBytes([22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0x70, 0, 40])
        forgedHandshake.writeBytes((0..<40).map { _ in UInt8.random(in: 0...255) })
        for record in [forged, forgedHandshake] {
            let receipt = wire.node.receiveDTLS(
                record, from: BackToBack.clientAddress, now: wire.clock.now, send: wire.fromNode)
            #expect(receipt == .accepted(.unchanged))
        }
        #expect(wire.node.dtlsState == .connected && wire.node.isKeyed)
        #expect(wire.node.counters.dtlsErrors == 0)
        let rejectedRecords = wire.node.rejectedDTLSRecords
        // Not DTLS records at all: rejected and counted, the association stays.
        var garbage = ByteBuffer()
        garbage.writeBytes([22, 0xFE, 0xFD, 1, 2, 3])
        #expect(
            wire.node.receiveDTLS(garbage, from: BackToBack.clientAddress, now: wire.clock.now, send: wire.fromNode)
                == .rejected(.unchanged))
        #expect(wire.node.counters.dtlsErrors == 1)
        // From an address without consent: not admitted, not counted, nothing fed.
        let stranger = try SocketAddress(ipAddress: "127.0.0.9", port: 9)
        #expect(wire.node.receiveDTLS(forged, from: stranger, now: wire.clock.now, send: wire.fromNode) == .notAdmitted)
        #expect(wire.node.rejectedDTLSRecords == rejectedRecords && wire.node.counters.dtlsErrors == 1)
        // The client takes DTLS from the selected pair only.
        #expect(
            wire.client.receiveDTLS(forged, from: stranger, now: wire.clock.now, send: wire.fromClient)
                == .notAdmitted)
        #expect(wire.client.counters.strayDTLS == 1)
        #expect(wire.node.dtlsState == .connected && wire.node.isKeyed)
        #expect(wire.client.dtlsState == .connected && wire.client.isKeyed)

        var outgoing = ByteBuffer()
        let sent = wire.client.protect(BackToBack.rtp(sequence: 9), isRTCP: false, appendingTo: &outgoing)
        let destination = try #require(sent)
        wire.fromClient(outgoing, destination)
        try wire.pump()
        #expect(wire.nodeReceived.count == 1)
    }

    @Test("Media before the keys counts as an unprotect failure; nothing can be sent without keys")
    func mediaBeforeKeysIsCounted() throws {
        let wire = try BackToBack()
        // ICE completes, but every DTLS datagram is lost: no keys on either side.
        wire.drop = { _, kind in kind == .dtls }
        try wire.connect()
        #expect(wire.agent.hasConsent(STUNAddress(transport: BackToBack.clientAddress)!, now: wire.clock.now))
        #expect(!wire.node.isKeyed && !wire.client.isKeyed)
        let fake = BackToBack.rtp(sequence: 1)
        wire.deliverToNode(fake, kind: .rtp, from: BackToBack.clientAddress)
        wire.deliverToNode(BackToBack.rtcp(ssrc: 1), kind: .rtcp, from: BackToBack.clientAddress)
        #expect(wire.nodeResults == [.failed, .failed])
        #expect(wire.node.counters.unprotectFailures == 2)
        // From an address that never passed a check: the node's owner looks elsewhere; not counted here.
        let stranger = try SocketAddress(ipAddress: "127.0.0.9", port: 9)
        wire.deliverToNode(fake, kind: .rtp, from: stranger)
        #expect(wire.nodeResults.last == .notAdmitted)
        #expect(wire.node.counters.unprotectFailures == 2)
        // The client counts media before keys, and media from elsewhere than the selected pair.
        wire.deliverToClient(fake, kind: .rtp, from: BackToBack.nodeAddress)
        wire.deliverToClient(fake, kind: .rtp, from: stranger)
        #expect(wire.clientResults == [.failed, .notAdmitted])
        #expect(wire.client.counters.unprotectFailures == 2)
        // Sending without keys is refused and counted.
        #expect(wire.node.protect(fake, isRTCP: false) == nil)
        var outgoing = ByteBuffer()
        let refused = wire.client.protect(fake, isRTCP: false, appendingTo: &outgoing)
        #expect(refused == nil)
        #expect(wire.node.counters.sendDrops == 1 && wire.client.counters.sendDrops == 1)
        #expect(wire.nodeReceived.isEmpty && wire.clientReceived.isEmpty)
    }

    @Test("The node sends to the ICE-selected address and follows authenticated media to another consented one")
    func destinationFollowsTheSelectedAddress() throws {
        let wire = try BackToBack()
        try wire.connect()
        #expect(wire.node.destination == BackToBack.clientAddress)
        // The client's second address passes a check (not nominated): consent, but not selected.
        let moved = try SocketAddress(ipAddress: "127.0.0.1", port: 50001)
        var check = ByteBuffer()
        try ICEConnectivityChecker.writeBindingRequest(
            transactionID: .random(), username: "nodeufrag:clientufrag", priority: 1, tieBreaker: 1,
            useCandidate: false, key: BackToBack.nodeCredentials.integrityKey, into: &check)
        wire.deliverToNode(check, kind: .stun, from: moved)
        #expect(wire.node.destination == BackToBack.clientAddress)
        // Authenticated media from there moves the selection, and the node's media with it.
        var outgoing = ByteBuffer()
        let sent = wire.client.protect(BackToBack.rtp(sequence: 1), isRTCP: false, appendingTo: &outgoing)
        #expect(sent == BackToBack.nodeAddress)
        wire.deliverToNode(outgoing, kind: .rtp, from: moved)
        #expect(wire.nodeResults.last == .unprotected)
        #expect(wire.agent.selectedAddress == STUNAddress(transport: moved))
        #expect(wire.node.destination == moved)
        #expect(wire.node.protect(BackToBack.rtp(sequence: 2), isRTCP: false)?.destination == moved)
        // A datagram longer than the scratch buffer is refused rather than grow it.
        var huge = ByteBuffer()
        huge.writeBytes([UInt8](repeating: 0x80, count: wire.nodeScratch.capacity + 1))
        wire.deliverToNode(huge, kind: .rtp, from: moved)
        #expect(wire.nodeResults.last == .failed)
    }

    @Test("Consent lost on the client discards its keys for good: nothing more is sent")
    func consentLossStopsSending() throws {
        let wire = try BackToBack()
        try wire.connect()
        #expect(wire.client.isKeyed)
        // The node goes silent: no consent answer for 30 s.
        var sent = 0
        while case .connected = wire.client.checker?.state, let deadline = wire.client.iceDeadline {
            wire.client.handleICETimer(now: deadline) { _, _ in sent += 1 }
        }
        guard case .failed = wire.client.checker?.state else {
            Issue.record("expected consent failure, got \(String(describing: wire.client.checker?.state))")
            return
        }
        #expect(sent > 0)
        #expect(!wire.client.isKeyed && wire.client.dtlsState == .connected)
        var outgoing = ByteBuffer()
        let refused = wire.client.protect(BackToBack.rtp(sequence: 1), isRTCP: false, appendingTo: &outgoing)
        #expect(refused == nil)
        // A later DTLS event does not derive them again.
        #expect(wire.client.handleRetransmitTimeout(send: wire.fromClient) == .unchanged)
        #expect(!wire.client.isKeyed)
    }

    @Test("close_notify goes to the peer, which sees the association closed")
    func closeNotify() throws {
        let wire = try BackToBack()
        try wire.connect()
        wire.client.closeDTLS(send: wire.fromClient)
        #expect(wire.client.dtlsState == .closed)
        #expect(wire.queue.count == 1)
        try wire.pump()
        #expect(wire.node.dtlsState == .closed)
        #expect(wire.node.isKeyed)  // keys stay until the owner discards them
        wire.node.discardKeys()
        #expect(!wire.node.isKeyed && wire.node.protect(BackToBack.rtp(sequence: 1), isRTCP: false) == nil)
    }

    @Test("A compact client still sends media, its close_notify closes the node's side, and the node's closes it")
    func compactClient() throws {
        let wire = try BackToBack()
        #expect(!wire.client.compactDTLS())  // no keys yet
        try wire.connect()
        #expect(!wire.node.compactDTLS())  // the lite side is the DTLS server
        #expect(wire.client.compactDTLS())
        #expect(wire.client.isKeyed && wire.client.dtlsState == .connected)
        #expect(wire.client.protect(BackToBack.rtp(sequence: 1), isRTCP: false) != nil)
        wire.client.closeDTLS(send: wire.fromClient)
        #expect(wire.client.dtlsState == .closed)
        try wire.pump()
        #expect(wire.node.dtlsState == .closed)

        let second = try BackToBack()
        try second.connect()
        #expect(second.client.compactDTLS())
        second.node.closeDTLS(send: second.fromNode)
        try second.pump()
        #expect(second.client.dtlsState == .closed)
    }
}
