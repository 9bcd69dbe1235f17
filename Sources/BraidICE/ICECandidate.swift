import NIOCore

/// A host candidate of the node, as an SDP `a=candidate` line.
///
/// [RFC 8839 §5.1](https://www.rfc-editor.org/rfc/rfc8839#section-5.1):
///
/// ```
/// candidate-attribute   = "candidate" ":" foundation SP component-id SP
///                         transport SP
///                         priority SP
///                         connection-address SP     ;from RFC 4566
///                         port         ;port from RFC 4566
///                         SP cand-type
///                         [SP rel-addr]
///                         [SP rel-port]
///                         *(SP cand-extension)
/// foundation            = 1*32ice-char
/// component-id          = 1*3DIGIT
/// transport             = "UDP" / transport-extension
/// priority              = 1*10DIGIT
/// cand-type             = "typ" SP candidate-types
/// candidate-types       = "host" / "srflx" / "prflx" / "relay" / token
/// ```
///
/// For example `candidate:1 1 udp 2130706431 203.0.113.5 3478 typ host`. The node's candidates are
/// UDP host candidates of component 1 (RTP and RTCP are multiplexed, RFC 8858), with no related address.
public struct ICECandidate: Hashable, Sendable, CustomStringConvertible {
    /// Type preference of host candidates, the highest (RFC 8445 §5.1.2.2 recommends 126).
    public static let hostTypePreference: UInt8 = 126

    /// The foundation: candidates of the same type, base and server share one (RFC 8445 §5.1.1.3).
    public let foundation: String
    /// The component: 1 (RTP, with RTCP multiplexed on it).
    public let component: Int
    /// The priority, computed by ``priority(typePreference:localPreference:component:)``.
    public let priority: UInt32
    /// The IP address in text form (dotted quad, or RFC 5952 IPv6 without brackets).
    public let ipAddress: String
    /// The UDP port.
    public let port: Int

    /// A UDP host candidate at `address`.
    ///
    /// - Parameters:
    ///   - foundation: 1 to 32 ice-chars (ALPHA / DIGIT / "+" / "/").
    ///   - localPreference: 0–65535; give each of several addresses its own, highest for the preferred one
    ///     (RFC 8445 §5.1.2.1), e.g. IPv6 above IPv4.
    ///   - component: 1–256; 1 with rtcp-mux.
    /// - Throws: `.badCandidate` for a bad foundation or component, or an address that is not IPv4/IPv6.
    public init(
        foundation: String = "1",
        address: SocketAddress,
        localPreference: UInt16 = 65535,
        component: Int = 1
    ) throws(ICEError) {
        let foundationBytes = Array(foundation.utf8)
        guard (1...32).contains(foundationBytes.count), foundationBytes.allSatisfy(ICECredentials.isICEChar) else {
            throw ICEError(.badCandidate, "foundation must be 1 to 32 ice-chars, is \"\(foundation)\"")
        }
        guard (1...256).contains(component) else {
            throw ICEError(.badCandidate, "component must be 1 to 256, is \(component)")
        }
        guard let ipAddress = address.ipAddress, let port = address.port, (0...65535).contains(port) else {
            throw ICEError(.badCandidate, "\(address) is not an IPv4 or IPv6 socket address")
        }
        self.foundation = foundation
        self.component = component
        self.priority = Self.priority(
            typePreference: Self.hostTypePreference,
            localPreference: localPreference,
            component: component
        )
        self.ipAddress = ipAddress
        self.port = port
    }

    /// A candidate's priority, [RFC 8445 §5.1.2.1](https://www.rfc-editor.org/rfc/rfc8445#section-5.1.2.1):
    ///
    /// ```
    /// priority = (2^24)*(type preference) +
    ///            (2^8)*(local preference) +
    ///            (2^0)*(256 - component ID)
    /// ```
    ///
    /// Type preference is 0–126 (larger values are clamped to 126), component 1–256 (clamped).
    public static func priority(typePreference: UInt8, localPreference: UInt16, component: Int) -> UInt32 {
        let type = UInt32(min(typePreference, 126))
        let componentTerm = UInt32(256 - min(max(component, 1), 256))
        return type << 24 | UInt32(localPreference) << 8 | componentTerm
    }

    /// The attribute's value: `candidate:1 1 udp 2130706431 203.0.113.5 3478 typ host`.
    public var attributeValue: String {
        "candidate:\(self.foundation) \(self.component) udp \(self.priority) \(self.ipAddress) \(self.port) typ host"
    }

    /// The SDP line without line ending: `a=candidate:…`.
    public var sdpLine: String { "a=" + self.attributeValue }

    public var description: String { self.attributeValue }
}
