import BraidSFU
import BraidWire

/// The node's version, as shown on the dashboard and in `braid_node_info`.
public enum BraidNodeVersion {
    public static let string = "0.1.0-dev"
}

/// Everything the dashboard shows about one node: the model behind `GET /`, `GET /api/v1/node` and
/// `GET /metrics`. Its JSON form is documented in <doc:NodeAPI>; keys are snake_case and stable.
///
/// Sessions, rooms and mesh links will be added as new members; existing members keep their meaning.
public struct NodeStatus: Codable, Sendable, Equatable {
    /// ``NodeConfiguration/nodeID``.
    public var nodeID: String
    /// ``BraidNodeVersion/string``.
    public var version: String
    /// When the node started, RFC 3339 in UTC.
    public var startedAt: String
    /// Seconds since the node started (monotonic clock).
    public var uptimeSeconds: Double
    /// CPU, memory and threads of the process.
    public var process: ProcessSection
    /// The HTTP listener.
    public var http: Listener
    /// The UDP media socket and its traffic.
    public var media: MediaSection
    /// The WebRTC sessions (WHIP publishers and WHEP players) on this node.
    public var sessions: SessionsSection = SessionsSection()
    /// The forwarding core's totals: rooms, peers, tracks, and what the node sent to its peers.
    public var forwarding: ForwardingSection = ForwardingSection()
    /// Every room, by name: publishers and subscribers, tracks with their layers, active speakers.
    public var rooms: [SFURoomStatus] = []
    /// The drain, while the node drains (``NodeDrain``); absent while it serves.
    public var draining: DrainStatus?
    /// The limits against exhaustion: each configured value, and what they refused and dropped.
    public var limits: LimitsSection = LimitsSection()

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id"
        case version
        case startedAt = "started_at"
        case uptimeSeconds = "uptime_seconds"
        case process
        case http
        case media
        case sessions
        case forwarding
        case rooms
        case draining
        case limits
    }

    /// The limits section: the configured `limits.*` values and what the media-side limits refused and
    /// dropped since the node started.
    public struct LimitsSection: Codable, Sendable, Equatable {
        /// Every `limits.*` value in force.
        public var configured: NodeConfiguration.Limits
        /// Refusals and drops (`refused_sessions`, `handshake_timeouts`, ...).
        public var counters: WebRTCLimitCounters
        /// The HTTP listeners: open connections and read-deadline closes.
        public var http: HTTPGuardCounters

        public init(
            configured: NodeConfiguration.Limits = .defaults, counters: WebRTCLimitCounters = WebRTCLimitCounters(),
            http: HTTPGuardCounters = HTTPGuardCounters()
        ) {
            self.configured = configured
            self.counters = counters
            self.http = http
        }
    }

    /// The forwarding section: counts over every room, and the send totals.
    public struct ForwardingSection: Codable, Sendable, Equatable {
        /// Rooms with at least one peer.
        public var rooms: Int
        /// Publishing peers (WHIP sessions with keys) over all rooms.
        public var publishers: Int
        /// Subscribing peers (WHEP sessions with keys) over all rooms.
        public var subscribers: Int
        /// Published tracks over all rooms.
        public var tracks: Int
        /// What the node has sent to all peers since the media socket opened, ended sessions included.
        public var sent: WebRTCSendCounters
        /// Each media event loop: its sessions and what crosses between loops (absent from older nodes).
        public var eventLoops: [WebRTCEventLoopStatus]?

        public init(
            rooms: [SFURoomStatus] = [], sent: WebRTCSendCounters = WebRTCSendCounters(),
            eventLoops: [WebRTCEventLoopStatus]? = nil
        ) {
            self.rooms = rooms.count
            self.publishers = rooms.reduce(0) { $0 + $1.publishers.count }
            self.subscribers = rooms.reduce(0) { $0 + $1.subscribers.count }
            self.tracks = rooms.reduce(0) { $0 + $1.tracks.count }
            self.sent = sent
            self.eventLoops = eventLoops
        }

        enum CodingKeys: String, CodingKey {
            case rooms, publishers, subscribers, tracks, sent
            case eventLoops = "event_loops"
        }
    }

    /// The sessions section: how many, and each one.
    public struct SessionsSection: Codable, Sendable, Equatable {
        /// Number of sessions.
        public var count: Int
        /// Every session, by id.
        public var list: [WebRTCSessionStatus]

        public init(list: [WebRTCSessionStatus] = []) {
            self.count = list.count
            self.list = list
        }
    }

    /// A listening socket.
    public struct Listener: Codable, Sendable, Equatable {
        /// The bound IP address (the configured one until bound).
        public var address: String
        /// The bound port: the kernel's choice when 0 was configured. The configured port until bound.
        public var port: Int
        /// Whether the socket is bound right now.
        public var bound: Bool

        public init(address: String, port: Int, bound: Bool) {
            self.address = address
            self.port = port
            self.bound = bound
        }
    }

    /// The process section.
    public struct ProcessSection: Codable, Sendable, Equatable {
        /// CPU use since the previous status sample, in percent of one core.
        public var cpuPercent: Double
        /// User plus system CPU seconds since the process started.
        public var cpuSecondsTotal: Double
        /// Resident set size in bytes.
        public var residentMemoryBytes: UInt64
        /// Threads in the event loop group.
        public var eventLoopThreads: Int

        enum CodingKeys: String, CodingKey {
            case cpuPercent = "cpu_percent"
            case cpuSecondsTotal = "cpu_seconds_total"
            case residentMemoryBytes = "resident_memory_bytes"
            case eventLoopThreads = "event_loop_threads"
        }
    }

    /// The media section.
    public struct MediaSection: Codable, Sendable, Equatable {
        /// The UDP socket.
        public var listener: Listener
        /// Addresses announced to peers.
        public var advertisedAddresses: [String]
        /// Reads per vector read (`recvmmsg` call): the configured batch, capped with GRO
        /// (``MediaService/readsPerCall(configured:receiveOffload:)``).
        public var receiveBatchSize: Int
        /// UDP GRO in use on receive.
        public var groEnabled: Bool
        /// UDP GSO usable on send.
        public var gsoEnabled: Bool
        /// Received datagrams by kind label (``NodeStatus/kindLabel(_:)``); every kind is present.
        public var received: [String: PacketCount]
        /// Sent datagrams by kind label; every kind is present.
        public var sent: [String: PacketCount]
        /// Dropped datagrams by ``MediaDropReason`` raw value; every reason is present.
        public var drops: [String: UInt64]
        /// Errors reported by the socket on receive.
        public var receiveErrors: UInt64
        /// GRO reads split into segments.
        public var coalescedReads: UInt64

        enum CodingKeys: String, CodingKey {
            case listener
            case advertisedAddresses = "advertised_addresses"
            case receiveBatchSize = "receive_batch_size"
            case groEnabled = "gro_enabled"
            case gsoEnabled = "gso_enabled"
            case received
            case sent
            case drops
            case receiveErrors = "receive_errors"
            case coalescedReads = "coalesced_reads"
        }
    }

    /// The label of a datagram kind in JSON and metrics: `stun`, `zrtp`, `dtls`, `turn_channel`, `rtp`,
    /// `rtcp`, `unknown`.
    public static func kindLabel(_ kind: DatagramKind) -> String {
        switch kind {
        case .stun: "stun"
        case .zrtp: "zrtp"
        case .dtls: "dtls"
        case .turnChannel: "turn_channel"
        case .rtp: "rtp"
        case .rtcp: "rtcp"
        case .unknown: "unknown"
        }
    }
}

