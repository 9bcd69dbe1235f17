import BraidFunctions
import BraidNode
import BraidSFU
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import BraidClient

/// The tone's amplitude in the median 100 ms window (whole cycles of 440, 660 and 880 Hz): the level a
/// listener hears, not lowered by a concealed frame or two when the test machine is busy.
private func medianToneAmplitude(_ samples: ArraySlice<Int16>, frequency: Double) -> Double {
    let window = 4_800
    let levels = stride(from: samples.startIndex, to: samples.endIndex - window + 1, by: window).map {
        toneAmplitude(samples[$0..<($0 + window)], frequency: frequency)
    }
    return levels.sorted()[levels.count / 2]
}

@Suite("Edge functions through an in-process node: real publishers, the API, real subscribers", .serialized)
struct EdgeFunctionTests {
    @Test("audio-mix over the API: the mix holds both publishers' tones, mix-minus leaves out the listener's own")
    func audioMixEndToEnd() async throws {
        try await withLoopbackNode { node, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let base = "http://127.0.0.1:\(port)"
            let dashboard = NodeDashboard(port: port)
            var publishers: [BraidPublisher] = []
            for frequency in [440.0, 660.0] {
                let tone = try PreEncodedMedia.synthetic(audioSeconds: 1, toneFrequency: frequency, videoFrames: 0)
                publishers.append(
                    try await BraidPublisher.publish(
                        to: "\(base)/whip/mix", audio: .preEncoded(tone), video: nil, options: forwardingOptions,
                        group: group))
            }
            let resources = try publishers.map { try #require($0.resourceID) }
            let sessionIDs = resources.map(WebRTCSessions.sessionID(ofResource:))

            // Bad requests are refused with a reason.
            let unknownKind = try await dashboard.post(
                "/api/v1/rooms/mix/functions", contentType: "application/json", body: #"{"kind": "karaoke", "inputs": "all-audio"}"#)
            #expect(unknownKind.status == 400 && unknownKind.body.contains("kind"), "\(unknownKind.body)")
            let unknownTrack = try await dashboard.post(
                "/api/v1/rooms/mix/functions", contentType: "application/json",
                body: #"{"kind": "audio-mix", "inputs": ["0000000000000001/5"]}"#)
            #expect(unknownTrack.status == 404, "\(unknownTrack.body)")

            let created = try await dashboard.post(
                "/api/v1/rooms/mix/functions", contentType: "application/json",
                body: #"{"kind": "audio-mix", "inputs": "all-audio", "parameters": {"mix_minus": true}}"#)
            #expect(created.status == 201, "\(created.body)")
            let function = try JSONDecoder().decode(FunctionStatus.self, from: Data(created.body.utf8))
            #expect(created.header("Location") == "/api/v1/rooms/mix/functions/\(function.id)")
            #expect(function.inputs.count == 2)
            #expect(Set(function.outputs.compactMap(\.listener)) == Set(sessionIDs))
            let everyone = try #require(function.outputs.first { $0.listener == nil }?.track)
            let forFirst = try #require(function.outputs.first { $0.listener == sessionIDs[0] }?.track)

            // A listener of the mix (it names the output track), the first publisher's own player (linked,
            // it names its mix-minus), and a stranger asking for that mix-minus, which is not meant for it.
            let listener = try await BraidSubscriber.subscribe(
                to: "\(base)/whep/mix?track=\(everyone)", audioTracks: 1, videoTracks: 0, recordAudio: true,
                options: forwardingOptions, group: group)
            let own = try await BraidSubscriber.subscribe(
                to: "\(base)/whep/mix?track=\(forFirst)", audioTracks: 1, videoTracks: 0, recordAudio: true,
                participant: resources[0], options: forwardingOptions, group: group)
            let stranger = try await BraidSubscriber.subscribe(
                to: "\(base)/whep/mix?track=\(forFirst)", audioTracks: 1, videoTracks: 0,
                options: forwardingOptions, group: group)
            try await Task.sleep(for: .seconds(3))

            let target = 0.1 * 2.0.squareRoot()
            let mixed = try #require(await listener.recordedAudio().first)
            #expect(mixed.count > 48_000, "\(mixed.count) samples")
            if mixed.count > 48_000 {
                let tail = mixed[(mixed.count - 48_000)...]
                for frequency in [440.0, 660.0] {
                    let amplitude = medianToneAmplitude(tail, frequency: frequency)
                    #expect(abs(20 * log10(amplitude / target)) < 3, "mix: \(frequency) Hz at \(amplitude)")
                }
            }
            let minus = try #require(await own.recordedAudio().first)
            #expect(minus.count > 48_000, "\(minus.count) samples")
            if minus.count > 48_000 {
                let tail = minus[(minus.count - 48_000)...]
                #expect(toneAmplitude(tail, frequency: 440) < target / 20, "own tone left in the mix-minus")
                #expect(abs(20 * log10(medianToneAmplitude(tail, frequency: 660) / target)) < 3)
            }
            let strangerStatistics = try #require(await stranger.statistics())
            #expect(strangerStatistics.audio.allSatisfy { $0.packetsReceived == 0 }, "\(strangerStatistics.audio)")

            // The function reports its rates, CPU and its own delay (arrival of the newest input frame to
            // its output).
            let listed = try await dashboard.get("/api/v1/rooms/mix/functions")
            let statuses = try JSONDecoder().decode([FunctionStatus].self, from: Data(listed.body.utf8))
            let status = try #require(statuses.first)
            #expect(status.inputs.count == 2, "\(status)")
            #expect(statuses.count == 1 && status.state == "running")
            #expect(status.framesOutPerSecond > 40 && status.framesOutPerSecond < 60, "\(status)")
            #expect(status.framesInPerSecond > 80, "\(status)")
            // A loaded test machine can make the worker miss a tick now and then; it must not fall behind.
            #expect(status.drops == 0 && status.lateTicks * 20 < status.framesOut, "\(status)")
            #expect(try #require(status.delayP95Ms) < 60, "\(status)")
            #expect(status.cpuPercent > 0 && status.cpuPercent < 50)
            #expect(status.outputs.first { $0.listener == nil }?.consumers == 1)
            // Statistics are published once a second: at least a second's worth of frames decoded per input.
            #expect(status.inputs.allSatisfy { ($0.statistics?.framesDecoded ?? 0) >= 50 }, "\(status.inputs)")

            // Stopping it unpublishes its outputs; the listener's slot empties.
            let deleted = try await dashboard.delete("/api/v1/rooms/mix/functions/\(function.id)")
            #expect(deleted.status == 200)
            let gone = try await dashboard.delete("/api/v1/rooms/mix/functions/\(function.id)")
            #expect(gone.status == 404)
            let room = try #require(await node.media.sessions.room(named: "mix"))
            #expect(room.tracks.count == 2, "\(room.tracks.map(\.id))")

            for subscriber in [listener, own, stranger] { try await subscriber.close() }
            for publisher in publishers { try await publisher.close() }
        }
    }
    @Test("transcode and composite over the API: real VP8 publishers, subscribers play the outputs")
    func videoFunctionsEndToEnd() async throws {
        try await withLoopbackNode { node, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let base = "http://127.0.0.1:\(port)"
            let dashboard = NodeDashboard(port: port)
            var publishers: [BraidPublisher] = []
            for _ in 0..<2 {
                publishers.append(
                    try await BraidPublisher.publish(
                        to: "\(base)/whip/video", audio: nil,
                        video: .testPattern(width: 640, height: 360, framesPerSecond: 30, bitrate: 600_000),
                        options: forwardingOptions, group: group))
            }
            // The publishers' tracks, once the node has seen their keyframes.
            var inputs: [SFUTrackStatus] = []
            for _ in 0..<50 where inputs.count < 2 {
                try await Task.sleep(for: .milliseconds(100))
                let room = await node.media.sessions.room(named: "video")
                inputs = room?.tracks.filter { $0.kind == .video && $0.layers.first?.width != nil } ?? []
            }
            try #require(inputs.count == 2)
            let first = try #require(inputs[0].id)

            let twoInputs = try await dashboard.post(
                "/api/v1/rooms/video/functions", contentType: "application/json",
                body: #"{"kind": "transcode", "inputs": "all-video"}"#)
            #expect(twoInputs.status == 400, "\(twoInputs.body)")
            let badSize = try await dashboard.post(
                "/api/v1/rooms/video/functions", contentType: "application/json",
                body: #"{"kind": "transcode", "inputs": ["\#(first)"], "parameters": {"width": 321, "height": 180}}"#)
            #expect(badSize.status == 400 && badSize.body.contains("even"), "\(badSize.body)")

            let transcodeCreated = try await dashboard.post(
                "/api/v1/rooms/video/functions", contentType: "application/json",
                body: #"{"kind": "transcode", "inputs": ["\#(first)"], "parameters": {"width": 320, "height": 180, "bitrate": 200000}}"#)
            #expect(transcodeCreated.status == 201, "\(transcodeCreated.body)")
            let transcode = try JSONDecoder().decode(FunctionStatus.self, from: Data(transcodeCreated.body.utf8))
            let compositeCreated = try await dashboard.post(
                "/api/v1/rooms/video/functions", contentType: "application/json",
                body: #"{"kind": "composite", "inputs": "all-video", "parameters": {"frame_rate": 15}}"#)
            #expect(compositeCreated.status == 201, "\(compositeCreated.body)")
            let composite = try JSONDecoder().decode(FunctionStatus.self, from: Data(compositeCreated.body.utf8))
            #expect(composite.inputs.count == 2)

            let transcoded = try #require(transcode.outputs.first?.track)
            let grid = try #require(composite.outputs.first?.track)
            let small = try await BraidSubscriber.subscribe(
                to: "\(base)/whep/video?track=\(transcoded)", audioTracks: 0, videoTracks: 1,
                options: forwardingOptions, group: group)
            let mosaic = try await BraidSubscriber.subscribe(
                to: "\(base)/whep/video?track=\(grid)", audioTracks: 0, videoTracks: 1,
                options: forwardingOptions, group: group)
            try await Task.sleep(for: .seconds(3))

            // The subscribers play the outputs: whole, decodable frames at the functions' rates.
            let smallVideo = try #require(await small.statistics()?.video.first)
            #expect(smallVideo.framesDecodable > 45 && smallVideo.keyframes >= 1, "\(smallVideo)")
            let mosaicVideo = try #require(await mosaic.statistics()?.video.first)
            #expect(mosaicVideo.framesDecodable > 20 && mosaicVideo.keyframes >= 1, "\(mosaicVideo)")

            // The node sees the outputs at the asked sizes (read from their keyframes).
            let room = try #require(await node.media.sessions.room(named: "video"))
            let sizes = Dictionary(
                room.tracks.compactMap { track in
                    track.id.flatMap { id in track.layers.first?.width.map { (id.description, "\($0)x\(track.layers[0].height ?? 0)") } }
                }, uniquingKeysWith: { first, _ in first })
            #expect(sizes[transcoded] == "320x180" && sizes[grid] == "640x360", "\(sizes)")

            let listed = try await dashboard.get("/api/v1/rooms/video/functions")
            let statuses = try JSONDecoder().decode([FunctionStatus].self, from: Data(listed.body.utf8))
            let transcodeStatus = try #require(statuses.first { $0.id == transcode.id })
            // Every input frame comes out (the publishers' own encoders, in a debug build on a busy machine,
            // may make fewer than 30 a second).
            #expect(transcodeStatus.framesOutPerSecond > 10, "\(transcodeStatus)")
            #expect(try #require(transcodeStatus.delayP95Ms) < 60, "\(transcodeStatus)")
            #expect((transcodeStatus.inputs.first?.video?.framesDecoded ?? 0) > 30, "\(transcodeStatus.inputs)")
            #expect(transcodeStatus.inputs.first?.video?.width == 640)
            let compositeStatus = try #require(statuses.first { $0.id == composite.id })
            #expect(compositeStatus.framesOutPerSecond > 10 && compositeStatus.framesOutPerSecond < 20, "\(compositeStatus)")
            #expect(compositeStatus.inputs.allSatisfy { ($0.video?.framesDecoded ?? 0) > 30 }, "\(compositeStatus.inputs)")
            #expect(compositeStatus.drops == 0 && transcodeStatus.drops == 0)

            for id in [transcode.id, composite.id] {
                #expect(try await dashboard.delete("/api/v1/rooms/video/functions/\(id)").status == 200)
            }
            for subscriber in [small, mosaic] { try await subscriber.close() }
            for publisher in publishers { try await publisher.close() }
        }
    }
}
