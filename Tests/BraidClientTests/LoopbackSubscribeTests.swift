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
