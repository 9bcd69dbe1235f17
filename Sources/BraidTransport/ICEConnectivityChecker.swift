public import BraidICE
import BraidWire
public import NIOCore

/// The controlling side of ICE for host candidates: connectivity checks, nomination and consent
/// ([RFC 8445](https://www.rfc-editor.org/rfc/rfc8445), [RFC 7675](https://www.rfc-editor.org/rfc/rfc7675)).
///
/// Pure state machine: it opens no socket and reads no clock. The owner passes `now`, sends what it is
/// handed and calls ``handleTimer(now:send:)`` at ``nextDeadline``.
///
/// - **Checks** (RFC 8445 §7.2.4): a Binding request to each remote candidate with
///   `USERNAME = <remote ufrag>:<local ufrag>`, PRIORITY (our candidate's priority as if peer-reflexive,
///   §7.1.1), ICE-CONTROLLING with our tie-breaker, MESSAGE-INTEGRITY under the remote password, and
///   FINGERPRINT. Unanswered requests are retransmitted with a doubling timeout
///   ([RFC 8489 §6.2.1](https://www.rfc-editor.org/rfc/rfc8489#section-6.2.1)).
/// - **Nomination** (§8.1.1, regular): once a check succeeds, the pair is nominated with a second
///   request carrying USE-CANDIDATE; its success selects the pair.
/// - **Consent** (RFC 7675 §5.1): on the selected pair, a request every 5 s × [0.8, 1.2]; consent is
///   lost 30 s after the last authenticated response.
///
/// A response counts only if its transaction ID is outstanding, it comes from the address the request
/// went to (§7.2.5.2.1) and its MESSAGE-INTEGRITY verifies under the remote password.
///
/// BraidClient runs it through a ``SecureTransport`` (``SecureTransport/ICERole/controlling(_:)``); a mesh
/// link that dials another node will too.
public struct ICEConnectivityChecker {
    /// Where connectivity stands.
    public enum State: Equatable, Sendable {
        /// Checks are in flight; nothing is nominated yet.
        case checking
        /// A nominated pair succeeded: send everything to this address.
        case connected(SocketAddress)
        /// No check was answered in time, or consent expired; the reason, for people.
        case failed(String)
    }

    struct Transaction {
        var id: STUNTransactionID
        var destination: SocketAddress
        var nominating: Bool
        var sentAt: NIODeadline
        var timeout: TimeAmount
        var attempts: Int
    }

    /// Our credentials (the ones in our offer).
    public let local: ICECredentials
    /// The peer's `a=ice-ufrag`.
    public let remoteUfrag: String
    let remoteKey: STUNIntegrityKey
    /// The peer's host candidates, checked in this order.
    public let candidates: [SocketAddress]
    /// ICE-CONTROLLING tie-breaker (RFC 8445 §7.1.1), random per checker.
    public let tieBreaker: UInt64
    /// PRIORITY of our checks: a peer-reflexive candidate's priority (type preference 110, §5.1.2.2).
    public let priority: UInt32 = ICECandidate.priority(typePreference: 110, localPreference: 65_535, component: 1)
    let initialTimeout: TimeAmount
    let maximumTimeout: TimeAmount
    /// Give up on connectivity after this long without a nominated pair.
    let checkingTimeout: TimeAmount
    let consentInterval: TimeAmount
    let consentExpiry: TimeAmount

    /// The current state.
    public private(set) var state: State = .checking
    private(set) var transactions: [Transaction] = []
    private var startedAt: NIODeadline?
    private var lastConsent: NIODeadline?
    private var nextConsentAt: NIODeadline?
    private var random = SystemRandomNumberGenerator()
    /// Binding requests sent, retransmissions and consent checks included.
    public private(set) var requestsSent = 0
    /// Authenticated success responses received.
    public private(set) var responsesReceived = 0
    /// Responses dropped: unknown transaction, wrong source, bad integrity or fingerprint.
    public private(set) var responsesRejected = 0

