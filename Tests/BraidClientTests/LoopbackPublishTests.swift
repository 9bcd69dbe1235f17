import BraidNode
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

@testable import BraidClient

/// Runs a node in-process on ephemeral loopback ports for the duration of `body`.
func withLoopbackNode<Value: Sendable>(
    eventLoops: Int = 1,
    limits: [ConfigurationKey: Int] = [:],
    _ body: @escaping @Sendable (NodeServer, Int) async throws -> Value
) async throws -> Value {
    let configuration = try NodeConfiguration.resolve(
        flags: NodeConfigurationLayer(
            // A test that ends with peers still connected waits out the drain at shutdown: keep it short.
            nodeID: "client-test", httpPort: 0, mediaPort: 0, eventLoopThreads: eventLoops, adminPort: 0,
            drainTimeoutSeconds: 2, limits: limits),
        environment: [:])
    var logger = Logger(label: "braid.client.test")
    logger.logLevel = .warning
    let node = try NodeServer(configuration: configuration, logger: logger)
    let group = node.makeServiceGroup(gracefulShutdownSignals: [])
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            _ = try await node.media.waitUntilBound()
            var waited = 0
            while node.httpAddress == nil, waited < 1000 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            let port = try #require(node.httpAddress?.port)
            let value = try await body(node, port)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            try await node.shutdownEventLoops()
            return value
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            try? await node.shutdownEventLoops()
            throw error
        }
    }
}

@Suite("Publishing to a node on loopback (real ICE, DTLS, SRTP)")
struct LoopbackPublishTests {
    @Test("Pre-encoded Opus and VP8 published for 2 s arrive at the node and decrypt")
    func publishPreEncoded() async throws {
        let media = try PreEncodedMedia.synthetic(audioSeconds: 1, videoFrames: 30, width: 160, height: 96)
        #expect(media.audioPackets.count == 50)
        #expect(media.videoFrames.count == 30 && media.videoFrames[0].isKeyframe)
        try await withLoopbackNode { node, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let publisher = try await BraidPublisher.publish(
                to: "http://127.0.0.1:\(port)/whip/lobby", audio: .preEncoded(media), video: .preEncoded(media),
                group: group)
            try await Task.sleep(for: .seconds(2))
            let sent = await publisher.statistics()
            let sessions = await node.media.sessions.statuses()
            #expect(sessions.count == 1)
            let session = try #require(sessions.first)
            #expect(session.room == "lobby")
            #expect(session.iceState == "connected")
            #expect(session.dtlsState == "connected")
            #expect(session.srtpProfile == sent.transport.srtpProfile)
            #expect(session.srtpProfile != nil)
            #expect(session.counters.unprotectFailures == 0)
            #expect(session.counters.rtcpReceived.packets >= 1)  // sender reports
            // ~100 audio packets and ~60 frames in 2 s; allow for scheduling on a busy machine.
            #expect(sent.audioPacketsSent >= 70)
            #expect(sent.videoFramesSent >= 40)
            #expect(sent.keyframesSent >= 1)
            let sentRTP = UInt64(sent.audioPacketsSent + sent.videoPacketsSent)
            // Everything sent before the snapshot of the node (taken after ours) decrypted there.
            #expect(session.counters.rtpReceived.packets >= sentRTP)
            #expect(sent.transport.rtpPacketsSent >= sent.audioPacketsSent + sent.videoPacketsSent)
            #expect(sent.transport.stunResponsesReceived >= 2)
            let connectTime = try #require(sent.connectTime)
            #expect(connectTime < .seconds(2))
            try await publisher.close()
            var remaining = await node.media.sessions.statuses().count
            for _ in 0..<100 where remaining > 0 {
                try await Task.sleep(for: .milliseconds(10))
                remaining = await node.media.sessions.statuses().count
            }
            #expect(remaining == 0)
        }
    }

    @Test("Live-encoded tone and test pattern publish too")
    func publishLive() async throws {
        try await withLoopbackNode { node, port in
            let publisher = try await BraidPublisher.publish(
                to: "http://127.0.0.1:\(port)/whip/live", audio: .sineTone(),
                video: .testPattern(width: 160, height: 96, framesPerSecond: 15, bitrate: 150_000),
                group: MultiThreadedEventLoopGroup.singleton)
            try await Task.sleep(for: .seconds(1))
            let sent = await publisher.statistics()
            let session = try #require(await node.media.sessions.statuses().first)
            #expect(sent.audioPacketsSent >= 30)
            #expect(sent.videoFramesSent >= 8)
            #expect(session.counters.rtpReceived.packets >= UInt64(sent.audioPacketsSent + sent.videoPacketsSent))
            #expect(session.counters.unprotectFailures == 0)
            try await publisher.close()
        }
    }

    @Test("HTTP errors from the node surface as typed errors")
    func httpErrors() async throws {
        try await withLoopbackNode { _, port in
            do {
                _ = try await BraidPublisher.publish(
                    to: "http://127.0.0.1:\(port)/whip/bad%20room", audio: .external, video: nil,
                    group: MultiThreadedEventLoopGroup.singleton)
                Issue.record("publishing to an invalid room succeeded")
            } catch let error as BraidClientError {
                guard case .httpStatus(let code, _) = error else {
                    Issue.record("expected httpStatus, got \(error)")
                    return
                }
                #expect(code == 400)
            }
            do {
                _ = try await BraidSubscriber.subscribe(
                    to: "http://127.0.0.1:1/whep/x", group: MultiThreadedEventLoopGroup.singleton)
                Issue.record("connecting to a closed port succeeded")
            } catch let error as BraidClientError {
                guard case .connectionFailed = error else {
                    Issue.record("expected connectionFailed, got \(error)")
                    return
                }
            }
        }
    }
}
