import BraidWire
import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import BraidNode

#if canImport(Glibc)
import Glibc
#endif

/// The media send path on real loopback sockets: slots, batches larger than the slab, per-datagram
/// failures, closing, and the counts the dashboard shows.
@Suite("Datagram send batch (sendmmsg from a pooled slab)")
struct DatagramSendBatchTests {
    /// A bound, non-blocking UDP socket on 127.0.0.1 and its address.
    static func socket() throws -> (CInt, SocketAddress) {
        let descriptor = try MediaService.bindSocket(host: "127.0.0.1", port: 0, reusePort: false)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        let port = withUnsafeBytes(of: storage) { $0.load(fromByteOffset: 2, as: UInt16.self).bigEndian }
        return (descriptor, try SocketAddress(ipAddress: "127.0.0.1", port: Int(port)))
    }

    /// Runs `body` with a sending socket, a receiving socket and the receiver's address; closes both after.
    static func withSocketPair(_ body: (CInt, CInt, SocketAddress) throws -> Void) throws {
        let (sender, _) = try Self.socket()
        defer { close(sender) }
        let (receiver, destination) = try Self.socket()
        defer { close(receiver) }
        try body(sender, receiver, destination)
    }

    /// Every datagram waiting on `descriptor`, in order.
    static func drain(_ descriptor: CInt) -> [[UInt8]] {
        var received: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard count > 0 else { return received }
            received.append(Array(buffer.prefix(count)))
        }
    }

    @Test("600 datagrams (more than the slab's 256 slots) arrive whole and in order; a failed one is skipped and counted")
    func sendsInOrder() throws {
        try Self.withSocketPair { sender, receiver, destination in
            // Deep enough that the kernel keeps all 600 small datagrams for the reader below.
            var size: CInt = 4 << 20
            setsockopt(receiver, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<CInt>.size))
            let batch = try #require(DatagramSendBatch(socket: sender))
            for index in 0..<600 {
                let length = batch.append { slot in
                    slot.storeBytes(of: UInt16(index).bigEndian, as: UInt16.self)
                    slot[2] = UInt8(truncatingIfNeeded: index)
                    return (3, destination)
                }
                #expect(length == 3)
            }
            // An IPv6 destination on an IPv4 socket fails on its own; the datagrams around it still go.
            _ = batch.append { _ in (3, try! SocketAddress(ipAddress: "::1", port: 9)) }
            _ = batch.append { slot in
                slot.copyBytes(from: [0xFF, 0xFF, 0xFF])
                return (3, destination)
            }
            // Nothing to write: no slot used.
            #expect(batch.append { _ in nil } == nil)
            batch.flush()
            #expect(batch.sent == 601)
            #expect(batch.failed == 1)
            #expect(batch.droppedQueueFull == 0 && !batch.isFull)
            let received = Self.drain(receiver)
            #expect(received.count == 601)
            #expect(received.prefix(600).enumerated().allSatisfy { index, datagram in
                datagram == [UInt8(index >> 8), UInt8(index & 0xFF), UInt8(truncatingIfNeeded: index)]
            })
            #expect(received.last == [0xFF, 0xFF, 0xFF])

            // Closed: nothing more is written, and the duplicate descriptor is gone.
            batch.close()
            #expect(batch.append { _ in (3, destination) } == nil)
            batch.flush()
            #expect(Self.drain(receiver).isEmpty)
        }
    }

    @Test("the output batch counts by kind what it sends past the pipeline, for the dashboard")
    func countsByKind() throws {
        try Self.withSocketPair { sender, receiver, destination in
            let channel = EmbeddedChannel()
            let output = WebRTCOutputBatch(channel: channel, socket: sender)
            // A DTLS record (content type 20-63) and an RTCP-looking datagram, already protected.
            output.write(ByteBuffer(bytes: [22, 0xFE, 0xFD] + [UInt8](repeating: 0, count: 10)), to: destination)
            output.write(ByteBuffer(bytes: [0x80, 200] + [UInt8](repeating: 0, count: 26)), to: destination)
            output.flush()
            #expect(output.sentByKind[.dtls] == PacketCount(packets: 1, bytes: 13))
            #expect(output.sentByKind[.rtcp] == PacketCount(packets: 1, bytes: 28))
            #expect(Self.drain(receiver).count == 2)
            // Nothing went through NIO's pipeline.
            #expect(try channel.readOutbound(as: AddressedEnvelope<ByteBuffer>.self) == nil)
            output.close()
            _ = try channel.finish(acceptAlreadyClosed: true)
        }
    }
}
