import Foundation

/// A latency distribution, summarised.
public struct LatencySummary: Hashable, Sendable {
    /// Samples.
    public var count: Int
    /// Samples below zero (clocks not shared or not synchronised).
    public var negativeCount: Int
    /// Mean, median, 95th and 99th percentile (1 ms resolution) and maximum.
    public var mean: Duration?
    public var p50: Duration?
    public var p95: Duration?
    public var p99: Duration?
    public var maximum: Duration?

    init(_ histogram: LatencyHistogram) {
        func duration(_ microseconds: Int64?) -> Duration? { microseconds.map { .microseconds($0) } }
        self.count = histogram.count
        self.negativeCount = histogram.negativeCount
        self.mean = duration(histogram.mean)
        self.p50 = duration(histogram.percentile(0.5))
        self.p95 = duration(histogram.percentile(0.95))
        self.p99 = duration(histogram.percentile(0.99))
        self.maximum = histogram.count > 0 ? .microseconds(histogram.maximum) : nil
    }
}

/// One received audio track.
public struct AudioTrackStatistics: Hashable, Sendable {
    /// The m-section's mid.
    public var mid: String?
    /// The sender's SSRC, once known.
    public var ssrc: UInt32?
    /// RTP packets received (duplicates included, as RFC 3550 counts).
    public var packetsReceived: Int64
    /// Packets expected minus received (RFC 3550 A.3).
    public var packetsLost: Int64
    /// Interarrival jitter in RTP timestamp units (48 kHz).
    public var jitter: UInt32
    /// Opus frames that arrived (as a primary or a redundant block), in time or late.
    public var framesReceived: Int64
    /// Frames a player with the playout deadline conceals: never received, or received after the deadline.
    public var framesConcealed: Int64
    /// Frames whose first copy arrived within the playout deadline (200 ms after capture) — for packets
    /// without abs-capture-time, every frame received.
    public var framesInTime: Int64 = 0
    /// Frames that arrived only after the deadline.
    public var framesLate: Int64 = 0
    /// Frames whose first copy was a RED redundant block.
    public var framesFromRedundancy: Int64 = 0
    /// RED packets dropped because their block headers run past the payload.
    public var malformedREDPackets: Int = 0
    /// Lost packets asked for again (generic NACK, when the answer kept it) that then arrived.
    public var packetsRecoveredByNACK: Int = 0
    /// Lost packets no longer asked for because an answer would have come after their playout point.
    public var packetsPastDeadline: Int = 0
    /// With audio decoding on: packets decoded in time.
    public var framesDecoded: Int?
    /// With audio decoding on: frames filled by packet loss concealment.
    public var framesConcealedByDecoder: Int?
    /// With audio decoding on: lost frames rebuilt from the next packet's in-band FEC (LBRR) data.
    public var framesRecoveredByFEC: Int?
    /// Capture-to-receive latency of every packet carrying abs-capture-time.
    public var latency: LatencySummary
    /// The distribution behind ``latency``, to merge across tracks and peers.
    public var latencyHistogram: LatencyHistogram
}

