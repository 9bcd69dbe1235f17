import BraidClient
import BraidSecurity
import Foundation
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// The shape of a load run.
public enum LoadScenario: Hashable, Sendable {
    /// `rooms` rooms of `participants` participants; everyone publishes audio and video and subscribes with
    /// (participants − 1) audio and (participants − 1) video transceivers.
    ///
    /// A participant publishes first, then subscribes naming its WHIP session (`participant`, see
    /// ``BraidClient/BraidSubscriber/subscribe(to:audioTracks:videoTracks:decodeAudio:participant:options:group:)``),
    /// so the node fills its P − 1 slots of each kind with the other participants' tracks, never its own.
    /// A participant whose publisher failed subscribes unlinked (it has no tracks of its own in the room).
    case conference(rooms: Int, participants: Int)
    /// One publisher (audio and video) and `subscribers` subscribers with one audio and one video track.
    case webinar(subscribers: Int)
    /// `publishers` audio-only publishers in one room and `subscribers` subscribers receiving
    /// min(publishers, 64) audio tracks each.
    case audioRoom(publishers: Int, subscribers: Int)

    /// The command-line name.
    public var name: String {
        switch self {
        case .conference: "conference"
        case .webinar: "webinar"
        case .audioRoom: "audio-room"
        }
    }
}

/// Everything a run needs.
public struct LoadConfiguration: Sendable {
    public var scenario: LoadScenario
    /// Base URLs of the nodes (`http://host:port`); peers are spread over them round-robin.
    public var nodes: [String]
    /// Where publishers go (webinar, audio room); nil: publishers are spread with the subscribers over
    /// ``nodes``. With it, only subscribers are spread over ``nodes`` (round-robin from the first).
    public var publisherNode: String?
    /// Nodes a subscriber moves to, in order, when its own is lost (BraidClient failover; empty: off).
    public var failoverNodes: [String]
    /// Measurement time after the last peer has joined.
    public var duration: Duration
    /// Whether subscribers offer the node's loss protection (RED, Braid's FEC); off for A/B runs.
    public var lossProtection = true
    /// Whether subscribers offer NACK for audio (with loss protection).
    public var audioNACK = true
    /// What publishers send as audio: 48 kHz mono 16-bit samples, looped (nil: a 440 Hz tone).
    public var audioSource: [Int16]?
    /// Where subscribers write what they played (`subscriber-<n>-audio<k>.pcm`, raw 48 kHz mono s16le), for
    /// an objective quality score of the audio path; nil: audio is not decoded.
    public var audioRecordingDirectory: String?
    /// Peers started per second (joins run concurrently).
    public var rampUp: Double
    /// Seed of every impairment generator (peer n uses sub-stream n).
    public var seed: UInt64
    public var uplink: NetworkImpairment
    public var downlink: NetworkImpairment
    /// Per-peer deadline for HTTP, and separately for ICE + DTLS; closing waits at most this too.
    public var timeout: Duration
    /// Room names are `<roomPrefix>-<n>`.
    public var roomPrefix: String
    /// Local address the peers' UDP sockets bind to.
    public var localHost: String
    public var slo: [SLO]
    /// audio-room: the subscribers receive one mix of the room (the node's `audio-mix` edge function,
    /// started through its API once every publisher has joined) instead of every publisher's track, so
    /// their latency figures are capture to receive through the function.
    public var subscribeToMix = false
    /// webinar: the subscribers receive the publisher's video through the node's `transcode` edge
    /// function at this size (`width`, `height`), and its audio as it is.
    public var subscribeToTranscode: FrameSize?
    /// Bearer token for the node's operator routes (the functions API), when its listener asks for one.
    public var operatorToken: String?
    /// Peers share this many UDP sockets per event loop, each on a loopback address of its own
    /// (``BraidClient/PeerSocketPool``); 0: every peer binds a socket of its own.
    public var socketsPerThread = 0
    /// How subscribers treat what they receive: `.light` for thousands of subscribers per core.
    public var subscriberReception: SubscriberReception = .full
    /// What publishers send as video (the moving test pattern, encoded once and replayed).
    public var video = PublisherVideo()
    /// The Janus HTTP API base (`http://host:8088/janus`): the peers join a Janus VideoRoom there instead of
    /// ``nodes`` (webinar only; see `JanusLoad`).
    public var janus: String?

    /// Creates a configuration; defaults suit a short run against one local node.
    public init(
        scenario: LoadScenario, nodes: [String] = ["http://127.0.0.1:8080"], duration: Duration = .seconds(10),
        rampUp: Double = 50, seed: UInt64 = 1, uplink: NetworkImpairment = NetworkImpairment(),
        downlink: NetworkImpairment = NetworkImpairment(), timeout: Duration = .seconds(5), roomPrefix: String = "load",
        localHost: String = "127.0.0.1", slo: [SLO] = [], publisherNode: String? = nil, failoverNodes: [String] = []
    ) {
        self.scenario = scenario
        self.nodes = nodes
        self.publisherNode = publisherNode
        self.failoverNodes = failoverNodes
        self.duration = duration
        self.rampUp = rampUp
        self.seed = seed
        self.uplink = uplink
        self.downlink = downlink
        self.timeout = timeout
        self.roomPrefix = roomPrefix
        self.localHost = localHost
        self.slo = slo
    }
}

