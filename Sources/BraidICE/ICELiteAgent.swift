import BraidWire
import NIOCore

/// The ICE-lite agent of one WebRTC session on the node: it answers the peer's connectivity checks,
/// follows its nominations and tracks consent. It sends no checks, opens no socket and reads no clock.
///
/// The node is always the lite, controlled agent with host candidates only
/// ([RFC 8445 §2.5](https://www.rfc-editor.org/rfc/rfc8445#section-2.5), §6.1.1); the browser is the
/// full, controlling agent. Per check ([RFC 8445 §7.3](https://www.rfc-editor.org/rfc/rfc8445#section-7.3),
/// [RFC 8489 §6.3](https://www.rfc-editor.org/rfc/rfc8489#section-6.3)), in this order:
///
/// 1. Only a Binding request is handled; anything else is dropped (``DropReason``).
/// 2. FINGERPRINT must be present and right, else the request is **dropped silently**: ICE checks use the
///    FINGERPRINT mechanism (RFC 8445 §7) to tell STUN from media on a shared port, and RFC 8489 §7.3
///    discards a message that fails it. (mediasoup answers a missing one with 400; silence tells a prober
///    nothing and costs nothing.)
/// 3. USERNAME and MESSAGE-INTEGRITY ([RFC 8489 §9.1.3](https://www.rfc-editor.org/rfc/rfc8489#section-9.1.3)):
///    either missing → **400**; USERNAME other than `<local ufrag>:<remote ufrag>` (the receiver's ufrag
///    first, RFC 8445 §7.2.2) → **401**; HMAC-SHA1 under our password wrong → **401**. These carry no
///    MESSAGE-INTEGRITY (§6.3.4).
/// 4. A comprehension-required attribute we do not know → **420** with UNKNOWN-ATTRIBUTES.
/// 5. ICE-CONTROLLED (the peer also believes it is controlled) → **487 Role Conflict** (RFC 8445
///    §7.3.1.1; a lite agent never takes the controlling role, so it always answers 487).
/// 6. PRIORITY missing or malformed → **400** (RFC 8445 §7.1.1 makes it mandatory).
/// 7. Otherwise a Binding success response with XOR-MAPPED-ADDRESS = the source, MESSAGE-INTEGRITY
///    under our password and FINGERPRINT; the pair of that remote address is created or refreshed and,
///    on USE-CANDIDATE, nominated (a later nomination re-selects, RFC 8445 §8.1.1).
///
/// Errors after authentication (420, 487, 400 for PRIORITY) carry MESSAGE-INTEGRITY.
///
/// **Consent** ([RFC 7675](https://www.rfc-editor.org/rfc/rfc7675)): every answered check refreshes
/// the consent of its pair. ``state(now:)`` becomes ``State/disconnected`` when the selected pair has had
/// no valid check for ``Timeouts/disconnected`` (10 s by default: browsers check every 2.5–6 s, so that is
/// two or more missed checks) and ``State/failed`` when no pair has had one for ``Timeouts/expiry``
/// (30 s, RFC 7675 §5.1 and mediasoup's default). Failure is final: the owner closes the session.
///
/// **Restart** (RFC 8445 §9, RFC 9725 "ICE Restarts"): ``restart(newLocal:newRemote:)`` installs new
/// credentials; checks with the old ones are still answered until the first check with the new ones.
///
/// The agent lives on one event loop and is not `Sendable`. After construction, answering a check
/// allocates nothing on the heap (the pair list has a fixed capacity).
public final class ICELiteAgent {
    /// Consent timing.
    public struct Timeouts: Hashable, Sendable {
        /// No valid check on the selected pair for this long: ``State/disconnected``.
        public var disconnected: Duration
        /// No valid check on any pair for this long (or none at all since creation): ``State/failed``.
        public var expiry: Duration

        /// - Throws: `.badConfiguration` unless 0 < disconnected < expiry.
        public init(disconnected: Duration = .seconds(10), expiry: Duration = .seconds(30)) throws(ICEError) {
            guard disconnected > .zero, expiry > disconnected else {
                throw ICEError(.badConfiguration, "need 0 < disconnected (\(disconnected)) < expiry (\(expiry))")
            }
            self.disconnected = disconnected
            self.expiry = expiry
        }

