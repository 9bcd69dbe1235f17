public import BraidCodecs
import BraidRTPStreams
public import NIOCore

/// The `transcode` function without threads or sockets: one VP8 input to VP8 at a smaller size, a lower
/// frame rate and a lower bitrate.
///
/// ```
///  receive ─▶ VideoInput (reassemble, decode) ─▶ frame-rate gate ─▶ I420 box scale ─▶ VP8Encoder ─▶ emit
/// ```
///
/// Each input frame is handled as it completes (no added buffering): the output frame keeps the input
/// frame's timing (RTP timestamp offset, capture time). The encoder's bitrate follows what the output's
/// subscribers can take (``setBitrate(_:)``), never above the configured target; keyframes come on
/// demand (``requestKeyframe()``).
public final class Transcode {
    public struct Configuration: Sendable, Hashable {
        /// Output size: even, 16…3840 × 16…2160.
        public var width: Int
        public var height: Int
        /// Highest output frame rate; input frames closer together than this are dropped.
        public var framesPerSecond: Int
        /// Target bitrate (bit/s): the most the output uses.
        public var bitrate: Int
        /// The least the bitrate follows subscribers down to.
        public var minimumBitrate: Int

        public init(width: Int = 640, height: Int = 360, framesPerSecond: Int = 30, bitrate: Int = 500_000) {
            self.width = width
            self.height = height
            self.framesPerSecond = framesPerSecond
            self.bitrate = bitrate
            self.minimumBitrate = min(bitrate, 50_000)
        }
    }

    public let configuration: Configuration
    private let encoder: VP8Encoder
    private let scaled: I420Buffer
    private var input: VideoInput?
    private(set) var inputID: String?
    private var timestamps = TimestampUnwrapper()
    private var firstTimestamp: Int64?
    private var lastEncoded: Int64?
    /// Frames encoded, and input frames dropped to keep the frame rate.
    public private(set) var framesEncoded = 0
    public private(set) var framesDroppedForRate = 0
    /// The bitrate the encoder runs at now.
    public private(set) var currentBitrate: Int
    /// Runs on each scaled picture before it is encoded, with its presentation time in ms; false drops the
    /// frame (an operator's WebAssembly function that failed).
    public var processPicture: ((_ picture: I420Buffer, _ timestampMs: Int64) -> Bool)?

    /// - Throws: ``CodecError`` for an output size or bitrate libvpx refuses.
    public init(configuration: Configuration) throws(CodecError) {
        self.encoder = try makeOutputEncoder(
            width: configuration.width, height: configuration.height, framesPerSecond: configuration.framesPerSecond,
            bitrate: configuration.bitrate)
        self.configuration = configuration
        self.currentBitrate = configuration.bitrate
        self.scaled = try I420Buffer(width: configuration.width, height: configuration.height)
    }

    /// Sets the input (a transcode has one; a second replaces the first).
    public func addInput(_ id: String, participant: String) throws(CodecError) {
        self.input = try VideoInput(participant: participant)
        self.inputID = id
        self.encoder.requestKeyframe()
    }

    public func removeInput(_ id: String) {
        guard id == self.inputID else { return }
        self.input = nil
        self.inputID = nil
    }

    /// The input's statistics.
    public func statistics(of id: String) -> VideoInputStatistics? { id == self.inputID ? self.input?.statistics : nil }

    /// Whether to ask the input's source for a keyframe now.
    func takeKeyframeRequest(nowNanoseconds: Int64) -> Bool {
        self.input?.takeKeyframeRequest(nowNanoseconds: nowNanoseconds) ?? false
    }

    /// The next output frame is a keyframe.
    public func requestKeyframe() { self.encoder.requestKeyframe() }

    /// Follows a subscriber estimate: clamped to minimum…target.
    public func setBitrate(_ bitsPerSecond: Int) {
        let clamped = max(self.configuration.minimumBitrate, min(self.configuration.bitrate, bitsPerSecond))
        // Small changes are noise: retuning the encoder costs and unsettles its rate control.
        guard abs(clamped - self.currentBitrate) * 10 >= self.currentBitrate else { return }
        if (try? self.encoder.setBitrate(clamped)) != nil { self.currentBitrate = clamped }
    }

    /// Takes one RTP payload of input `id`; output frames go to `emit`.
    public func receive(
        _ id: String, sequenceNumber: UInt16, timestamp: UInt32, marker: Bool, payload: UnsafeRawBufferPointer,
        arrivalNanoseconds: Int64, captureNTP: UInt64?, now: NIODeadline, emit: (EncodedVideoFrame) -> Void
    ) {
        guard id == self.inputID, let input = self.input else { return }
        input.receive(
            sequenceNumber: sequenceNumber, timestamp: timestamp, marker: marker, payload: payload,
            arrivalNanoseconds: arrivalNanoseconds, captureNTP: captureNTP, now: now
        ) { picture in self.encode(picture, emit: emit) }
    }

    /// Gives up input frames whose repair did not come.
    public func poll(now: NIODeadline, emit: (EncodedVideoFrame) -> Void) {
        self.input?.poll(now: now) { picture in self.encode(picture, emit: emit) }
    }

    private func encode(_ picture: VideoInput.Picture, emit: (EncodedVideoFrame) -> Void) {
        let timestamp = self.timestamps.unwrap(picture.timestamp)
        let first = self.firstTimestamp ?? timestamp
        self.firstTimestamp = first
        // 10 % slack: a 30 fps input is not thinned by a 30 fps limit when its timestamps jitter.
        let spacing = Int64(90_000 / self.configuration.framesPerSecond) * 9 / 10
        if let last = self.lastEncoded, timestamp - last < spacing, timestamp > last {
            self.framesDroppedForRate += 1
            return
        }
        guard (try? self.scaled.scale(picture.image)) != nil else { return }
        self.lastEncoded = timestamp
        let pts = timestamp - first
        guard self.processPicture?(self.scaled, pts / 90) ?? true else { return }
        _ = try? self.scaled.withImage { image throws(CodecError) in
            try self.encoder.encode(image, pts: pts) { frame in
                self.framesEncoded += 1
                emit(
                    EncodedVideoFrame(
                        data: frame.data, isKeyframe: frame.isKeyframe,
                        timestampOffset: UInt32(truncatingIfNeeded: pts), captureNTP: picture.captureNTP,
                        newestArrival: picture.newestArrival))
            }
        }
    }
}
