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
///  producer ─▶ FunctionInputSink ─ copy ─▶ FunctionInbox ─▶ AudioMixWorker (jitter buffer, decode,
///                 (.backPressure when full)                   mix, encode, every 20 ms)
///  output producer ◀─ ingest ◀─ EdgeFunction.publish ◀─ loop.execute ◀──┘
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
    /// - Throws: ``FunctionError`` `.badRequest` for parameters out of range or inputs that are not audio
    ///   tracks of the room, `.unknownTrack` for an input not published here, `.full` past
    ///   ``maximumFunctions``.
    public func start(_ request: FunctionRequest, room: String, now: NIODeadline) throws(FunctionError) -> FunctionStatus {
        guard self.functions.count < Self.maximumFunctions else {
            throw FunctionError(.full, "the node runs its maximum of \(Self.maximumFunctions) functions")
        }
        let bitrate = request.parameters.bitrate ?? 32_000
        guard (6_000...510_000).contains(bitrate) else {
            throw FunctionError(.badRequest, "bitrate must be 6000-510000 bit/s for Opus, got \(bitrate)")
        }
        var inputs: [TrackProducer] = []
        switch request.inputs {
        case .allAudio:
            inputs = self.router.tracks(inRoom: room).filter(Self.isMixable)
        case .tracks(let ids):
            guard (1...Self.maximumInputs).contains(ids.count) else {
                throw FunctionError(.badRequest, "1 to \(Self.maximumInputs) input tracks, got \(ids.count)")
            }
            for id in ids where !inputs.contains(where: { $0.id == id }) {
                guard let producer = self.router.track(id) else {
                    throw FunctionError(.unknownTrack, "no track \(id) is published on this node")
                }
                guard producer.room == room, Self.isMixable(producer) else {
                    throw FunctionError(.badRequest, "track \(id) is not an Opus audio track of room \(room)")
                }
                inputs.append(producer)
            }
        }
        let configuration = AudioMix.Configuration(bitrate: bitrate, mixMinus: request.parameters.mixMinus ?? false)
        let mix: AudioMix
        do {
            mix = try AudioMix(configuration: configuration)
        } catch {
            throw FunctionError(.badRequest, "cannot make the Opus encoder: \(error)")
        }
        let id = "fn-\(self.nextNumber)"
        self.nextNumber += 1
        let workers = self.workers ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.workers = workers
        let function = EdgeFunction(
            id: id, room: room, request: request, mixMinus: configuration.mixMinus, host: self, mix: mix,
            workerLoop: workers.next(), now: now)
        self.functions[id] = function
        for producer in inputs.prefix(Self.maximumInputs) { function.attach(producer, now: now) }
        function.worker.start()
        return function.status()
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
        self.functions.values.filter { room == nil || $0.room == room }.sorted { $0.number < $1.number }.map {
            $0.status()
        }
    }

    /// Periodic work (call it from the router's tick): functions on "all-audio" take the room's new audio
    /// tracks, four times a second.
    public func tick(now: NIODeadline) {
        guard !self.functions.isEmpty else { return }
        if let last = self.lastFollow, now - last < .milliseconds(250) { return }
        self.lastFollow = now
        for function in self.functions.values where function.request.inputs == .allAudio {
            for producer in self.router.tracks(inRoom: function.room) where Self.isMixable(producer) {
                if function.inputs.count < Self.maximumInputs, function.inputs[producer.id] == nil {
                    function.attach(producer, now: now)
                }
            }
        }
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

    struct Input {
        let consumer: TrackConsumer
        /// Kept here: a consumer holds its sink unowned.
        let sink: FunctionInputSink
        let participant: String
    }

    struct Output {
        let producer: TrackProducer
        let ssrc: UInt32
        var sequenceNumber: UInt16
        let baseTimestamp: UInt32
    }

    let id: String
    let number: Int
    let room: String
    let request: FunctionRequest
    let mixMinus: Bool
    let inbox = FunctionInbox()
    private(set) var worker: AudioMixWorker!
    private weak var host: FunctionHost?
    private(set) var inputs: [TrackID: Input] = [:]
    private var outputs: [String?: Output] = [:]
    private var state = "running"
    private var scratch = ByteBuffer()
    private var extensionScratch = RTPHeaderExtensionBuilder()

    init(
        id: String, room: String, request: FunctionRequest, mixMinus: Bool, host: FunctionHost, mix: AudioMix,
        workerLoop: any EventLoop, now: NIODeadline
    ) {
        self.id = id
        self.number = Int(id.dropFirst(3)) ?? 0
        self.room = room
        self.request = request
        self.mixMinus = mixMinus
        self.host = host
        let bound = NIOLoopBound(Weak(self), eventLoop: host.loop)
        let routerLoop = host.loop
        self.worker = AudioMixWorker(loop: workerLoop, mix: mix, inbox: self.inbox) { frames in
            routerLoop.execute { bound.value.object?.publish(frames, now: .now()) }
        }
        self.addOutput(listener: nil, now: now)
    }

    private var peerID: String { Self.peerPrefix + self.id }

    /// Consumes `producer` as an input.
    func attach(_ producer: TrackProducer, now: NIODeadline) {
        guard let host = self.host, self.inputs[producer.id] == nil else { return }
        let sink = FunctionInputSink(input: producer.id.description, inbox: self.inbox, function: self)
        guard let consumer = try? host.router.consume(producer.id, into: sink, layers: .all, now: now) else { return }
        self.inputs[producer.id] = Input(consumer: consumer, sink: sink, participant: producer.participant)
        self.inbox.push(.added(input: producer.id.description, participant: producer.participant))
        if self.mixMinus, self.outputs[producer.participant] == nil {
            self.addOutput(listener: producer.participant, now: now)
        }
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

    private func addOutput(listener: String?, now: NIODeadline) {
        guard let host = self.host else { return }
        let ssrc = UInt32.random(in: 1...UInt32.max)
        let suffix = listener.map { "-for-\($0)" } ?? ""
        let description = PublishedTrackDescription(
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

    /// Feeds the worker's encoded frames to the output tracks, through the one ingress.
    func publish(_ frames: [EmittedFrame], now: NIODeadline) {
        guard let host = self.host, self.state == "running" else { return }
        for frame in frames {
            guard var output = self.outputs[frame.listener] else { continue }
            self.scratch.clear()
            self.extensionScratch.removeAll()
            try? self.extensionScratch.append(AudioLevel(voiceActivity: frame.level < 60, level: frame.level), id: 1)
            if let capture = frame.captureNTP {
                try? self.extensionScratch.append(AbsCaptureTime(captureTimestamp: capture), id: 2)
            }
            let header = RTPHeader(
                payloadType: 111, sequenceNumber: output.sequenceNumber,
                timestamp: output.baseTimestamp &+ UInt32(truncatingIfNeeded: frame.tick &* 960), ssrc: output.ssrc)
            guard (try? self.scratch.writeRTPPacket(header, extensions: self.extensionScratch, payload: ByteBuffer(bytes: frame.payload))) != nil,
                let rtp = try? RTPPacket(self.scratch)
            else { continue }
            output.sequenceNumber &+= 1
            self.outputs[frame.listener] = output
            _ = output.producer.ingest(
                IngressPacket(
                    rtp: rtp, extensions: Self.outputExtensions, layer: 0, sequenceNumber: rtp.sequenceNumber,
                    payload: rtp.payload, isRetransmission: false),
                now: now)
        }
        host.router.flushLinks()
        host.flush()
    }

    func stop(now: NIODeadline) {
        self.state = "stopped"
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
            FunctionStatus.Input(
                track: id.description, participant: input.participant, drops: input.consumer.backPressureDrops,
                statistics: measured.inputs[id.description])
        }
        let outputs = self.outputs.values.sorted { $0.producer.id < $1.producer.id }.map { output in
            FunctionStatus.Output(
                track: output.producer.id.description, listener: output.producer.audience,
                consumers: output.producer.consumers.count)
        }
        return FunctionStatus(
            id: self.id, kind: self.request.kind, room: self.room, state: self.state, inputs: inputs, outputs: outputs,
            framesInPerSecond: measured.framesInPerSecond, framesOutPerSecond: measured.framesOutPerSecond,
            framesOut: measured.framesOut, drops: inputs.reduce(0) { $0 + $1.drops }, lateTicks: measured.lateTicks,
            cpuPercent: measured.cpuPercent, delayP50Ms: measured.delayP50Ms, delayP95Ms: measured.delayP95Ms)
    }

    // MARK: TrackSource (the outputs' upstream)

    func requestKeyframe(_ producer: TrackProducer, layer: Int, now: NIODeadline) {}
}

/// A function's input: copies each packet's Opus payload into the function's inbox (no allocation).
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
                input: self.input, timestamp: packet.timestamp, payload: bytes,
                arrivalNanoseconds: Int64(now.uptimeNanoseconds), captureNTP: capture)
        }
        switch refused {
        case nil: return .accepted
        case .full: return .backPressure
        // Not an Opus frame a mix can take: dropped and counted like a frame the function fell behind on.
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
