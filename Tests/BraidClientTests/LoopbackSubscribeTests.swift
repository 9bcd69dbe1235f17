import NIOCore
import NIOPosix
import Testing

@testable import BraidClient

@Suite("Subscribing over real sockets (ICE, DTLS, SRTP) to a test WHEP server")
struct LoopbackSubscribeTests {
    @Test("A subscriber joins, plays every frame, repairs withheld packets by NACK/RTX and sends feedback")
    func subscribe() async throws {
        let media = try PreEncodedMedia.synthetic(audioSeconds: 1, videoFrames: 30, width: 160, height: 96)
        // Withhold two video packets once: the subscriber must NACK them and play on without a freeze.
        let server = try TestWHEPServer(media: media, withheld: [5, 40])
        let port = try await server.start()
        let subscriber = try await BraidSubscriber.subscribe(
            to: "http://127.0.0.1:\(port)/whep/room", audioTracks: 1, videoTracks: 1,
            group: MultiThreadedEventLoopGroup.singleton)
        try await Task.sleep(for: .seconds(2))
        let stats = try #require(await subscriber.statistics())
        try await subscriber.close()
        let counters = try await server.snapshot()
        await server.stop()

        let video = try #require(stats.video.first)
        let audio = try #require(stats.audio.first)
        #expect(video.ssrc == TestWHEPServer.videoSSRC && audio.ssrc == TestWHEPServer.audioSSRC)
        let join = try #require(stats.joinTime)
        #expect(join < .seconds(1))
        // ~60 frames and ~100 audio packets in 2 s; allow for a loaded machine.
        #expect(video.framesComplete >= 40)
        #expect(video.framesDecodable == video.framesComplete)
        #expect(video.framesLost == 0 && video.freezeCount == 0)
        #expect(video.keyframes >= 1)
        #expect(audio.packetsReceived >= 70)
        #expect(counters.nacks >= 1 && counters.retransmissions >= 2)
        #expect(video.retransmissionsReceived >= 2 && video.packetsRecovered >= 2)
        #expect(counters.transportFeedback >= 5)
        #expect(counters.receiverReports >= 1)
        #expect(counters.rtcpFailures == 0)
        #expect(stats.transport.unprotectFailures == 0)
        // Sender and receiver share this host's clock: capture-to-receive latency is small and positive.
        #expect(video.latency.count >= 40 && video.latency.negativeCount == 0)
        #expect(audio.latency.count >= 70)
        let p95 = try #require(video.latency.p95)
        #expect(p95 < .milliseconds(500))
        #expect(counters.deletes == 1)
    }
}

@Suite("Light reception on a shared socket, over real sockets")
struct LightSubscriberTests {
    @Test("A light subscriber on a pooled socket counts media from headers, authenticates 1 in 4, repairs by NACK/RTX and drops forgeries")
    func lightOnSharedSocket() async throws {
        let media = try PreEncodedMedia.synthetic(audioSeconds: 1, videoFrames: 30, width: 160, height: 96)
        let server = try TestWHEPServer(media: media, withheld: [5, 40])
        let port = try await server.start()
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let pool = try await PeerSocketPool.make(loops: [loop], socketsPerLoop: 1)
        var options = ConnectionOptions()
        options.socketPool = pool
        let subscriber = try await BraidSubscriber.subscribe(
            to: "http://127.0.0.1:\(port)/whep/room", audioTracks: 1, videoTracks: 1,
            reception: .light(authenticateEvery: 4), options: options, group: loop)
        try await Task.sleep(for: .seconds(1))

        // Forged media for this subscriber's address from a stranger: a well-formed RTP header with the
        // subscriber's video SSRC and garbage where the ciphertext and tag belong.
        let address = try #require(subscriber.transport.socket.localAddress)
        #expect(address.ipAddress?.hasPrefix("127.64.") == true)
        let before = try #require(await subscriber.statistics())
        let stranger = try await DatagramBootstrap(group: loop).bind(host: "127.0.0.1", port: 0).get()
        for index in 0..<20 {
            var forged = ByteBuffer(bytes: [0x80, 96, 0x70, UInt8(index)] + [0, 0, 0, 1])
            forged.writeInteger(TestWHEPServer.videoSSRC)
            forged.writeBytes([UInt8](repeating: 0xAB, count: 100))
            try await stranger.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: forged))
        }
        try await Task.sleep(for: .seconds(1))
        let stats = try #require(await subscriber.statistics())
        let unrouted = await pool.unroutedDatagrams()
        try await stranger.close()
        try await subscriber.close()
        let counters = try await server.snapshot()
        await server.stop()
        await pool.close()

        #expect(stats.isLight)
        let video = try #require(stats.video.first)
        let audio = try #require(stats.audio.first)
        // Media counted from headers: ~60 frames' packets and ~100 audio packets in 2 s (allowing for a loaded
        // machine), latency included.
        #expect(audio.packetsReceived >= 70 && video.packetsReceived >= 40)
        #expect(video.latency.count >= 40 && audio.latency.count >= 70)
        #expect(audio.framesInTime >= 70)
        // No frames are assembled in light reception.
        #expect(video.framesComplete == 0)
        // The withheld packets were NACKed and repaired (RTX decrypted for its original sequence number).
        #expect(counters.nacks >= 1 && video.retransmissionsReceived >= 2 && video.packetsRecovered >= 2)
        #expect(video.packetsUnrecovered == 0)
        #expect(counters.transportFeedback >= 5 && counters.receiverReports >= 1 && counters.rtcpFailures == 0)
        // One in four authenticated (retransmissions are decrypted on their own).
        let sealed = stats.transport.rtpPacketsReceived - video.retransmissionsReceived
        #expect(stats.transport.rtpPacketsAuthenticated >= sealed / 4 - 2)
        #expect(stats.transport.rtpPacketsAuthenticated <= sealed / 4 + 2)
        // The forgeries came from another address than the node's: refused, counted, not taken for media.
        #expect(before.transport.unprotectFailures == 0)
        #expect(stats.transport.unprotectFailures == 20)
        #expect(unrouted == 0)
    }
}
