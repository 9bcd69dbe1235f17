#if canImport(Glibc)
    import Glibc
#endif
import BraidCodecs
import BraidRTPStreams
import BraidWasm
import NIOConcurrencyHelpers
import NIOCore

/// One encoded audio frame on its way from a worker to the router's event loop.
struct EmittedFrame: Sendable {
    /// nil: the mix for everyone; otherwise the participant this mix-minus output is for.
    var listener: String?
    /// The worker tick that made it: the output's RTP timestamp is `tick × 960` past its base, so a pause
    /// (every input idle) shows as a timestamp gap, as a muted sender's would.
    var tick: Int64
    var payload: [UInt8]
    var captureNTP: UInt64?
    /// RFC 6464 level, −dBov (0 loudest, 127 silence).
    var level: UInt8
}

/// One encoded video frame, already split into RTP payloads (RFC 7741 descriptors included).
struct EmittedVideoFrame: Sendable {
    /// The payloads back to back; `payloadLengths` splits them.
    var payloads: [UInt8]
    var payloadLengths: [Int]
    var timestampOffset: UInt32
    var isKeyframe: Bool
    var captureNTP: UInt64?
}

/// What one worker turn hands the router's event loop.
struct FunctionOutput: Sendable {
    var audio: [EmittedFrame] = []
    var video: [EmittedVideoFrame] = []
    /// Inputs whose source should send a keyframe (their decoder's reference chain broke).
    var keyframeRequests: [String] = []
    /// When the newest input frame of each output frame arrived (monotonic ns): the worker records the
    /// function's own delay from them.
    var arrivals: [Int64] = []
    /// The function failed for good (its WebAssembly module trapped, ran out of fuel or memory, broke the
    /// ABI): why.
    var failure: String?

    var isEmpty: Bool {
        self.audio.isEmpty && self.video.isEmpty && self.keyframeRequests.isEmpty && self.failure == nil
    }
}

/// Asks of the router's side to a running function, through its inbox.
enum FunctionControl: Sendable, Hashable {
    /// A consumer of the output needs a keyframe.
    case keyframe
    /// The output's subscribers can take this much (bit/s).
    case bitrate(Int)
    /// The room's loudest participant (nil: nobody speaks).
    case speaker(String?)
}

/// One input's statistics, whichever kind of function.
struct InputStatisticsSnapshot: Sendable {
    var audio: AudioMix.InputStatistics?
    var video: VideoInputStatistics?
}

/// What a worker measured, published once a second for status reads from any thread.
struct WorkerStatistics: Sendable {
    var framesInPerSecond: Double = 0
    var framesOutPerSecond: Double = 0
    var framesOut = 0
    var lateTicks = 0
    var cpuPercent: Double = 0
    var delayP50Ms: Double?
    var delayP95Ms: Double?
    var inputs: [String: InputStatisticsSnapshot] = [:]
}

/// A function's work on frames, driven by a ``FunctionWorker``: it takes the inbox's events as they are
/// drained and makes output on each tick. Confined to the worker's loop.
protocol FunctionPipeline: AnyObject {
    /// The tick period (an audio frame, a video frame interval, or a short poll for per-frame work).
    var interval: TimeAmount { get }
    /// One inbox event; `payload` is the frame's bytes (valid during the call).
    func handle(_ event: FunctionInbox.Event, payload: UnsafeRawBufferPointer, now: NIODeadline, into output: inout FunctionOutput)
    /// The periodic turn: `tick` counts intervals since the start.
    func tick(_ tick: Int64, now: NIODeadline, into output: inout FunctionOutput)
    /// Per-input statistics, by input id.
    func inputStatistics() -> [String: InputStatisticsSnapshot]
}

/// Runs a ``FunctionPipeline`` on a worker event loop, off the forwarding loops: every interval (deadlines
/// fixed from the start, so the clock does not drift with scheduling delays) it drains the inbox into the
/// pipeline, lets it tick, and hands the output to `deliver` (which moves it to the router's loop). A
/// worker starved for more than five intervals skips ahead and counts the skipped ticks.
///
/// Confined to `loop` after ``start()``; the statistics box is the only state read from elsewhere.
final class FunctionWorker: @unchecked Sendable {
    let loop: any EventLoop
    private let pipeline: any FunctionPipeline
    private let interval: TimeAmount
    private let inbox: FunctionInbox
    private let deliver: @Sendable (FunctionOutput) -> Void
    let statistics = NIOLockedValueBox(WorkerStatistics())

