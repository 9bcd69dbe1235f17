public import BraidSFU
import BraidWire
import NIOConcurrencyHelpers
public import NIOCore
import NIOPosix

/// Runs edge functions for one router: each is a consumer of its input tracks
/// (``SFURouter/consume(_:into:layers:now:)``) and the source of its output tracks
/// (``SFURouter/publish(_:room:peerID:participant:audience:extensions:source:now:)``), so WHEP
/// subscribers, relay links and other functions use the outputs like any track.
///
/// ```
///  router loop                                   worker loop (its own thread)
///  producer ─▶ FunctionInputSink ─ copy ─▶ FunctionInbox ─▶ FunctionWorker ─▶ pipeline: AudioMix,
///                 (.backPressure when full)     ▲               (every tick)      Transcode, Composite
///  output producer ◀─ ingest ◀─ EdgeFunction.publish ◀─ loop.execute ◀──┘
///  output consumers ─ keyframe, estimates ─▶ EdgeFunction ─ control ─┘
/// ```
///
/// The work on frames runs on a worker event loop of its own, never on the forwarding loop: a function
/// that falls behind has its input frames refused (counted as drops), and forwarding is never slowed.
/// Confined to the router's event loop.
public final class FunctionHost {
    /// Functions one node runs at most.
    public static let maximumFunctions = 16
    /// Inputs one function takes at most.
    public static let maximumInputs = 32

    let router: SFURouter
    let loop: any EventLoop
    let flush: () -> Void
    private var workers: MultiThreadedEventLoopGroup?
    private var functions: [String: EdgeFunction] = [:]
    private var nextNumber = 1
    private var lastFollow: NIODeadline?

    /// A host for `router`, whose loop is `loop`; `flush` sends what an output ingest queued.
    public init(router: SFURouter, loop: any EventLoop, flush: @escaping () -> Void) {
        self.router = router
        self.loop = loop
        self.flush = flush
    }

    /// Starts a function in `room`.
    ///
    /// - Parameter id: the function's id; nil numbers it here (`fn-1`, `fn-2`…). A mesh passes ids unique
    ///   across its nodes, and starting an id that runs already (in the same room) returns its status:
    ///   a request and the node's reconciliation with the cluster state may both start it.
    /// - Throws: ``FunctionError`` `.badRequest` for parameters out of range or inputs that are not audio
    ///   tracks of the room, `.unknownTrack` for an input not published here, `.full` past
    ///   ``maximumFunctions``.
    public func start(
        _ request: FunctionRequest, room: String, id: String? = nil, now: NIODeadline
    ) throws(FunctionError) -> FunctionStatus {
        if let id, let running = self.functions[id] {
            guard running.room == room else { throw FunctionError(.badRequest, "function \(id) runs in another room") }
            return running.status()
        }
        guard self.functions.count < Self.maximumFunctions else {
            throw FunctionError(.full, "the node runs its maximum of \(Self.maximumFunctions) functions")
        }
        let inputs = try self.inputs(of: request, room: room)
        // A transcode works on the media of its one input; the other kinds have theirs.
        let video = request.kind == .transcode ? inputs.first?.kind == .video : request.kind.isVideo
        let pipeline = try Self.makePipeline(request, video: video)
        let number = self.nextNumber
        let id = id ?? "fn-\(number)"
        self.nextNumber += 1
        // One worker thread per core: each function stays on one (its state is confined there), and
        // functions spread over them round-robin.
        let workers = self.workers ?? MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        self.workers = workers
        let function = EdgeFunction(
            id: id, number: number, room: room, request: request, video: video, host: self, pipeline: pipeline,
            workerLoop: workers.next(), now: now)
        self.functions[id] = function
        for producer in inputs.prefix(Self.maximumInputs) { function.attach(producer, now: now) }
        function.worker.start()
        return function.status()
    }