        /// 10 s to disconnected, 30 s to failed.
        public static let `default` = try! Timeouts()
    }

    /// The connection state of the session, as seen from incoming checks.
    public enum State: Hashable, Sendable {
        /// No valid check yet.
        case new
        /// Valid checks arrive, nothing nominated yet (DTLS may already run on ``ICELiteAgent/selectedAddress``).
        case checking
        /// A pair is nominated and its consent is fresh: send media to this address.
        case connected(STUNAddress)
        /// The selected pair (or, before nomination, every pair) has had no valid check for
        /// ``Timeouts/disconnected``; the peer may still come back.
        case disconnected
        /// No valid check for ``Timeouts/expiry``: consent is lost (RFC 7675 §5.1). Close the session and
        /// free its resources; the agent drops every later request.
        case failed
    }

    /// One candidate pair, known by the remote address that sent a valid check (our side is the one
    /// shared host candidate).
    public struct Pair: Hashable, Sendable {
        /// The peer's transport address.
        public let address: STUNAddress
        /// PRIORITY of the last valid check (the peer-reflexive priority the peer would use, §7.1.1).
        public internal(set) var priority: UInt32
        /// When the last valid check arrived: the consent clock of this pair.
        public internal(set) var lastValidCheck: ContinuousClock.Instant
        /// Whether the peer has nominated this pair.
        public internal(set) var nominated: Bool
    }

    /// Why a datagram got no answer; count these.
    public enum DropReason: Hashable, Sendable {
        /// A STUN message other than a Binding request (a response, or another method).
        case notBindingRequest
        /// A Binding indication: a keepalive (RFC 8445 §11), which needs no answer and grants no consent.
        case indication
        /// No FINGERPRINT attribute.
        case missingFingerprint
        /// FINGERPRINT does not match the message.
        case badFingerprint
        /// The session's consent has expired (``State/failed``).
        case sessionExpired
        /// No session owns the USERNAME's local ufrag (reported by ``ICESessionTable``).
        case unknownUsername
        /// The datagram is not a well-formed STUN message (reported by ``ICESessionTable``).
        case malformed
        /// The source is not an IPv4 or IPv6 address.
        case unsupportedAddress
        /// The response could not be written (cannot happen with a growable buffer; kept typed).
        case responseNotWritten
    }

    /// What a valid check did.
    public struct Check: Hashable, Sendable {
        /// The peer's address, also the response's XOR-MAPPED-ADDRESS.
        public let address: STUNAddress
        /// True when this address was not a pair before.
        public let isNewPair: Bool
        /// True when the check carried USE-CANDIDATE: this pair is now selected.
        public let nominated: Bool
        /// A pair removed to make room (the list is bounded by ``ICELiteAgent/maxPairs``).
        public let evicted: STUNAddress?
        /// True when this check was the first with the credentials of a restart, which retired the old ones.
        public let completedRestart: Bool
    }

    /// The answer written into the response buffer.
    public enum Response: Hashable, Sendable {
        /// A Binding success response to a valid check.
        case success(Check)
        /// A Binding error response with this code.
        case error(STUNErrorCode)
    }

    /// The result of ``handleBindingRequest(message:from:now:responseInto:)``.
    public enum Outcome: Hashable, Sendable {
        /// A response was written at the buffer's writer index: send it to the request's source.
        case respond(Response)
        /// Nothing was written; count the reason.
        case drop(DropReason)
    }

    /// Most pairs kept per session (as mediasoup): a new address beyond this evicts the stalest
    /// unselected pair.
    public static let maxPairs = 8

    /// Our credentials, the ones in our latest SDP.
    public private(set) var local: ICECredentials
    /// The peer's credentials from its latest SDP.
    public private(set) var remote: ICECredentials
    /// Credentials before a restart, still accepted until a check uses the new ones.
    public private(set) var previous: (local: ICECredentials, remote: ICECredentials)?
    /// Consent timing.
    public let timeouts: Timeouts

    /// The known pairs, oldest first, at most ``maxPairs``.
    public private(set) var pairs: [Pair]
    /// The nominated remote address, if any.
    public private(set) var nominatedAddress: STUNAddress?
    /// The remote address of the latest valid check.
    public private(set) var latestValidatedAddress: STUNAddress?
    private let createdAt: ContinuousClock.Instant
    private var lastValidCheck: ContinuousClock.Instant?
    private var expired = false