    private var started = NIODeadline.uptimeNanoseconds(0)
    private var tickIndex: Int64 = 0
    private var task: Scheduled<Void>?
    private var stopped = false
    // The current one-second window.
    private var windowStart = NIODeadline.uptimeNanoseconds(0)
    private var windowFramesIn = 0
    private var windowFramesOut = 0
    private var windowCPUNanoseconds: Int64 = 0
    private var framesOut = 0
    private var lateTicks = 0
    /// The function's own delay of the last 256 output frames, ms.
    private var delays: [Double] = []
    private var delayCursor = 0

    init(
        loop: any EventLoop, pipeline: any FunctionPipeline, inbox: FunctionInbox,
        deliver: @escaping @Sendable (FunctionOutput) -> Void
    ) {
        self.loop = loop
        self.pipeline = pipeline
        self.interval = pipeline.interval
        self.inbox = inbox
        self.deliver = deliver
    }

    /// Starts ticking (from any thread).
    func start() {
        self.loop.execute {
            self.started = .now()
            self.windowStart = self.started
            self.scheduleNext()
        }
    }

    /// Stops ticking (from any thread); the pipeline is dropped with the worker.
    func stop() {
        self.loop.execute {
            self.stopped = true
            self.task?.cancel()
            self.task = nil
        }
    }

    private func scheduleNext() {
        guard !self.stopped else { return }
        let deadline = self.started + .nanoseconds(self.interval.nanoseconds * (self.tickIndex + 1))
        self.task = self.loop.scheduleTask(deadline: deadline) { [self] in self.tick() }
    }

    private func tick() {
        guard !self.stopped else { return }
        let now = NIODeadline.now()
        let due = (now - self.started).nanoseconds / self.interval.nanoseconds
        if due > self.tickIndex + 5 {
            self.lateTicks += Int(due - self.tickIndex - 1)
            self.tickIndex = due - 1
        }
        self.tickIndex += 1
        let cpuBefore = Self.threadCPUNanoseconds()
        var output = FunctionOutput()
        self.inbox.drain { event, payload in
            if case .frame = event { self.windowFramesIn += 1 }
            self.pipeline.handle(event, payload: payload, now: now, into: &output)
        }
        self.pipeline.tick(self.tickIndex, now: now, into: &output)
        for arrival in output.arrivals { self.recordDelay(sinceArrival: arrival) }
        if !output.isEmpty {
            if !output.audio.isEmpty || !output.video.isEmpty {
                self.framesOut += 1
                self.windowFramesOut += 1
            }
            self.deliver(output)
        }
        self.windowCPUNanoseconds += Self.threadCPUNanoseconds() - cpuBefore
        if now - self.windowStart >= .seconds(1) { self.publishStatistics(now: now) }
        self.scheduleNext()
    }

    /// Records the function's own delay for an output frame made from input that arrived at `arrival`.
    private func recordDelay(sinceArrival arrival: Int64) {
        let milliseconds = Double(Int64(NIODeadline.now().uptimeNanoseconds) - arrival) / 1e6
        if self.delays.count < 256 {
            self.delays.append(milliseconds)
        } else {
            self.delays[self.delayCursor] = milliseconds
            self.delayCursor = (self.delayCursor + 1) % 256
        }
    }

    private func publishStatistics(now: NIODeadline) {
        let seconds = Double((now - self.windowStart).nanoseconds) / 1e9
        let sorted = self.delays.sorted()
        func percentile(_ p: Double) -> Double? {
            sorted.isEmpty ? nil : sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
        }
        let snapshot = WorkerStatistics(
            framesInPerSecond: Double(self.windowFramesIn) / seconds,
            framesOutPerSecond: Double(self.windowFramesOut) / seconds, framesOut: self.framesOut,
            lateTicks: self.lateTicks, cpuPercent: Double(self.windowCPUNanoseconds) / 1e7 / seconds,
            delayP50Ms: percentile(0.5), delayP95Ms: percentile(0.95), inputs: self.pipeline.inputStatistics())
        self.statistics.withLockedValue { $0 = snapshot }
        self.windowStart = now
        self.windowFramesIn = 0
        self.windowFramesOut = 0
        self.windowCPUNanoseconds = 0
    }

    /// CPU time of the calling thread.
    static func threadCPUNanoseconds() -> Int64 {
        #if canImport(Glibc)
            var time = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
            return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
        #else
            return 0
        #endif
    }
}

// MARK: - Pipelines