/// The video every publisher of a run replays: the moving test pattern, VP8-encoded once at start-up.
public struct PublisherVideo: Sendable, Hashable {
    public var size = FrameSize(width: 320, height: 180)
    public var bitrate = 300_000
    public var framesPerSecond = 30
    /// Temporal layers (1 to 4, L1T1 to L1T4).
    public var temporalLayers = 1
    /// The largest VP8 RTP payload (``BraidClient/BraidPublisher/videoPacketSizes``).
    public var packetSize = 1200
    /// Sensor-like noise over the test pattern (``BraidCodecs/TestPattern/noise``), so the encoder reaches
    /// ``bitrate``; without it the pattern encodes to a fraction of it.
    public var noise: UInt8 = 0

    public init() {}
}

/// One peer to start.
struct PeerPlan: Sendable {
    enum Role: String, Sendable { case publisher, subscriber }
    var role: Role
    var room: String
    var node: String
    var audio: Bool
    var video: Bool
    var audioTracks: Int
    var videoTracks: Int
    /// The participant the peer belongs to (`<room>/<n>`), for conferences; nil otherwise.
    var participant: String? = nil
    /// For a subscriber: the index of its participant's publisher plan, whose WHIP session it names, so
    /// it joins after that publisher has.
    var linkedPublisher: Int? = nil
}

/// A live peer.
enum LivePeer: Sendable {
    case publisher(BraidPublisher)
    case subscriber(BraidSubscriber)
}

/// What happened to one planned peer.
struct PeerOutcome: Sendable {
    var plan: PeerPlan
    var peer: LivePeer?
    var failure: BraidClientError?
}

/// Progress figures, for the live line.
public struct LoadProgress: Sendable {
    public var peersUp: Int
    public var peersFailed: Int
    public var packetsInPerSecond: Double
    public var packetsOutPerSecond: Double
    public var lossBeforeRecovery: Double
    public var latencyP95Ms: Double?
}

/// Runs a scenario: plans peers, joins them at the ramp-up rate, measures for the duration, collects the
/// statistics, closes every peer and builds the ``LoadReport``.
public enum LoadRunner {
    /// The failure cause of a client error, as the report names it.
    public static func cause(of error: BraidClientError) -> String {
        switch error {
        case .connectionFailed(let reason):
            reason.lowercased().contains("refused")
                ? "connection-refused" : reason.hasPrefix("Janus") ? "janus-error" : "connection"
        case .timeout: "timeout"
        case .httpStatus(let code, _): "http-\(code)"
        case .malformedAnswer: "malformed-answer"
        case .badArgument: "bad-argument"
        case .iceFailed: "ice"
        case .dtlsFailed: "dtls"
        case .closed: "closed"
        }
    }

    static func plan(_ configuration: LoadConfiguration) -> [PeerPlan] {
        var plans: [PeerPlan] = []
        let nodes = configuration.nodes.isEmpty ? ["http://127.0.0.1:8080"] : configuration.nodes
        // Without a publisher node every peer takes the next node; with one, publishers go there and
        // subscribers alone take turns over the list.
        var subscribersPlanned = 0
        func node() -> String { nodes[plans.count % nodes.count] }
        func publisherNode() -> String { configuration.publisherNode ?? node() }
        func subscriberNode() -> String {
            guard configuration.publisherNode != nil else { return node() }
            defer { subscribersPlanned += 1 }
            return nodes[subscribersPlanned % nodes.count]
        }
        let prefix = configuration.roomPrefix
        switch configuration.scenario {
        case .conference(let rooms, let participants):
            let others = max(1, min(participants - 1, 32))
            for room in 0..<rooms {
                for index in 0..<participants {
                    // Both sessions of a participant go to the same node (the link is checked there);
                    // participants are spread round-robin.
                    let node = nodes[(plans.count / 2) % nodes.count]
                    let participant = "\(prefix)-\(room)/\(index)"
                    plans.append(
                        PeerPlan(
                            role: .publisher, room: "\(prefix)-\(room)", node: node, audio: true, video: true,
                            audioTracks: 0, videoTracks: 0, participant: participant))
                    plans.append(
                        PeerPlan(
                            role: .subscriber, room: "\(prefix)-\(room)", node: node, audio: true, video: true,
                            audioTracks: others, videoTracks: others, participant: participant,
                            linkedPublisher: plans.count - 1))
                }
            }
        case .webinar(let subscribers):
            plans.append(
                PeerPlan(
                    role: .publisher, room: "\(prefix)-0", node: publisherNode(), audio: true, video: true,
                    audioTracks: 0,
                    videoTracks: 0))
            for _ in 0..<subscribers {
                plans.append(
                    PeerPlan(
                        role: .subscriber, room: "\(prefix)-0", node: subscriberNode(), audio: true, video: true,
                        audioTracks: 1, videoTracks: 1))
            }
        case .audioRoom(let publishers, let subscribers):
            for _ in 0..<publishers {
                plans.append(
                    PeerPlan(
                        role: .publisher, room: "\(prefix)-0", node: publisherNode(), audio: true, video: false,
                        audioTracks: 0, videoTracks: 0))
            }
            for _ in 0..<subscribers {
                plans.append(
                    PeerPlan(
                        role: .subscriber, room: "\(prefix)-0", node: subscriberNode(), audio: true, video: false,
                        audioTracks: configuration.subscribeToMix ? 1 : max(1, min(publishers, 64)), videoTracks: 0))
            }
        }
        return plans
    }

