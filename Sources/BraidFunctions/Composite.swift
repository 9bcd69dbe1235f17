public import BraidCodecs
public import NIOCore

/// The `composite` function without threads or sockets: N VP8 inputs drawn into a grid, encoded at a
/// fixed size and frame rate, the active speaker's cell outlined.
///
/// ```
///  receive ─▶ VideoInput ─▶ decode ─▶ box scale into its cell ─┐
///  receive ─▶ VideoInput ─▶ decode ─▶ box scale into its cell ─┼─▶ canvas ─(tick: every 1/fps)─▶ VP8Encoder ─▶ emit
///  …                                                            ┘
/// ```
///
/// Each decoded input picture is scaled straight into its cell of the canvas, so the canvas always
/// holds every input's newest picture and a tick only outlines and encodes it. Without inputs the output
/// pauses. An input that stalls keeps
/// its last picture; an input that leaves frees its cell (the grid is laid out again). Grid: the smallest
/// `columns × rows` with `columns ≥ rows` that holds every input, cells of equal size in input order.
public final class Composite {
    public struct Configuration: Sendable, Hashable {
        /// Output size: even, 16…3840 × 16…2160.
        public var width: Int
        public var height: Int
        public var framesPerSecond: Int
        /// Target bitrate (bit/s): the most the output uses.
        public var bitrate: Int
        /// Outline the active speaker's cell.
        public var highlightSpeaker: Bool

        public init(
            width: Int = 640, height: Int = 360, framesPerSecond: Int = 30, bitrate: Int = 800_000,
            highlightSpeaker: Bool = true
        ) {
            self.width = width
            self.height = height
            self.framesPerSecond = framesPerSecond
            self.bitrate = bitrate
            self.highlightSpeaker = highlightSpeaker
        }
    }

    /// Colour of the active speaker's outline (a saturated yellow).
    public static let highlight = I420Buffer.Colour(y: 210, u: 16, v: 146)
    /// Colour of the gaps and of cells without a picture yet.
    public static let background = I420Buffer.Colour.black

    public let configuration: Configuration
    private let encoder: VP8Encoder
    private let canvas: I420Buffer
    private var inputs: [(id: String, input: VideoInput)] = []
    private var cells: [I420Buffer.Rect] = []
    private var speaker: String?
    private var frameIndex: Int64 = 0
    private var newestArrival: Int64?
    private var newestCapture: UInt64?
    private var currentBitrate: Int
    public private(set) var framesEncoded = 0

    /// - Throws: ``CodecError`` for an output size or bitrate libvpx refuses.
    public init(configuration: Configuration) throws(CodecError) {
        self.encoder = try makeOutputEncoder(
            width: configuration.width, height: configuration.height, framesPerSecond: configuration.framesPerSecond,
            bitrate: configuration.bitrate)
        self.configuration = configuration
        self.currentBitrate = configuration.bitrate
        self.canvas = try I420Buffer(width: configuration.width, height: configuration.height)
    }

    /// The interval between output frames.
    public var frameInterval: TimeAmount { .nanoseconds(1_000_000_000 / Int64(self.configuration.framesPerSecond)) }

    /// The cell of each input, in input order.
    public var layout: [(input: String, cell: I420Buffer.Rect)] {
        zip(self.inputs, self.cells).map { ($0.id, $1) }
    }

    public func addInput(_ id: String, participant: String) throws(CodecError) {
        guard !self.inputs.contains(where: { $0.id == id }) else { return }
        self.inputs.append((id, try VideoInput(participant: participant)))
        self.relayout()
    }

    public func removeInput(_ id: String) {
        guard let index = self.inputs.firstIndex(where: { $0.id == id }) else { return }
        self.inputs.remove(at: index)
        self.relayout()
    }

    /// Outlines the cells of `participant`'s inputs (nil: nobody).
    public func setActiveSpeaker(_ participant: String?) { self.speaker = participant }

    public func requestKeyframe() { self.encoder.requestKeyframe() }

