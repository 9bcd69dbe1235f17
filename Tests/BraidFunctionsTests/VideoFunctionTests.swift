import BraidCodecs
import BraidRTPStreams
import Foundation
import NIOCore
import Testing

@testable import BraidFunctions

/// One RTP packet of a test stream: what a function input receives.
struct TestVideoPacket {
    var sequenceNumber: UInt16
    var timestamp: UInt32
    var marker: Bool
    var payload: [UInt8]
    var frame: Int
}

/// Encodes pictures into VP8 and RTP payloads at 30 fps, as a publisher would send them.
final class TestVideoSource {
    let encoder: VP8Encoder
    let picture: I420Buffer
    private var packetizer = VP8Packetizer(maximumPayloadSize: 1200)
    private var sequenceNumber: UInt16 = 65_500  // wraps during the test
    private var frame = 0

    init(width: Int, height: Int, bitrate: Int) throws {
        self.encoder = try VP8Encoder(
            VP8Encoder.Configuration(width: width, height: height, bitrate: bitrate, cpuUsed: -8))
        self.picture = try I420Buffer(width: width, height: height)
    }

    /// Encodes the picture as it is now; returns the frame's packets.
    func next(keyframe: Bool = false) throws -> [TestVideoPacket] {
        var packets: [TestVideoPacket] = []
        let timestamp = UInt32(truncatingIfNeeded: 1_000 + self.frame * 3_000)
        let index = self.frame
        var scratch = ByteBuffer()
        _ = try self.picture.withImage { image throws(CodecError) in
            try self.encoder.encode(image, pts: Int64(index) * 3_000, forceKeyframe: keyframe) { encoded in
                let data = ByteBuffer(bytes: encoded.data)
                _ = self.packetizer.packetize(frame: data, scratch: &scratch) { payload, last in
                    packets.append(
                        TestVideoPacket(
                            sequenceNumber: self.sequenceNumber, timestamp: timestamp, marker: last,
                            payload: Array(payload.readableBytesView), frame: index))
                    self.sequenceNumber &+= 1
                }
            }
        }
        self.frame += 1
        return packets
    }
}

/// Luma noise that moves every frame, so an encoder is bound by its bitrate, not by the content.
struct MovingNoise {
    private var noise: [UInt8]
    init(count: Int) {
        var state: UInt32 = 0x1234_5678
        var noise = [UInt8](repeating: 0, count: count)
        for index in 0..<count {
            state = state &* 1_664_525 &+ 1_013_904_223
            noise[index] = UInt8(truncatingIfNeeded: 60 + (state >> 24) % 120)
        }
        self.noise = noise
    }

    func paint(_ buffer: I420Buffer, frame: Int) {
        let offset = (frame * 7919) % (self.noise.count - buffer.y.count)
        buffer.y.replaceSubrange(0..<buffer.y.count, with: self.noise[offset..<(offset + buffer.y.count)])
    }
}

/// A solid colour with the frame index as 16 black/white blocks across the top eighth of the picture.
func paintIndexed(_ buffer: I420Buffer, colour: I420Buffer.Colour, index: Int) throws {
    try buffer.fill(colour)
    let blockWidth = buffer.width / 16
    let band = (buffer.height / 8) & ~1
    for bit in 0..<16 {
        let colour: I420Buffer.Colour = (index >> (15 - bit)) & 1 == 1 ? .white : .black
        try buffer.fill(colour, in: I420Buffer.Rect(x: bit * blockWidth, y: 0, width: blockWidth, height: band))
    }
}

/// Reads the index `paintIndexed` drew, from `rect` of a decoded picture (scaled or not).
func readIndex(_ image: I420Image, in rect: I420Buffer.Rect) -> Int {
    let row = rect.y + rect.height / 16
    var value = 0
    for bit in 0..<16 {
        let column = rect.x + bit * rect.width / 16 + rect.width / 32
        value = value << 1 | (image.y[row * image.yStride + column] > 125 ? 1 : 0)
    }
    return value
}

/// The mean Y, U and V of the middle quarter of `rect`.
func meanColour(_ image: I420Image, in rect: I420Buffer.Rect) -> (y: Int, u: Int, v: Int) {
    var sums = (0, 0, 0)
    var count = 0
    for row in stride(from: rect.y + rect.height * 3 / 8, to: rect.y + rect.height * 5 / 8, by: 2) {
        for column in stride(from: rect.x + rect.width * 3 / 8, to: rect.x + rect.width * 5 / 8, by: 2) {
            sums.0 += Int(image.y[row * image.yStride + column])
            sums.1 += Int(image.u[row / 2 * image.uStride + column / 2])
            sums.2 += Int(image.v[row / 2 * image.vStride + column / 2])
            count += 1
        }
    }
    return (sums.0 / count, sums.1 / count, sums.2 / count)
}

