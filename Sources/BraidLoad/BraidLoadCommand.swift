import ArgumentParser
import BraidClient
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// Exit codes of `braid-load` (documented in the module documentation).
public enum LoadExitCode {
    /// The run completed and every SLO was met.
    public static let success: Int32 = 0
    /// The run could not start (media preparation, certificate), or its report or audio recordings could
    /// not be written.
    public static let runFailed: Int32 = 1
    /// At least one SLO was violated. Without `--slo`, `failures=0` applies.
    public static let sloViolated: Int32 = 2
    /// No peer could join at all (node unreachable or refusing every session).
    public static let nothingJoined: Int32 = 3
}

/// Options every scenario shares.
public struct CommonLoadOptions: ParsableArguments {
    @Option(name: .customLong("node"), help: "Node base URL (repeatable; peers are spread round-robin).")
    public var nodes: [String] = []
    @Option(
        name: .customLong("publisher-node"),
        help: "Node base URL for every publisher (webinar, audio-room); subscribers are then spread over --node.")
    public var publisherNode: String?
    @Option(
        name: .customLong("failover-node"),
        help: "Node base URL a subscriber moves to when its node is lost (repeatable; BraidClient failover).")
    public var failoverNodes: [String] = []
    @Option(help: "Measurement time after the last peer joined (e.g. 10s).")
    public var duration: String = "10s"
    @Option(name: .customLong("ramp-up"), help: "Peers started per second.")
    public var rampUp: Double = 50
    @Option(help: "Seed of the simulated network (reproducible loss and jitter).")
    public var seed: UInt64 = 1
    @Option(help: "Per-peer deadline for signalling and, separately, for ICE + DTLS.")
    public var timeout: String = "5s"
    @Option(name: .customLong("room-prefix"), help: "Rooms are named <prefix>-<n>.")
    public var roomPrefix: String = "load"
    @Option(name: .customLong("local-host"), help: "Local address the peers bind to.")
    public var localHost: String = "127.0.0.1"
    @Option(name: .customLong("threads"), help: "Event loop threads shared by every peer (1-2 suits a 2-core host).")
    public var threads: Int = 1
    @Option(
        name: .customLong("shared-sockets"),
        help: "Peers share this many UDP sockets per --threads loop, each peer on a loopback address of its own (127.64.0.0/10), so the node must be on loopback; 0: a socket per peer.")
    public var sharedSockets: Int = 0
    @Flag(
        name: .customLong("light-subscribers"),
        help: "Subscribers count packets from their RTP headers and authenticate a sample (--authenticate-every), so thousands fit on a core; video frames and freezes are not measured, RED/FEC not offered.")
    public var lightSubscribers = false
    @Option(name: .customLong("authenticate-every"), help: "Light subscribers authenticate and decrypt one RTP packet in N.")
    public var authenticateEvery: Int = 16

    @Option(name: .customLong("uplink-loss"), help: "Random uplink loss (e.g. 5%).")
    public var uplinkLoss: String?
    @Option(name: .customLong("downlink-loss"), help: "Random downlink loss (e.g. 10%).")
    public var downlinkLoss: String?
    @Option(name: .customLong("uplink-burst"), help: "Gilbert-Elliott uplink loss 'p,r'.")
    public var uplinkBurst: String?
    @Option(name: .customLong("downlink-burst"), help: "Gilbert-Elliott downlink loss 'p,r'.")
    public var downlinkBurst: String?
    @Option(name: .customLong("uplink-delay"), help: "Fixed uplink one-way delay (e.g. 50ms).")
    public var uplinkDelay: String?
    @Option(name: .customLong("downlink-delay"), help: "Fixed downlink one-way delay.")
    public var downlinkDelay: String?
    @Option(help: "Jitter added to each direction: uniform 0...value.")
    public var jitter: String?
    @Option(name: .customLong("uplink-rate"), help: "Uplink bandwidth cap (e.g. 1mbps).")
    public var uplinkRate: String?
    @Option(name: .customLong("downlink-rate"), help: "Downlink bandwidth cap (e.g. 500kbps).")
    public var downlinkRate: String?

