import BraidWire
import NIOCore

/// The ICE sessions behind one shared UDP port: finds the session a datagram belongs to and keeps the
/// address index in step with each session's candidate pairs.
///
/// A datagram is matched by its remote address first (DTLS, SRTP and checks from known pairs), then,
/// for a STUN request from a new address, by the USERNAME's first part, our local ufrag (RFC 8445
/// §7.2.2; mediasoup WebRtcServer does the same). A request whose USERNAME names another session than
/// the one its address is mapped to goes to the named session: the address has moved.
///
/// Lookups are dictionary lookups on plain-value keys (``STUNAddress``, ``ICEUfragKey``) built without
/// allocating. The table is bounded by ``capacity`` sessions, each with at most
/// ``ICELiteAgent/maxPairs`` addresses.
///
/// `Context` is whatever the owner keeps per session (typically its session object).
public struct ICESessionTable<Context> {
    /// A session's handle in the table.
    public struct SessionID: Hashable, Sendable, CustomStringConvertible {
        /// A number unique within the table's lifetime.
        public let rawValue: UInt64
        public var description: String { "ice-session-\(self.rawValue)" }
    }

    private struct Entry {
        let agent: ICELiteAgent
        var context: Context
        /// The local ufrags indexed for this session: the current one, and the previous one during a restart.
        var ufrags: [ICEUfragKey]
    }

    /// Most sessions the table holds.
    public let capacity: Int
    private var entries: [SessionID: Entry] = [:]
    private var byAddress: [STUNAddress: SessionID] = [:]
    private var byUfrag: [ICEUfragKey: SessionID] = [:]
    private var nextID: UInt64 = 1

    /// An empty table for at most `capacity` sessions.
    public init(capacity: Int) {
        self.capacity = max(0, capacity)
        self.entries.reserveCapacity(self.capacity)
        self.byUfrag.reserveCapacity(self.capacity)
    }

    /// Number of sessions.
    public var count: Int { self.entries.count }

    /// Number of remote addresses mapped to a session.
    public var addressCount: Int { self.byAddress.count }

    // MARK: Sessions

    /// Adds a session whose agent answers checks for its local ufrag.
    ///
    /// - Throws: `.tableFull` at ``capacity``, `.duplicateUfrag` when another session owns the ufrag (our
    ///   random 96-bit ufrags do not collide in practice; a collision must not misroute).
    public mutating func insert(_ agent: ICELiteAgent, context: Context) throws(ICEError) -> SessionID {
        guard self.entries.count < self.capacity else {
            throw ICEError(.tableFull, "the table holds its maximum of \(self.capacity) sessions")
        }
        let ufrags = Self.ufrags(of: agent)
        for ufrag in ufrags where self.byUfrag[ufrag] != nil {
            throw ICEError(.duplicateUfrag, "another session uses ufrag \(agent.local.ufrag)")
        }
        let id = SessionID(rawValue: self.nextID)
        self.nextID += 1
        self.entries[id] = Entry(agent: agent, context: context, ufrags: ufrags)
        for ufrag in ufrags { self.byUfrag[ufrag] = id }
        for pair in agent.pairs { self.map(pair.address, to: id) }
        return id
    }

    /// Removes a session and every key that leads to it; returns its agent and context.
    @discardableResult
    public mutating func remove(_ id: SessionID) -> (agent: ICELiteAgent, context: Context)? {
        guard let entry = self.entries.removeValue(forKey: id) else { return nil }
        for ufrag in entry.ufrags where self.byUfrag[ufrag] == id { self.byUfrag.removeValue(forKey: ufrag) }
        for pair in entry.agent.pairs where self.byAddress[pair.address] == id {
            self.byAddress.removeValue(forKey: pair.address)
        }
        return (entry.agent, entry.context)
    }

    /// Removes every session whose state is ``ICELiteAgent/State/failed`` at `now` (consent expired) and
    /// returns their contexts so the owner can free their resources.
    public mutating func removeFailedSessions(now: ContinuousClock.Instant) -> [Context] {
        let failed = self.entries.filter { $0.value.agent.state(now: now) == .failed }.map(\.key)
        return failed.compactMap { self.remove($0)?.context }
    }

    /// The agent of a session.
    public func agent(_ id: SessionID) -> ICELiteAgent? { self.entries[id]?.agent }

    /// The context of a session.
    public func context(_ id: SessionID) -> Context? { self.entries[id]?.context }

    /// Restarts a session's agent (``ICELiteAgent/restart(newLocal:newRemote:)``) and indexes its new ufrag.
    ///
    /// - Throws: `.unknownSession`, `.duplicateUfrag` when another session owns the new ufrag, or the
    ///   agent's `.badCredentials`.
    public mutating func restart(
        _ id: SessionID,
        newLocal: ICECredentials,
        newRemote: ICECredentials
    ) throws(ICEError) {
        guard let entry = self.entries[id] else { throw ICEError(.unknownSession, "no session \(id)") }
        if let key = newLocal.ufragKey, let owner = self.byUfrag[key], owner != id {
            throw ICEError(.duplicateUfrag, "another session uses ufrag \(newLocal.ufrag)")
        }
        try entry.agent.restart(newLocal: newLocal, newRemote: newRemote)
        self.syncUfrags(id)
    }