extension NodeStatus.MediaSection {
    init(
        listener: NodeStatus.Listener,
        configuration: NodeConfiguration.Media,
        offload: MediaOffloadStatus,
        traffic: MediaTrafficSnapshot
    ) {
        func byKind(_ counts: PacketCountsByKind) -> [String: PacketCount] {
            Dictionary(uniqueKeysWithValues: DatagramKind.allCases.map { (NodeStatus.kindLabel($0), counts[$0]) })
        }
        self.listener = listener
        self.advertisedAddresses = configuration.advertisedAddresses
        self.receiveBatchSize = MediaService.readsPerCall(
            configured: configuration.receiveBatchSize, receiveOffload: offload.receiveOffload)
        self.groEnabled = offload.receiveOffload
        self.gsoEnabled = offload.segmentationOffload
        self.received = byKind(traffic.received)
        self.sent = byKind(traffic.sent)
        self.drops = Dictionary(uniqueKeysWithValues: MediaDropReason.allCases.map { ($0.rawValue, traffic.drops[$0]) })
        self.receiveErrors = traffic.receiveErrors
        self.coalescedReads = traffic.coalescedReads
    }
}

// MARK: - Public view

extension NodeStatus {
    /// What anyone may see: counts and the node's own health, without session ids, client addresses or
    /// room names (the forwarding totals stay). The operator listener and admin tokens see everything.
    public func publicView() -> NodeStatus {
        var view = self
        view.sessions.list = []
        view.rooms = []
        return view
    }
}

