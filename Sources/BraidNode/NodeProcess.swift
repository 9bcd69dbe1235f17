import CBraidShims
import NIOCore
import NIOPosix

/// Process-wide settings a node daemon makes once, before it starts any work.
///
/// Both keep the node's resident memory close to its idle value after sessions end (measured with
/// `Benchmarks/whole-node.py --smaps`, see Benchmarks/README.md "Memory after the sessions close"):
///
/// - Swift concurrency runs on NIO's singleton event loops instead of libdispatch's pool. Otherwise every
///   task the media event loop resumes (HTTP handlers, `EventLoopFuture.get()`, async sequences) takes a
///   libdispatch continuation from that thread's heap, and libdispatch keeps thousands of them in its
///   per-thread caches: small live blocks scattered over the event loop's malloc arena, which then cannot
///   give its freed session state back.
/// - Allocations of ``mmapThresholdBytes`` or more get their own mapping. glibc's default threshold
///   rises after the first large free, after which retransmission stores and receive buffers live in the
///   arenas and stay resident after the sessions that used them close.
public enum NodeProcess {
    /// Smallest allocation served by its own mapping: above every per-packet buffer, below the
    /// per-stream stores and batch buffers that come and go with sessions.
    public static let mmapThresholdBytes = 64 * 1024

    /// Applies the settings above. Call once, first thing in `main`, before any task is started.
    /// - Returns: whether Swift concurrency now runs on NIO's singleton event loops.
    @discardableResult
    public static func configureForServing() -> Bool {
        _ = braid_malloc_set_mmap_threshold(Self.mmapThresholdBytes)
        return NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
