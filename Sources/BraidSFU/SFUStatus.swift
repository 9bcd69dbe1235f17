import BraidRTPStreams
import NIOCore

/// A snapshot of one room for the dashboard (JSON keys in snake_case).
public struct SFURoomStatus: Sendable, Hashable, Codable {
    /// The room name.
    public var name: String
    /// Publishing peers.
    public var publishers: [SFUPeerStatus]
    /// Subscribing peers.
    public var subscribers: [SFUPeerStatus]
    /// Published tracks.
    public var tracks: [SFUTrackStatus]
    /// Track ids of the audio tracks with voice, loudest first (RFC 6464 levels, smoothed).
    public var activeSpeakers: [String]

    enum CodingKeys: String, CodingKey {
        case name, publishers, subscribers, tracks
        case activeSpeakers = "active_speakers"
    }
}

/// A snapshot of one peer (a publisher or a subscriber).
public struct SFUPeerStatus: Sendable, Hashable, Codable {
    /// The peer id.
    public var id: String
    /// `"publish"` or `"subscribe"`.
    public var direction: String
    /// Codec names of its tracks or slots.
    public var codecs: [String]
    /// Bits/s received from the peer.
    public var bitrateInBps: Int
    /// Bits/s sent to the peer.
    public var bitrateOutBps: Int
    /// Packets lost: upstream as counted by the node, downstream as reported by the peer.
    public var packetsLost: Int
    /// Fraction lost, 0–1: upstream lost/expected since the start; downstream the last report's fraction.
    public var lossFraction: Double
    /// Round-trip time from RTCP (subscribers).
    public var rttMs: Double?
    /// Bandwidth available to the peer as the node estimates it, cap applied (subscribers).
    public var estimateBps: Int?
    /// Per mid: the forwarded layer (its rid, or its index without rids).
    public var layers: [String: String]
    /// NACKs received from the peer.
    public var nacksReceived: Int
    /// NACKs sent to the peer.
    public var nacksSent: Int
    /// Packets retransmitted to the peer.
    public var retransmissions: Int
    /// Keyframe requests: sent to a publisher, received from a subscriber.
    public var keyframeRequests: Int
    /// Input dropped: malformed packets, unknown SSRCs, malformed RTCP.
    public var packetsDropped: Int
    /// The peer's selected transport address (`ip:port`). The core never knows it: the node that owns the
    /// peer's socket fills it in; nil until then.
    public var remoteAddress: String? = nil
    /// The participant the peer belongs to (its own id unless it was added with one); a subscriber never
    /// receives the tracks of publishers with the same participant.
    public var participant: String
    /// Subscribers, per slot mid: the track the slot forwards (free slots are absent). Empty for publishers.
    public var sources: [String: SFUSlotSource] = [:]
    /// Subscribers: the loss protection the node adds toward the peer.
    public var protection: SFUProtectionStatus? = nil
    /// Publishers: packets lost on the uplink and rebuilt from the publisher's own FEC repairs (Braid's
    /// sliding-window code; nil when the publisher sends none).
    public var recoveredByFEC: Int? = nil
    /// Publishers that send RED audio: packets lost on the uplink and rebuilt from the redundant blocks of
    /// the packets after them (nil when no audio track negotiated RED).
    public var recoveredByRED: Int? = nil

    enum CodingKeys: String, CodingKey {
        case id, direction, codecs, layers, retransmissions, participant, sources, protection
        case recoveredByFEC = "recovered_by_fec"
        case recoveredByRED = "recovered_by_red"
        case remoteAddress = "remote_address"
        case bitrateInBps = "bitrate_in_bps"
        case bitrateOutBps = "bitrate_out_bps"
        case packetsLost = "packets_lost"
        case lossFraction = "loss_fraction"
        case rttMs = "rtt_ms"
        case estimateBps = "estimate_bps"
        case nacksReceived = "nacks_received"
        case nacksSent = "nacks_sent"
        case keyframeRequests = "keyframe_requests"
        case packetsDropped = "packets_dropped"
    }
}

/// The loss protection toward one subscriber: what its link measures and what the node adds for it.
public struct SFUProtectionStatus: Sendable, Hashable, Codable {
    /// The loss fraction (0–1) the protection is sized for: transport-wide feedback, else receiver reports.
    public var measuredLoss: Double
    /// The mean length, in packets, of a run of lost packets on the link (transport-wide feedback; nil
    /// without it). About 1 / (1 − loss) where losses are independent; repair rounds and audio
    /// redundancy are sized for the bursts when it is clearly longer (``BraidRTPStreams/BurstLossModel``).
    public var lossBurstLength: Double?
    /// Audio: earlier frames carried in each packet (RED distance; 0 = none), the largest over the slots.
    public var audioRedundancyDistance: Int
    /// Audio: packets are sent more than once over their frame interval.
    public var audioRepeats: Bool
    /// Video: FEC repair packets per media packet sent with the media (0 = none).
    public var videoRepairRatio: Double
    /// Video: the FEC negotiated (`x-braid-fec` or `flexfec-03`; nil: none).
    public var videoFEC: String?
    /// Video: FEC repair packets sent, with the media and in repair rounds.
    public var videoRepairsSent: Int
    /// Video: NACKs answered with a repair round, and the repair packets those rounds sent.
    public var videoRepairRounds: Int
    public var videoRoundRepairs: Int
    /// Bytes the protection added (redundant blocks, repeated packets, repair packets).
    public var protectionBytes: Int
    /// Payload bytes sent, protection included.
    public var payloadBytes: Int
    /// Protection bytes per byte of media payload.
    public var overhead: Double