@Suite("Video functions (real libvpx and libyuv, no sockets)")
struct VideoFunctionTests {
    private static func feed(
        _ packets: [TestVideoPacket], to transcode: Transcode, at now: NIODeadline, _ emit: (EncodedVideoFrame) -> Void
    ) {
        for packet in packets {
            packet.payload.withUnsafeBytes { payload in
                transcode.receive(
                    "in", sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp, marker: packet.marker,
                    payload: payload, arrivalNanoseconds: Int64(now.uptimeNanoseconds), captureNTP: nil, now: now, emit: emit)
            }
        }
    }

    @Test("transcode: 1280x720 in, 640x360 out at the target bitrate (within 15 %)")
    func transcodeSizeAndBitrate() throws {
        let source = try TestVideoSource(width: 1280, height: 720, bitrate: 2_500_000)
        let noise = MovingNoise(count: 1280 * 720 * 2)
        let transcode = try Transcode(configuration: Transcode.Configuration(width: 640, height: 360, bitrate: 400_000))
        try transcode.addInput("in", participant: "p")
        let decoder = try VP8Decoder()
        var sizes: Set<String> = []
        var bytesAfterFirstSecond = 0
        var framesOut = 0
        var keyframes = 0
        let start = NIODeadline.now()
        for frame in 0..<90 {
            noise.paint(source.picture, frame: frame)
            let now = start + .milliseconds(Int64(frame) * 33)
            Self.feed(try source.next(), to: transcode, at: now) { encoded in
                framesOut += 1
                if encoded.isKeyframe { keyframes += 1 }
                if frame >= 30 { bytesAfterFirstSecond += encoded.data.count }
                if let picture = try? decoder.decode(encoded.data) {
                    sizes.insert("\(picture.image.width)x\(picture.image.height)")
                }
            }
        }
        #expect(sizes == ["640x360"])
        #expect(framesOut == 90)
        #expect(keyframes >= 1)
        let bitrate = Double(bytesAfterFirstSecond * 8) / 2.0  // 60 frames at 30 fps
        #expect(abs(bitrate - 400_000) / 400_000 <= 0.15, "output \(Int(bitrate)) bit/s for a 400 kbit/s target")
        #expect(transcode.statistics(of: "in")?.framesDecoded == 90)
    }

    @Test("transcode: the frame rate is capped, the bitrate follows an estimate, keyframes come on demand")
    func transcodeRateAndKeyframes() throws {
        let source = try TestVideoSource(width: 320, height: 180, bitrate: 300_000)
        let pattern = try TestPattern(width: 320, height: 180)
        let transcode = try Transcode(
            configuration: Transcode.Configuration(width: 160, height: 90, framesPerSecond: 15, bitrate: 200_000))
        try transcode.addInput("in", participant: "p")
        var out: [Bool] = []
        let start = NIODeadline.now()
        for frame in 0..<60 {
            try pattern.render(frameIndex: frame, into: source.picture)
            if frame == 40 { transcode.requestKeyframe() }
            Self.feed(try source.next(), to: transcode, at: start + .milliseconds(Int64(frame) * 33)) { out.append($0.isKeyframe) }
        }
        #expect(out.count == 30, "a 15 fps cap on a 30 fps input keeps every other frame")
        #expect(transcode.framesDroppedForRate == 30)
        #expect(out.first == true)
        #expect(out[20...].contains(true), "a keyframe was asked for at input frame 40")
        transcode.setBitrate(20_000)
        #expect(transcode.currentBitrate == 50_000, "clamped to the minimum")
        transcode.setBitrate(10_000_000)
        #expect(transcode.currentBitrate == 200_000, "never above the target")
    }

