/// Extends 16-bit RTP sequence numbers to 64 bits across wrap-around and reordering.
///
/// [RFC 3550 §A.1](https://www.rfc-editor.org/rfc/rfc3550#appendix-A.1) counts wrap-around cycles; this
/// is the same idea for any consumer that needs a total order: each number is placed at the signed
/// 16-bit distance from the highest value seen so far, so a packet up to 32768 behind the newest one is
/// "older" and up to 32767 ahead is "newer". The first number maps to itself, so values stay small and
/// positive in the common case; a packet reordered before the first one across a wrap gives a negative
/// value, which callers compare like any other.
///
/// Owned by whoever needs the ordering (statistics, NACK generator, rewriter); it holds one integer.
public struct SequenceNumberUnwrapper: Sendable {
    /// The highest extended value produced so far, or nil before the first call.
    public private(set) var highest: Int64?

    public init() {}

    /// Returns the extended value of `sequenceNumber` and advances ``highest`` when it is newer.
    public mutating func unwrap(_ sequenceNumber: UInt16) -> Int64 {
        let value = self.peek(sequenceNumber)
        if value > (self.highest ?? Int64.min) { self.highest = value }
        return value
    }

    /// The extended value `sequenceNumber` would get, without changing any state.
    public func peek(_ sequenceNumber: UInt16) -> Int64 {
        guard let highest = self.highest else { return Int64(sequenceNumber) }
        let delta = Int16(bitPattern: sequenceNumber &- UInt16(truncatingIfNeeded: highest))
        return highest + Int64(delta)
    }

    /// Forgets every value seen (a new source starts a new number space).
    public mutating func reset() { self.highest = nil }
}

/// Extends 32-bit RTP timestamps to 64 bits across wrap-around and reordering.
///
/// Same rule as ``SequenceNumberUnwrapper`` with a signed 32-bit distance: a 90 kHz clock wraps every
/// 13.25 hours, and a timestamp within ±2^31 of the newest is placed on the near side.
public struct TimestampUnwrapper: Sendable {
    /// The highest extended value produced so far, or nil before the first call.
    public private(set) var highest: Int64?

    public init() {}

    /// Returns the extended value of `timestamp` and advances ``highest`` when it is newer.
    public mutating func unwrap(_ timestamp: UInt32) -> Int64 {
        let value = self.peek(timestamp)
        if value > (self.highest ?? Int64.min) { self.highest = value }
        return value
    }

    /// The extended value `timestamp` would get, without changing any state.
    public func peek(_ timestamp: UInt32) -> Int64 {
        guard let highest = self.highest else { return Int64(timestamp) }
        let delta = Int32(bitPattern: timestamp &- UInt32(truncatingIfNeeded: highest))
        return highest + Int64(delta)
    }

    /// Forgets every value seen.
    public mutating func reset() { self.highest = nil }
}