// MARK: - Text rendering

extension NodeStatus {
    /// The plain-text dashboard: a page a person reads at a glance, in aligned columns.
    public func renderText() -> String {
        var lines: [String] = []
        func row(_ label: String, _ value: String) { lines.append(Self.pad(label, 16) + value) }

        row("node", "\(self.nodeID)   braid-node \(self.version)")
        row("started", "\(self.startedAt)   up \(Self.formatDuration(self.uptimeSeconds))")
        if let draining = self.draining {
            row(
                "state",
                "DRAINING since \(draining.startedAt) (\(draining.trigger)), "
                    + "\(Self.fixed(draining.remainingSeconds, 1)) s of \(draining.timeoutSeconds) s left")
        }
        row(
            "cpu",
            "\(Self.fixed(self.process.cpuPercent, 1)) % since last sample   "
                + "\(Self.fixed(self.process.cpuSecondsTotal, 2)) s total"
        )
        row("memory", "\(Self.formatBytes(self.process.residentMemoryBytes)) resident")
        row("event loops", "\(self.process.eventLoopThreads) threads")
        row("http", Self.formatListener(self.http))
        row("media", Self.formatListener(self.media.listener))
        row("advertised", self.media.advertisedAddresses.joined(separator: ", "))
        row(
            "udp",
            "batch \(self.media.receiveBatchSize)   gro \(self.media.groEnabled ? "on" : "off")   "
                + "gso \(self.media.gsoEnabled ? "on" : "off")"
        )
        lines.append("")

        let header = ["kind", "packets in", "bytes in", "packets out", "bytes out"]
        var table: [[String]] = [header]
        var totalIn = PacketCount()
        var totalOut = PacketCount()
        for kind in DatagramKind.allCases {
            let label = Self.kindLabel(kind)
            let inbound = self.media.received[label] ?? PacketCount()
            let outbound = self.media.sent[label] ?? PacketCount()
            totalIn.packets &+= inbound.packets
            totalIn.bytes &+= inbound.bytes
            totalOut.packets &+= outbound.packets
            totalOut.bytes &+= outbound.bytes
            table.append([label, "\(inbound.packets)", "\(inbound.bytes)", "\(outbound.packets)", "\(outbound.bytes)"])
        }
        table.append(["total", "\(totalIn.packets)", "\(totalIn.bytes)", "\(totalOut.packets)", "\(totalOut.bytes)"])
        lines.append(contentsOf: Self.alignedTable(table))
        lines.append("")

        var drops: [[String]] = [["drop reason", "packets"]]
        for reason in MediaDropReason.allCases {
            drops.append([reason.rawValue, "\(self.media.drops[reason.rawValue] ?? 0)"])
        }
        drops.append(["receive errors", "\(self.media.receiveErrors)"])
        drops.append(["gro reads split", "\(self.media.coalescedReads)"])
        lines.append(contentsOf: Self.alignedTable(drops))
        lines.append("")
        lines.append(contentsOf: self.renderLimits())
        lines.append("")

        row("sessions", "\(self.sessions.count)")
        if !self.sessions.list.isEmpty {
            var table: [[String]] = [
                [
                    "session", "room", "dir", "remote", "ice", "dtls", "srtp", "cap bps", "rtp in", "rtcp in",
                    "rtp out", "rtcp out",
                ]
            ]
            for session in self.sessions.list {
                table.append([
                    session.id, session.room, session.direction.rawValue, session.remoteAddress ?? "-",
                    session.iceState, session.dtlsState, session.srtpProfile ?? "-",
                    session.maximumBitrate.map { "\($0)" } ?? "-", "\(session.counters.rtpReceived.packets)",
                    "\(session.counters.rtcpReceived.packets)", session.sent.map { "\($0.rtpSent.packets)" } ?? "-",
                    session.sent.map { "\($0.rtcpSent.packets)" } ?? "-",
                ])
            }
            lines.append(contentsOf: Self.alignedTable(table))
            // One line per session with what its answer negotiated: mid, kind, codec, RTX, RIDs, SSRCs.
            for session in self.sessions.list {
                let sections = session.sections.map(Self.formatSection).joined(separator: "; ")
                lines.append("  \(session.id)  \(sections.isEmpty ? "no accepted sections" : sections)")
            }
        }
        lines.append("")
        lines.append(contentsOf: self.renderRooms())
        return lines.joined(separator: "\n") + "\n"
    }