    /// Runs `configuration` on `group` (every peer shares its loops).
    ///
    /// - Parameter progress: called about once a second while peers join and media flows.
    /// - Throws: ``BraidClientError`` only if the media cannot be prepared or the certificate created;
    ///   peer failures are counted in the report.
    public static func run(
        _ configuration: LoadConfiguration, group: any EventLoopGroup,
        progress: (@Sendable (LoadProgress) -> Void)? = nil
    ) async throws -> LoadReport {
        let hasVideo: Bool = if case .audioRoom = configuration.scenario { false } else { true }
        // Encoded once; every publisher replays it with its own RTP timestamps and sequence numbers.
        let video = configuration.video
        // Two seconds of video: one keyframe, then delta frames.
        let videoFrames = hasVideo ? 2 * video.framesPerSecond : 0
        let synthetic = try PreEncodedMedia.synthetic(
            audioSeconds: configuration.audioSource == nil ? 2 : 0, videoFrames: videoFrames, width: video.size.width,
            height: video.size.height, framesPerSecond: video.framesPerSecond, videoBitrate: video.bitrate,
            temporalLayers: video.temporalLayers, videoNoise: video.noise)
        let media =
            try configuration.audioSource.map {
                try PreEncodedMedia(
                    audioPackets: PreEncodedMedia.synthetic(audioPCM: $0, videoFrames: 0).audioPackets,
                    videoFrames: synthetic.videoFrames, framesPerSecond: synthetic.framesPerSecond)
            } ?? synthetic
        let certificate = try DTLSCertificate(commonName: "braid-load")
        let plans = self.plan(configuration)
        let pool: PeerSocketPool? =
            configuration.socketsPerThread > 0
            ? try await PeerSocketPool.make(
                loops: Array(group.makeIterator()), socketsPerLoop: configuration.socketsPerThread)
            : nil
        let residentAtStart = Self.residentMB()
        let cpuStart = Self.cpuSeconds()
        let started = ContinuousClock.now
        let rate = configuration.rampUp.isFinite && configuration.rampUp > 0 ? configuration.rampUp : 1_000_000
        let outcomes = Outcomes(count: plans.count)
        let function: RoomFunction? =
            if configuration.subscribeToMix {
                RoomFunction(.audioMix, group: group, timeout: configuration.timeout, token: configuration.operatorToken)
            } else if let size = configuration.subscribeToTranscode {
                RoomFunction(
                    .transcode(size), group: group, timeout: configuration.timeout, token: configuration.operatorToken)
            } else {
                nil
            }
        let publisherIndices = plans.indices.filter { plans[$0].role == .publisher }
        let janus = configuration.janus.map { JanusLoad(url: $0, group: group, timeout: configuration.timeout) }

        let progressTask: Task<Void, Never>? = progress.map { report in
            Task { await Self.reportProgress(outcomes: outcomes, every: .seconds(1), report) }
        }
        await withTaskGroup(of: Void.self) { tasks in
            for (index, plan) in plans.enumerated() {
                let offset = Double(index) / rate
                tasks.addTask {
                    try? await Task.sleep(until: started + .microseconds(Int64(offset * 1e6)), clock: .continuous)
                    var options = ConnectionOptions(
                        localHost: configuration.localHost, timeout: configuration.timeout, certificate: certificate,
                        uplink: configuration.uplink, downlink: configuration.downlink,
                        impairmentSeed: SplitMix64.derive(configuration.seed, UInt64(index)))
                    options.offersLossProtection = configuration.lossProtection
                    options.offersAudioNACK = configuration.audioNACK
                    options.socketPool = pool
                    if plan.role == .subscriber, !configuration.failoverNodes.isEmpty {
                        options.failover = FailoverOptions(fallbacks: configuration.failoverNodes)
                    }
                    // A linked subscriber names its publisher's WHIP session, so it waits for that join.
                    var participant: String?
                    if let publisher = plan.linkedPublisher,
                        case .publisher(let peer) = await outcomes.wait(for: publisher).peer
                    {
                        participant = peer.resourceID
                    }
                    // A subscriber of a function names the tracks it plays (the function's output), which
                    // exist once every publisher is in.
                    var tracks: [String] = []
                    if let function, plan.role == .subscriber {
                        for publisher in publisherIndices { _ = await outcomes.wait(for: publisher) }
                        switch await function.tracks(node: plan.node, room: plan.room) {
                        case .success(let ids): tracks = ids
                        case .failure(let error):
                            await outcomes.set(index, PeerOutcome(plan: plan, failure: error))
                            return
                        }
                    }
                    if let janus {
                        await outcomes.set(index, await janus.join(plan, index: index, media: media, options: options))
                        return
                    }
                    let outcome = await Self.join(
                        plan, participant: participant, tracks: tracks, media: media, videoPacketSize: video.packetSize,
                        options: options,
                        recordAudio: configuration.audioRecordingDirectory != nil,
                        reception: configuration.subscriberReception, group: group)
                    await outcomes.set(index, outcome)
                }
            }
        }
        // The measurement window: every join has finished (joined or failed).
        let windowStart = (cpu: Self.cpuSeconds(), packets: await Self.packetsReceived(outcomes))
        try? await Task.sleep(for: configuration.duration)
        let windowEnd = (cpu: Self.cpuSeconds(), packets: await Self.packetsReceived(outcomes))
        progressTask?.cancel()
        let all = await outcomes.all()
        let wall = ContinuousClock.now - started
        var report = await Self.collect(all, configuration: configuration, wall: wall)
        report.processCPUSeconds = Self.cpuSeconds() - cpuStart
        if let bitrate = media.encodedVideoBitrate { report.parameters["videoEncodedKbps"] = "\(bitrate / 1000)" }
        if report.peersJoined > 0 {
            report.residentKBPerPeer = max(0, report.processMaxResidentMB - residentAtStart) * 1024 / Double(report.peersJoined)
        }
        if windowEnd.packets > windowStart.packets {
            report.cpuMicrosecondsPerPacketReceived =
                (windowEnd.cpu - windowStart.cpu) * 1e6 / Double(windowEnd.packets - windowStart.packets)
            report.windowPacketsReceivedPerSecond =
                Double(windowEnd.packets - windowStart.packets) / Self.seconds(configuration.duration)
            report.windowCPUPercent = (windowEnd.cpu - windowStart.cpu) * 100 / Self.seconds(configuration.duration)
        }
        if let pool {
            report.sharedSockets = pool.socketCount
            report.unroutedDatagrams = await pool.unroutedDatagrams()
        }
        if let function, let node = plans.first?.node, let room = plans.first?.room {
            report.function = await function.figures(node: node, room: room)
        }
        if let directory = configuration.audioRecordingDirectory {
            let failed = await Self.writeRecordings(all, to: directory)
            if !failed.isEmpty { report.failureMessages["audio-recording"] = failed }
        }
        await Self.closeAll(all.compactMap(\.peer))
        await pool?.close()
        await janus?.finish()
        report.slo = configuration.slo.map { $0.evaluate(report) }
        report.sloPassed = report.slo.allSatisfy(\.passed)
        return report
    }