    /// An agent for a session created at `now`.
    ///
    /// - Parameters:
    ///   - local: our credentials (``ICECredentials/random()``); their ufrag must fit an ``ICEUfragKey``.
    ///   - remote: the peer's `a=ice-ufrag`/`a=ice-pwd`.
    /// - Throws: `.badCredentials` when the local ufrag is longer than 32 bytes.
    public init(
        local: ICECredentials,
        remote: ICECredentials,
        timeouts: Timeouts = .default,
        now: ContinuousClock.Instant
    ) throws(ICEError) {
        guard local.ufragKey != nil else {
            throw ICEError(.badCredentials, "a local ufrag may have at most \(ICEUfragKey.maxByteCount) bytes")
        }
        self.local = local
        self.remote = remote
        self.timeouts = timeouts
        self.createdAt = now
        self.pairs = []
        self.pairs.reserveCapacity(Self.maxPairs)
    }

    // MARK: Queries

    /// Where to send media and DTLS: the nominated pair, or before any nomination the latest address
    /// that passed a check (WEBRTC-NOTES §2/§3: DTLS may start before USE-CANDIDATE).
    public var selectedAddress: STUNAddress? { self.nominatedAddress ?? self.latestValidatedAddress }

    /// Whether `address` passed a check and its consent has not expired: DTLS and SRTP from it may be
    /// accepted, and we may send to it (RFC 7675 §5.1).
    public func hasConsent(_ address: STUNAddress, now: ContinuousClock.Instant) -> Bool {
        guard !self.expired, let pair = self.pairs.first(where: { $0.address == address }) else { return false }
        return now - pair.lastValidCheck < self.timeouts.expiry
    }

    /// The state at `now`. Pure: asking changes nothing.
    public func state(now: ContinuousClock.Instant) -> State {
        guard !self.expired else { return .failed }
        guard let last = self.lastValidCheck else {
            return now - self.createdAt >= self.timeouts.expiry ? .failed : .new
        }
        if now - last >= self.timeouts.expiry { return .failed }
        if let nominated = self.nominatedAddress, let pair = self.pairs.first(where: { $0.address == nominated }) {
            return now - pair.lastValidCheck >= self.timeouts.disconnected ? .disconnected : .connected(nominated)
        }
        // Not nominated (or the nominated pair was evicted): judge by the latest check on any pair.
        return now - last >= self.timeouts.disconnected ? .disconnected : .checking
    }

    /// The next instant after `now` at which ``state(now:)`` changes if no check arrives, so that the
    /// owner can arm one timer; nil once the state is ``State/failed``.
    public func nextDeadline(after now: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard !self.expired else { return nil }
        guard let last = self.lastValidCheck else {
            let failure = self.createdAt + self.timeouts.expiry
            return failure > now ? failure : nil
        }
        let failure = last + self.timeouts.expiry
        guard failure > now else { return nil }
        var disconnection = last + self.timeouts.disconnected
        if let nominated = self.nominatedAddress, let pair = self.pairs.first(where: { $0.address == nominated }) {
            disconnection = pair.lastValidCheck + self.timeouts.disconnected
        }
        return disconnection > now ? disconnection : failure
    }

    // MARK: Control

    /// Starts an ICE restart with new credentials from a new offer/answer (RFC 8445 §9).
    ///
    /// The current credentials stay valid until the first check that uses the new ones; pairs and the
    /// nomination are kept, so media keeps flowing on the selected pair meanwhile. A second restart
    /// before that check retires the oldest credentials.
    ///
    /// - Note: when the agent is held by an ``ICESessionTable``, restart it through
    ///   ``ICESessionTable/restart(_:newLocal:newRemote:)`` so the table learns the new ufrag.
    /// - Throws: `.badCredentials` when the new local ufrag is longer than 32 bytes.
    public func restart(newLocal: ICECredentials, newRemote: ICECredentials) throws(ICEError) {
        guard newLocal.ufragKey != nil else {
            throw ICEError(.badCredentials, "a local ufrag may have at most \(ICEUfragKey.maxByteCount) bytes")
        }
        self.previous = (self.local, self.remote)
        self.local = newLocal
        self.remote = newRemote
    }