    /// A checker for `candidates`, with RFC 8489 retransmission timing and RFC 7675 consent timing.
    public init(
        local: ICECredentials,
        remoteUfrag: String,
        remotePassword: String,
        candidates: [SocketAddress],
        initialTimeout: TimeAmount = .milliseconds(100),
        maximumTimeout: TimeAmount = .milliseconds(1600),
        checkingTimeout: TimeAmount = .seconds(10),
        consentInterval: TimeAmount = .seconds(5),
        consentExpiry: TimeAmount = .seconds(30)
    ) {
        self.local = local
        self.remoteUfrag = remoteUfrag
        self.remoteKey = STUNIntegrityKey(shortTermPassword: remotePassword)
        self.candidates = candidates
        var generator = SystemRandomNumberGenerator()
        self.tieBreaker = generator.next()
        self.initialTimeout = initialTimeout
        self.maximumTimeout = maximumTimeout
        self.checkingTimeout = checkingTimeout
        self.consentInterval = consentInterval
        self.consentExpiry = consentExpiry
    }

    /// Sends the first check to every candidate.
    public mutating func start(now: NIODeadline, send: (ByteBuffer, SocketAddress) -> Void) {
        guard self.startedAt == nil else { return }
        self.startedAt = now
        for candidate in self.candidates {
            self.sendRequest(to: candidate, nominating: false, now: now, send: send)
        }
    }

    /// When ``handleTimer(now:send:)`` should run next.
    public var nextDeadline: NIODeadline? {
        var deadline = self.transactions.map { $0.sentAt + $0.timeout }.min()
        if let consent = self.nextConsentAt { deadline = min(deadline ?? consent, consent) }
        if case .checking = self.state, let startedAt {
            deadline = min(deadline ?? startedAt + self.checkingTimeout, startedAt + self.checkingTimeout)
        }
        if let lastConsent, case .connected = self.state {
            deadline = min(deadline ?? lastConsent + self.consentExpiry, lastConsent + self.consentExpiry)
        }
        return deadline
    }

    /// Retransmits due requests, sends due consent checks and detects failure.
    public mutating func handleTimer(now: NIODeadline, send: (ByteBuffer, SocketAddress) -> Void) {
        if case .failed = self.state { return }
        if case .checking = self.state, let startedAt, now - startedAt >= self.checkingTimeout {
            self.state = .failed("no connectivity check answered within \(self.checkingTimeout)")
            self.transactions.removeAll()
            return
        }
        if case .connected = self.state, let lastConsent, now - lastConsent >= self.consentExpiry {
            self.state = .failed("consent expired: no answer for \(self.consentExpiry)")
            self.transactions.removeAll()
            self.nextConsentAt = nil
            return
        }
        var index = 0
        while index < self.transactions.count {
            var transaction = self.transactions[index]
            if now >= transaction.sentAt + transaction.timeout {
                if transaction.attempts >= 7 {
                    // RFC 8489 Rc = 7: this transaction failed; consent or the checking timeout decides.
                    self.transactions.remove(at: index)
                    continue
                }
                transaction.attempts += 1
                transaction.sentAt = now
                transaction.timeout = min(transaction.timeout * 2, self.maximumTimeout)
                self.transactions[index] = transaction
                self.write(transaction, send: send)
            }
            index += 1
        }
        if case .connected(let address) = self.state, let consentAt = self.nextConsentAt, now >= consentAt {
            self.sendRequest(to: address, nominating: false, now: now, send: send)
            self.scheduleConsent(now: now)
        }
    }

    /// Handles a STUN message from `source`: answers a peer's check, or matches a response.
    public mutating func handle(
        _ message: STUNMessage, from source: SocketAddress, now: NIODeadline, send: (ByteBuffer, SocketAddress) -> Void
    ) {
        switch message.messageClass {
        case .request:
            self.answer(message, from: source, send: send)
        case .successResponse:
            guard let index = self.transactions.firstIndex(where: { $0.id == message.transactionID }),
                self.transactions[index].destination == source,
                (try? message.validateIntegrity(key: self.remoteKey)) != nil,
                !message.hasFingerprint || (try? message.validateFingerprint()) != nil
            else {
                self.responsesRejected += 1
                return
            }
            let transaction = self.transactions.remove(at: index)
            self.responsesReceived += 1
            self.lastConsent = now
            switch self.state {
            case .checking:
                if transaction.nominating {
                    self.state = .connected(source)
                    // Stop checking the other candidates.
                    self.transactions.removeAll { !$0.nominating && $0.destination != source }
                    self.scheduleConsent(now: now)
                } else if !self.transactions.contains(where: { $0.nominating }) {
                    self.sendRequest(to: source, nominating: true, now: now, send: send)
                }
            case .connected, .failed:
                break
            }
        case .errorResponse:
            // 487 and friends: the lite peer never takes the controlling role, so there is nothing to
            // switch to; the transaction is done and the checking timeout decides.
            if let index = self.transactions.firstIndex(where: { $0.id == message.transactionID }) {
                self.transactions.remove(at: index)
            }
            self.responsesRejected += 1
        case .indication:
            break
        }
    }