    /// Joins one peer; a subscriber with `participant` (its publisher's WHIP resource id) is linked to it,
    /// one with `tracks` takes only those tracks (WHEP `?track=`).
    static func join(
        _ plan: PeerPlan, participant: String? = nil, tracks: [String] = [], media: PreEncodedMedia,
        videoPacketSize: Int = 1200, options: ConnectionOptions,
        recordAudio: Bool = false, reception: SubscriberReception = .full, group: any EventLoopGroup
    ) async -> PeerOutcome {
        let base = plan.node.hasSuffix("/") ? String(plan.node.dropLast()) : plan.node
        do {
            switch plan.role {
            case .publisher:
                let publisher = try await BraidPublisher.publish(
                    to: "\(base)/whip/\(plan.room)", audio: plan.audio ? .preEncoded(media) : nil,
                    video: plan.video ? .preEncoded(media) : nil, videoPacketSize: videoPacketSize, options: options,
                    group: group)
                return PeerOutcome(plan: plan, peer: .publisher(publisher))
            case .subscriber:
                let subscriber = try await BraidSubscriber.subscribe(
                    to: "\(base)/whep/\(plan.room)"
                        + (tracks.isEmpty ? "" : "?" + tracks.map { "track=\($0)" }.joined(separator: "&")),
                    audioTracks: plan.audioTracks, videoTracks: plan.videoTracks,
                    recordAudio: recordAudio, participant: participant, reception: reception, options: options,
                    group: group)
                return PeerOutcome(plan: plan, peer: .subscriber(subscriber))
            }
        } catch {
            return PeerOutcome(plan: plan, failure: error)
        }
    }