    /// Forgets the pair of `address` (e.g. the address now belongs to another session).
    public func removePair(_ address: STUNAddress) {
        self.pairs.removeAll { $0.address == address }
        if self.nominatedAddress == address { self.nominatedAddress = nil }
        if self.latestValidatedAddress == address {
            self.latestValidatedAddress = self.pairs.max { $0.lastValidCheck < $1.lastValidCheck }?.address
        }
    }

    /// Selects the pair that authenticated media (DTLS or SRTP that decrypted) arrived on, when it differs
    /// from the selected one; returns whether the selection changed.
    ///
    /// Browsers may move media to another validated pair before, or without, nominating it (Firefox
    /// nominates aggressively against lite agents, Chrome may nominate several pairs), so the node follows
    /// the authenticated media as mediasoup does (`WebRtcTransport::MayForceSelectedTuple`). Only a pair
    /// with unexpired consent can be selected; this does not refresh consent (only checks do, RFC 7675).
    @discardableResult
    public func followMedia(from address: STUNAddress, now: ContinuousClock.Instant) -> Bool {
        guard self.selectedAddress != address, self.hasConsent(address, now: now) else { return false }
        for index in self.pairs.indices { self.pairs[index].nominated = self.pairs[index].address == address }
        self.nominatedAddress = address
        return true
    }

    // MARK: Checks

    /// Handles a STUN message from `source`, writing any response at `response`'s writer index.
    ///
    /// See the type's documentation for the order of checks and the answer to each failure.
    public func handleBindingRequest(
        message: STUNMessage,
        from source: SocketAddress,
        now: ContinuousClock.Instant,
        responseInto response: inout ByteBuffer
    ) -> Outcome {
        guard let address = STUNAddress(transport: source) else { return .drop(.unsupportedAddress) }
        return self.handleBindingRequest(message: message, from: address, now: now, responseInto: &response)
    }

    /// ``handleBindingRequest(message:from:now:responseInto:)`` for a source already converted.
    public func handleBindingRequest(
        message: STUNMessage,
        from source: STUNAddress,
        now: ContinuousClock.Instant,
        responseInto response: inout ByteBuffer
    ) -> Outcome {
        guard message.method == .binding else { return .drop(.notBindingRequest) }
        switch message.messageClass {
        case .request: break
        case .indication: return .drop(.indication)
        case .successResponse, .errorResponse: return .drop(.notBindingRequest)
        }
        guard message.hasFingerprint else { return .drop(.missingFingerprint) }
        do throws(WireError) {
            try message.validateFingerprint()
        } catch {
            return .drop(.badFingerprint)
        }
        if self.state(now: now) == .failed {
            self.expired = true
            return .drop(.sessionExpired)
        }
        let id = message.transactionID

        // RFC 8489 §9.1.3: credentials.
        let username: STUNText?
        do throws(WireError) {
            username = try message.username()
        } catch {
            return Self.error(.badRequest, id: id, key: nil, into: &response)
        }
        guard let username, message.hasMessageIntegrity else {
            return Self.error(.badRequest, id: id, key: nil, into: &response)
        }
        let credentials: Credentials
        let key: STUNIntegrityKey
        if Self.username(username, is: self.local, self.remote) {
            credentials = .current
            key = self.local.integrityKey
        } else if let previous = self.previous, Self.username(username, is: previous.local, previous.remote) {
            credentials = .previous
            key = previous.local.integrityKey
        } else {
            return Self.error(.unauthenticated, id: id, key: nil, into: &response)
        }
        do throws(WireError) {
            try message.validateIntegrity(key: key)
        } catch {
            return Self.error(.unauthenticated, id: id, key: nil, into: &response)
        }

        // RFC 8489 §6.3.1.1: comprehension-required attributes we do not understand.
        if let unknown = message.firstUnknownComprehensionRequiredAttribute(isUnderstood: Self.understands) {
            return Self.error(.unknownAttribute, unknown: [unknown], id: id, key: key, into: &response)
        }

        // RFC 8445 §7.3.1.1: we are controlled; a controlled peer is a role conflict.
        guard message.contains(.iceControlled) == false else {
            return Self.error(.roleConflict, id: id, key: key, into: &response)
        }
        let priority: UInt32
        let useCandidate: Bool
        do throws(WireError) {
            guard let value = try message.priority() else {
                return Self.error(.badRequest, id: id, key: key, into: &response)
            }
            priority = value
            useCandidate = try message.useCandidate()
        } catch {
            return Self.error(.badRequest, id: id, key: key, into: &response)
        }

        do throws(WireError) {
            try STUNMessageBuilder.writeBindingSuccessResponse(
                transactionID: id,
                mappedAddress: source,
                key: key,
                into: &response
            )
        } catch {
            return .drop(.responseNotWritten)
        }

        // The check is valid: update pairs, nomination, consent and restart.
        let completedRestart = credentials == .current && self.previous != nil
        if completedRestart { self.previous = nil }
        let (isNew, evicted) = self.refreshPair(source, priority: priority, nominated: useCandidate, now: now)
        if useCandidate { self.nominatedAddress = source }
        self.latestValidatedAddress = source
        self.lastValidCheck = now
        return .respond(
            .success(
                Check(
                    address: source,
                    isNewPair: isNew,
                    nominated: useCandidate,
                    evicted: evicted,
                    completedRestart: completedRestart
                )
            )
        )
    }

