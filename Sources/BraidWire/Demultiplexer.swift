/// The kind of a datagram arriving on a port shared by STUN, DTLS and SRTP/SRTCP.
///
/// [RFC 7983 §7](https://www.rfc-editor.org/rfc/rfc7983#section-7) decides by the first byte:
///
/// ```
///                  +----------------+
///                  |        [0..3] -+--> forward to STUN
///                  |                |
///                  |      [16..19] -+--> forward to ZRTP
///                  |                |
///      packet -->  |      [20..63] -+--> forward to DTLS
///                  |                |
///                  |      [64..79] -+--> forward to TURN Channel
///                  |                |
///                  |    [128..191] -+--> forward to RTP/RTCP
///                  +----------------+
/// ```
///
/// RTP and RTCP share one range; [RFC 5761 §4](https://www.rfc-editor.org/rfc/rfc5761#section-4)
/// separates them by the second byte: RTCP packet types 192–223 (payload types that RTP must not use
/// when multiplexed).
public enum DatagramKind: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case stun
    case zrtp
    case dtls
    case turnChannel
    case rtp
    case rtcp
    /// Empty, or a first byte no protocol on this port claims.
    case unknown

    /// Classifies a datagram from its first two bytes. Never reads past `bytes.count`.
    @inlinable
    public init(classifying bytes: some Collection<UInt8>) {
        guard let first = bytes.first else {
            self = .unknown
            return
        }
        switch first {
        case 0...3: self = .stun
        case 16...19: self = .zrtp
        case 20...63: self = .dtls
        case 64...79: self = .turnChannel
        case 128...191:
            let second = bytes.dropFirst().first
            // An RTP header is at least 12 bytes and RTCP at least 4; the type byte decides.
            if let second, (192...223).contains(second) {
                self = .rtcp
            } else {
                self = .rtp
            }
        default: self = .unknown
        }
    }

    /// Classifies from the first two bytes, for callers that already hold them.
    @inlinable
    public init(firstByte: UInt8, secondByte: UInt8?) {
        switch firstByte {
        case 0...3: self = .stun
        case 16...19: self = .zrtp
        case 20...63: self = .dtls
        case 64...79: self = .turnChannel
        case 128...191:
            if let secondByte, (192...223).contains(secondByte) { self = .rtcp } else { self = .rtp }
        default: self = .unknown
        }
    }

    public var description: String {
        switch self {
        case .stun: "stun"
        case .zrtp: "zrtp"
        case .dtls: "dtls"
        case .turnChannel: "turn-channel"
        case .rtp: "rtp"
        case .rtcp: "rtcp"
        case .unknown: "unknown"
        }
    }
}
