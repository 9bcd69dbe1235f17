import BraidClient

/// Percentiles of a latency distribution in milliseconds (1 ms resolution); nil fields when empty.
public struct LatencyFigures: Codable, Hashable, Sendable {
    /// Samples.
    public var samples: Int
    /// Samples below zero (sender and receiver clocks disagree); not in the percentiles.
    public var negativeSamples: Int
    public var meanMs: Double?
    public var p50Ms: Double?
    public var p95Ms: Double?
    public var p99Ms: Double?
    public var maxMs: Double?

    /// Summarises a merged histogram.
    public init(_ histogram: LatencyHistogram) {
        func ms(_ microseconds: Int64?) -> Double? { microseconds.map { Double($0) / 1000 } }
        self.samples = histogram.count
        self.negativeSamples = histogram.negativeCount
        self.meanMs = ms(histogram.mean)
        self.p50Ms = ms(histogram.percentile(0.5))
        self.p95Ms = ms(histogram.percentile(0.95))
        self.p99Ms = ms(histogram.percentile(0.99))
        self.maxMs = histogram.count > 0 ? ms(histogram.maximum) : nil
    }
}

/// Join time percentiles (request to first media packet for subscribers, to SRTP keys for publishers).
public struct JoinFigures: Codable, Hashable, Sendable {
    public var samples: Int
    public var p50Ms: Double?
    public var p95Ms: Double?
    public var maxMs: Double?

    init(_ milliseconds: [Double]) {
        let sorted = milliseconds.sorted()
        func rank(_ q: Double) -> Double? {
            guard !sorted.isEmpty else { return nil }
            let index = max(0, min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1))
            return sorted[index]
        }
        self.samples = sorted.count
        self.p50Ms = rank(0.5)
        self.p95Ms = rank(0.95)
        self.maxMs = sorted.last
    }
}

/// Video received by every subscriber, summed over tracks.
public struct VideoFigures: Codable, Hashable, Sendable {
    /// Packets expected on the media SSRCs (received + lost at first sight).
    public var packetsExpected: Int64 = 0
    /// Packets received on the media SSRCs (retransmissions not included).
    public var packetsReceived: Int64 = 0
    /// Packets missing when first expected (RFC 3550 cumulative loss, before any repair).
    public var packetsLostBeforeRecovery: Int64 = 0
    /// Missing packets repaired later (retransmission or late arrival).
    public var packetsRecovered: Int64 = 0
    /// Missing packets still under repair (NACKed, not given up) when the statistics were taken: lost in the
    /// last round trip of the run, so neither repaired nor unrepaired yet.
    public var packetsAwaitingRepair: Int64 = 0
    /// Lost before recovery minus recovered minus still awaiting repair: never repaired.
    public var packetsNeverRepaired: Int64 = 0
    /// `packetsLostBeforeRecovery / packetsExpected`.
    public var lossBeforeRecovery: Double = 0
    /// `packetsNeverRepaired / packetsExpected` (after repair).
    public var residualLoss: Double = 0
    /// RTX retransmissions received (NACKs answered).
    public var retransmissionsReceived: Int64 = 0
    /// Missing packets rebuilt from FEC repair packets (part of ``packetsRecovered``).
    public var packetsRecoveredByFEC: Int64 = 0
    /// FEC repair packets received.
    public var repairPacketsReceived: Int64 = 0
    /// NACKs subscribers sent for what a silence of their video probably hid (part of ``LoadReport/nacksSent``).
    public var silenceProbesSent: Int64 = 0
    /// Bytes received on the media SSRCs, as RTX and as FEC repair packets.
    public var mediaBytesReceived: Int64 = 0
    public var retransmissionBytesReceived: Int64 = 0
    public var repairBytesReceived: Int64 = 0
    /// Everything received for video (media, RTX, repair) per media byte received: the bitrate overhead of
    /// repair, as the link delivers it.
    public var bitrateOverhead: Double = 0
    /// Frames decodable within 250 ms of capture, and their share of the frames sent (complete + lost).
    public var framesDecodableInTime: Int64 = 0
    public var framesInTimeRatio: Double = 0
    public var framesComplete: Int64 = 0
    public var framesDecodable: Int64 = 0
    public var framesLost: Int64 = 0
    public var keyframes: Int64 = 0
    /// W3C freezeCount, summed.
    public var freezeCount: Int64 = 0
    /// W3C totalFreezesDuration, summed, seconds.
    public var totalFreezesSeconds: Double = 0
    /// Freezes of a player showing each frame 250 ms after capture (or when decodable, if later), summed.
    public var playoutFreezeCount: Int64 = 0
    /// Their total duration, seconds.
    public var totalPlayoutFreezesSeconds: Double = 0
    public var latency: LatencyFigures
}