    /// Writes every subscriber's played audio to `directory` (created if needed); returns what failed.
    static func writeRecordings(_ outcomes: [PeerOutcome], to directory: String) async -> [String] {
        var failures: [String] = []
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            return ["\(directory): \(error)"]
        }
        for (index, outcome) in outcomes.enumerated() {
            guard case .subscriber(let subscriber) = outcome.peer else { continue }
            for (track, samples) in await subscriber.recordedAudio().enumerated() {
                let path = "\(directory)/subscriber-\(index)-audio\(track).pcm"
                let bytes = samples.withUnsafeBufferPointer { Data(buffer: $0) }  // little-endian hosts
                do {
                    try bytes.write(to: URL(fileURLWithPath: path))
                } catch {
                    failures.append("\(path): \(error)")
                }
            }
        }
        return failures
    }

    static func closeAll(_ peers: [LivePeer]) async {
        await withTaskGroup(of: Void.self) { tasks in
            for peer in peers {
                tasks.addTask {
                    switch peer {
                    case .publisher(let publisher): try? await publisher.close()
                    case .subscriber(let subscriber): try? await subscriber.close()
                    }
                }
            }
        }
    }

    static func reportProgress(
        outcomes: Outcomes, every interval: Duration, _ report: @Sendable (LoadProgress) -> Void
    ) async {
        var lastIn: Int64 = 0
        var lastOut: Int64 = 0
        var last = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
            let all = await outcomes.all()
            var packetsIn: Int64 = 0
            var packetsOut: Int64 = 0
            var expected: Int64 = 0
            var lost: Int64 = 0
            var histogram = LatencyHistogram()
            for outcome in all {
                switch outcome.peer {
                case .publisher(let publisher):
                    let stats = await publisher.statistics()
                    packetsOut += Int64(stats.transport.rtpPacketsSent)
                case .subscriber(let subscriber):
                    guard let stats = await subscriber.statistics() else { continue }
                    packetsIn += Int64(stats.transport.rtpPacketsReceived)
                    for track in stats.video {
                        expected += track.packetsReceived + track.packetsLost
                        lost += track.packetsLost
                        histogram.merge(track.latencyHistogram)
                    }
                    for track in stats.audio {
                        expected += track.packetsReceived + track.packetsLost
                        lost += track.packetsLost
                        histogram.merge(track.latencyHistogram)
                    }
                case nil:
                    continue
                }
            }
            let now = ContinuousClock.now
            let seconds = max(0.001, Self.seconds(now - last))
            report(
                LoadProgress(
                    peersUp: all.filter { $0.peer != nil }.count, peersFailed: all.filter { $0.failure != nil }.count,
                    packetsInPerSecond: Double(packetsIn - lastIn) / seconds,
                    packetsOutPerSecond: Double(packetsOut - lastOut) / seconds,
                    lossBeforeRecovery: expected > 0 ? Double(lost) / Double(expected) : 0,
                    latencyP95Ms: histogram.percentile(0.95).map { Double($0) / 1000 }))
            lastIn = packetsIn
            lastOut = packetsOut
            last = now
        }
    }

    static func collect(
        _ outcomes: [PeerOutcome], configuration: LoadConfiguration, wall: Duration
    ) async -> LoadReport {
        var failures: [String: Int] = [:]
        var messages: [String: [String]] = [:]
        var subscriberJoins: [Double] = []
        var publisherJoins: [Double] = []
        var videoHistogram = LatencyHistogram()
        var audioHistogram = LatencyHistogram()
        var video = VideoFigures(latency: LatencyFigures(LatencyHistogram()))
        var audio = AudioFigures(latency: LatencyFigures(LatencyHistogram()))
        var peers: [PeerFigures] = []
        var nacksSent: Int64 = 0
        var nacksReceived: Int64 = 0
        var retransmissionsSent: Int64 = 0
        var publisherRepairs: Int64 = 0
        var publisherRounds: Int64 = 0
        var packetsSent: Int64 = 0
        var packetsReceived: Int64 = 0
        var bytesSent: Int64 = 0
        var bytesReceived: Int64 = 0
        var impairment = (upLoss: Int64(0), upQueue: Int64(0), downLoss: Int64(0), downQueue: Int64(0))
        var joined = 0
        var lightSubscribers = 0
        var longestGap: Duration?
        var packetsAuthenticated: Int64 = 0
        var authenticationFailures: Int64 = 0
        // Per subscriber node, in the order the nodes were given.
        var nodeOrder: [String] = []
        var nodeFigures: [String: (planned: Int, joined: Int, latency: LatencyHistogram, gap: Duration?)] = [:]

        func addTransport(_ transport: TransportStatistics) {
            packetsSent += Int64(transport.rtpPacketsSent)
            packetsReceived += Int64(transport.rtpPacketsReceived)
            bytesSent += Int64(transport.rtpBytesSent)
            bytesReceived += Int64(transport.rtpBytesReceived)
            impairment.upLoss += Int64(transport.uplinkImpairment.droppedByLoss)
            impairment.upQueue += Int64(transport.uplinkImpairment.droppedByQueue)
            impairment.downLoss += Int64(transport.downlinkImpairment.droppedByLoss)
            impairment.downQueue += Int64(transport.downlinkImpairment.droppedByQueue)
        }
        func ms(_ duration: Duration?) -> Double? { duration.map { Self.seconds($0) * 1000 } }

        for outcome in outcomes {
            if outcome.plan.role == .subscriber {
                if nodeFigures[outcome.plan.node] == nil {
                    nodeOrder.append(outcome.plan.node)
                    nodeFigures[outcome.plan.node] = (0, 0, LatencyHistogram(), nil)
                }
                nodeFigures[outcome.plan.node]?.planned += 1
            }
            var figures = PeerFigures(
                role: outcome.plan.role.rawValue, room: outcome.plan.room, node: outcome.plan.node,
                participant: outcome.plan.participant, tracks: [])
            if let error = outcome.failure {
                let cause = Self.cause(of: error)
                failures[cause, default: 0] += 1
                if messages[cause, default: []].count < 5 { messages[cause, default: []].append("\(error)") }
                figures.failure = cause
            }
            switch outcome.peer {
            case .publisher(let publisher):
                joined += 1
                let stats = await publisher.statistics()
                figures.joinMs = ms(stats.connectTime)
                if let join = figures.joinMs { publisherJoins.append(join) }
                nacksReceived += Int64(stats.nacksReceived)
                retransmissionsSent += Int64(stats.retransmissionsSent)
                publisherRepairs += Int64(stats.repairPacketsSent)
                publisherRounds += Int64(stats.repairRounds)
                addTransport(stats.transport)
            case .subscriber(let subscriber):
                joined += 1
                nodeFigures[outcome.plan.node]?.joined += 1
                guard let stats = await subscriber.statistics() else { break }
                if let gap = stats.longestMediaGap {
                    figures.longestGapMs = ms(gap)
                    longestGap = max(longestGap ?? gap, gap)
                    let worst = nodeFigures[outcome.plan.node]?.gap
                    if worst.map({ gap > $0 }) ?? true { nodeFigures[outcome.plan.node]?.gap = gap }
                }
                if stats.isLight {
                    lightSubscribers += 1
                    packetsAuthenticated += Int64(stats.transport.rtpPacketsAuthenticated)
                    authenticationFailures += Int64(stats.transport.unprotectFailures)
                }
                figures.joinMs = ms(stats.joinTime)
                if !configuration.failoverNodes.isEmpty { figures.reconnects = stats.reconnects }
                if let join = figures.joinMs { subscriberJoins.append(join) }
                nacksSent += Int64(stats.nacksSent)
                addTransport(stats.transport)
                for track in stats.video {
                    let expected = track.packetsReceived + max(0, track.packetsLost)
                    video.packetsExpected += expected
                    video.packetsReceived += track.packetsReceived
                    video.packetsLostBeforeRecovery += max(0, track.packetsLost)
                    video.packetsRecovered += Int64(track.packetsRecovered)
                    video.packetsAwaitingRepair += Int64(track.packetsAwaitingRepair)
                    video.retransmissionsReceived += Int64(track.retransmissionsReceived)
                    video.packetsRecoveredByFEC += Int64(track.packetsRecoveredByFEC)
                    video.repairPacketsReceived += Int64(track.repairPacketsReceived)
                    video.silenceProbesSent += Int64(track.silenceProbesSent)
                    video.mediaBytesReceived += track.mediaBytesReceived
                    video.retransmissionBytesReceived += track.retransmissionBytesReceived
                    video.repairBytesReceived += track.repairBytesReceived
                    video.framesDecodableInTime += Int64(track.framesDecodableInTime)
                    video.framesComplete += Int64(track.framesComplete)
                    video.framesDecodable += Int64(track.framesDecodable)
                    video.framesLost += Int64(track.framesLost)
                    video.keyframes += Int64(track.keyframes)
                    video.freezeCount += Int64(track.freezeCount)
                    video.totalFreezesSeconds += Self.seconds(track.totalFreezesDuration)
                    video.playoutFreezeCount += Int64(track.playoutFreezeCount)
                    video.totalPlayoutFreezesSeconds += Self.seconds(track.totalPlayoutFreezesDuration)
                    videoHistogram.merge(track.latencyHistogram)
                    nodeFigures[outcome.plan.node]?.latency.merge(track.latencyHistogram)
                    figures.tracks.append(
                        TrackFigures(
                            kind: "video", mid: track.mid, ssrc: track.ssrc, packetsReceived: track.packetsReceived,
                            packetsLost: track.packetsLost, packetsRecovered: Int64(track.packetsRecovered),
                            freezeCount: track.freezeCount, latencyP50Ms: ms(track.latency.p50),
                            latencyP95Ms: ms(track.latency.p95)))
                }
                for track in stats.audio {
                    audio.packetsExpected += track.packetsReceived + max(0, track.packetsLost)
                    audio.packetsReceived += track.packetsReceived
                    audio.packetsLost += max(0, track.packetsLost)
                    audio.framesConcealed += track.framesConcealed
                    audio.framesExpected += track.framesInTime + track.framesLate
                        + max(0, track.framesConcealed - track.framesLate)
                    audio.framesInTime += track.framesInTime
                    audio.framesLate += track.framesLate
                    audio.framesFromRedundancy += track.framesFromRedundancy
                    audio.packetsRecoveredByNACK += Int64(track.packetsRecoveredByNACK)
                    audio.packetsPastDeadline += Int64(track.packetsPastDeadline)
                    audioHistogram.merge(track.latencyHistogram)
                    nodeFigures[outcome.plan.node]?.latency.merge(track.latencyHistogram)
                    figures.tracks.append(
                        TrackFigures(
                            kind: "audio", mid: track.mid, ssrc: track.ssrc, packetsReceived: track.packetsReceived,
                            packetsLost: track.packetsLost, packetsRecovered: Int64(track.packetsRecoveredByNACK),
                            freezeCount: 0,
                            latencyP50Ms: ms(track.latency.p50), latencyP95Ms: ms(track.latency.p95)))
                }
                // The node never shows one track in two slots of a subscriber, so slots with media are
                // distinct remote tracks.
                figures.remoteTracks = figures.tracks.filter { $0.packetsReceived > 0 }.count
            case nil:
                break
            }
            peers.append(figures)
        }
        video.packetsNeverRepaired = max(
            0, video.packetsLostBeforeRecovery - video.packetsRecovered - video.packetsAwaitingRepair)
        if video.packetsExpected > 0 {
            video.lossBeforeRecovery = Double(video.packetsLostBeforeRecovery) / Double(video.packetsExpected)
            video.residualLoss = Double(video.packetsNeverRepaired) / Double(video.packetsExpected)
        }
        if video.framesComplete + video.framesLost > 0 {
            video.framesInTimeRatio = Double(video.framesDecodableInTime) / Double(video.framesComplete + video.framesLost)
        }
        if video.mediaBytesReceived > 0 {
            let total = video.mediaBytesReceived + video.retransmissionBytesReceived + video.repairBytesReceived
            video.bitrateOverhead = Double(total) / Double(video.mediaBytesReceived)
        }
        if audio.packetsExpected > 0 { audio.loss = Double(audio.packetsLost) / Double(audio.packetsExpected) }
        if audio.framesExpected > 0 { audio.inTimeRatio = Double(audio.framesInTime) / Double(audio.framesExpected) }
        video.latency = LatencyFigures(videoHistogram)
        audio.latency = LatencyFigures(audioHistogram)
        var all = videoHistogram
        all.merge(audioHistogram)

        let perNode = nodeOrder.compactMap { node in
            nodeFigures[node].map {
                NodeFigures(
                    node: node, subscribersPlanned: $0.planned, subscribersJoined: $0.joined,
                    latency: LatencyFigures($0.latency), longestGapMs: ms($0.gap))
            }
        }

        var parameters: [String: String] = [
            "scenario": configuration.scenario.name, "nodes": configuration.nodes.joined(separator: " "),
            "duration": "\(configuration.duration)", "rampUp": "\(configuration.rampUp)",
            "seed": "\(configuration.seed)", "timeout": "\(configuration.timeout)",
        ]
        if let publisherNode = configuration.publisherNode { parameters["publisherNode"] = publisherNode }
        if !configuration.failoverNodes.isEmpty {
            parameters["failoverNodes"] = configuration.failoverNodes.joined(separator: ",")
        }
        switch configuration.scenario {
        case .conference(let rooms, let participants):
            parameters["rooms"] = "\(rooms)"
            parameters["participants"] = "\(participants)"
        case .webinar(let subscribers):
            parameters["subscribers"] = "\(subscribers)"
        case .audioRoom(let publishers, let subscribers):
            parameters["publishers"] = "\(publishers)"
            parameters["subscribers"] = "\(subscribers)"
        }
        if case .audioRoom = configuration.scenario {} else {
            let video = configuration.video
            parameters["video"] =
                "\(video.size) \(video.bitrate / 1000) kbit/s \(video.framesPerSecond) fps L1T\(video.temporalLayers), "
                + "\(video.packetSize)-byte payloads" + (video.noise > 0 ? ", noise \(video.noise)" : "")
        }
        if configuration.socketsPerThread > 0 { parameters["sharedSockets"] = "\(configuration.socketsPerThread) per thread" }
        if case .light(let every) = configuration.subscriberReception { parameters["lightSubscribers"] = "1 in \(every) authenticated" }
        if configuration.subscribeToMix { parameters["function"] = "audio-mix" }
        if let size = configuration.subscribeToTranscode { parameters["function"] = "transcode \(size)" }
        if !configuration.uplink.isNone { parameters["uplink"] = "\(configuration.uplink)" }
        if !configuration.downlink.isNone { parameters["downlink"] = "\(configuration.downlink)" }

        return LoadReport(
            scenario: configuration.scenario.name, parameters: parameters, wallSeconds: Self.seconds(wall),
            peersPlanned: outcomes.count, peersJoined: joined, peersFailed: outcomes.count - joined,
            failures: failures, failureMessages: messages, subscriberJoin: JoinFigures(subscriberJoins),
            publisherJoin: JoinFigures(publisherJoins), video: video, audio: audio, latency: LatencyFigures(all),
            nacksSent: nacksSent, publisherNacksReceived: nacksReceived,
            publisherRetransmissionsSent: retransmissionsSent, publisherRepairsSent: publisherRepairs,
            publisherRepairRounds: publisherRounds, packetsSent: packetsSent,
            packetsReceived: packetsReceived, bytesSent: bytesSent, bytesReceived: bytesReceived,
            uplinkDroppedByLoss: impairment.upLoss, uplinkDroppedByQueue: impairment.upQueue,
            downlinkDroppedByLoss: impairment.downLoss, downlinkDroppedByQueue: impairment.downQueue,
            processCPUSeconds: 0, processMaxResidentMB: Self.maxResidentMB(), longestGapMs: ms(longestGap),
            perNode: perNode, peers: peers, slo: [], sloPassed: true, lightSubscribers: lightSubscribers,
            lightPacketsAuthenticated: packetsAuthenticated, lightAuthenticationFailures: authenticationFailures)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    /// User + system CPU time of this process.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
        func value(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) * 1e-6 }
        return value(usage.ru_utime) + value(usage.ru_stime)
    }

    /// Peak resident set size of this process in MiB (Linux reports `ru_maxrss` in KiB).
    /// SRTP packets every subscriber has received so far.
    static func packetsReceived(_ outcomes: Outcomes) async -> Int {
        var total = 0
        for (_, subscriber) in await outcomes.subscribers() { total += await subscriber.packetsReceived() }
        return total
    }

    /// This process's resident memory now, from `/proc/self/statm` (0 where it cannot be read).
    static func residentMB() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / (1024 * 1024)
    }

    static func maxResidentMB() -> Double {
        var usage = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
        return Double(usage.ru_maxrss) / 1024
    }
}