    enum CodingKeys: String, CodingKey {
        case measuredLoss = "measured_loss"
        case lossBurstLength = "loss_burst_length"
        case audioRedundancyDistance = "audio_redundancy_distance"
        case audioRepeats = "audio_repeats"
        case videoRepairRatio = "video_repair_ratio"
        case videoFEC = "video_fec"
        case videoRepairsSent = "video_repairs_sent"
        case videoRepairRounds = "video_repair_rounds"
        case videoRoundRepairs = "video_round_repairs"
        case protectionBytes = "protection_bytes"
        case payloadBytes = "payload_bytes"
        case overhead
    }

    public init(
        measuredLoss: Double, audioRedundancyDistance: Int, audioRepeats: Bool, videoRepairRatio: Double,
        videoRepairRounds: Int = 0, videoRoundRepairs: Int = 0, videoFEC: String? = nil, videoRepairsSent: Int = 0,
        protectionBytes: Int, payloadBytes: Int, lossBurstLength: Double? = nil
    ) {
        self.lossBurstLength = lossBurstLength
        self.videoFEC = videoFEC
        self.videoRepairsSent = videoRepairsSent
        self.videoRepairRounds = videoRepairRounds
        self.videoRoundRepairs = videoRoundRepairs
        self.measuredLoss = measuredLoss
        self.audioRedundancyDistance = audioRedundancyDistance
        self.audioRepeats = audioRepeats
        self.videoRepairRatio = videoRepairRatio
        self.protectionBytes = protectionBytes
        self.payloadBytes = payloadBytes
        let media = payloadBytes - protectionBytes
        self.overhead = media > 0 ? Double(protectionBytes) / Double(media) : 0
    }
}

/// The track a subscriber's slot forwards: which publisher, and which of its tracks.
public struct SFUSlotSource: Sendable, Hashable, Codable {
    /// The publisher's peer id (``SFUTrackStatus/publisher``).
    public var publisher: String
    /// The track's mid in the publisher's session (``SFUTrackStatus/mid``).
    public var mid: String
    /// The network-wide track id (``SFUTrackStatus/id``).
    public var track: TrackID?

    public init(publisher: String, mid: String, track: TrackID? = nil) {
        self.publisher = publisher
        self.mid = mid
        self.track = track
    }
}

/// A snapshot of one published track.
public struct SFUTrackStatus: Sendable, Hashable, Codable {
    /// The track id (msid).
    public var trackID: String
    /// The publisher's mid.
    public var mid: String
    /// `"audio"` or `"video"`.
    public var kind: MediaKind
    /// The publisher's peer id.
    public var publisher: String
    /// One entry per layer (one without simulcast).
    public var layers: [SFULayerStatus]
    /// Smoothed audio level (RFC 6464, −dBov, 127 = silence), audio tracks with the extension only.
    public var audioLevel: Double?
    /// The network-wide id.
    public var id: TrackID? = nil
    /// Consumers attached (subscriber slots, relay links, functions).
    public var consumers: Int = 0
    /// Bytes of the track's packet store (one copy of recent packets, shared by every consumer).
    public var storedBytes: Int = 0

    enum CodingKeys: String, CodingKey {
        case mid, kind, publisher, layers, id, consumers
        case storedBytes = "stored_bytes"
        case trackID = "track_id"
        case audioLevel = "audio_level"
    }
}

/// A snapshot of one inbound layer.
public struct SFULayerStatus: Sendable, Hashable, Codable {
    /// The rid, nil without simulcast.
    public var rid: String?
    /// The media SSRC, once known.
    public var ssrc: UInt32?
    /// Measured bitrate (RTX excluded).
    public var bitrateBps: Int
    /// Media packets received.
    public var packets: Int
    /// Frame size from the last VP8 keyframe.
    public var width: Int?
    /// Frame size from the last VP8 keyframe.
    public var height: Int?

    enum CodingKeys: String, CodingKey {
        case rid, ssrc, packets, width, height
        case bitrateBps = "bitrate_bps"
    }
}

extension Room {
    /// Audio tracks with voice, loudest (lowest −dBov) first.
    func activeSpeakers(now: NIODeadline, configuration: SFUConfiguration) -> [TrackProducer] {
        self.producers.filter { producer in
            guard !producer.isMirror, producer.kind == .audio, let level = producer.smoothedAudioLevel,
                let at = producer.lastAudioLevelAt, now - at <= configuration.speakerTimeout
            else { return false }
            return level < configuration.speakerSilenceLevel
        }.sorted { ($0.smoothedAudioLevel ?? 127) < ($1.smoothedAudioLevel ?? 127) }
    }