    // MARK: Internals

    private enum Credentials { case current, previous }

    /// The attributes a Binding request may carry that we understand (RFC 8489 §18.3, RFC 8445 §16.1).
    private static func understands(_ type: STUNAttributeType) -> Bool {
        switch type {
        case .username, .messageIntegrity, .messageIntegritySHA256, .priority, .useCandidate, .fingerprint,
            .iceControlled, .iceControlling, .software, .xorMappedAddress, .mappedAddress:
            true
        default:
            false
        }
    }

    /// Whether USERNAME is exactly `<local ufrag>:<remote ufrag>`, compared in place.
    private static func username(_ text: STUNText, is local: ICECredentials, _ remote: ICECredentials) -> Bool {
        text.bytes.withUnsafeReadableBytes { bytes in
            // ufrags are ice-chars, which exclude ':', so the first colon splits the two.
            guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return false }
            return bytes[..<colon].elementsEqual(local.ufrag.utf8)
                && bytes[(colon + 1)...].elementsEqual(remote.ufrag.utf8)
        }
    }

    /// Creates or refreshes the pair of `address`; returns whether it is new and which pair, if any, was
    /// evicted to make room for it.
    private func refreshPair(
        _ address: STUNAddress,
        priority: UInt32,
        nominated: Bool,
        now: ContinuousClock.Instant
    ) -> (isNew: Bool, evicted: STUNAddress?) {
        if nominated {
            // One nominated pair at a time: a later nomination re-selects (RFC 8445 §8.1.1).
            for index in self.pairs.indices { self.pairs[index].nominated = false }
        }
        if let index = self.pairs.firstIndex(where: { $0.address == address }) {
            self.pairs[index].priority = priority
            self.pairs[index].lastValidCheck = now
            if nominated { self.pairs[index].nominated = true }
            return (false, nil)
        }
        var evicted: STUNAddress?
        if self.pairs.count >= Self.maxPairs {
            // Evict the stalest pair that is not the nominated one (there are at least 7 such).
            var victim: Int?
            for index in self.pairs.indices where self.pairs[index].address != self.nominatedAddress {
                if victim == nil || self.pairs[index].lastValidCheck < self.pairs[victim!].lastValidCheck {
                    victim = index
                }
            }
            if let victim {
                evicted = self.pairs.remove(at: victim).address
            }
        }
        self.pairs.append(Pair(address: address, priority: priority, lastValidCheck: now, nominated: nominated))
        return (true, evicted)
    }

    /// Writes an error response; on the (impossible) failure to write, drops.
    private static func error(
        _ code: STUNErrorCode,
        unknown: [STUNAttributeType] = [],
        id: STUNTransactionID,
        key: STUNIntegrityKey?,
        into response: inout ByteBuffer
    ) -> Outcome {
        do throws(WireError) {
            try STUNMessageBuilder.writeErrorResponse(
                transactionID: id,
                error: code,
                unknownAttributes: unknown,
                key: key,
                into: &response
            )
        } catch {
            return .drop(.responseNotWritten)
        }
        return .respond(.error(code))
    }
}