    /// The limits: each configured value, then what the media-side limits refused and dropped:
    ///
    ///     limits          sessions 4096   per address 256   per room 2048   transceivers 64   handshake 10 s
    ///                     unverified 200 packets/s   outbound queue 2048 packets   http connections 1024 ...
    ///     refused         sessions 0   per address 12   per room 0   transceivers 1
    ///     dropped         handshake timeouts 3   unverified packets 99800   outbound queue 0   handshaking 2
    ///     http            connections open 3   accepted 812   read timeouts 50
    func renderLimits() -> [String] {
        let limits = self.limits.configured
        let counters = self.limits.counters
        return [
            Self.pad("limits", 16) + "sessions \(limits.sessions)   per address \(limits.sessionsPerAddress)   "
                + "per room \(limits.sessionsPerRoom)   transceivers \(limits.transceiversPerOffer)   "
                + "handshake \(limits.handshakeTimeoutSeconds) s",
            Self.pad("", 16) + "unverified \(limits.unverifiedPacketsPerSecond) packets/s   "
                + "outbound queue \(limits.outboundQueuePackets) packets   http connections \(limits.httpConnections)   "
                + "http idle \(limits.httpIdleTimeoutSeconds) s   http read \(limits.httpReadTimeoutSeconds) s",
            Self.pad("refused", 16) + "sessions \(counters.refusedSessions)   per address \(counters.refusedPerAddress)   "
                + "per room \(counters.refusedPerRoom)   transceivers \(counters.refusedTransceivers)",
            Self.pad("dropped", 16) + "handshake timeouts \(counters.handshakeTimeouts)   "
                + "unverified packets \(counters.unverifiedPacketsDropped)   "
                + "outbound queue \(counters.outboundQueueDropped)   handshaking \(counters.handshaking)",
            Self.pad("http", 16) + "connections open \(self.limits.http.connectionsOpen)   "
                + "accepted \(self.limits.http.connectionsAccepted)   read timeouts \(self.limits.http.readTimeouts)",
        ]
    }