    /// Follows a subscriber estimate, between a tenth of the target and the target.
    public func setBitrate(_ bitsPerSecond: Int) {
        let clamped = max(self.configuration.bitrate / 10, min(self.configuration.bitrate, bitsPerSecond))
        guard abs(clamped - self.currentBitrate) * 10 >= self.currentBitrate else { return }
        if (try? self.encoder.setBitrate(clamped)) != nil { self.currentBitrate = clamped }
    }

    public func statistics(of id: String) -> VideoInputStatistics? {
        self.inputs.first { $0.id == id }?.input.statistics
    }

    public var inputIDs: [String] { self.inputs.map(\.id) }

    /// Inputs whose source should be asked for a keyframe now.
    func keyframeRequests(nowNanoseconds: Int64) -> [String] {
        self.inputs.filter { $0.input.takeKeyframeRequest(nowNanoseconds: nowNanoseconds) }.map(\.id)
    }

    /// Takes one RTP payload of input `id`: a picture it completes is drawn into the input's cell.
    public func receive(
        _ id: String, sequenceNumber: UInt16, timestamp: UInt32, marker: Bool, payload: UnsafeRawBufferPointer,
        arrivalNanoseconds: Int64, captureNTP: UInt64?, now: NIODeadline
    ) {
        guard let index = self.inputs.firstIndex(where: { $0.id == id }) else { return }
        let cell = self.cells[index]
        self.inputs[index].input.receive(
            sequenceNumber: sequenceNumber, timestamp: timestamp, marker: marker, payload: payload,
            arrivalNanoseconds: arrivalNanoseconds, captureNTP: captureNTP, now: now
        ) { picture in self.draw(picture, in: cell) }
    }

    /// Encodes one output frame (call it every ``frameInterval``); also gives up stale input frames.
    public func tick(now: NIODeadline, emit: (EncodedVideoFrame) -> Void) {
        // Nothing to show: the output pauses (as a muted camera's would) instead of encoding black frames.
        guard !self.inputs.isEmpty else { return }
        for (index, entry) in self.inputs.enumerated() {
            let cell = self.cells[index]
            entry.input.poll(now: now) { picture in self.draw(picture, in: cell) }
        }
        if self.configuration.highlightSpeaker {
            for (index, entry) in self.inputs.enumerated() {
                let colour = entry.input.participant == self.speaker ? Self.highlight : Self.background
                try? self.canvas.outline(self.cells[index], thickness: self.outlineThickness, colour: colour)
            }
        }
        let pts = self.frameIndex * Int64(90_000 / self.configuration.framesPerSecond)
        self.frameIndex += 1
        let arrival = self.newestArrival
        let capture = self.newestCapture
        self.newestArrival = nil
        _ = try? self.canvas.withImage { image throws(CodecError) in
            try self.encoder.encode(image, pts: pts) { frame in
                self.framesEncoded += 1
                emit(
                    EncodedVideoFrame(
                        data: frame.data, isKeyframe: frame.isKeyframe, timestampOffset: UInt32(truncatingIfNeeded: pts),
                        captureNTP: capture, newestArrival: arrival))
            }
        }
    }

    private var outlineThickness: Int { max(2, self.configuration.height / 90) }

    private func draw(_ picture: VideoInput.Picture, in cell: I420Buffer.Rect) {
        try? self.canvas.scale(picture.image, into: cell)
        self.newestArrival = max(self.newestArrival ?? 0, picture.newestArrival)
        if let capture = picture.captureNTP { self.newestCapture = max(self.newestCapture ?? 0, capture) }
    }

    private func relayout() {
        let count = max(1, self.inputs.count)
        var columns = 1
        while columns * columns < count { columns += 1 }
        let rows = (count + columns - 1) / columns
        let width = (self.configuration.width / columns) & ~1
        let height = (self.configuration.height / rows) & ~1
        self.cells = (0..<self.inputs.count).map { index in
            I420Buffer.Rect(x: index % columns * width, y: index / columns * height, width: width, height: height)
        }
        try? self.canvas.fill(Self.background)
        self.encoder.requestKeyframe()
    }
}