    /// The pipeline a request asks for, its parameters checked; `video` tells a transcode's media.
    static func makePipeline(_ request: FunctionRequest, video: Bool? = nil) throws(FunctionError) -> any FunctionPipeline {
        let parameters = request.parameters
        let kind = request.kind
        let video = video ?? kind.isVideo
        if !video {
            for (name, value) in [("width", parameters.width), ("height", parameters.height), ("frame_rate", parameters.frameRate)]
            where value != nil {
                throw FunctionError(.badRequest, "\(name) is a video parameter; \(kind.rawValue) of audio does not take it")
            }
        }
        if kind != .audioMix, parameters.mixMinus != nil {
            throw FunctionError(.badRequest, "mix_minus is an audio-mix parameter; \(kind.rawValue) does not take it")
        }
        if kind != .composite, parameters.highlightSpeaker != nil {
            throw FunctionError(.badRequest, "highlight_speaker is a composite parameter")
        }
        if !kind.isWasm {
            let wasmOnly: [(String, Bool)] = [
                ("module", parameters.module != nil), ("module_base64", parameters.moduleBase64 != nil),
                ("parameter", parameters.parameter != nil), ("fuel", parameters.fuel != nil),
                ("memory_pages", parameters.memoryPages != nil),
            ]
            if let (name, _) = wasmOnly.first(where: \.1) {
                throw FunctionError(.badRequest, "\(name) is a wasm-audio and wasm-video parameter")
            }
        }
        do {
            switch kind {
            case .transcode where !video:
                // Opus to a lower bitrate: one input, its level left as it is.
                let bitrate = parameters.bitrate ?? 24_000
                guard (6_000...510_000).contains(bitrate) else {
                    throw FunctionError(.badRequest, "bitrate must be 6000-510000 bit/s for Opus, got \(bitrate)")
                }
                let mix = try AudioMix(
                    configuration: AudioMix.Configuration(
                        bitrate: bitrate, mixer: AudioMixer.Configuration(minimumGain: 1, maximumGain: 1)))
                return AudioMixPipeline(mix: mix)
            case .audioMix, .wasmAudio:
                let bitrate = parameters.bitrate ?? 32_000
                guard (6_000...510_000).contains(bitrate) else {
                    throw FunctionError(.badRequest, "bitrate must be 6000-510000 bit/s for Opus, got \(bitrate)")
                }
                guard kind == .wasmAudio else {
                    let configuration = AudioMix.Configuration(bitrate: bitrate, mixMinus: parameters.mixMinus ?? false)
                    return AudioMixPipeline(mix: try AudioMix(configuration: configuration))
                }
                // One input, its level left as it is: the module decides what happens to it.
                let module = try UserFunctions.load(request)
                let mix = try AudioMix(
                    configuration: AudioMix.Configuration(
                        bitrate: bitrate, mixer: AudioMixer.Configuration(minimumGain: 1, maximumGain: 1)))
                return AudioMixPipeline(mix: mix, module: module)
            case .transcode, .wasmVideo:
                let (width, height, frameRate, bitrate) = try Self.videoParameters(parameters, defaultBitrate: 500_000)
                let module = kind == .wasmVideo ? try UserFunctions.load(request) : nil
                return TranscodePipeline(
                    transcode: try Transcode(
                        configuration: Transcode.Configuration(
                            width: width, height: height, framesPerSecond: frameRate, bitrate: bitrate)),
                    module: module)
            case .composite:
                let (width, height, frameRate, bitrate) = try Self.videoParameters(parameters, defaultBitrate: 800_000)
                return CompositePipeline(
                    composite: try Composite(
                        configuration: Composite.Configuration(
                            width: width, height: height, framesPerSecond: frameRate, bitrate: bitrate,
                            highlightSpeaker: parameters.highlightSpeaker ?? true)))
            }
        } catch let error as FunctionError {
            throw error
        } catch {
            throw FunctionError(.badRequest, "cannot make the codecs: \(error)")
        }
    }

