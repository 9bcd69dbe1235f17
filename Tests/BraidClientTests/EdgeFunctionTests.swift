import BraidFunctions
import BraidNode
import BraidSFU
import Foundation
import NIOCore
import NIOPosix
import Testing
import WAT

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
            // The subscribers play the outputs: whole, decodable frames at the functions' rates (about 3 s
            // of them; a debug build on a busy machine may take longer).
            _ = try await eventually(within: 12) {
                let transcoded = await small.statistics()?.video.first?.framesDecodable ?? 0
                let mosaic = await mosaic.statistics()?.video.first?.framesDecodable ?? 0
                return transcoded > 45 && mosaic > 20
            }
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

    /// A module of the edge-function ABI (Sources/BraidWasm/ABI.md) whose braid_process_audio is `body`,
    /// base64 for a request.
    private static func audioModule(_ body: String, memory: String = "(memory 1)") throws -> String {
        let text = """
            (module
              (import "env" "memory" \(memory))
              (func (export "braid_abi_version") (result i32) (i32.const 1))
              (func (export "braid_frame_buffer") (param i32) (result i32) (i32.const 1024))
              (func (export "braid_process_audio") (param i32 i32 i32 i32) (result i32) \(body)))
            """
        return Data(try wat2wasm(text)).base64EncodedString()
    }

    @Test("WebAssembly functions over the API: the overlay runs; a looping, an over-allocating and a trapping module are stopped and reported while media keeps flowing")
    func wasmFunctionsEndToEnd() async throws {
        try await withLoopbackNode { node, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let base = "http://127.0.0.1:\(port)"
            let dashboard = NodeDashboard(port: port)
            let media = try PreEncodedMedia.synthetic(audioSeconds: 1, toneFrequency: 440, videoFrames: 30)
            let publisher = try await BraidPublisher.publish(
                to: "\(base)/whip/wasm", audio: .preEncoded(media), video: .preEncoded(media),
                options: forwardingOptions, group: group)
            // Another room, which the failing modules must not disturb.
            let otherPublisher = try await BraidPublisher.publish(
                to: "\(base)/whip/other", audio: .preEncoded(media), video: .preEncoded(media),
                options: forwardingOptions, group: group)
            let otherSubscriber = try await BraidSubscriber.subscribe(
                to: "\(base)/whep/other", audioTracks: 1, videoTracks: 1, options: forwardingOptions, group: group)
            var tracks: [SFUTrackStatus] = []
            for _ in 0..<50 where tracks.count < 2 {
                try await Task.sleep(for: .milliseconds(100))
                tracks = await node.media.sessions.room(named: "wasm")?.tracks ?? []
            }
            let audio = try #require(tracks.first { $0.kind == .audio }?.id)
            let video = try #require(tracks.first { $0.kind == .video }?.id)

            func start(_ body: String) async throws -> (status: Int, function: FunctionStatus?, body: String) {
                let response = try await dashboard.post(
                    "/api/v1/rooms/wasm/functions", contentType: "application/json", body: body)
                return (response.status, try? JSONDecoder().decode(FunctionStatus.self, from: Data(response.body.utf8)), response.body)
            }
            // Refused at load, with the reason: not a module, and a video module for audio.
            let garbage = try await start(#"{"kind": "wasm-audio", "inputs": ["\#(audio)"], "parameters": {"module_base64": "AAAA"}}"#)
            #expect(garbage.status == 400 && garbage.body.contains("does not load"), "\(garbage.body)")
            let wrongMedia = try await start(#"{"kind": "wasm-audio", "inputs": ["\#(audio)"], "parameters": {"module": "overlay"}}"#)
            #expect(wrongMedia.status == 400 && wrongMedia.body.contains("braid_process_audio"), "\(wrongMedia.body)")
            // Oversized: a module past the sandbox's 4 MiB limit (400), a body past the API's (413).
            let oversized = Data(count: 4_300_000).base64EncodedString()
            let tooLarge = try await start(#"{"kind": "wasm-audio", "inputs": ["\#(audio)"], "parameters": {"module_base64": "\#(oversized)"}}"#)
            #expect(tooLarge.status == 400 && tooLarge.body.contains("does not load"), "\(tooLarge.status) \(tooLarge.body.prefix(300))")
            let huge = Data(count: 5_000_000).base64EncodedString()
            let tooLong = try await start(#"{"kind": "wasm-audio", "inputs": ["\#(audio)"], "parameters": {"module_base64": "\#(huge)"}}"#)
            #expect(tooLong.status == 413, "\(tooLong.status) \(tooLong.body.prefix(300))")

            // A debug build runs WasmKit unoptimised (100-300x slower): small budgets keep a runaway short.
            let overlay = try await start(
                #"{"kind": "wasm-video", "inputs": ["\#(video)"], "parameters": {"module": "overlay", "width": 320, "height": 180, "fuel": 50000000}}"#)
            #expect(overlay.status == 201, "\(overlay.body)")
            let gain = try await start(
                #"{"kind": "wasm-audio", "inputs": ["\#(audio)"], "parameters": {"module": "gain", "parameter": 50}}"#)
            #expect(gain.status == 201, "\(gain.body)")
            let loop = try Self.audioModule("(loop $forever (br $forever)) (i32.const 0)")
            let grow = try Self.audioModule(
                """
                (block $full (loop $more (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1))) (br $more)))
                (i32.store (i32.mul (memory.size) (i32.const 65536)) (i32.const 1)) (i32.const 0)
                """)
            let trap = try Self.audioModule("(unreachable)")
            var bad: [String: String] = [:]
            for (name, module, limits) in [
                ("loop", loop, #""fuel": 20000"#), ("grow", grow, #""memory_pages": 4"#), ("trap", trap, #""fuel": 20000"#),
            ] {
                let started = try await start(
                    #"{"kind": "wasm-audio", "inputs": ["\#(audio)"], "parameters": {"module_base64": "\#(module)", \#(limits)}}"#)
                #expect(started.status == 201, "\(name): \(started.body)")
                bad[name] = started.function?.id
            }
            let player = try await BraidSubscriber.subscribe(
                to: "\(base)/whep/wasm?track=\(try #require(overlay.function?.outputs.first?.track))", audioTracks: 0,
                videoTracks: 1, options: forwardingOptions, group: group)
            let before = try #require(await otherSubscriber.statistics())
            try await Task.sleep(for: .seconds(3))

            let listed = try await dashboard.get("/api/v1/rooms/wasm/functions")
            let statuses = try JSONDecoder().decode([FunctionStatus].self, from: Data(listed.body.utf8))
            func status(_ id: String?) -> FunctionStatus? { statuses.first { $0.id == id } }
            #expect(status(bad["loop"])?.state.hasPrefix("stopped: outOfFuel") == true, "\(String(describing: status(bad["loop"])))")
            #expect(status(bad["grow"])?.state.hasPrefix("stopped: memoryLimit") == true, "\(String(describing: status(bad["grow"])))")
            #expect(status(bad["trap"])?.state.hasPrefix("stopped: trap") == true, "\(String(describing: status(bad["trap"])))")
            for id in bad.values { #expect(status(id)?.outputs.isEmpty == true && status(id)?.inputs.isEmpty == true) }
            // The good modules run on.
            #expect(status(overlay.function?.id)?.state == "running")
            #expect((status(overlay.function?.id)?.framesOutPerSecond ?? 0) > 5, "\(String(describing: status(overlay.function?.id)))")
            #expect(status(gain.function?.id)?.state == "running")
            let played = try #require(await player.statistics()?.video.first)
            #expect(played.framesDecodable > 20, "\(played)")
            // The other room's media kept flowing.
            let after = try #require(await otherSubscriber.statistics())
            #expect(after.video[0].framesDecodable - before.video[0].framesDecodable > 60, "\(after.video)")
            #expect(after.audio[0].packetsReceived - before.audio[0].packetsReceived > 100, "\(after.audio)")

            // A stopped function stays listed with its reason until deleted.
            for id in bad.values {
                #expect(try await dashboard.delete("/api/v1/rooms/wasm/functions/\(id)").status == 200)
            }
            for subscriber in [player, otherSubscriber] { try await subscriber.close() }
            for publisher in [publisher, otherPublisher] { try await publisher.close() }
        }
    }
}
