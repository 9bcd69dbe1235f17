import BraidNode
import BraidWire
import NIOCore
import NIOEmbedded
import Testing

/// The handler alone, on an embedded channel: exact control over GRO metadata.
@Suite("Media channel handler")
struct MediaChannelHandlerTests {
    let remote = try! SocketAddress(ipAddress: "127.0.0.1", port: 5000)

    func makeChannel() throws -> (EmbeddedChannel, MediaChannelHandler<NoSessionRouter>) {
        let handler = MediaChannelHandler(router: NoSessionRouter())
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: self.remote).wait()
        return (channel, handler)
    }

    func envelope(_ bytes: [UInt8], segmentSize: Int? = nil) -> AddressedEnvelope<ByteBuffer> {
        AddressedEnvelope(
            remoteAddress: self.remote,
            data: ByteBuffer(bytes: bytes),
            metadata: segmentSize.map { .init(ecnState: .transportNotCapable, packetInfo: nil, segmentSize: $0) }
        )
    }

    @Test("a GRO read is split at the segment size, the short last segment included")
    func groSplit() throws {
        let (channel, handler) = try self.makeChannel()
        let rtp = [UInt8](repeating: 0x80, count: 100)
        var coalesced = rtp + rtp + rtp
        coalesced += [0x80, 0xC8] + [UInt8](repeating: 0, count: 48)  // a 50-byte RTCP segment at the end
        try channel.writeInbound(self.envelope(coalesced, segmentSize: 100))

        let snapshot = handler.snapshot
        #expect(snapshot.received.rtp == PacketCount(packets: 3, bytes: 300))
        #expect(snapshot.received.rtcp == PacketCount(packets: 1, bytes: 50))
        #expect(snapshot.coalescedReads == 1)
        #expect(snapshot.drops.noSession == 4)
        _ = try channel.finish()
    }

    @Test("a read no longer than its segment size is one datagram")
    func singleSegment() throws {
        let (channel, handler) = try self.makeChannel()
        try channel.writeInbound(self.envelope([0x00, 0x01] + [UInt8](repeating: 0, count: 18), segmentSize: 1200))
        #expect(handler.snapshot.received.stun == PacketCount(packets: 1, bytes: 20))
        #expect(handler.snapshot.coalescedReads == 0)
        _ = try channel.finish()
    }

    @Test("every first byte is classified and dropped without a trap", arguments: [0, 1, 2])
    func everyFirstByte(secondByteVariant: Int) throws {
        let (channel, handler) = try self.makeChannel()
        for first in 0...255 {
            let second: [UInt8] = [[], [0x60], [0xC8]][secondByteVariant]
            try channel.writeInbound(self.envelope([UInt8(first)] + second))
        }
        let snapshot = handler.snapshot
        #expect(snapshot.received.total.packets == 256)
        #expect(snapshot.drops.total == 256)
        #expect(snapshot.received.stun.packets == 4)
        #expect(snapshot.received.zrtp.packets == 4)
        #expect(snapshot.received.dtls.packets == 44)
        #expect(snapshot.received.turnChannel.packets == 16)
        #expect(snapshot.received.rtp.packets + snapshot.received.rtcp.packets == 64)
        #expect(snapshot.received.rtcp.packets == (secondByteVariant == 2 ? 64 : 0))
        #expect(snapshot.received.unknown.packets == 256 - 4 - 4 - 44 - 16 - 64)
        #expect(snapshot.drops.noSession == 4 + 44 + 64)
        _ = try channel.finish()
    }

    @Test("receive errors are counted and the channel stays open")
    func receiveErrors() throws {
        let (channel, handler) = try self.makeChannel()
        channel.pipeline.fireErrorCaught(IOError(errnoCode: 111, reason: "recvmmsg"))
        channel.pipeline.fireErrorCaught(IOError(errnoCode: 111, reason: "recvmmsg"))
        #expect(handler.snapshot.receiveErrors == 2)
        #expect(channel.isActive)
        _ = try channel.finish()
    }

    @Test("the final counters are handed over when the channel closes")
    func finalCounters() throws {
        final class Box: @unchecked Sendable { var value: MediaTrafficSnapshot? }
        let box = Box()
        let handler = MediaChannelHandler(router: NoSessionRouter()) { box.value = $0 }
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: self.remote).wait()
        try channel.writeInbound(self.envelope([0xFF]))
        _ = try channel.finish()
        #expect(box.value?.drops.unknownProtocol == 1)
    }
}