    private static func videoParameters(
        _ parameters: FunctionRequest.Parameters, defaultBitrate: Int
    ) throws(FunctionError) -> (width: Int, height: Int, frameRate: Int, bitrate: Int) {
        let width = parameters.width ?? 640
        let height = parameters.height ?? 360
        guard width % 2 == 0, height % 2 == 0, (16...3840).contains(width), (16...2160).contains(height) else {
            throw FunctionError(.badRequest, "width x height must be even, 16-3840 x 16-2160, got \(width)x\(height)")
        }
        let frameRate = parameters.frameRate ?? 30
        guard (1...60).contains(frameRate) else {
            throw FunctionError(.badRequest, "frame_rate must be 1-60, got \(frameRate)")
        }
        let bitrate = parameters.bitrate ?? defaultBitrate
        guard (30_000...8_000_000).contains(bitrate) else {
            throw FunctionError(.badRequest, "bitrate must be 30000-8000000 bit/s for VP8, got \(bitrate)")
        }
        return (width, height, frameRate, bitrate)
    }

    /// The input tracks a request names, checked against its kind.
    private func inputs(of request: FunctionRequest, room: String) throws(FunctionError) -> [TrackProducer] {
        let kind = request.kind
        let takes: (TrackProducer) -> Bool
        if kind == .transcode {
            takes = { Self.isVideoInput($0) || Self.isMixable($0) }
        } else if kind.isVideo {
            takes = Self.isVideoInput
        } else {
            takes = Self.isMixable
        }
        let what = kind == .transcode ? "a VP8 or Opus track" : kind.isVideo ? "a VP8 video track" : "an Opus audio track"
        let all: FunctionInputs = kind.isVideo ? .allVideo : .allAudio
        switch request.inputs {
        case .allAudio, .allVideo:
            if kind == .transcode || kind.isWasm {
                throw FunctionError(.badRequest, "\(kind.rawValue) takes one input track id")
            }
            guard request.inputs == all else {
                let name = kind.isVideo ? "all-video" : "all-audio"
                throw FunctionError(.badRequest, "\(kind.rawValue) takes \(name) or track ids")
            }
            return self.router.tracks(inRoom: room).filter(takes)
        case .tracks(let ids):
            let most = kind == .transcode || kind.isWasm ? 1 : Self.maximumInputs
            guard (1...most).contains(ids.count) else {
                throw FunctionError(.badRequest, "\(kind.rawValue) takes 1 to \(most) input tracks, got \(ids.count)")
            }
            var inputs: [TrackProducer] = []
            for id in ids where !inputs.contains(where: { $0.id == id }) {
                guard let producer = self.router.track(id) else {
                    throw FunctionError(.unknownTrack, "no track \(id) is published on this node")
                }
                guard producer.room == room, takes(producer) else {
                    throw FunctionError(.badRequest, "track \(id) is not \(what) of room \(room)")
                }
                inputs.append(producer)
            }
            return inputs
        }
    }

    /// Stops function `id` (of `room`, if given): its inputs are released, its outputs unpublished.
    @discardableResult
    public func stop(_ id: String, room: String? = nil, now: NIODeadline) -> Bool {
        guard let function = self.functions[id], room == nil || function.room == room else { return false }
        self.functions[id] = nil
        function.stop(now: now)
        return true
    }

    /// The running functions (of `room`, if given), by id.
    public func statuses(room: String? = nil) -> [FunctionStatus] {
        self.functions.values.filter { room == nil || $0.room == room }.sorted { ($0.number, $0.id) < ($1.number, $1.id) }.map {
            $0.status()
        }
    }

    /// Periodic work (call it from the router's tick), four times a second: functions on "all-audio" or
    /// "all-video" take the room's new tracks; video functions follow their outputs' estimates, their
    /// inputs' best layer and the room's active speaker.
    public func tick(now: NIODeadline) {
        guard !self.functions.isEmpty else { return }
        if let last = self.lastFollow, now - last < .milliseconds(250) { return }
        self.lastFollow = now
        for function in self.functions.values {
            let takes: (TrackProducer) -> Bool
            switch function.request.inputs {
            case .allAudio: takes = Self.isMixable
            case .allVideo: takes = Self.isVideoInput
            case .tracks: takes = { _ in false }
            }
            for producer in self.router.tracks(inRoom: function.room) where takes(producer) {
                if function.inputs.count < Self.maximumInputs, function.inputs[producer.id] == nil {
                    function.attach(producer, now: now)
                }
            }
            function.follow(now: now)
        }
    }

