import BraidNode
import BraidSFU
import NIOPosix
import Testing

@testable import BraidClient

@Suite("Uplink protection: a BraidClient publisher protects its video (FEC) and audio (RED) on the way to the node")
struct UplinkFECEndToEndTests {
    @Test("On a lossy uplink the publisher sends repairs sized from the node's reports, and the node rebuilds from them")
    func lossyUplink() async throws {
        let media = try forwardingMedia(videoFrames: 60)
        try await withLoopbackNode { _, port in
            let dashboard = NodeDashboard(port: port)
            var options = forwardingOptions
            options.uplink = NetworkImpairment(lossRate: 0.3)
            options.impairmentSeed = 11
            let publisher = try await BraidPublisher.publish(
                to: "http://127.0.0.1:\(port)/whip/uplink", audio: nil, video: .preEncoded(media), options: options,
                group: MultiThreadedEventLoopGroup.singleton)
            // The node's transport-wide feedback (every 100 ms) tells the publisher of its uplink's loss.
            let rebuilt = try await eventually(within: 8) {
                let publishers = try await dashboard.status().rooms.first { $0.name == "uplink" }?.publishers ?? []
                return (publishers.first?.recoveredByFEC ?? 0) > 5
            }
            #expect(rebuilt)
            let sent = await publisher.statistics()
            #expect(sent.repairPacketsSent > 0)
            // The node asks for what the repairs leave missing; the publisher answers with repair rounds.
            let rounds = try await eventually(within: 8) { await publisher.statistics().repairRounds > 0 }
            #expect(rounds)
            try await publisher.close()

            // Without loss protection no repair stream is offered: nothing to rebuild from.
            options.offersLossProtection = false
            let plain = try await BraidPublisher.publish(
                to: "http://127.0.0.1:\(port)/whip/plain", audio: nil, video: .preEncoded(media), options: options,
                group: MultiThreadedEventLoopGroup.singleton)
            try await Task.sleep(for: .seconds(2))
            #expect(await plain.statistics().repairPacketsSent == 0)
            let status = try await dashboard.status().rooms.first { $0.name == "plain" }?.publishers.first
            #expect(status != nil)
            #expect(status?.recoveredByFEC == nil)
            try await plain.close()
        }
    }

    /// An audio-only publisher to `room` on the node at `port`, behind an uplink losing `lossRate` (seeded).
    static func publishAudio(room: String, port: Int, lossRate: Double, seed: UInt64) async throws -> BraidPublisher {
        let media = try PreEncodedMedia.synthetic(audioSeconds: 1, videoFrames: 1, width: 160, height: 96)
        var options = forwardingOptions
        options.uplink = NetworkImpairment(lossRate: lossRate)
        options.impairmentSeed = seed
        return try await BraidPublisher.publish(
            to: "http://127.0.0.1:\(port)/whip/\(room)", audio: .preEncoded(media), video: nil, options: options,
            group: MultiThreadedEventLoopGroup.singleton)
    }

    @Test("On a lossy uplink the publisher's audio carries RED, and the node rebuilds lost packets from it")
    func lossyAudioUplink() async throws {
        try await withLoopbackNode { _, port in
            let dashboard = NodeDashboard(port: port)
            let publisher = try await Self.publishAudio(room: "red-uplink", port: port, lossRate: 0.3, seed: 12)
            let rebuilt = try await eventually(within: 8) {
                let publishers = try await dashboard.status().rooms.first { $0.name == "red-uplink" }?.publishers ?? []
                return (publishers.first?.recoveredByRED ?? 0) > 5
            }
            #expect(rebuilt)
            let sent = await publisher.statistics()
            // 30 % loss: two or more earlier frames in each packet.
            #expect(sent.audioRedundancyDistance >= 2)
            #expect(sent.audioRedundantBytesSent > 0)
            #expect(sent.audioRepeatsSent == 0)  // 30 %: RED alone reaches the node in time
            try await publisher.close()
        }
    }

    @Test("At 70 % uplink loss the publisher also repeats its audio packets; the node keeps the first copy")
    func veryLossyAudioUplinkRepeats() async throws {
        try await withLoopbackNode { _, port in
            let dashboard = NodeDashboard(port: port)
            let publisher = try await Self.publishAudio(room: "repeats", port: port, lossRate: 0.7, seed: 5)
            // Copies that arrive after the first are dropped by the SRTP replay check, as duplicates.
            let duplicates = try await eventually(within: 8) {
                let session = try await dashboard.status().sessions.list.first { $0.room == "repeats" }
                return (session?.counters.duplicatesDropped ?? 0) > 20 && session?.counters.unprotectFailures == 0
            }
            #expect(duplicates)
            // The feedback on a repeated packet says whether any copy arrived; the publisher still reads the
            // raw loss from it, so the repeats stay on instead of switching themselves off.
            try await Task.sleep(for: .seconds(2))
            let sent = await publisher.statistics()
            #expect(sent.audioSendsPerFrame >= 2)
            #expect(sent.audioRedundancyDistance >= 3)
            #expect(sent.audioRepeatsSent > sent.audioPacketsSent / 2)
            let status = try await dashboard.status().rooms.first { $0.name == "repeats" }?.publishers.first
            #expect((status?.recoveredByRED ?? 0) > 20)
            try await publisher.close()
        }
    }
}
