internal import CBraidShims

/// Software prefetch for the forwarding core's fan-out.
///
/// A packet fanned out to hundreds of subscribers touches each one's state (consumer, slot, subscriber,
/// transport, SRTP context) once, and among hundreds of subscribers none of it is still in the cache: a
/// chain of dependent misses per copy. A producer instead walks a group of its consumers one pointer
/// level at a time, prefetching the next level of every consumer of the group before going a level
/// deeper (``TrackConsumer/prefetch(stage:)`` in BraidSFU and the `prefetch(stage:)` of each level), so the
/// misses of a group overlap instead of following one another.
public enum CachePrefetch {
    /// Prefetches the first `lines` cache lines of `object`'s instance (its header and the stored
    /// properties declared first).
    @inline(__always)
    public static func object(_ object: AnyObject, lines: Int = 1) {
        braid_prefetch_lines(Unmanaged.passUnretained(object).toOpaque(), CInt(lines))
    }

    /// Prefetches the cache line holding `address`.
    @inline(__always)
    public static func address(_ address: UnsafeRawPointer) {
        braid_prefetch(address)
    }
}
