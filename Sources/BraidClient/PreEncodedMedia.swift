import BraidCodecs
import NIOCore

/// One encoded video frame.
public struct EncodedVideoFrame: Sendable {
    /// The VP8 frame.
    public var data: ByteBuffer
    /// Whether it is a keyframe.
    public var isKeyframe: Bool
    /// Temporal layer (TID) when the stream has temporal layers, else nil.
    public var temporalLayer: UInt8?
    /// Y: the frame depends only on TL0.
    public var layerSync: Bool

    /// Creates a frame description.
    public init(data: ByteBuffer, isKeyframe: Bool, temporalLayer: UInt8? = nil, layerSync: Bool = false) {
        self.data = data
        self.isKeyframe = isKeyframe
        self.temporalLayer = temporalLayer
        self.layerSync = layerSync
    }
}

/// Audio and video encoded once and replayed by any number of publishers, so that a simulated peer
/// costs packetization and SRTP only, not encoding.
///
/// The video is one group of pictures: a keyframe, then delta frames that depend on it. Replaying it
/// from the start after the last frame (or early, to answer a PLI) always gives a decodable stream. The
/// test pattern's frames carry their index (``TestPattern/readFrameIndex(from:)``), so a receiver that
/// decodes can tell which frame it got.
public final class PreEncodedMedia: Sendable {
    /// 20 ms Opus packets (48 kHz, mono).
    public let audioPackets: [ByteBuffer]
    /// The video group of pictures, keyframe first.
    public let videoFrames: [EncodedVideoFrame]
    /// Video frame rate the frames were encoded for.
    public let framesPerSecond: Int

    /// The video's bitrate as encoded (bits of the group of pictures over its duration), which a simple
    /// picture can leave far below the encoder's target; nil without video.
    public var encodedVideoBitrate: Int? {
        guard !self.videoFrames.isEmpty else { return nil }
        let bytes = self.videoFrames.reduce(0) { $0 + $1.data.readableBytes }
        return bytes * 8 * self.framesPerSecond / self.videoFrames.count
    }

    /// Wraps packets a program encoded itself.
    /// - Throws: ``BraidClientError/badArgument(_:)`` when there is video but its first frame is not a keyframe.
    public init(
        audioPackets: [ByteBuffer], videoFrames: [EncodedVideoFrame], framesPerSecond: Int
    ) throws(BraidClientError) {
        guard videoFrames.isEmpty || videoFrames[0].isKeyframe else {
            throw .badArgument("pre-encoded video must start with a keyframe")
        }
        guard (1...120).contains(framesPerSecond) else { throw .badArgument("frame rate \(framesPerSecond)") }
        self.audioPackets = audioPackets
        self.videoFrames = videoFrames
        self.framesPerSecond = framesPerSecond
    }

    /// Encodes `audioPCM` (48 kHz mono, cut to whole 20 ms frames) and the moving test pattern once.
    public static func synthetic(
        audioPCM: [Int16], audioBitrate: Int = 32_000, videoFrames: Int = 60
    ) throws(BraidClientError) -> PreEncodedMedia {
        guard (0...3600).contains(videoFrames) else { throw .badArgument("0-3600 video frames") }
        let framesPerSecond = 30
        do {
            var start = 0
            let audio = try Self.encodeOpus(bitrate: audioBitrate) { samples in
                guard start + samples <= audioPCM.count else { return nil }
                defer { start += samples }
                return Array(audioPCM[start..<(start + samples)])
            }
            guard !audio.isEmpty else { throw BraidClientError.badArgument("audio shorter than one 20 ms frame") }
            let video = try Self.encodeTestPattern(
                frames: videoFrames, width: 320, height: 180, framesPerSecond: framesPerSecond, bitrate: 300_000,
                temporalLayers: 1)
            return try PreEncodedMedia(audioPackets: audio, videoFrames: video, framesPerSecond: framesPerSecond)
        } catch let error as BraidClientError {
            throw error
        } catch {
            throw .badArgument("encoding the audio: \(error)")
        }
    }