    /// Functions whose WebAssembly module failed, since start.
    public private(set) var failures = 0
    /// Told when a function's module fails (function id, room, reason): the node logs it.
    public var onFailure: ((_ id: String, _ room: String, _ reason: String) -> Void)?

    func failed(_ function: EdgeFunction, reason: String) {
        self.failures += 1
        self.onFailure?(function.id, function.room, reason)
    }

    /// Stops every function and the worker thread (the node is stopping).
    public func close(now: NIODeadline) {
        for id in Array(self.functions.keys) { self.stop(id, now: now) }
        self.workers?.shutdownGracefully { _ in }
        self.workers = nil
    }

    /// An Opus audio track that is no function's output.
    static func isMixable(_ producer: TrackProducer) -> Bool {
        producer.kind == .audio && producer.track.codecName.lowercased() == "opus"
            && !producer.peerID.hasPrefix(EdgeFunction.peerPrefix)
    }

    /// A VP8 video track that is no function's output.
    static func isVideoInput(_ producer: TrackProducer) -> Bool {
        producer.kind == .video && producer.track.codecName.lowercased() == "vp8"
            && !producer.peerID.hasPrefix(EdgeFunction.peerPrefix)
    }
}

/// A running function on the router's side: its input consumers and output producers. Confined to the
/// router's loop; its worker runs on the worker loop.
final class EdgeFunction: TrackSource {
    static let peerPrefix = "function:"
    /// Header extension ids of the output tracks.
    static let outputExtensions: RTPHeaderExtensionMap = {
        var map = RTPHeaderExtensionMap()
        map.audioLevel = 1
        map.absCaptureTime = 2
        return map
    }()
    /// Output keyframes asked at most this often (every subscriber that joins asks).
    static let keyframeInterval = TimeAmount.milliseconds(300)

    struct Input {
        let consumer: TrackConsumer
        /// Kept here: a consumer holds its sink unowned.
        let sink: FunctionInputSink
        let participant: String
        /// The simulcast layer a video function decodes.
        var layer: Int
    }

    struct Output {
        let producer: TrackProducer
        let ssrc: UInt32
        var sequenceNumber: UInt16
        let baseTimestamp: UInt32
    }

    let id: String
    /// Start order on this node (statuses are listed in it).
    let number: Int
    let room: String
    let request: FunctionRequest
    /// Whether it works on video (its inputs and outputs).
    let isVideo: Bool
    let inbox: FunctionInbox
    private(set) var worker: FunctionWorker!
    private weak var host: FunctionHost?
    private(set) var inputs: [TrackID: Input] = [:]
    private var outputs: [String?: Output] = [:]
    private var state = "running"
    private var scratch = ByteBuffer()
    private var payloadScratch = ByteBuffer()
    private var extensionScratch = RTPHeaderExtensionBuilder()
    private var lastKeyframeAsk: NIODeadline?
    private var followedBitrate: Int?
    private var speaker: String??

    init(
        id: String, number: Int, room: String, request: FunctionRequest, video: Bool, host: FunctionHost,
        pipeline: any FunctionPipeline, workerLoop: any EventLoop, now: NIODeadline
    ) {
        self.id = id
        self.number = number
        self.room = room
        self.request = request
        self.isVideo = video
        self.host = host
        // Video arrives in packets, several per frame, from every input: a larger batch.
        self.inbox = FunctionInbox(capacity: video ? 1024 : 256)
        let bound = NIOLoopBound(Weak(self), eventLoop: host.loop)
        let routerLoop = host.loop
        self.worker = FunctionWorker(loop: workerLoop, pipeline: pipeline, inbox: self.inbox) { output in
            routerLoop.execute { bound.value.object?.publish(output, now: .now()) }
        }
        self.addOutput(listener: nil, now: now)
    }

    private var peerID: String { Self.peerPrefix + self.id }
    private var mixMinus: Bool { self.request.parameters.mixMinus ?? false }