    func status(now: NIODeadline, configuration: SFUConfiguration) -> SFURoomStatus {
        let publishers = self.publishers.map { publisher -> SFUPeerStatus in
            var lost = 0
            var fraction = 0.0
            var layers: [String: String] = [:]
            for (index, producer) in publisher.producers.enumerated() {
                for stream in publisher.streams[index] {
                    if let statistics = stream.statistics {
                        lost += Int(clamping: max(0, statistics.cumulativeLost))
                        let expected = statistics.packetsExpected
                        if expected > 0 {
                            fraction = max(fraction, Double(max(0, statistics.cumulativeLost)) / Double(expected))
                        }
                    }
                }
                layers[producer.track.mid] =
                    producer.track.rids.isEmpty ? "0" : producer.track.rids.joined(separator: ",")
            }
            let c = publisher.counters
            return SFUPeerStatus(
                id: publisher.peerID, direction: "publish",
                codecs: publisher.producers.map(\.track.codecName),
                bitrateInBps: publisher.inbound.bitsPerSecond, bitrateOutBps: 0, packetsLost: lost,
                lossFraction: fraction, rttMs: nil, estimateBps: nil, layers: layers, nacksReceived: 0,
                nacksSent: c.nacksSent,
                retransmissions: publisher.producers.reduce(0) {
                    $0 + $1.layers.reduce(0) { $0 + $1.retransmissionsReceived }
                },
                keyframeRequests: c.keyframeRequestsSent,
                packetsDropped: c.malformedRTP + c.unknownSSRC + c.malformedRTCP
                    + publisher.producers.reduce(0) { $0 + $1.malformedPayloads },
                participant: publisher.participant,
                recoveredByFEC: publisher.streams.joined().contains { $0.fec != nil }
                    ? publisher.streams.joined().reduce(0) { $0 + $1.packetsRecoveredByFEC } : nil,
                recoveredByRED: publisher.streams.joined().contains { $0.redRecovery != nil }
                    ? publisher.streams.joined().reduce(0) { $0 + ($1.redRecovery?.packetsRebuilt ?? 0) } : nil)
        }
        let subscribers = self.subscribers.map { subscriber -> SFUPeerStatus in
            var lost = 0
            var fraction = 0.0
            var layers: [String: String] = [:]
            var sources: [String: SFUSlotSource] = [:]
            for slot in subscriber.slots {
                if let producer = slot.producer {
                    sources[slot.slot.mid] = SFUSlotSource(
                        publisher: producer.peerID, mid: producer.track.mid, track: producer.id)
                }
                lost += Int(max(0, slot.cumulativeLost))
                fraction = max(fraction, Double(slot.fractionLost) / 256)
                if let producer = slot.producer, let layer = slot.currentLayer {
                    layers[slot.slot.mid] = producer.layers[layer].rid ?? String(layer)
                }
            }
            let c = subscriber.counters
            let available = subscriber.availableBitrate
            return SFUPeerStatus(
                id: subscriber.peerID, direction: "subscribe",
                codecs: subscriber.slots.compactMap { $0.producer?.track.codecName },
                bitrateInBps: 0, bitrateOutBps: subscriber.outbound.bitsPerSecond, packetsLost: lost,
                lossFraction: fraction,
                rttMs: subscriber.roundTripTime.map { Double($0.nanoseconds) / 1e6 },
                estimateBps: available == Int.max ? nil : available, layers: layers,
                nacksReceived: c.nacksReceived, nacksSent: 0, retransmissions: c.retransmissions,
                keyframeRequests: c.keyframeRequestsReceived,
                packetsDropped: c.malformedRTCP + subscriber.slots.reduce(0) { $0 + $1.backPressureDrops },
                participant: subscriber.participant, sources: sources, protection: subscriber.protectionStatus)
        }
        let tracks = self.producers.filter { !$0.isMirror }.map { producer in
            SFUTrackStatus(
                trackID: producer.track.trackID, mid: producer.track.mid, kind: producer.kind,
                publisher: producer.peerID,
                layers: producer.layers.map { layer in
                    SFULayerStatus(
                        rid: layer.rid, ssrc: layer.ssrc, bitrateBps: layer.meter.bitsPerSecond,
                        packets: layer.meter.packets, width: layer.width, height: layer.height)
                },
                audioLevel: producer.smoothedAudioLevel, id: producer.id, consumers: producer.consumers.count,
                storedBytes: producer.storedBytes)
        }
        return SFURoomStatus(
            name: self.name, publishers: publishers, subscribers: subscribers, tracks: tracks,
            activeSpeakers: self.activeSpeakers(now: now, configuration: configuration).map(\.track.trackID))
    }
}