/// One received video track.
public struct VideoTrackStatistics: Hashable, Sendable {
    /// The m-section's mid.
    public var mid: String?
    /// The sender's media SSRC, once known.
    public var ssrc: UInt32?
    /// RTP packets received on the media SSRC.
    public var packetsReceived: Int64
    /// Packets expected minus received on the media SSRC (before repair).
    public var packetsLost: Int64
    /// RTX packets received.
    public var retransmissionsReceived: Int
    /// Missing packets that arrived later (by retransmission or reordering).
    public var packetsRecovered: Int
    /// Packets given up on by the NACK generator.
    public var packetsUnrecovered: Int
    /// Missing packets rebuilt from FEC repair packets (part of ``packetsRecovered``).
    public var packetsRecoveredByFEC: Int = 0
    /// FEC repair packets received.
    public var repairPacketsReceived: Int = 0
    /// Repair packets dropped: malformed, covering only packets already received, or inconsistent with them.
    public var repairPacketsDiscarded: Int = 0
    /// NACKs sent for what a silence of the stream probably hid (``SilenceProbe``; part of the NACKs sent).
    public var silenceProbesSent: Int = 0
    /// Bytes received (RTP header and payload): media, RTX and FEC repair packets.
    public var mediaBytesReceived: Int64 = 0
    public var retransmissionBytesReceived: Int64 = 0
    public var repairBytesReceived: Int64 = 0
    /// Frames complete and decodable within 250 ms of their capture (abs-capture-time; frames without it
    /// are not counted).
    public var framesDecodableInTime: Int = 0
    /// Missing packets still being repaired (NACKed, not yet given up) when the snapshot was taken.
    public var packetsAwaitingRepair: Int
    /// Interarrival jitter in RTP timestamp units (90 kHz).
    public var jitter: UInt32
    /// Frames complete.
    public var framesComplete: Int
    /// Frames complete and decodable (what a player renders).
    public var framesDecodable: Int
    /// Keyframes received complete.
    public var keyframes: Int
    /// Frames lost: given up incomplete or lost whole.
    public var framesLost: Int
    /// Freezes, W3C definition.
    public var freezeCount: Int
    /// Total duration of the freezes.
    public var totalFreezesDuration: Duration
    /// Freezes (same definition) of a player with a 250 ms playout point: each frame shown 250 ms after its
    /// capture, or as soon as it is decodable if that is later. ``freezeCount`` shows every frame as soon as
    /// it is decodable, so it also counts repairs that a playout delay absorbs.
    public var playoutFreezeCount: Int
    /// Total duration of the playout-point freezes.
    public var totalPlayoutFreezesDuration: Duration
    /// Capture-to-receive latency of every packet carrying abs-capture-time.
    public var latency: LatencySummary
    /// The distribution behind ``latency``, to merge across tracks and peers.
    public var latencyHistogram: LatencyHistogram
}

/// A snapshot of what a subscriber received.
public struct SubscriberStatistics: Hashable, Sendable {
    /// From the WHEP request to the first decrypted media packet.
    public var joinTime: Duration?
    /// From the WHEP request to SRTP keys.
    public var connectTime: Duration?
    /// Audio tracks in offer order.
    public var audio: [AudioTrackStatistics]
    /// Video tracks in offer order.
    public var video: [VideoTrackStatistics]
    /// RTCP generic NACK packets sent.
    public var nacksSent: Int
    /// PLIs sent.
    public var keyframeRequestsSent: Int
    /// Receiver reports sent.
    public var receiverReportsSent: Int
    /// Transport-wide feedback packets sent.
    public var transportFeedbackSent: Int
    /// Media packets whose SSRC matched no track.
    public var unknownSSRCPackets: Int
    /// Transport counters (summed over every transport when the subscriber moved between nodes).
    public var transport: TransportStatistics
    /// Times the subscriber moved to another node after losing its own (see ``FailoverOptions``).
    public var reconnects = 0
    /// When the last move completed (SRTP keyed at the new node).
    public var lastReconnect: Date?
    /// The last move's gap: from the last datagram of the lost node to the first media packet of the new one.
    public var lastOutage: Duration?
    /// Why the last node was lost: silence, consent or DTLS failure, or the node ending the session (RTCP
    /// BYE, DTLS close_notify: a draining node); nil before the first move.
    public var lastLossReason: String?
    /// Attempts at another node that failed (HTTP, ICE or DTLS), over all moves.
    public var failedReconnectAttempts = 0
    /// Whether the node is lost and no other one is connected yet.
    public var reconnecting = false
    /// The WHEP endpoint in use.
    public var endpoint: String?
    /// The longest time the player went without new media, from its first media to this snapshot (a
    /// stall still going on counts): between two decodable video frames, or two audio packets when there
    /// is no video; between two media packets under light reception. Nil before any media.
    public var longestMediaGap: Duration?
    /// Light reception (``SubscriberReception/light(authenticateEvery:)``): video frames and freezes were
    /// not measured.
    public var isLight = false
}