    /// The rooms section: a summary line, then per room a header, one line per peer, one per track and one
    /// per layer (peer ids shortened here):
    ///
    ///     rooms           1   publishers 1   subscribers 1   tracks 2   sent rtp 5120 packets 2516480 B   ...
    ///     room lobby      1 publishers, 1 subscribers, 2 tracks   speakers audio0
    ///       publish   6c1f…  127.0.0.1:50312  opus,VP8  in 412.0 kbps  lost 0 (0.0 %)  layers 0:0 1:0  ...
    ///       subscribe 0a9b…  127.0.0.1:50314  opus,VP8  out 410.0 kbps  lost 0 (0.0 %)  rtt 0.4 ms  ...
    ///       track video0 mid 1 video from 6c1f…
    ///         layer -  ssrc 305419896  380.0 kbps  2620 packets  320x180
    func renderRooms() -> [String] {
        var lines: [String] = []
        let sent = self.forwarding.sent
        lines.append(
            Self.pad("rooms", 16) + "\(self.forwarding.rooms)   publishers \(self.forwarding.publishers)   "
                + "subscribers \(self.forwarding.subscribers)   tracks \(self.forwarding.tracks)   "
                + "sent rtp \(sent.rtpSent.packets) packets \(sent.rtpSent.bytes) B   "
                + "rtcp \(sent.rtcpSent.packets) packets \(sent.rtcpSent.bytes) B   dropped \(sent.dropped)"
        )
        for loop in self.forwarding.eventLoops ?? [] where (self.forwarding.eventLoops?.count ?? 0) > 1 {
            lines.append(
                Self.pad("event loop \(loop.index)", 16) + "sessions \(loop.sessions)   handed off in \(loop.handedOffIn)   "
                    + "relayed out \(loop.relayedOut)   relayed in \(loop.relayedIn)   mirrored tracks \(loop.mirroredTracks)"
            )
        }
        for room in self.rooms {
            var header = Self.pad("room \(room.name)", 16)
            header += "\(room.publishers.count) publishers, \(room.subscribers.count) subscribers, "
            header += "\(room.tracks.count) tracks"
            if !room.activeSpeakers.isEmpty { header += "   speakers " + room.activeSpeakers.joined(separator: ",") }
            lines.append(header)
            for peer in room.publishers + room.subscribers { lines.append("  " + Self.formatPeer(peer)) }
            for track in room.tracks {
                var line = "  track \(track.trackID) mid \(track.mid) \(track.kind.rawValue) from \(track.publisher)"
                if let level = track.audioLevel { line += "  level -\(Self.fixed(level, 1)) dBov" }
                lines.append(line)
                for layer in track.layers {
                    var text = "    layer \(layer.rid ?? "-")  ssrc \(layer.ssrc.map { "\($0)" } ?? "-")  "
                    text += "\(Self.formatBitrate(layer.bitrateBps))  \(layer.packets) packets"
                    if let width = layer.width, let height = layer.height { text += "  \(width)x\(height)" }
                    lines.append(text)
                }
            }
        }
        return lines
    }

    /// One peer on one line: direction, id, address, codecs, rate, loss, then what only one side has, and
    /// the participant when it is not the peer itself.
    static func formatPeer(_ peer: SFUPeerStatus) -> String {
        let publishes = peer.direction == "publish"
        var line = Self.pad(peer.direction, 10) + peer.id + "  " + (peer.remoteAddress ?? "-")
        line += "  " + (peer.codecs.isEmpty ? "-" : peer.codecs.joined(separator: ","))
        line += publishes
            ? "  in \(Self.formatBitrate(peer.bitrateInBps))" : "  out \(Self.formatBitrate(peer.bitrateOutBps))"
        line += "  lost \(peer.packetsLost) (\(Self.fixed(peer.lossFraction * 100, 1)) %)"
        if let rtt = peer.rttMs { line += "  rtt \(Self.fixed(rtt, 1)) ms" }
        if let estimate = peer.estimateBps { line += "  est \(Self.formatBitrate(estimate))" }
        let layers = peer.layers.keys.sorted().map { "\($0):\(peer.layers[$0] ?? "")" }.joined(separator: " ")
        line += "  layers " + (layers.isEmpty ? "-" : layers)
        if publishes {
            line += "  nacks out \(peer.nacksSent)  rtx in \(peer.retransmissions)  plis out \(peer.keyframeRequests)"
            if let rebuilt = peer.recoveredByFEC { line += "  fec rebuilt \(rebuilt)" }
            if let rebuilt = peer.recoveredByRED { line += "  red rebuilt \(rebuilt)" }
        } else {
            line += "  nacks in \(peer.nacksReceived)  rtx \(peer.retransmissions)  plis in \(peer.keyframeRequests)"
            if let protection = peer.protection, protection.protectionBytes > 0 || protection.measuredLoss > 0 {
                line += "  protect loss \(Self.fixed(protection.measuredLoss * 100, 1)) %"
                if let burst = protection.lossBurstLength { line += " bursts \(Self.fixed(burst, 1))" }
                line += " red \(protection.audioRedundancyDistance)"
                if protection.audioRepeats { line += "+repeats" }
                if protection.videoRepairRatio > 0 || protection.videoRepairsSent > 0 {
                    line += " \(protection.videoFEC ?? "fec") \(Self.fixed(protection.videoRepairRatio, 2))/pkt"
                    line += " \(protection.videoRepairsSent) repairs"
                    if protection.videoRepairRounds > 0 {
                        line += ", rounds \(protection.videoRepairRounds) (\(protection.videoRoundRepairs) repairs)"
                    }
                }
                line += " overhead \(Self.fixed(protection.overhead * 100, 0)) %"
            }
        }
        line += "  dropped \(peer.packetsDropped)"
        if peer.participant != peer.id { line += "  participant \(peer.participant)" }
        return line
    }