/// Audio received by every subscriber, summed over tracks. A lost packet's frame can still come as a
/// later packet's RED block, or, where the node's answer kept generic NACK for audio, as a resend asked for
/// while it can make the playout deadline; the rest is concealed.
public struct AudioFigures: Codable, Hashable, Sendable {
    public var packetsExpected: Int64 = 0
    public var packetsReceived: Int64 = 0
    public var packetsLost: Int64 = 0
    /// `packetsLost / packetsExpected`.
    public var loss: Double = 0
    /// Frames a player with the 200 ms playout deadline conceals (never received, or received late).
    public var framesConcealed: Int64 = 0
    /// Frames from the first to the last each subscriber saw: in time + late + never received.
    public var framesExpected: Int64 = 0
    /// Frames whose first copy arrived within 200 ms of capture (primary or RED block).
    public var framesInTime: Int64 = 0
    /// Frames that arrived only after the deadline.
    public var framesLate: Int64 = 0
    /// Frames first received as a RED redundant block.
    public var framesFromRedundancy: Int64 = 0
    /// Lost packets asked for again (audio NACK) that then arrived.
    public var packetsRecoveredByNACK: Int64 = 0
    /// Lost packets not asked for (again) because an answer would have come after the playout deadline.
    public var packetsPastDeadline: Int64 = 0
    /// `framesInTime / framesExpected`.
    public var inTimeRatio: Double = 0
    public var latency: LatencyFigures
}

/// One received track of one subscriber.
public struct TrackFigures: Codable, Hashable, Sendable {
    public var kind: String
    public var mid: String?
    public var ssrc: UInt32?
    public var packetsReceived: Int64
    public var packetsLost: Int64
    public var packetsRecovered: Int64
    public var freezeCount: Int
    public var latencyP50Ms: Double?
    public var latencyP95Ms: Double?
}

/// One peer's outcome.
public struct PeerFigures: Codable, Hashable, Sendable {
    /// `publisher` or `subscriber`.
    public var role: String
    public var room: String
    public var node: String
    /// Conferences: the participant (`<room>/<n>`) whose publisher or subscriber this is; nil otherwise.
    public var participant: String? = nil
    /// Join time in ms, nil if it failed or never got media.
    public var joinMs: Double?
    /// The failure cause (see ``LoadReport/failures``), nil when it joined.
    public var failure: String?
    /// Subscribers: every track received.
    public var tracks: [TrackFigures]
    /// Subscribers that joined: remote tracks received, counted as slots with at least one packet (the node
    /// never shows one track in two slots of a subscriber, so they are distinct unless a slot was refilled
    /// after its publisher left). In a conference of P participants that is 2 (P − 1) when every other
    /// participant's audio and video arrived.
    public var remoteTracks: Int? = nil
    /// Subscribers: the longest time without new media (decodable video frames; audio packets without
    /// video; media packets for a light subscriber) between its first media and the end of the run, as the
    /// subscriber measured it (``BraidClient/SubscriberStatistics/longestMediaGap``); nil without media.
    public var longestGapMs: Double? = nil
    /// Subscribers with failover (`--failover-node`): how many times it moved to another node.
    public var reconnects: Int? = nil
}

/// The subscribers of one node (`--node`): how many joined, their end-to-end latency over every packet
/// they received (audio and video), and their longest media gap.
public struct NodeFigures: Codable, Hashable, Sendable {
    /// The node's base URL.
    public var node: String
    public var subscribersPlanned: Int
    public var subscribersJoined: Int
    /// Capture-to-receive latency of every media packet its subscribers received.
    public var latency: LatencyFigures
    /// The longest media gap of any of its subscribers (see ``PeerFigures/longestGapMs``).
    public var longestGapMs: Double?
}