    @Option(name: .customLong("video-size"), help: "Publishers' video size, WIDTHxHEIGHT (even numbers).")
    public var videoSize: String = "320x180"
    @Option(name: .customLong("video-bitrate"), help: "Publishers' video bitrate (e.g. 300kbps, 1.5mbps).")
    public var videoBitrate: String = "300kbps"
    @Option(name: .customLong("frame-rate"), help: "Publishers' video frames per second (1-60).")
    public var frameRate: Int = 30
    @Option(name: .customLong("temporal-layers"), help: "Publishers' VP8 temporal layers (1-4).")
    public var temporalLayers: Int = 1
    @Option(name: .customLong("packet-size"), help: "Largest VP8 RTP payload in bytes (100-1400).")
    public var packetSize: Int = 1200
    @Option(
        name: .customLong("video-noise"),
        help: "Luma noise amplitude (0-64) over the test pattern, so the encoder reaches --video-bitrate (the plain pattern encodes far below it; the report shows the encoded bitrate).")
    public var videoNoise: Int = 0

    @Flag(name: .customLong("no-loss-protection"), help: "Subscribers do not offer RED or FEC (to compare).")
    public var noLossProtection = false
    @Flag(name: .customLong("no-audio-nack"), help: "Subscribers do not offer NACK for audio (to compare).")
    public var noAudioNACK = false
    @Option(
        name: .customLong("audio-pcm"),
        help: "Publishers send this audio, looped: raw 48 kHz mono 16-bit little-endian PCM (default: a 440 Hz tone).")
    public var audioPCM: String?
    @Option(
        name: .customLong("record-audio"),
        help: "Subscribers decode their audio and write what they played to this directory (raw PCM like --audio-pcm).")
    public var recordAudio: String?

    @Option(
        name: .customLong("operator-token"),
        help: "Bearer token for the node's operator API (an admin token), sent when braid-load starts an edge function (--mix, --transcode) on a node whose public listener needs one.")
    public var operatorToken: String?

    @Option(
        help: ArgumentHelp(
            "Run against a Janus VideoRoom through Janus's HTTP API at this base URL (e.g. http://10.200.0.2:8088/janus) instead of WHIP/WHEP nodes (webinar only).",
            valueName: "url"))
    public var janus: String?

    @Option(help: "Write the full report as JSON to this file.")
    public var json: String?
    @Option(help: "Objectives, e.g. p95-latency=200ms,residual-loss=1%,freezes=0,join-p95=500ms,failures=0")
    public var slo: String?

    public init() {}

    /// The impairments of both directions.
    func impairments() throws(LoadArgumentError) -> (NetworkImpairment, NetworkImpairment) {
        let jitter = try self.jitter.map { (text) throws(LoadArgumentError) in try Quantities.duration(text) } ?? .zero
        func make(
            loss: String?, burst: String?, delay: String?, rate: String?
        ) throws(LoadArgumentError) -> NetworkImpairment {
            NetworkImpairment(
                lossRate: try loss.map { (text) throws(LoadArgumentError) in try Quantities.fraction(text) } ?? 0,
                burstLoss: try burst.map { (text) throws(LoadArgumentError) in try Quantities.burst(text) },
                delay: try delay.map { (text) throws(LoadArgumentError) in try Quantities.duration(text) } ?? .zero,
                jitter: jitter,
                rateBitsPerSecond: try rate.map { (text) throws(LoadArgumentError) in try Quantities.bitRate(text) })
        }
        return (
            try make(loss: self.uplinkLoss, burst: self.uplinkBurst, delay: self.uplinkDelay, rate: self.uplinkRate),
            try make(
                loss: self.downlinkLoss, burst: self.downlinkBurst, delay: self.downlinkDelay, rate: self.downlinkRate)
        )
    }