    // MARK: Lookups

    /// The session a datagram from `address` belongs to, if the address passed a check there.
    public func session(for address: SocketAddress) -> SessionID? {
        guard let key = STUNAddress(transport: address) else { return nil }
        return self.session(for: key)
    }

    /// The session of a remote address.
    public func session(for address: STUNAddress) -> SessionID? { self.byAddress[address] }

    /// The session whose local ufrag is the first part of the message's USERNAME (`<ours>:<theirs>`).
    public func session(forUsername message: STUNMessage) -> SessionID? {
        guard let key = Self.localUfragKey(of: message) else { return nil }
        return self.byUfrag[key]
    }

    /// The session for a STUN message from `address`: by address, unless the USERNAME names another
    /// session; else by USERNAME.
    public func session(for message: STUNMessage, from address: STUNAddress) -> SessionID? {
        let named = self.session(forUsername: message)
        if let mapped = self.byAddress[address] {
            // An address stays with its session unless a check names a different, existing one.
            return named ?? mapped
        }
        return named
    }

    // MARK: Checks

    /// Parses `datagram` as STUN and handles it as ``handleBindingRequest(message:from:now:responseInto:)``
    /// does; a datagram that is not well-formed STUN is dropped as `.malformed`.
    public mutating func handleSTUNDatagram(
        _ datagram: ByteBuffer,
        from source: SocketAddress,
        now: ContinuousClock.Instant,
        responseInto response: inout ByteBuffer
    ) -> (session: SessionID?, outcome: ICELiteAgent.Outcome) {
        let message: STUNMessage
        do throws(WireError) {
            message = try STUNMessage(parsing: datagram)
        } catch {
            return (nil, .drop(.malformed))
        }
        return self.handleBindingRequest(message: message, from: source, now: now, responseInto: &response)
    }

    /// Routes a STUN message to its session's agent and keeps the address index up to date: a valid check
    /// maps its source to the session (taking it from any other session), an evicted pair's address is
    /// unmapped, and a completed restart retires the old ufrag.
    public mutating func handleBindingRequest(
        message: STUNMessage,
        from source: SocketAddress,
        now: ContinuousClock.Instant,
        responseInto response: inout ByteBuffer
    ) -> (session: SessionID?, outcome: ICELiteAgent.Outcome) {
        guard let address = STUNAddress(transport: source) else { return (nil, .drop(.unsupportedAddress)) }
        guard let id = self.session(for: message, from: address), let entry = self.entries[id] else {
            return (nil, .drop(.unknownUsername))
        }
        let outcome = entry.agent.handleBindingRequest(
            message: message,
            from: address,
            now: now,
            responseInto: &response
        )
        if case .respond(.success(let check)) = outcome {
            if let evicted = check.evicted, self.byAddress[evicted] == id {
                self.byAddress.removeValue(forKey: evicted)
            }
            self.map(address, to: id)
            if check.completedRestart { self.syncUfrags(id) }
        }
        return (id, outcome)
    }

    // MARK: Internals

    /// Maps `address` to `id`, removing the pair from a session that held it before.
    private mutating func map(_ address: STUNAddress, to id: SessionID) {
        let previous = self.byAddress.updateValue(id, forKey: address)
        if let previous, previous != id { self.entries[previous]?.agent.removePair(address) }
    }

    /// Re-indexes the local ufrags of a session after its agent's credentials changed.
    private mutating func syncUfrags(_ id: SessionID) {
        guard let entry = self.entries[id] else { return }
        let current = Self.ufrags(of: entry.agent)
        for ufrag in entry.ufrags where !current.contains(ufrag) && self.byUfrag[ufrag] == id {
            self.byUfrag.removeValue(forKey: ufrag)
        }
        for ufrag in current { self.byUfrag[ufrag] = id }
        self.entries[id]?.ufrags = current
    }

    private static func ufrags(of agent: ICELiteAgent) -> [ICEUfragKey] {
        [agent.local.ufragKey, agent.previous?.local.ufragKey].compactMap { $0 }
    }

    /// The key of USERNAME's part before the first ':', read in place.
    public static func localUfragKey(of message: STUNMessage) -> ICEUfragKey? {
        guard let attribute = message.attribute(.username) else { return nil }
        return attribute.withUnsafeValueBytes { bytes in
            guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return nil }
            return ICEUfragKey(UnsafeRawBufferPointer(rebasing: bytes[..<colon]))
        }
    }
}