/// `audio-mix` on a worker: 20 ms ticks, one mix per tick. With a WebAssembly `module` (`wasm-audio`: a
/// mix of one input, gain fixed), the module works on every frame before it is encoded.
final class AudioMixPipeline: FunctionPipeline {
    let mix: AudioMix
    private let module: UserModule?

    init(mix: AudioMix, module: WasmFunction? = nil) {
        self.mix = mix
        self.module = module.map(UserModule.init)
        if let user = self.module {
            mix.processFrame = { pcm, timestampMs in
                user.run { function throws(WasmFunctionError) in
                    try function.processAudio(pcm, channels: 1, sampleRate: 48_000, timestampMs: timestampMs)
                }
            }
        }
    }

    var interval: TimeAmount { .milliseconds(20) }

    func handle(_ event: FunctionInbox.Event, payload: UnsafeRawBufferPointer, now: NIODeadline, into output: inout FunctionOutput) {
        switch event {
        case .frame(let input, let timestamp, _, _, _, _, let arrival, let capture):
            _ = self.mix.receive(input, timestamp: timestamp, payload: payload, arrivalNanoseconds: arrival, captureNTP: capture)
        case .added(let input, let participant):
            try? self.mix.addInput(input, participant: participant)
        case .removed(let input):
            self.mix.removeInput(input)
        case .control:
            break
        }
    }

    func tick(_ tick: Int64, now: NIODeadline, into output: inout FunctionOutput) {
        self.mix.tick(nowNanoseconds: Int64(now.uptimeNanoseconds)) { frame in
            if let arrival = frame.newestArrival { output.arrivals.append(arrival) }
            let dBov = frame.level > 0 ? -20 * log10(Double(frame.level)) : 127
            output.audio.append(
                EmittedFrame(
                    listener: frame.listener, tick: tick, payload: Array(frame.payload), captureNTP: frame.captureNTP,
                    level: UInt8(max(0, min(127, dBov.rounded())))))
        }
        output.failure = self.module?.takeFailure()
    }

    func inputStatistics() -> [String: InputStatisticsSnapshot] {
        var inputs: [String: InputStatisticsSnapshot] = [:]
        for id in self.mix.inputIDs { inputs[id] = InputStatisticsSnapshot(audio: self.mix.statistics(of: id)) }
        return inputs
    }
}

/// A WebAssembly module inside a pipeline: runs it on a frame, and keeps its first failure to report once.
final class UserModule {
    let function: WasmFunction
    private var failure: WasmFunctionError?
    private var reported = false

    init(_ function: WasmFunction) { self.function = function }

    /// Runs `body` on the module; false (drop the frame) once the module has failed.
    func run(_ body: (WasmFunction) throws(WasmFunctionError) -> Void) -> Bool {
        guard self.failure == nil else { return false }
        do {
            try body(self.function)
            return true
        } catch {
            self.failure = error
            return false
        }
    }

    /// The failure, the first time it is asked for after it happened.
    func takeFailure() -> String? {
        guard let failure = self.failure, !self.reported else { return nil }
        self.reported = true
        return "\(failure.kind.rawValue): \(failure.message)"
    }
}

/// Splits encoded VP8 frames into RTP payloads on the worker, so the router's loop only adds headers.
struct VideoOutputPacketizer {
    private var packetizer = VP8Packetizer(initialPictureID: .random(in: 0...0x7FFF))
    private var frame = ByteBuffer()
    private var scratch = ByteBuffer()

    mutating func packetize(_ encoded: EncodedVideoFrame) -> EmittedVideoFrame {
        self.frame.clear()
        self.frame.writeBytes(encoded.data)
        var payloads: [UInt8] = []
        payloads.reserveCapacity(encoded.data.count + 64)
        var lengths: [Int] = []
        _ = self.packetizer.packetize(frame: self.frame, scratch: &self.scratch) { payload, _ in
            payloads.append(contentsOf: payload.readableBytesView)
            lengths.append(payload.readableBytes)
        }
        return EmittedVideoFrame(
            payloads: payloads, payloadLengths: lengths, timestampOffset: encoded.timestampOffset,
            isKeyframe: encoded.isKeyframe, captureNTP: encoded.captureNTP)
    }
}

/// `transcode` on a worker: each input frame is transcoded as it is drained (polled every 5 ms). With a
/// WebAssembly `module` (`wasm-video`), the module works on every scaled picture before it is encoded.
final class TranscodePipeline: FunctionPipeline {
    let transcode: Transcode
    private var packetizer = VideoOutputPacketizer()
    private let module: UserModule?

