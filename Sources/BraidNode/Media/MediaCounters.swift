import BraidWire

/// Why the media socket dropped a datagram. The raw value is the stable label used in JSON and metrics.
public enum MediaDropReason: String, Sendable, CaseIterable, Codable {
    /// A zero-length datagram: nothing to classify.
    case empty
    /// The first byte belongs to no protocol on this port (RFC 7983).
    case unknownProtocol = "unknown_protocol"
    /// ZRTP (first byte 16–19): not spoken by Braid.
    case zrtpUnsupported = "zrtp_unsupported"
    /// A TURN ChannelData message (first byte 64–79): Braid is not a TURN server.
    case turnChannelUnsupported = "turn_channel_unsupported"
    /// STUN, DTLS, RTP or RTCP from an address that belongs to no session. Until sessions exist
    /// (WHIP/WHEP + ICE), every such datagram ends here.
    case noSession = "no_session"
    /// STUN, DTLS, RTP or RTCP beyond `limits.unverified_packets_per_second` from a source (IP address and
    /// port) that has no session with completed DTLS here (``SourceRateLimiter``).
    case unverifiedRateLimit = "unverified_rate_limit"
}

/// A packet and byte count. Wrapping arithmetic: a 64-bit counter does not overflow in practice, and a
/// counter must never trap the packet path.
public struct PacketCount: Sendable, Equatable, Codable {
    /// Datagrams.
    public var packets: UInt64
    /// Payload bytes (UDP payload, no IP/UDP headers).
    public var bytes: UInt64

    public init(packets: UInt64 = 0, bytes: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
    }

    mutating func add(bytes: Int) {
        self.packets &+= 1
        self.bytes &+= UInt64(truncatingIfNeeded: bytes)
    }
}

/// One ``PacketCount`` per ``DatagramKind``, stored inline (no heap, no copy-on-write on the packet path).
public struct PacketCountsByKind: Sendable, Equatable {
    public var stun = PacketCount()
    public var zrtp = PacketCount()
    public var dtls = PacketCount()
    public var turnChannel = PacketCount()
    public var rtp = PacketCount()
    public var rtcp = PacketCount()
    public var unknown = PacketCount()

    public init() {}

    public subscript(kind: DatagramKind) -> PacketCount {
        get {
            switch kind {
            case .stun: self.stun
            case .zrtp: self.zrtp
            case .dtls: self.dtls
            case .turnChannel: self.turnChannel
            case .rtp: self.rtp
            case .rtcp: self.rtcp
            case .unknown: self.unknown
            }
        }
        set {
            switch kind {
            case .stun: self.stun = newValue
            case .zrtp: self.zrtp = newValue
            case .dtls: self.dtls = newValue
            case .turnChannel: self.turnChannel = newValue
            case .rtp: self.rtp = newValue
            case .rtcp: self.rtcp = newValue
            case .unknown: self.unknown = newValue
            }
        }
    }

    /// The sum over all kinds.
    public var total: PacketCount {
        DatagramKind.allCases.reduce(into: PacketCount()) { sum, kind in
            sum.packets &+= self[kind].packets
            sum.bytes &+= self[kind].bytes
        }
    }
}

/// One counter per ``MediaDropReason``, stored inline.
public struct DropCounts: Sendable, Equatable {
    public var empty: UInt64 = 0
    public var unknownProtocol: UInt64 = 0
    public var zrtpUnsupported: UInt64 = 0
    public var turnChannelUnsupported: UInt64 = 0
    public var noSession: UInt64 = 0
    public var unverifiedRateLimit: UInt64 = 0

    public init() {}

    public subscript(reason: MediaDropReason) -> UInt64 {
        get {
            switch reason {
            case .empty: self.empty
            case .unknownProtocol: self.unknownProtocol
            case .zrtpUnsupported: self.zrtpUnsupported
            case .turnChannelUnsupported: self.turnChannelUnsupported
            case .noSession: self.noSession
            case .unverifiedRateLimit: self.unverifiedRateLimit
            }
        }
        set {
            switch reason {
            case .empty: self.empty = newValue
            case .unknownProtocol: self.unknownProtocol = newValue
            case .zrtpUnsupported: self.zrtpUnsupported = newValue
            case .turnChannelUnsupported: self.turnChannelUnsupported = newValue
            case .noSession: self.noSession = newValue
            case .unverifiedRateLimit: self.unverifiedRateLimit = newValue
            }
        }
    }

    /// The sum over all reasons.
    public var total: UInt64 { MediaDropReason.allCases.reduce(0) { $0 &+ self[$1] } }
}

/// Everything the media socket has counted, copied off its event loop.
public struct MediaTrafficSnapshot: Sendable, Equatable {
    /// Datagrams received, by kind (a GRO-coalesced read counts once per segment).
    public var received = PacketCountsByKind()
    /// Datagrams sent, by kind: every datagram written on the media socket (ICE answers, DTLS flights).
    public var sent = PacketCountsByKind()
    /// Datagrams dropped, by reason. Every received datagram is either dropped or handed to a session.
    public var drops = DropCounts()
    /// Errors the socket reported on receive (e.g. ICMP port unreachable surfacing as ECONNREFUSED).
    public var receiveErrors: UInt64 = 0
    /// Reads that the kernel coalesced (GRO) and that were split into their segments here.
    public var coalescedReads: UInt64 = 0

    public init() {}
}

// Sums: a node with several media sockets (one per event loop) reports their totals.
extension PacketCount {
    static func + (lhs: PacketCount, rhs: PacketCount) -> PacketCount {
        PacketCount(packets: lhs.packets &+ rhs.packets, bytes: lhs.bytes &+ rhs.bytes)
    }
}

extension PacketCountsByKind {
    static func + (lhs: PacketCountsByKind, rhs: PacketCountsByKind) -> PacketCountsByKind {
        var sum = lhs
        for kind in DatagramKind.allCases { sum[kind] = lhs[kind] + rhs[kind] }
        return sum
    }
}

extension DropCounts {
    static func + (lhs: DropCounts, rhs: DropCounts) -> DropCounts {
        var sum = lhs
        for reason in MediaDropReason.allCases { sum[reason] = lhs[reason] &+ rhs[reason] }
        return sum
    }
}

extension MediaTrafficSnapshot {
    static func + (lhs: MediaTrafficSnapshot, rhs: MediaTrafficSnapshot) -> MediaTrafficSnapshot {
        var sum = MediaTrafficSnapshot()
        sum.received = lhs.received + rhs.received
        sum.sent = lhs.sent + rhs.sent
        sum.drops = lhs.drops + rhs.drops
        sum.receiveErrors = lhs.receiveErrors &+ rhs.receiveErrors
        sum.coalescedReads = lhs.coalescedReads &+ rhs.coalescedReads
        return sum
    }
}

extension WebRTCSendCounters {
    static func + (lhs: WebRTCSendCounters, rhs: WebRTCSendCounters) -> WebRTCSendCounters {
        var sum = WebRTCSendCounters()
        sum.rtpSent = lhs.rtpSent + rhs.rtpSent
        sum.rtcpSent = lhs.rtcpSent + rhs.rtcpSent
        sum.dropped = lhs.dropped &+ rhs.dropped
        return sum
    }
}