    /// Consumes `producer` as an input.
    func attach(_ producer: TrackProducer, now: NIODeadline) {
        guard let host = self.host, self.state == "running", self.inputs[producer.id] == nil else { return }
        let layer = self.preferredLayer(of: producer) ?? 0
        let sink = FunctionInputSink(input: producer.id.description, inbox: self.inbox, function: self)
        let layers: LayerSet = producer.kind == .video ? .layer(layer) : .all
        guard let consumer = try? host.router.consume(producer.id, into: sink, layers: layers, now: now) else { return }
        self.inputs[producer.id] = Input(consumer: consumer, sink: sink, participant: producer.participant, layer: layer)
        self.inbox.push(.added(input: producer.id.description, participant: producer.participant))
        if producer.kind == .video { consumer.requestKeyframe(layer: layer, now: now) }
        if self.mixMinus, self.outputs[producer.participant] == nil {
            self.addOutput(listener: producer.participant, now: now)
        }
    }

    /// The simulcast layer a video function takes: the highest measured bitrate for a transcode (the
    /// best picture to scale down), the lowest for a composite (cells are small). nil: not measured yet.
    private func preferredLayer(of producer: TrackProducer) -> Int? {
        guard producer.kind == .video, producer.layers.count > 1 else { return nil }
        let measured = producer.layers.filter { $0.bitsPerSecond > 0 }
        guard !measured.isEmpty else { return nil }
        let chosen =
            self.request.kind == .composite
            ? measured.min { $0.bitsPerSecond < $1.bitsPerSecond } : measured.max { $0.bitsPerSecond < $1.bitsPerSecond }
        return chosen?.index
    }

    /// An input track ended (unpublished, or its publisher left).
    func inputEnded(_ track: TrackID, now: NIODeadline) {
        guard let input = self.inputs.removeValue(forKey: track) else { return }
        self.inbox.push(.removed(input: track.description))
        if self.mixMinus, !self.inputs.values.contains(where: { $0.participant == input.participant }),
            let output = self.outputs.removeValue(forKey: input.participant)
        {
            self.host?.router.unpublish(output.producer.id, now: now)
        }
    }

    /// Periodic (4/s): video functions take their inputs' best layer, follow what the output's consumers
    /// can take, and tell a composite who speaks.
    func follow(now: NIODeadline) {
        guard self.isVideo, self.state == "running", let host = self.host else { return }
        for (id, input) in self.inputs {
            guard let producer = input.consumer.producer, let layer = self.preferredLayer(of: producer),
                layer != input.layer
            else { continue }
            // A new layer is a new stream (its own sequence numbers): the input restarts at its keyframe.
            self.inputs[id]?.layer = layer
            input.consumer.setLayers(.layer(layer), now: now)
            self.inbox.push(.removed(input: id.description))
            self.inbox.push(.added(input: id.description, participant: input.participant))
            input.consumer.requestKeyframe(layer: layer, now: now)
        }
        // The output's bitrate: what its most constrained consumer can take (its estimate share).
        let estimates = self.outputs.values.flatMap { $0.producer.consumers.compactMap(\.downstreamEstimate) }
        if let estimate = estimates.min(), estimate != self.followedBitrate {
            self.followedBitrate = estimate
            self.inbox.push(.control(.bitrate(estimate)))
        }
        if self.request.kind == .composite {
            let loudest = host.router.activeSpeakers(room: self.room, now: now).first
            let participant = loudest.flatMap { track in
                host.router.tracks(inRoom: self.room).first { $0.kind == .audio && $0.track.trackID == track }?.participant
            }
            if self.speaker != .some(participant) {
                self.speaker = .some(participant)
                self.inbox.push(.control(.speaker(participant)))
            }
        }
    }