    init(transcode: Transcode, module: WasmFunction? = nil) {
        self.transcode = transcode
        self.module = module.map(UserModule.init)
        if let user = self.module {
            var frameIndex: Int64 = 0
            transcode.processPicture = { picture, timestampMs in
                frameIndex += 1
                return user.run { function throws(WasmFunctionError) in
                    try picture.withMutablePlanes { y, u, v throws(WasmFunctionError) in
                        try function.processVideo(
                            y: y, u: u, v: v, width: picture.width, height: picture.height,
                            frameIndex: frameIndex - 1, timestampMs: timestampMs)
                    }
                }
            }
        }
    }

    var interval: TimeAmount { .milliseconds(5) }

    func handle(_ event: FunctionInbox.Event, payload: UnsafeRawBufferPointer, now: NIODeadline, into output: inout FunctionOutput) {
        switch event {
        case .frame(let input, let timestamp, let sequenceNumber, let marker, _, _, let arrival, let capture):
            self.transcode.receive(
                input, sequenceNumber: sequenceNumber, timestamp: timestamp, marker: marker, payload: payload,
                arrivalNanoseconds: arrival, captureNTP: capture, now: now
            ) { frame in self.emit(frame, into: &output) }
        case .added(let input, let participant):
            try? self.transcode.addInput(input, participant: participant)
        case .removed(let input):
            self.transcode.removeInput(input)
        case .control(.keyframe):
            self.transcode.requestKeyframe()
        case .control(.bitrate(let bitrate)):
            self.transcode.setBitrate(bitrate)
        case .control(.speaker):
            break
        }
    }

    func tick(_ tick: Int64, now: NIODeadline, into output: inout FunctionOutput) {
        self.transcode.poll(now: now) { frame in self.emit(frame, into: &output) }
        if let input = self.transcode.inputID,
            self.transcode.takeKeyframeRequest(nowNanoseconds: Int64(now.uptimeNanoseconds))
        {
            output.keyframeRequests.append(input)
        }
        output.failure = self.module?.takeFailure()
    }

    private func emit(_ frame: EncodedVideoFrame, into output: inout FunctionOutput) {
        if let arrival = frame.newestArrival { output.arrivals.append(arrival) }
        output.video.append(self.packetizer.packetize(frame))
    }

    func inputStatistics() -> [String: InputStatisticsSnapshot] {
        guard let id = self.transcode.inputID else { return [:] }
        return [id: InputStatisticsSnapshot(video: self.transcode.statistics(of: id))]
    }
}

/// `composite` on a worker: input frames are drawn as they are drained; one output frame per tick.
final class CompositePipeline: FunctionPipeline {
    let composite: Composite
    private var packetizer = VideoOutputPacketizer()

    init(composite: Composite) { self.composite = composite }

    var interval: TimeAmount { self.composite.frameInterval }

    func handle(_ event: FunctionInbox.Event, payload: UnsafeRawBufferPointer, now: NIODeadline, into output: inout FunctionOutput) {
        switch event {
        case .frame(let input, let timestamp, let sequenceNumber, let marker, _, _, let arrival, let capture):
            self.composite.receive(
                input, sequenceNumber: sequenceNumber, timestamp: timestamp, marker: marker, payload: payload,
                arrivalNanoseconds: arrival, captureNTP: capture, now: now)
        case .added(let input, let participant):
            try? self.composite.addInput(input, participant: participant)
        case .removed(let input):
            self.composite.removeInput(input)
        case .control(.keyframe):
            self.composite.requestKeyframe()
        case .control(.bitrate(let bitrate)):
            self.composite.setBitrate(bitrate)
        case .control(.speaker(let participant)):
            self.composite.setActiveSpeaker(participant)
        }
    }

    func tick(_ tick: Int64, now: NIODeadline, into output: inout FunctionOutput) {
        self.composite.tick(now: now) { frame in
            if let arrival = frame.newestArrival { output.arrivals.append(arrival) }
            output.video.append(self.packetizer.packetize(frame))
        }
        output.keyframeRequests += self.composite.keyframeRequests(nowNanoseconds: Int64(now.uptimeNanoseconds))
    }

    func inputStatistics() -> [String: InputStatisticsSnapshot] {
        var inputs: [String: InputStatisticsSnapshot] = [:]
        for id in self.composite.inputIDs { inputs[id] = InputStatisticsSnapshot(video: self.composite.statistics(of: id)) }
        return inputs
    }
}