    private mutating func scheduleConsent(now: NIODeadline) {
        // RFC 7675 §5.1: uniformly random in [0.8, 1.2] × the interval, so peers do not synchronise.
        let factor = Double.random(in: 0.8...1.2, using: &self.random)
        self.nextConsentAt = now + .nanoseconds(Int64(Double(self.consentInterval.nanoseconds) * factor))
    }

    private mutating func sendRequest(
        to destination: SocketAddress, nominating: Bool, now: NIODeadline, send: (ByteBuffer, SocketAddress) -> Void
    ) {
        let transaction = Transaction(
            id: .random(using: &self.random), destination: destination, nominating: nominating, sentAt: now,
            timeout: self.initialTimeout, attempts: 1)
        self.transactions.append(transaction)
        self.write(transaction, send: send)
    }

    private mutating func write(_ transaction: Transaction, send: (ByteBuffer, SocketAddress) -> Void) {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(160)
        do throws(WireError) {
            try Self.writeBindingRequest(
                transactionID: transaction.id, username: "\(self.remoteUfrag):\(self.local.ufrag)",
                priority: self.priority, tieBreaker: self.tieBreaker, useCandidate: transaction.nominating,
                key: self.remoteKey, into: &buffer)
        } catch {
            return  // credentials were validated at creation; an over-long ufrag cannot reach here
        }
        self.requestsSent += 1
        send(buffer, transaction.destination)
    }

    /// Answers a peer's check to us (a full, non-lite peer checks both ways; RFC 8445 §7.3).
    private func answer(_ message: STUNMessage, from source: SocketAddress, send: (ByteBuffer, SocketAddress) -> Void) {
        guard (try? message.validateFingerprint()) != nil,
            (try? message.validateIntegrity(key: self.local.integrityKey)) != nil,
            let username = try? message.username(), username.string.hasPrefix(self.local.ufrag + ":"),
            let mapped = STUNAddress(transport: source)
        else { return }
        var buffer = ByteBuffer()
        guard
            (try? STUNMessageBuilder.writeBindingSuccessResponse(
                transactionID: message.transactionID, mappedAddress: mapped, key: self.local.integrityKey,
                into: &buffer)) != nil
        else { return }
        send(buffer, source)
    }

    /// Writes a connectivity check ([RFC 8445 §7.2.2](https://www.rfc-editor.org/rfc/rfc8445#section-7.2.2)):
    ///
    /// ```
    ///  0                   1                   2                   3
    ///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |0 0|  Binding request (0x0001)  |        Message Length         |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |                  Magic Cookie (0x2112A442)                    |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |                Transaction ID (96 bits)                       |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// USERNAME  "remoteUfrag:localUfrag"
    /// PRIORITY  (32 bits)
    /// ICE-CONTROLLING (64-bit tie-breaker)
    /// USE-CANDIDATE (empty, nominating checks only)
    /// MESSAGE-INTEGRITY (HMAC-SHA1 under the remote password)
    /// FINGERPRINT (CRC-32 XOR 0x5354554E)
    /// ```
    static func writeBindingRequest(
        transactionID: STUNTransactionID,
        username: String,
        priority: UInt32,
        tieBreaker: UInt64,
        useCandidate: Bool,
        key: STUNIntegrityKey,
        into buffer: inout ByteBuffer
    ) throws(WireError) {
        var builder = STUNMessageBuilder(type: .bindingRequest, transactionID: transactionID, into: &buffer)
        try builder.appendUsername(username, to: &buffer)
        try builder.appendPriority(priority, to: &buffer)
        try builder.appendICEControlling(tieBreaker: tieBreaker, to: &buffer)
        if useCandidate { try builder.appendUseCandidate(to: &buffer) }
        try builder.appendMessageIntegrity(key: key, to: &buffer)
        try builder.appendFingerprint(to: &buffer)
    }
}