    private func addOutput(listener: String?, now: NIODeadline) {
        guard let host = self.host else { return }
        let ssrc = UInt32.random(in: 1...UInt32.max)
        let suffix = listener.map { "-for-\($0)" } ?? ""
        let description =
            self.isVideo
            ? PublishedTrackDescription(
                mid: self.id, kind: .video, trackID: self.id, streamID: self.id, codecName: "VP8", payloadType: 96,
                clockRate: 90_000, ssrcs: [ssrc], feedback: RTCPFeedbackSupport(nack: true, pli: true, fir: true))
            : PublishedTrackDescription(
                mid: "\(self.id)\(suffix)", kind: .audio, trackID: "\(self.id)\(suffix)", streamID: self.id,
                codecName: "opus", payloadType: 111, clockRate: 48_000, ssrcs: [ssrc])
        let producer = host.router.publish(
            description, room: self.room, peerID: self.peerID, participant: self.peerID, audience: listener,
            extensions: Self.outputExtensions, source: self, now: now)
        producer.bind(layer: 0, ssrc: ssrc)
        self.outputs[listener] = Output(
            producer: producer, ssrc: ssrc, sequenceNumber: .random(in: 0...UInt16.max),
            baseTimestamp: .random(in: 0...UInt32.max))
        host.flush()
    }

    /// Feeds the worker's output to the output tracks through the one ingress, and passes its keyframe
    /// requests to the inputs' sources.
    func publish(_ output: FunctionOutput, now: NIODeadline) {
        guard let host = self.host, self.state == "running" else { return }
        if let failure = output.failure {
            self.fail(failure, now: now)
            return
        }
        for frame in output.audio {
            self.extensionScratch.removeAll()
            try? self.extensionScratch.append(AudioLevel(voiceActivity: frame.level < 60, level: frame.level), id: 1)
            if let capture = frame.captureNTP {
                try? self.extensionScratch.append(AbsCaptureTime(captureTimestamp: capture), id: 2)
            }
            frame.payload.withUnsafeBytes { payload in
                self.ingest(
                    payload, listener: frame.listener, timestamp: UInt32(truncatingIfNeeded: frame.tick &* 960),
                    marker: false, payloadType: 111, now: now)
            }
        }
        for frame in output.video {
            self.extensionScratch.removeAll()
            if let capture = frame.captureNTP {
                try? self.extensionScratch.append(AbsCaptureTime(captureTimestamp: capture), id: 2)
            }
            frame.payloads.withUnsafeBytes { payloads in
                var offset = 0
                for (index, length) in frame.payloadLengths.enumerated() {
                    self.ingest(
                        UnsafeRawBufferPointer(rebasing: payloads[offset..<(offset + length)]), listener: nil,
                        timestamp: frame.timestampOffset, marker: index == frame.payloadLengths.count - 1,
                        payloadType: 96, now: now)
                    offset += length
                }
            }
        }
        for input in output.keyframeRequests {
            guard let entry = self.inputs.first(where: { $0.key.description == input })?.value else { continue }
            entry.consumer.requestKeyframe(layer: entry.layer, now: now)
        }
        host.router.flushLinks()
        host.flush()
    }

    /// One RTP packet of an output, built in the scratch buffer and ingested.
    private func ingest(
        _ payload: UnsafeRawBufferPointer, listener: String?, timestamp: UInt32, marker: Bool, payloadType: UInt8,
        now: NIODeadline
    ) {
        guard var output = self.outputs[listener] else { return }
        self.scratch.clear()
        // Reused buffers: no allocation per output packet on the router's loop once they have grown.
        self.payloadScratch.clear()
        self.payloadScratch.writeBytes(payload)
        let header = RTPHeader(
            marker: marker, payloadType: payloadType, sequenceNumber: output.sequenceNumber,
            timestamp: output.baseTimestamp &+ timestamp, ssrc: output.ssrc)
        guard (try? self.scratch.writeRTPPacket(header, extensions: self.extensionScratch, payload: self.payloadScratch)) != nil,
            let rtp = try? RTPPacket(self.scratch)
        else { return }
        output.sequenceNumber &+= 1
        self.outputs[listener] = output
        _ = output.producer.ingest(
            IngressPacket(
                rtp: rtp, extensions: Self.outputExtensions, layer: 0, sequenceNumber: rtp.sequenceNumber,
                payload: rtp.payload, isRetransmission: false),
            now: now)
    }

