import BraidCodecs
import NIOCore

/// What happened to one video input's frames.
public struct VideoInputStatistics: Sendable, Hashable, Codable {
    public var framesDecoded = 0
    /// Given up incomplete, lost whole, or not rebuildable.
    public var framesLost = 0
    /// Complete but not decodable (the reference chain was broken): skipped until a keyframe.
    public var framesSkipped = 0
    public var decodeErrors = 0
    /// Keyframes asked of the input's source.
    public var keyframeRequests = 0
    /// Size of the last decoded picture.
    public var width: Int?
    public var height: Int?

    enum CodingKeys: String, CodingKey {
        case width, height
        case framesDecoded = "frames_decoded"
        case framesLost = "frames_lost"
        case framesSkipped = "frames_skipped"
        case decodeErrors = "decode_errors"
        case keyframeRequests = "keyframe_requests"
    }
}

/// One VP8 input of a video function: frames rebuilt from RTP, decoded in order; a broken reference
/// chain skips frames until a keyframe and asks the source for one (at most every 500 ms).
final class VideoInput {
    /// A decoded picture, valid during the call it is passed to.
    struct Picture {
        var image: I420Image
        var timestamp: UInt32
        var newestArrival: Int64
        var captureNTP: UInt64?
    }

    static let keyframeRequestInterval: Int64 = 500_000_000

    let participant: String
    private var reassembler = VP8FrameReassembler()
    private let decoder: VP8Decoder
    private(set) var statistics = VideoInputStatistics()
    private var lastKeyframeRequest: Int64?

    init(participant: String) throws(CodecError) {
        self.participant = participant
        self.decoder = try VP8Decoder()
    }

    /// Adds one RTP packet's payload; `decoded` gets each picture it completes.
    func receive(
        sequenceNumber: UInt16, timestamp: UInt32, marker: Bool, payload: UnsafeRawBufferPointer,
        arrivalNanoseconds: Int64, captureNTP: UInt64?, now: NIODeadline, _ decoded: (Picture) -> Void
    ) {
        self.reassembler.insert(
            sequenceNumber: sequenceNumber, timestamp: timestamp, marker: marker, payload: payload,
            arrivalNanoseconds: arrivalNanoseconds, captureNTP: captureNTP, now: now
        ) { frame in self.decode(frame, decoded) }
        self.statistics.framesLost = self.reassembler.framesLost
    }

    /// Gives up frames whose packets did not all come in time.
    func poll(now: NIODeadline, _ decoded: (Picture) -> Void) {
        self.reassembler.poll(now: now) { frame in self.decode(frame, decoded) }
        self.statistics.framesLost = self.reassembler.framesLost
    }

    /// Whether to ask the source for a keyframe now (the chain is broken and the last ask is old); the
    /// ask is counted.
    func takeKeyframeRequest(nowNanoseconds: Int64) -> Bool {
        guard self.reassembler.needsKeyframe else { return false }
        if let last = self.lastKeyframeRequest, nowNanoseconds - last < Self.keyframeRequestInterval { return false }
        self.lastKeyframeRequest = nowNanoseconds
        self.statistics.keyframeRequests += 1
        return true
    }

    private func decode(_ frame: VP8FrameReassembler.Frame, _ decoded: (Picture) -> Void) {
        // (The reassembler is mid-call here: its counters are read after it returns.)
        guard frame.isDecodable else {
            self.statistics.framesSkipped += 1
            return
        }
        do {
            guard let picture = try self.decoder.decode(frame.data), !picture.isCorrupted else {
                self.statistics.decodeErrors += 1
                return
            }
            self.statistics.framesDecoded += 1
            self.statistics.width = picture.image.width
            self.statistics.height = picture.image.height
            decoded(
                Picture(
                    image: picture.image, timestamp: frame.timestamp, newestArrival: frame.newestArrival,
                    captureNTP: frame.captureNTP))
        } catch {
            self.statistics.decodeErrors += 1
        }
    }
}

/// One encoded output frame of a video function, valid during the call it is passed to.
public struct EncodedVideoFrame {
    /// The VP8 frame.
    public var data: UnsafeRawBufferPointer
    public var isKeyframe: Bool
    /// RTP timestamp (90 kHz) past the output's base.
    public var timestampOffset: UInt32
    public var captureNTP: UInt64?
    /// When the newest input frame in it arrived (monotonic ns), for the function's own delay.
    public var newestArrival: Int64?
}

/// The VP8 encoder of a video function's output, its size and frame rate checked: libwebrtc's real-time
/// settings at speed 8 (fastest), CBR, no frame drops (every frame handed to it comes out), a keyframe at
/// least every 10 s.
/// - Throws: ``CodecError/Code/badArgument`` for an odd size, one outside 16-3840 x 16-2160, or a frame
///   rate outside 1-60; what libvpx refuses.
func makeOutputEncoder(width: Int, height: Int, framesPerSecond: Int, bitrate: Int) throws(CodecError) -> VP8Encoder {
    guard width % 2 == 0, height % 2 == 0, (16...3840).contains(width), (16...2160).contains(height) else {
        throw CodecError(.badArgument, "output size \(width)x\(height): even, 16-3840 x 16-2160")
    }
    guard (1...60).contains(framesPerSecond) else {
        throw CodecError(.badArgument, "frame rate \(framesPerSecond): 1-60")
    }
    return try VP8Encoder(
        VP8Encoder.Configuration(
            width: width, height: height, framesPerSecond: framesPerSecond, bitrate: bitrate,
            maxKeyframeInterval: 10 * framesPerSecond, cpuUsed: -8))
}