    @Test("transcode: a lost packet skips frames until a keyframe and asks the source for one")
    func transcodeLoss() throws {
        let source = try TestVideoSource(width: 320, height: 180, bitrate: 600_000)
        let noise = MovingNoise(count: 320 * 180 * 4)
        let transcode = try Transcode(configuration: Transcode.Configuration(width: 160, height: 90, bitrate: 100_000))
        try transcode.addInput("in", participant: "p")
        var out = 0
        let start = NIODeadline.now()
        var now = start
        for frame in 0..<20 {
            noise.paint(source.picture, frame: frame)
            var packets = try source.next()
            if frame == 10 {
                #expect(packets.count >= 2)
                packets.removeFirst()  // the frame's start is lost for good
            }
            now = start + .milliseconds(Int64(frame) * 33)
            Self.feed(packets, to: transcode, at: now) { _ in out += 1 }
        }
        transcode.poll(now: now + .seconds(1)) { _ in out += 1 }
        #expect(out < 19, "frames after the loss are skipped, not decoded from a broken reference")
        #expect(transcode.takeKeyframeRequest(nowNanoseconds: Int64(now.uptimeNanoseconds)))
        #expect(!transcode.takeKeyframeRequest(nowNanoseconds: Int64(now.uptimeNanoseconds) + 1_000_000), "throttled")
        noise.paint(source.picture, frame: 20)
        var resumed = 0
        Self.feed(try source.next(keyframe: true), to: transcode, at: now + .milliseconds(33)) { _ in resumed += 1 }
        #expect(resumed == 1, "the keyframe restarts the output")
        let statistics = try #require(transcode.statistics(of: "in"))
        #expect(statistics.framesLost + statistics.framesSkipped >= 1)
    }