    /// The configuration of `scenario` from these options.
    public func configuration(_ scenario: LoadScenario) throws(LoadArgumentError) -> LoadConfiguration {
        let (uplink, downlink) = try self.impairments()
        let slo = try self.slo.map { (text) throws(LoadArgumentError) in try SLO.parseList(text) }
            ?? [SLO(metric: .failures, limit: 0)]
        guard self.rampUp.isFinite, self.rampUp > 0 else { throw LoadArgumentError("--ramp-up must be above 0") }
        for node in self.nodes {
            do { _ = try HTTPEndpoint(url: node) } catch { throw LoadArgumentError("--node '\(node)': \(error)") }
        }
        if let publisherNode = self.publisherNode {
            if case .conference = scenario {
                throw LoadArgumentError("--publisher-node: conference participants publish and subscribe on one node")
            }
            do {
                _ = try HTTPEndpoint(url: publisherNode)
            } catch {
                throw LoadArgumentError("--publisher-node '\(publisherNode)': \(error)")
            }
        }
        for node in self.failoverNodes {
            do {
                _ = try HTTPEndpoint(url: node)
            } catch {
                throw LoadArgumentError("--failover-node '\(node)': \(error)")
            }
        }
        // With only a publisher node, the subscribers join it too.
        let nodes = self.nodes.isEmpty ? [self.publisherNode ?? "http://127.0.0.1:8080"] : self.nodes
        var configuration = LoadConfiguration(
            scenario: scenario, nodes: nodes,
            duration: try Quantities.duration(self.duration), rampUp: self.rampUp, seed: self.seed, uplink: uplink,
            downlink: downlink, timeout: try Quantities.duration(self.timeout), roomPrefix: self.roomPrefix,
            localHost: self.localHost, slo: slo, publisherNode: self.publisherNode, failoverNodes: self.failoverNodes)
        configuration.lossProtection = !self.noLossProtection
        configuration.audioNACK = !self.noAudioNACK
        if let path = self.audioPCM {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw LoadArgumentError("--audio-pcm '\(path)': cannot read the file")
            }
            guard data.count >= 2 * 960, data.count % 2 == 0 else {
                throw LoadArgumentError("--audio-pcm '\(path)': want at least 20 ms of 16-bit samples")
            }
            configuration.audioSource = data.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
        }
        configuration.audioRecordingDirectory = self.recordAudio
        configuration.operatorToken = self.operatorToken
        guard (0...64).contains(self.sharedSockets) else { throw LoadArgumentError("--shared-sockets 0-64") }
        if self.sharedSockets > 0 {
            let loopback = ([self.publisherNode].compactMap { $0 } + nodes + self.failoverNodes).allSatisfy {
                (try? HTTPEndpoint(url: $0)).map { $0.host.hasPrefix("127.") || $0.host == "localhost" } ?? false
            }
            guard loopback else {
                throw LoadArgumentError("--shared-sockets gives peers loopback addresses: every node must be on 127.0.0.0/8")
            }
        }
        configuration.socketsPerThread = self.sharedSockets
        guard let size = FrameSize(self.videoSize), size.width <= 3840, size.height <= 2160 else {
            throw LoadArgumentError("--video-size WIDTHxHEIGHT with even numbers up to 3840x2160, got '\(self.videoSize)'")
        }
        let bitrate = try Quantities.bitRate(self.videoBitrate)
        guard (10_000...20_000_000).contains(bitrate) else { throw LoadArgumentError("--video-bitrate 10kbps-20mbps") }
        guard (1...60).contains(self.frameRate) else { throw LoadArgumentError("--frame-rate 1-60") }
        guard (1...4).contains(self.temporalLayers) else { throw LoadArgumentError("--temporal-layers 1-4") }
        guard BraidPublisher.videoPacketSizes.contains(self.packetSize) else {
            throw LoadArgumentError("--packet-size \(BraidPublisher.videoPacketSizes.lowerBound)-\(BraidPublisher.videoPacketSizes.upperBound)")
        }
        configuration.video.size = size
        configuration.video.bitrate = bitrate
        configuration.video.framesPerSecond = self.frameRate
        configuration.video.temporalLayers = self.temporalLayers
        configuration.video.packetSize = self.packetSize
        guard (0...64).contains(self.videoNoise) else { throw LoadArgumentError("--video-noise 0-64") }
        configuration.video.noise = UInt8(self.videoNoise)
        if self.lightSubscribers {
            guard self.authenticateEvery >= 1 else { throw LoadArgumentError("--authenticate-every must be at least 1") }
            guard self.recordAudio == nil else {
                throw LoadArgumentError("--record-audio needs subscribers that decode: not with --light-subscribers")
            }
            configuration.subscriberReception = .light(authenticateEvery: self.authenticateEvery)
        }
        if let janus = self.janus {
            guard case .webinar = scenario else { throw LoadArgumentError("--janus runs the webinar scenario only") }
            guard self.nodes.isEmpty, self.publisherNode == nil, self.failoverNodes.isEmpty else {
                throw LoadArgumentError("--janus replaces --node, --publisher-node and --failover-node")
            }
            guard self.recordAudio == nil else { throw LoadArgumentError("--janus does not record audio") }
            guard self.sharedSockets == 0, !self.lightSubscribers else {
                throw LoadArgumentError("--janus peers bind sockets of their own: not with --shared-sockets or --light-subscribers")
            }
            do { _ = try HTTPEndpoint(url: janus) } catch { throw LoadArgumentError("--janus '\(janus)': \(error)") }
            configuration.janus = janus
            configuration.nodes = [janus]
        }
        return configuration
    }

    /// Runs `scenario`, prints the progress line (on a terminal only) and the table, writes the JSON report,
    /// and returns the exit code together with the report (nil when the run could not start).
    public func execute(
        _ scenario: LoadScenario, adjust: (inout LoadConfiguration) -> Void = { _ in }
    ) async -> (code: Int32, report: LoadReport?) {
        var configuration: LoadConfiguration
        do {
            configuration = try self.configuration(scenario)
            adjust(&configuration)
        } catch {
            Self.printError("braid-load: \(error)")
            return (ExitCode.validationFailure.rawValue, nil)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(self.threads, 64)))
        let interactive = isatty(STDERR_FILENO) == 1
        let progress: (@Sendable (LoadProgress) -> Void)?
        if interactive {
            progress = { Self.printError("\r\u{1B}[K" + $0.line, newline: false) }
        } else {
            progress = nil
        }
        let report: LoadReport
        do {
            report = try await LoadRunner.run(configuration, group: group, progress: progress)
            try? await group.shutdownGracefully()
        } catch {
            try? await group.shutdownGracefully()
            Self.printError("braid-load: \(error)")
            return (LoadExitCode.runFailed, nil)
        }
        if interactive { Self.printError("\r\u{1B}[K", newline: false) }
        print(report.table())
        if let path = self.json {
            do {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(report).write(to: URL(fileURLWithPath: path))
            } catch {
                Self.printError("braid-load: writing \(path): \(error)")
                return (LoadExitCode.runFailed, report)
            }
        }
        if let unwritten = report.failureMessages["audio-recording"], !unwritten.isEmpty {
            Self.printError("braid-load: \(unwritten.count) audio recording(s) not written: \(unwritten[0])")
            return (LoadExitCode.runFailed, report)
        }
        if report.peersJoined == 0, report.peersPlanned > 0 {
            let causes = report.failures.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }
            let sample = report.failureMessages.values.first?.first ?? ""
            Self.printError("braid-load: no peer joined (\(causes.joined(separator: ", "))): \(sample)")
            return (LoadExitCode.nothingJoined, report)
        }
        if !report.sloPassed {
            let violated = report.slo.filter { !$0.passed }.map(\.name)
            Self.printError("braid-load: SLO violated: \(violated.joined(separator: ", "))")
            return (LoadExitCode.sloViolated, report)
        }
        return (LoadExitCode.success, report)
    }

    static func printError(_ text: String, newline: Bool = true) {
        FileHandle.standardError.write(Data((text + (newline ? "\n" : "")).utf8))
    }
}