    /// Encodes a sine tone and the moving test pattern once.
    ///
    /// - Parameters:
    ///   - audioSeconds: length of the audio loop (a multiple of 20 ms).
    ///   - videoFrames: frames in the group of pictures (the keyframe interval of the replay).
    ///   - temporalLayers: 1 (no TID) to 3.
    public static func synthetic(
        audioSeconds: Double = 2,
        toneFrequency: Double = 440,
        audioBitrate: Int = 32_000,
        videoFrames: Int = 60,
        width: Int = 320,
        height: Int = 180,
        framesPerSecond: Int = 30,
        videoBitrate: Int = 300_000,
        temporalLayers: Int = 1,
        videoNoise: UInt8 = 0
    ) throws(BraidClientError) -> PreEncodedMedia {
        guard audioSeconds.isFinite, (0...600).contains(audioSeconds), (0...3600).contains(videoFrames),
            (1...120).contains(framesPerSecond), (1...4).contains(temporalLayers)
        else {
            throw .badArgument("audio 0-600 s, 0-3600 video frames, 1-120 fps and 1-4 temporal layers")
        }
        do {
            var audio: [ByteBuffer] = []
            if audioSeconds > 0 {
                var tone = SineTone(frequency: toneFrequency)
                var remaining = max(1, Int(audioSeconds * 50))
                audio = try Self.encodeOpus(bitrate: audioBitrate) { samples in
                    guard remaining > 0 else { return nil }
                    remaining -= 1
                    return tone.next(samplesPerChannel: samples)
                }
            }
            let video = try Self.encodeTestPattern(
                frames: videoFrames, width: width, height: height, framesPerSecond: framesPerSecond,
                bitrate: videoBitrate, temporalLayers: temporalLayers, noise: videoNoise)
            return try PreEncodedMedia(audioPackets: audio, videoFrames: video, framesPerSecond: framesPerSecond)
        } catch let error as BraidClientError {
            throw error
        } catch {
            throw .badArgument("encoding the synthetic media: \(error)")
        }
    }

    /// Encodes 20 ms Opus frames while `nextFrame(samplesPerFrame)` returns PCM.
    private static func encodeOpus(bitrate: Int, nextFrame: (Int) -> [Int16]?) throws -> [ByteBuffer] {
        let encoder = try OpusEncoder(OpusEncoder.Configuration(bitrate: bitrate))
        var output = [UInt8](repeating: 0, count: OpusEncoder.maximumPacketSize)
        var packets: [ByteBuffer] = []
        while let pcm = nextFrame(encoder.samplesPerChannel) {
            let length = try encoder.encode(pcm: pcm, into: &output)
            packets.append(ByteBuffer(bytes: output[0..<length]))
        }
        return packets
    }

    /// Encodes `frames` frames of the moving test pattern, the first a keyframe.
    private static func encodeTestPattern(
        frames: Int, width: Int, height: Int, framesPerSecond: Int, bitrate: Int, temporalLayers: Int, noise: UInt8 = 0
    ) throws -> [EncodedVideoFrame] {
        guard frames > 0 else { return [] }
        let encoder = try VP8Encoder(
            VP8Encoder.Configuration(
                width: width, height: height, framesPerSecond: framesPerSecond, bitrate: bitrate,
                maxKeyframeInterval: 100_000, temporalLayers: temporalLayers))
        var pattern = try TestPattern(width: width, height: height)
        pattern.noise = noise
        let picture = try I420Buffer(width: width, height: height)
        var video: [EncodedVideoFrame] = []
        for index in 0..<frames {
            try pattern.render(frameIndex: index, into: picture)
            _ = try picture.withImage { (image: I420Image) throws(CodecError) in
                try encoder.encode(image, forceKeyframe: index == 0) { frame in
                    video.append(
                        EncodedVideoFrame(
                            data: ByteBuffer(bytes: frame.data), isKeyframe: frame.isKeyframe,
                            temporalLayer: temporalLayers > 1 ? UInt8(frame.temporalLayerID) : nil,
                            layerSync: frame.layerSync))
                }
            }
        }
        return video
    }
}