/// The outcomes so far, filled in as joins finish.
actor Outcomes {
    var slots: [PeerOutcome?]
    /// Tasks waiting for an outcome, by index.
    private var waiters: [Int: [CheckedContinuation<PeerOutcome, Never>]] = [:]

    init(count: Int) {
        self.slots = Array(repeating: nil, count: count)
    }

    func set(_ index: Int, _ outcome: PeerOutcome) {
        self.slots[index] = outcome
        for waiter in self.waiters.removeValue(forKey: index) ?? [] { waiter.resume(returning: outcome) }
    }

    /// The outcome of peer `index`, once its join has finished (every planned join finishes: each is bounded
    /// by the timeout).
    func wait(for index: Int) async -> PeerOutcome {
        if let outcome = self.slots[index] { return outcome }
        return await withCheckedContinuation { self.waiters[index, default: []].append($0) }
    }

    func all() -> [PeerOutcome] {
        self.slots.compactMap { $0 }
    }

    /// The subscribers that joined, with their plan index.
    func subscribers() -> [(index: Int, subscriber: BraidSubscriber)] {
        self.slots.enumerated().compactMap { index, outcome in
            guard case .subscriber(let subscriber) = outcome?.peer else { return nil }
            return (index, subscriber)
        }
    }
}

/// The size of a video function's output.
public struct FrameSize: Sendable, Hashable, Codable, CustomStringConvertible {
    public var width: Int
    public var height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// Parses `WIDTHxHEIGHT` (even numbers, as the node asks).
    public init?(_ text: String) {
        let parts = text.lowercased().split(separator: "x")
        guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]), width > 0, height > 0,
            width % 2 == 0, height % 2 == 0
        else { return nil }
        self.init(width: width, height: height)
    }

    public var description: String { "\(self.width)x\(self.height)" }
}