    /// The function's module failed: it stops for good (inputs released, outputs ended) and stays listed
    /// with the reason until it is deleted.
    private func fail(_ reason: String, now: NIODeadline) {
        self.release(now: now)
        self.state = "stopped: \(reason)"
        self.host?.failed(self, reason: reason)
    }

    func stop(now: NIODeadline) {
        self.release(now: now)
        self.state = "stopped"
    }

    private func release(now: NIODeadline) {
        self.state = "stopping"
        self.worker.stop()
        for input in self.inputs.values { input.consumer.close(now: now) }
        self.inputs.removeAll()
        for output in self.outputs.values { self.host?.router.unpublish(output.producer.id, now: now) }
        self.outputs.removeAll()
        self.host?.flush()
    }

    func status() -> FunctionStatus {
        let measured = self.worker.statistics.withLockedValue { $0 }
        let inputs = self.inputs.sorted { $0.key < $1.key }.map { id, input in
            let statistics = measured.inputs[id.description]
            return FunctionStatus.Input(
                track: id.description, participant: input.participant, drops: input.consumer.backPressureDrops,
                statistics: statistics?.audio, video: statistics?.video)
        }
        let outputs = self.outputs.values.sorted { $0.producer.id < $1.producer.id }.map { output in
            FunctionStatus.Output(
                track: output.producer.id.description, listener: output.producer.audience,
                consumers: output.producer.consumers.count,
                bitrate: self.isVideo ? output.producer.layers.first?.bitsPerSecond : nil)
        }
        return FunctionStatus(
            id: self.id, kind: self.request.kind, room: self.room, state: self.state, inputs: inputs, outputs: outputs,
            framesInPerSecond: measured.framesInPerSecond, framesOutPerSecond: measured.framesOutPerSecond,
            framesOut: measured.framesOut, drops: inputs.reduce(0) { $0 + $1.drops }, lateTicks: measured.lateTicks,
            cpuPercent: measured.cpuPercent, delayP50Ms: measured.delayP50Ms, delayP95Ms: measured.delayP95Ms)
    }

    // MARK: TrackSource (the outputs' upstream)

    func requestKeyframe(_ producer: TrackProducer, layer: Int, now: NIODeadline) {
        guard self.isVideo else { return }
        if let last = self.lastKeyframeAsk, now - last < Self.keyframeInterval { return }
        self.lastKeyframeAsk = now
        self.inbox.push(.control(.keyframe))
    }
}

/// A function's input: copies each packet's media payload into the function's inbox (no allocation).
final class FunctionInputSink: TrackSink {
    let input: String
    let inbox: FunctionInbox
    weak var function: EdgeFunction?

    init(input: String, inbox: FunctionInbox, function: EdgeFunction) {
        self.input = input
        self.inbox = inbox
        self.function = function
    }

    func deliver(_ packet: MediaPacket, from consumer: TrackConsumer, now: NIODeadline) -> Delivery {
        guard packet.isForwardable else { return .accepted }
        let payload = packet.mediaPayload
        let capture = (try? packet.rtp.absCaptureTime(packet.extensions))??.captureTimestamp
        let refused = payload.withUnsafeReadableBytes { bytes in
            self.inbox.push(
                input: self.input, timestamp: packet.timestamp, sequenceNumber: packet.sequenceNumber,
                marker: packet.marker, payload: bytes,
                arrivalNanoseconds: Int64(now.uptimeNanoseconds), captureNTP: capture)
        }
        switch refused {
        case nil: return .accepted
        case .full: return .backPressure
        // Larger than an inbox slot: dropped and counted like a frame the function fell behind on.
        case .oversized: return .backPressure
        }
    }

    func consumerEnded(_ consumer: TrackConsumer, now: NIODeadline) {
        self.function?.inputEnded(consumer.track, now: now)
    }
}

/// A weak reference that can cross into a loop-bound box.
struct Weak<Object: AnyObject> {
    weak var object: Object?
    init(_ object: Object) { self.object = object }
}