/// `braid-load`: load-tests Braid nodes with simulated WebRTC peers.
public struct BraidLoadCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "braid-load",
        abstract: "Load-test Braid nodes with real WHIP/WHEP peers, simulated network impairments and SLOs.",
        discussion: """
            Exit codes: 0 all SLOs met; 1 the run could not start or the report could not be written; \
            2 an SLO was violated (without --slo, failures=0 applies); 3 no peer could join; 64 bad arguments.
            """,
        subcommands: [Conference.self, Webinar.self, AudioRoom.self])

    public init() {}

    /// R rooms × P participants, everyone publishes audio+video and subscribes to the others.
    public struct Conference: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "R rooms × P participants; all publish audio+video, all subscribe to (P-1) of each.")
        @Option(help: "Rooms.") public var rooms: Int = 1
        @Option(help: "Participants per room (2-33).") public var participants: Int = 4
        @OptionGroup public var common: CommonLoadOptions
        public init() {}
        public func validate() throws {
            guard (1...10_000).contains(self.rooms), (2...33).contains(self.participants) else {
                throw ValidationError("--rooms 1-10000 and --participants 2-33")
            }
        }
        public func run() async throws {
            let (code, _) = await self.common.execute(.conference(rooms: self.rooms, participants: self.participants))
            if code != 0 { throw ExitCode(code) }
        }
    }

    /// One publisher, S subscribers.
    public struct Webinar: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "1 publisher (audio+video), S subscribers.")
        @Option(help: "Subscribers.") public var subscribers: Int = 10
        @Option(
            help: ArgumentHelp(
                "Subscribers receive the publisher's video through the node's transcode edge function at this size (WIDTHxHEIGHT, even), started through its API once the publisher is in, and its audio as sent; video latency is then capture to receive through the function.",
                valueName: "size")
        ) public var transcode: String?
        @OptionGroup public var common: CommonLoadOptions
        public init() {}
        public func validate() throws {
            guard (1...100_000).contains(self.subscribers) else { throw ValidationError("--subscribers 1-100000") }
            if let transcode = self.transcode, FrameSize(transcode) == nil {
                throw ValidationError("--transcode WIDTHxHEIGHT with even numbers, for example 320x180")
            }
        }
        public func run() async throws {
            if self.transcode != nil, self.common.janus != nil {
                throw ValidationError("--transcode is a Braid edge function: not with --janus")
            }
            let size = self.transcode.flatMap(FrameSize.init)
            let (code, _) = await self.common.execute(.webinar(subscribers: self.subscribers)) {
                $0.subscribeToTranscode = size
            }
            if code != 0 { throw ExitCode(code) }
        }
    }

    /// Many audio-only publishers, subscribers receive audio.
    public struct AudioRoom: AsyncParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "audio-room", abstract: "N audio-only publishers in one room; S subscribers get audio.")
        @Option(help: "Audio publishers.") public var publishers: Int = 10
        @Option(help: "Subscribers (each receives min(publishers, 64) audio tracks).") public var subscribers: Int = 10
        @Flag(
            help:
                "Subscribers receive one audio mix of the room (the node's audio-mix edge function, started through its API once every publisher is in); latency is then capture to receive through the function."
        ) public var mix = false
        @OptionGroup public var common: CommonLoadOptions
        public init() {}
        public func validate() throws {
            guard (1...100_000).contains(self.publishers), (0...100_000).contains(self.subscribers) else {
                throw ValidationError("--publishers 1-100000 and --subscribers 0-100000")
            }
        }
        public func run() async throws {
            let (code, _) = await self.common.execute(
                .audioRoom(publishers: self.publishers, subscribers: self.subscribers)
            ) { $0.subscribeToMix = self.mix }
            if code != 0 { throw ExitCode(code) }
        }
    }
}