/// The full result of a run: what the `--json` file holds. Rates are fractions (0.01 = 1 %), times in
/// milliseconds unless the name says otherwise. See the module documentation for the schema.
public struct LoadReport: Codable, Hashable, Sendable {
    /// Version of this schema.
    public var schemaVersion = 2
    /// `conference`, `webinar` or `audio-room`.
    public var scenario: String
    /// The options the run used, as text.
    public var parameters: [String: String]
    /// Seconds from the first join to the end of the measurement.
    public var wallSeconds: Double
    /// Peers planned, joined and failed.
    public var peersPlanned: Int
    public var peersJoined: Int
    public var peersFailed: Int
    /// Failed joins by cause: `connection-refused`, `connection`, `timeout`, `http-<status>`,
    /// `malformed-answer`, `ice`, `dtls`, `bad-argument`, `closed`.
    public var failures: [String: Int]
    /// Up to 5 failure messages per cause, verbatim.
    public var failureMessages: [String: [String]]
    /// Subscriber join time: WHEP request to first media packet.
    public var subscriberJoin: JoinFigures
    /// Publisher join time: WHIP request to SRTP keys.
    public var publisherJoin: JoinFigures
    public var video: VideoFigures
    public var audio: AudioFigures
    /// Capture-to-receive latency of every media packet (audio and video).
    public var latency: LatencyFigures
    /// RTCP NACK packets subscribers sent.
    public var nacksSent: Int64
    /// NACKs publishers received and retransmissions they sent.
    public var publisherNacksReceived: Int64
    public var publisherRetransmissionsSent: Int64
    /// Publishers' uplink FEC: repair packets sent (with the media and in rounds) and NACKs answered with a
    /// round of repairs.
    public var publisherRepairsSent: Int64 = 0
    public var publisherRepairRounds: Int64 = 0
    /// SRTP packets and bytes sent by all peers / received by all peers.
    public var packetsSent: Int64
    public var packetsReceived: Int64
    public var bytesSent: Int64
    public var bytesReceived: Int64
    /// Simulated network counters, summed over peers.
    public var uplinkDroppedByLoss: Int64
    public var uplinkDroppedByQueue: Int64
    public var downlinkDroppedByLoss: Int64
    public var downlinkDroppedByQueue: Int64
    /// Load generator process: CPU seconds (user + system) during the run and peak resident memory.
    public var processCPUSeconds: Double
    public var processMaxResidentMB: Double
    /// The longest media gap of any subscriber (ms); nil when no subscriber got media.
    public var longestGapMs: Double?
    /// Subscribers grouped by the node they joined, in `--node` order.
    public var perNode: [NodeFigures]
    /// Every peer.
    public var peers: [PeerFigures]
    /// SLO verdicts, empty without `--slo`.
    public var slo: [SLOVerdict]
    /// True when every SLO was met.
    public var sloPassed: Bool
    /// The edge function the subscribers played through (`--mix`, `--transcode`), as the node reported it
    /// at the end of the run.
    public var function: FunctionFigures? = nil
    /// Subscribers with light reception (packets counted from headers, a sample authenticated; no video
    /// frames or freezes measured), the packets they authenticated and how many of those failed.
    public var lightSubscribers = 0
    public var lightPacketsAuthenticated: Int64 = 0
    public var lightAuthenticationFailures: Int64 = 0
    /// Sockets the peers shared (0: a socket per peer) and datagrams that reached no peer on them.
    public var sharedSockets = 0
    public var unroutedDatagrams = 0
    /// The generator in the measurement window (after every join, for `--duration`): its CPU per SRTP
    /// packet its subscribers received (µs; publishers' sending included), the packets per second they
    /// received and its CPU (percent of one core). Then its memory per joined peer (peak resident memory
    /// minus resident memory at the start, KiB).
    public var cpuMicrosecondsPerPacketReceived: Double? = nil
    public var windowPacketsReceivedPerSecond: Double? = nil
    public var windowCPUPercent: Double? = nil
    public var residentKBPerPeer: Double? = nil
}

/// An edge function's own figures, from `GET /api/v1/rooms/{room}/functions/{id}`.
public struct FunctionFigures: Codable, Hashable, Sendable {
    public var id: String
    public var kind: String
    public var framesOutPerSecond: Double
    /// The worker's CPU, percent of one core.
    public var cpuPercent: Double
    /// The function's own delay: arrival of the newest input packet to the output frame leaving it.
    public var delayP50Ms: Double?
    public var delayP95Ms: Double?
    public var drops: Int
    public var lateTicks: Int

    enum CodingKeys: String, CodingKey {
        case id, kind, drops
        case framesOutPerSecond = "frames_out_per_second"
        case cpuPercent = "cpu_percent"
        case delayP50Ms = "delay_p50_ms"
        case delayP95Ms = "delay_p95_ms"
        case lateTicks = "late_ticks"
    }
}