    /// `412.0 kbps`, `2.5 Mbps`, `800 bps`.
    static func formatBitrate(_ bps: Int) -> String {
        if bps >= 1_000_000 { return "\(Self.fixed(Double(bps) / 1e6, 1)) Mbps" }
        if bps >= 1000 { return "\(Self.fixed(Double(bps) / 1e3, 1)) kbps" }
        return "\(bps) bps"
    }

    /// `mid 1 video VP8/90000 pt 96 rtx 97 rids q,h,f ssrc 1234/5678`.
    static func formatSection(_ section: WebRTCSectionStatus) -> String {
        var text = "mid \(section.mid) \(section.kind) \(section.codec)"
        if let rtx = section.rtxPayloadType { text += " rtx \(rtx)" }
        if !section.rids.isEmpty { text += " rids " + section.rids.joined(separator: ",") }
        if let ssrc = section.ssrc { text += " ssrc \(ssrc)" + (section.rtxSSRC.map { "/\($0)" } ?? "") }
        return text
    }

    /// First column left-aligned, the others right-aligned, two spaces between columns.
    static func alignedTable(_ rows: [[String]]) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        widths[0] = max(widths[0], 14)
        return rows.map { row in
            var line = ""
            for (index, cell) in row.enumerated() {
                if index == 0 {
                    line += cell + String(repeating: " ", count: widths[0] - cell.count)
                } else {
                    line += "  " + String(repeating: " ", count: widths[index] - cell.count) + cell
                }
            }
            return line
        }
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    static func formatListener(_ listener: Listener) -> String {
        let host = listener.address.contains(":") ? "[\(listener.address)]" : listener.address
        return "\(host):\(listener.port)" + (listener.bound ? "" : "   (not listening)")
    }

    static func formatDuration(_ seconds: Double) -> String {
        let total = Int(seconds.isFinite ? max(0, seconds) : 0)
        let days = total / 86400
        let hours = (total % 86400) / 3600
        let minutes = (total % 3600) / 60
        let secs = total % 60
        let clock = "\(Self.twoDigits(hours)):\(Self.twoDigits(minutes)):\(Self.twoDigits(secs))"
        return days > 0 ? "\(days)d \(clock)" : clock
    }

    static func formatBytes(_ bytes: UInt64) -> String {
        let mebibytes = Double(bytes) / 1_048_576
        return "\(Self.fixed(mebibytes, 1)) MiB (\(bytes) B)"
    }

    /// `value` with exactly `digits` decimals, without Foundation's locale-dependent formatting.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "0" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        guard scaled < 1e15 else { return "\(value)" }
        let integer = UInt64(scaled)
        let whole = integer / UInt64(scale)
        var fraction = String(integer % UInt64(scale))
        fraction = String(repeating: "0", count: max(0, digits - fraction.count)) + fraction
        return (value < 0 && integer > 0 ? "-" : "") + "\(whole)" + (digits > 0 ? "." + fraction : "")
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