/// `audio-room --mix` and `webinar --transcode`: a function of the room, started once through the node's
/// API (`POST /api/v1/rooms/{room}/functions`); every subscriber asks which tracks to play.
actor RoomFunction {
    enum Kind: Sendable {
        /// `audio-mix` of every audio track; subscribers play the mix.
        case audioMix
        /// `transcode` of the publisher's video; subscribers play it and the publisher's audio.
        case transcode(FrameSize)
    }

    private let kind: Kind
    private let group: any EventLoopGroup
    private let timeout: Duration
    private let token: String?
    private var started: Task<Result<Started, BraidClientError>, Never>?

    init(_ kind: Kind, group: any EventLoopGroup, timeout: Duration, token: String? = nil) {
        self.kind = kind
        self.group = group
        self.timeout = timeout
        self.token = token
    }

    /// The tracks a subscriber plays; the first call starts the function, later calls get its answer.
    func tracks(node: String, room: String) async -> Result<[String], BraidClientError> {
        await self.start(node: node, room: room).map(\.tracks)
    }

    /// The function's own figures as the node reports them (nil if it never started or cannot be read).
    func figures(node: String, room: String) async -> FunctionFigures? {
        guard case .success(let started)? = await self.started?.value else { return nil }
        guard let response = try? await self.request(.get, node: node, path: "/api/v1/rooms/\(room)/functions/\(started.id)"),
            response.status == 200,
            let status = try? JSONDecoder().decode(FunctionFigures.self, from: Data(response.body.utf8))
        else { return nil }
        return status
    }

    private struct Started: Sendable {
        var id: String
        var tracks: [String]
    }

    private struct Status: Decodable {
        struct Output: Decodable {
            var track: String
            var listener: String?
        }
        var id: String
        var outputs: [Output]
    }

    private struct Room: Decodable {
        struct Track: Decodable {
            var id: String?
            var kind: String
        }
        var tracks: [Track]
    }

    private func start(node: String, room: String) async -> Result<Started, BraidClientError> {
        if let started = self.started { return await started.value }
        let task = Task { await self.create(node: node, room: room) }
        self.started = task
        return await task.value
    }

    private func create(node: String, room: String) async -> Result<Started, BraidClientError> {
        do throws(BraidClientError) {
            var body = #"{"kind": "audio-mix", "inputs": "all-audio"}"#
            var passThrough: [String] = []
            if case .transcode(let size) = self.kind {
                let answer = try await self.request(.get, node: node, path: "/api/v1/rooms/\(room)")
                guard answer.status == 200, let tracks = try? JSONDecoder().decode(Room.self, from: Data(answer.body.utf8)).tracks,
                    let video = tracks.first(where: { $0.kind == "video" })?.id
                else { return .failure(.malformedAnswer("room \(room) lists no video track to transcode")) }
                passThrough = tracks.filter { $0.kind == "audio" }.compactMap { $0.id }
                body =
                    #"{"kind": "transcode", "inputs": ["\#(video)"], "parameters": {"width": \#(size.width), "height": \#(size.height)}}"#
            }
            let response = try await self.request(.post, node: node, path: "/api/v1/rooms/\(room)/functions", body: body)
            guard response.status == 201 else {
                return .failure(.httpStatus(code: response.status, body: response.body))
            }
            guard
                let status = try? JSONDecoder().decode(Status.self, from: Data(response.body.utf8)),
                let output = status.outputs.first(where: { $0.listener == nil })
            else { return .failure(.malformedAnswer("the function's status names no output track")) }
            return .success(Started(id: status.id, tracks: [output.track] + passThrough))
        } catch {
            return .failure(error)
        }
    }

    private func request(
        _ method: WHTTPClient.Method, node: String, path: String, body: String? = nil
    ) async throws(BraidClientError) -> HTTPResponseSummary {
        var endpoint = try HTTPEndpoint(url: node)
        endpoint.path = path
        var headers: [(String, String)] = body == nil ? [] : [("Content-Type", "application/json")]
        if let token = self.token { headers.append(("Authorization", "Bearer \(token)")) }
        return try await WHTTPClient(group: self.group).request(
            method, endpoint, headers: headers, body: body ?? "", timeout: self.timeout)
    }
}
