import CBraidShims
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The outgoing datagrams of one media socket, written in place into fixed slots and handed to the kernel
/// with one `sendmmsg(2)` per flush.
///
/// NIO's datagram channel batches writes too, but each write is a fresh `ByteBuffer`, an
/// `AddressedEnvelope` boxed in `NIOAny`, a walk through the pipeline and a node in NIO's pending-write
/// queue; at thousands of subscribers that is a large share of the node's CPU. Here SRTP protects straight
/// into a slot of one slab allocated at start-up, and the destination is copied next to it: no allocation,
/// no reference counting per datagram.
///
/// The kernel's send queue is the only queue. When it is full (`EAGAIN`, `ENOBUFS`) the rest of the batch
/// is dropped and counted, as a router drops at a full interface, and ``isFull`` tells the forwarding core
/// to hold back until a later flush gets through. Confined to the socket's event loop.
final class DatagramSendBatch {
    /// Bytes per slot: the largest datagram the node sends (an MTU-sized packet plus SRTP's trailer and
    /// RTX's two bytes) with room to spare.
    static let slotSize = 2048
    /// Slots per batch: a flush is forced when all are used. 256 × 2 KiB is 512 KiB per event loop.
    static let capacity = 256

    private let slots: OpaquePointer
    /// The batch's own duplicate of the socket: NIO closes its descriptor when the channel closes, and a
    /// number reused by then must never receive our writes.
    private let descriptor: CInt
    private var count = 0
    /// Set by ``close()``: the descriptor is closed and nothing is written any more.
    private var closed = false

    /// Datagrams the kernel took.
    private(set) var sent: UInt64 = 0
    /// Datagrams dropped because the kernel's send queue was full.
    private(set) var droppedQueueFull: UInt64 = 0
    /// Datagrams the kernel refused for another reason (counted and skipped, one at a time).
    private(set) var failed: UInt64 = 0
    /// Whether the last flush found the kernel's send queue full; cleared by a flush that sends everything.
    private(set) var isFull = false

    /// A batch writing to a duplicate of `socket`; nil if the descriptor cannot be duplicated or the slab
    /// cannot be allocated (the caller then writes through the channel).
    init?(socket: CInt) {
        let descriptor = dup(socket)
        guard descriptor >= 0 else { return nil }
        guard let slots = braid_send_batch_create(UInt32(Self.capacity), UInt32(Self.slotSize)) else {
            Glibc.close(descriptor)
            return nil
        }
        self.descriptor = descriptor
        self.slots = slots
    }

    deinit {
        braid_send_batch_destroy(self.slots)
        if !self.closed { Glibc.close(self.descriptor) }
    }

    /// Drops what is pending and closes the duplicate descriptor, so the socket (and its port) goes away
    /// with NIO's channel. Later appends write nothing.
    func close() {
        guard !self.closed else { return }
        self.closed = true
        self.count = 0
        Glibc.close(self.descriptor)
    }

    /// Writes one datagram into the next slot: `fill` writes at most ``slotSize`` bytes into the slot and
    /// returns their count and the destination, or nil to write nothing. Flushes first when every slot is
    /// taken. Returns the datagram's length, or nil when `fill` wrote nothing.
    @inline(__always)
    func append(_ fill: (UnsafeMutableRawBufferPointer) -> (length: Int, destination: SocketAddress)?) -> Int? {
        guard !self.closed else { return nil }
        if self.count == Self.capacity { self.flush() }
        let index = UInt32(truncatingIfNeeded: self.count)
        let slot = UnsafeMutableRawBufferPointer(
            start: braid_send_batch_slot(self.slots, index), count: Self.slotSize)
        guard let (length, destination) = fill(slot), length > 0, length <= Self.slotSize else { return nil }
        destination.withSockAddr { address, size in
            braid_send_batch_set(self.slots, index, UInt32(length), address, UInt32(size))
        }
        self.count += 1
        return length
    }

    /// Hands every pending datagram to the kernel, as few `sendmmsg` calls as it takes.
    func flush() {
        var start = 0
        while start < self.count {
            let result = braid_send_batch_send(
                self.slots, self.descriptor, UInt32(truncatingIfNeeded: start),
                UInt32(truncatingIfNeeded: self.count - start))
            if result > 0 {
                self.sent &+= UInt64(result)
                start += Int(result)
                continue
            }
            let error = -result
            if error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS {
                self.droppedQueueFull &+= UInt64(self.count - start)
                self.isFull = true
                self.count = 0
                return
            }
            // This datagram failed on its own (an unreachable or invalid destination, a size the route
            // refuses): skip it and send the rest.
            self.failed &+= 1
            start += 1
        }
        self.isFull = false
        self.count = 0
    }
}

// One event loop's state.
@available(*, unavailable)
extension DatagramSendBatch: Sendable {}