    @Test("composite: every cell holds its input's colour and frame index; the speaker is outlined")
    func compositeCells() throws {
        let colours: [I420Buffer.Colour] = [
            .init(y: 81, u: 90, v: 240), .init(y: 145, u: 54, v: 34), .init(y: 41, u: 240, v: 110),
            .init(y: 170, u: 166, v: 16),
        ]
        let sources = try colours.map { _ in try TestVideoSource(width: 640, height: 360, bitrate: 800_000) }
        let composite = try Composite(configuration: Composite.Configuration(width: 640, height: 360, bitrate: 1_500_000))
        for index in colours.indices { try composite.addInput("in\(index)", participant: "p\(index)") }
        composite.setActiveSpeaker("p2")
        let layout = composite.layout
        #expect(layout.map(\.cell) == [
            I420Buffer.Rect(x: 0, y: 0, width: 320, height: 180), I420Buffer.Rect(x: 320, y: 0, width: 320, height: 180),
            I420Buffer.Rect(x: 0, y: 180, width: 320, height: 180), I420Buffer.Rect(x: 320, y: 180, width: 320, height: 180),
        ])
        let decoder = try VP8Decoder()
        let start = NIODeadline.now()
        var checked = 0
        for frame in 0..<20 {
            let now = start + .milliseconds(Int64(frame) * 33)
            for (index, source) in sources.enumerated() {
                // Each input carries its own index so a cell cannot show another input's picture.
                try paintIndexed(source.picture, colour: colours[index], index: 1000 * (index + 1) + frame)
                for packet in try source.next() {
                    packet.payload.withUnsafeBytes { payload in
                        composite.receive(
                            "in\(index)", sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp,
                            marker: packet.marker, payload: payload, arrivalNanoseconds: 0, captureNTP: nil, now: now)
                    }
                }
            }
            var outputs: [[UInt8]] = []
            composite.tick(now: now) { outputs.append(Array($0.data)) }
            for output in outputs {
                guard let picture = try decoder.decode(output), frame >= 5 else { continue }
                for (index, entry) in layout.enumerated() {
                    let mean = meanColour(picture.image, in: entry.cell)
                    let expected = colours[index]
                    #expect(abs(mean.y - Int(expected.y)) <= 12 && abs(mean.u - Int(expected.u)) <= 12
                        && abs(mean.v - Int(expected.v)) <= 12, "cell \(index): \(mean) for \(expected)")
                    #expect(readIndex(picture.image, in: entry.cell) == 1000 * (index + 1) + frame, "cell \(index)")
                }
                // The speaker's cell (p2) has a yellow outline; the others a black one.
                let speakerCell = layout[2].cell
                let edge = picture.image.u[(speakerCell.y + 90) / 2 * picture.image.uStride + (speakerCell.x + 1) / 2]
                #expect(edge < 70, "the outline of the speaker's cell is yellow (low Cb), got \(edge)")
                let quietCell = layout[1].cell
                let quietEdge = picture.image.y[(quietCell.y + 90) * picture.image.yStride + quietCell.x + 1]
                #expect(quietEdge < 40, "other cells have a black outline")
                checked += 1
            }
        }
        #expect(checked >= 14)
        composite.removeInput("in3")
        #expect(composite.layout.count == 3)
        // Without inputs the output pauses: no frames are encoded.
        for index in 0..<3 { composite.removeInput("in\(index)") }
        var paused = 0
        composite.tick(now: start + .seconds(1)) { _ in paused += 1 }
        #expect(paused == 0)
    }

    @Test(arguments: [
        (#"{"kind": "audio-mix", "inputs": "all-audio", "parameters": {"width": 640}}"#, "video parameter"),
        (#"{"kind": "transcode", "inputs": "all-video", "parameters": {"mix_minus": true}}"#, "mix_minus"),
        (#"{"kind": "transcode", "inputs": "all-video", "parameters": {"highlight_speaker": true}}"#, "composite parameter"),
        (#"{"kind": "transcode", "inputs": "all-video", "parameters": {"width": 641, "height": 360}}"#, "even"),
        (#"{"kind": "composite", "inputs": "all-video", "parameters": {"width": 8000, "height": 360}}"#, "even"),
        (#"{"kind": "composite", "inputs": "all-video", "parameters": {"frame_rate": 0}}"#, "frame_rate"),
        (#"{"kind": "composite", "inputs": "all-video", "parameters": {"bitrate": 1000}}"#, "bitrate"),
        (#"{"kind": "audio-mix", "inputs": "all-audio", "parameters": {"bitrate": 1000000}}"#, "bitrate"),
    ])
    func outOfRangeParametersAreRefused(_ json: String, reason: String) throws {
        let request = try JSONDecoder().decode(FunctionRequest.self, from: Data(json.utf8))
        do {
            _ = try FunctionHost.makePipeline(request)
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.code == .badRequest && error.reason.contains(reason), "\(error.reason)")
        }
    }

    @Test("transcode of an Opus input: a lower Opus bitrate, no video parameters")
    func audioTranscode() throws {
        let request = FunctionRequest(kind: .transcode, inputs: .tracks([]), parameters: .init(bitrate: 16_000))
        let pipeline = try #require(try FunctionHost.makePipeline(request, video: false) as? AudioMixPipeline)
        #expect(pipeline.mix.configuration.bitrate == 16_000)
        #expect(pipeline.mix.configuration.mixer.minimumGain == 1 && pipeline.mix.configuration.mixer.maximumGain == 1)
        let sized = FunctionRequest(kind: .transcode, inputs: .tracks([]), parameters: .init(width: 320, height: 180))
        #expect(throws: FunctionError.self) { try FunctionHost.makePipeline(sized, video: false) }
        #expect(try FunctionHost.makePipeline(sized, video: true) is TranscodePipeline)
    }

    @Test("broken input frames (corrupt VP8 data, truncated and empty payloads) are counted, never crash, and a keyframe resumes")
    func brokenFramesAreCounted() throws {
        let source = try TestVideoSource(width: 320, height: 180, bitrate: 300_000)
        let pattern = try TestPattern(width: 320, height: 180)
        let transcode = try Transcode(configuration: Transcode.Configuration(width: 160, height: 90, bitrate: 100_000))
        try transcode.addInput("in", participant: "p")
        var out = 0
        let now = NIODeadline.now()
        var state: UInt32 = 7
        for frame in 0..<20 {
            try pattern.render(frameIndex: frame, into: source.picture)
            var packets = try source.next(keyframe: frame == 0 || frame == 19)
            if (5..<15).contains(frame) {
                // Keep each descriptor (4 bytes), scramble the VP8 data behind it, or cut the packet short.
                for index in packets.indices {
                    if frame % 3 == 0 {
                        packets[index].payload = Array(packets[index].payload.prefix(frame % 2 == 0 ? 1 : 4))
                    } else {
                        for byte in 4..<packets[index].payload.count {
                            state = state &* 1_103_515_245 &+ 12_345
                            packets[index].payload[byte] = UInt8(truncatingIfNeeded: state >> 16)
                        }
                    }
                }
            }
            Self.feed(packets, to: transcode, at: now + .milliseconds(Int64(frame) * 33)) { _ in out += 1 }
        }
        let statistics = try #require(transcode.statistics(of: "in"))
        #expect(statistics.decodeErrors + statistics.framesSkipped + statistics.framesLost > 0, "\(statistics)")
        #expect(out >= 6, "frames before the damage and the keyframe after it come out: \(out)")
        // Empty payloads are refused before any parsing.
        [UInt8]().withUnsafeBytes { empty in
            transcode.receive(
                "in", sequenceNumber: 1, timestamp: 1, marker: true, payload: empty, arrivalNanoseconds: 0, captureNTP: nil,
                now: now) { _ in }
        }
    }
}
