// Typed WebRTC attributes. Each type parses the text after `a=<name>:` and renders it back
// (`attributeValue`), so a typed value round-trips through ``SDPAttribute``.

/// `a=group:<semantics> *(SP <identification-tag>)` (RFC 5888 §5, RFC 9143 §7.1), e.g. `a=group:BUNDLE 0 1`.
public struct SDPGroup: Hashable, Sendable {
    /// `BUNDLE`, `LS`, …
    public var semantics: String
    /// The `a=mid` values in the group, in order.
    public var mids: [String]

    /// Creates a group.
    public init(semantics: String, mids: [String]) {
        self.semantics = semantics
        self.mids = mids
    }

    /// Parses the value after `a=group:`.
    public init(parsing value: Substring) throws(SDPError) {
        let fields = value.split(separator: " ")
        guard let first = fields.first else { throw SDPError(.badAttribute, "a=group needs a semantics token") }
        self.init(semantics: String(first), mids: fields.dropFirst().map(String.init))
    }

    /// The attribute value, e.g. `BUNDLE 0 1`.
    public var attributeValue: String { ([self.semantics] + self.mids).joined(separator: " ") }
}

/// `a=msid:<stream id> [<track id>]` (RFC 8830 §2).
public struct SDPMsid: Hashable, Sendable {
    /// The MediaStream id; `-` for none.
    public var streamID: String
    /// The track id (the "appdata"), if present.
    public var trackID: String?

    /// Creates an msid.
    public init(streamID: String, trackID: String?) {
        self.streamID = streamID
        self.trackID = trackID
    }

    /// Parses the value after `a=msid:`.
    public init(parsing value: Substring) throws(SDPError) {
        let fields = value.split(separator: " ")
        guard fields.count == 1 || fields.count == 2 else {
            throw SDPError(.badAttribute, "a=msid needs a stream id and an optional track id")
        }
        self.init(streamID: String(fields[0]), trackID: fields.count == 2 ? String(fields[1]) : nil)
    }

    /// The attribute value.
    public var attributeValue: String {
        guard let trackID else { return self.streamID }
        return "\(self.streamID) \(trackID)"
    }
}

/// `a=fingerprint:<hash-func> <fingerprint>` (RFC 8122 §5), e.g. `sha-256 AB:CD:…`.
public struct SDPFingerprint: Hashable, Sendable {
    /// The hash function name, lower-cased (`sha-256`).
    public var algorithm: String
    /// The digest bytes.
    public var bytes: [UInt8]

    /// Creates a fingerprint.
    public init(algorithm: String, bytes: [UInt8]) {
        self.algorithm = algorithm.lowercased()
        self.bytes = bytes
    }

    /// Parses the value after `a=fingerprint:`; the hex digits may be upper or lower case.
    public init(parsing value: Substring) throws(SDPError) {
        let fields = value.split(separator: " ")
        guard fields.count == 2 else { throw SDPError(.badAttribute, "a=fingerprint needs <hash-func> <hex>") }
        var bytes: [UInt8] = []
        for pair in fields[1].split(separator: ":", omittingEmptySubsequences: false) {
            guard pair.utf8.count == 2, pair.allSatisfy(\.isHexDigit), let byte = UInt8(pair, radix: 16) else {
                throw SDPError(.badAttribute, "a=fingerprint digest must be colon-separated hex byte pairs")
            }
            bytes.append(byte)
        }
        self.init(algorithm: String(fields[0]), bytes: bytes)
    }

    /// The digest as upper-case colon-separated hex, `AB:CD:…` (RFC 8122 §5).
    public var hex: String {
        let digits = Array("0123456789ABCDEF")
        var text = ""
        text.reserveCapacity(self.bytes.count * 3)
        for (index, byte) in self.bytes.enumerated() {
            if index > 0 { text.append(":") }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return text
    }

    /// The attribute value.
    public var attributeValue: String { "\(self.algorithm) \(self.hex)" }
}

/// `a=setup` (RFC 4145 §4, RFC 8842 §5): which side opens the DTLS connection.
public enum SDPSetupRole: String, Hashable, Sendable {
    /// Either; only valid in an offer.
    case actpass
    /// This side sends the ClientHello.
    case active
    /// This side waits for the ClientHello.
    case passive
    /// No connection for now.
    case holdconn
}

/// Media direction attributes (RFC 8866 §6.7).
public enum SDPDirection: String, Hashable, Sendable {
    case sendrecv, sendonly, recvonly, inactive

    /// Whether this side sends media.
    public var sends: Bool { self == .sendrecv || self == .sendonly }
    /// Whether this side receives media.
    public var receives: Bool { self == .sendrecv || self == .recvonly }

    /// The direction as seen from the other side (`sendonly` ↔ `recvonly`).
    public var reversed: SDPDirection {
        switch self {
        case .sendonly: .recvonly
        case .recvonly: .sendonly
        case .sendrecv, .inactive: self
        }
    }

    init(sends: Bool, receives: Bool) {
        switch (sends, receives) {
        case (true, true): self = .sendrecv
        case (true, false): self = .sendonly
        case (false, true): self = .recvonly
        case (false, false): self = .inactive
        }
    }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]` (RFC 8866 §6.6).
public struct SDPRTPMap: Hashable, Sendable {
    /// The RTP payload type, 0–127.
    public var payloadType: UInt8
    /// The encoding name as written (`opus`, `VP8`, `rtx`); compare case-insensitively.
    public var encoding: String
    /// The RTP clock rate in Hz.
    public var clockRate: UInt32
    /// The channel count for audio, if written.
    public var channels: UInt8?

    /// Creates an rtpmap.
    public init(payloadType: UInt8, encoding: String, clockRate: UInt32, channels: UInt8? = nil) {
        self.payloadType = payloadType
        self.encoding = encoding
        self.clockRate = clockRate
        self.channels = channels
    }

    /// Parses the value after `a=rtpmap:`.
    public init(parsing value: Substring) throws(SDPError) {
        let fields = value.split(separator: " ")
        guard fields.count == 2 else { throw SDPError(.badAttribute, "a=rtpmap needs <pt> <encoding>/<clock rate>") }
        let payloadType = try SDPPayloadType.parse(fields[0], attribute: "rtpmap")
        let parts = fields[1].split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3, !parts[0].isEmpty else {
            throw SDPError(.badAttribute, "a=rtpmap encoding must be <name>/<clock rate>[/<channels>]")
        }
        guard let clockRate = SDPNumber.parse(parts[1], as: UInt32.self), clockRate > 0 else {
            throw SDPError(.badAttribute, "a=rtpmap clock rate must be a positive number")
        }
        var channels: UInt8?
        if parts.count == 3 {
            guard let count = SDPNumber.parse(parts[2], as: UInt8.self), count > 0 else {
                throw SDPError(.badAttribute, "a=rtpmap channel count must be a number in 1...255")
            }
            channels = count
        }
        self.init(payloadType: payloadType, encoding: String(parts[0]), clockRate: clockRate, channels: channels)
    }

    /// `encoding/clock[/channels]`, e.g. `opus/48000/2`.
    public var codecName: String {
        guard let channels else { return "\(self.encoding)/\(self.clockRate)" }
        return "\(self.encoding)/\(self.clockRate)/\(channels)"
    }

    /// The attribute value.
    public var attributeValue: String { "\(self.payloadType) \(self.codecName)" }
}

/// One format parameter: `key=value`, or a bare token such as RED's `111/111`.
public struct SDPParameter: Hashable, Sendable, CustomStringConvertible {
    /// The key, or the whole token when there is no `=`.
    public var name: String
    /// The value after `=`, if any.
    public var value: String?

    /// Creates a parameter.
    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }

    public var description: String {
        guard let value else { return self.name }
        return "\(self.name)=\(value)"
    }

    /// Parses `k=v;k=v` (spaces around `;` tolerated) into parameters.
    static func parseList(_ text: Substring) -> [SDPParameter] {
        text.split(separator: ";").compactMap { part in
            let trimmed = part.trimmingSpaces
            if trimmed.isEmpty { return nil }
            guard let equals = trimmed.firstIndex(of: "=") else { return SDPParameter(String(trimmed)) }
            return SDPParameter(String(trimmed[..<equals]), String(trimmed[trimmed.index(after: equals)...]))
        }
    }
}

extension Array where Element == SDPParameter {
    /// The value of the first parameter named `name` (case-insensitive), if present.
    public func value(of name: String) -> String? {
        self.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// `a=fmtp:<payload type> <format specific parameters>` (RFC 8866 §6.15), e.g. `111 minptime=10;useinbandfec=1`.
public struct SDPFormatParameters: Hashable, Sendable {
    /// The RTP payload type the parameters apply to.
    public var payloadType: UInt8
    /// The parameters in order.
    public var parameters: [SDPParameter]

    /// Creates an fmtp.
    public init(payloadType: UInt8, parameters: [SDPParameter]) {
        self.payloadType = payloadType
        self.parameters = parameters
    }

    /// Parses the value after `a=fmtp:`.
    public init(parsing value: Substring) throws(SDPError) {
        guard let space = value.firstIndex(of: " ") else {
            throw SDPError(.badAttribute, "a=fmtp needs <pt> <parameters>")
        }
        let payloadType = try SDPPayloadType.parse(value[..<space], attribute: "fmtp")
        self.init(payloadType: payloadType, parameters: SDPParameter.parseList(value[value.index(after: space)...]))
    }

    /// The attribute value.
    public var attributeValue: String {
        "\(self.payloadType) " + self.parameters.map(\.description).joined(separator: ";")
    }
}

/// `a=rtcp-fb:<payload type or *> <type> [<parameter>]` (RFC 4585 §4.2), e.g. `96 nack pli`, `* transport-cc`.
public struct SDPRTCPFeedback: Hashable, Sendable {
    /// The payload type the feedback applies to, `nil` for `*` (all).
    public var payloadType: UInt8?
    /// `nack`, `ccm`, `goog-remb`, `transport-cc`, …
    public var type: String
    /// `pli` for `nack pli`, `fir` for `ccm fir`, otherwise usually `nil`.
    public var parameter: String?

    /// Creates a feedback line.
    public init(payloadType: UInt8?, type: String, parameter: String? = nil) {
        self.payloadType = payloadType
        self.type = type
        self.parameter = parameter
    }

    /// Parses the value after `a=rtcp-fb:`.
    public init(parsing value: Substring) throws(SDPError) {
        let fields = value.split(separator: " ", maxSplits: 2)
        guard fields.count >= 2 else { throw SDPError(.badAttribute, "a=rtcp-fb needs <pt> <type>") }
        let payloadType: UInt8? = fields[0] == "*" ? nil : try SDPPayloadType.parse(fields[0], attribute: "rtcp-fb")
        self.init(
            payloadType: payloadType,
            type: String(fields[1]),
            parameter: fields.count == 3 ? String(fields[2]) : nil
        )
    }

    /// `type[ parameter]`, e.g. `nack pli`.
    public var feedbackName: String {
        guard let parameter else { return self.type }
        return "\(self.type) \(parameter)"
    }

    /// The attribute value.
    public var attributeValue: String {
        "\(self.payloadType.map(String.init) ?? "*") \(self.feedbackName)"
    }
}

/// `a=extmap:<id>[/<direction>] <URI> [<extension attributes>]` (RFC 8285 §8).
public struct SDPExtMap: Hashable, Sendable {
    /// The local identifier: 1–14 (one-byte header), 1–255 (two-byte header); 4096–4351 in offers.
    public var id: UInt16
    /// The optional direction.
    public var direction: SDPDirection?
    /// The extension URI.
    public var uri: String
    /// Extension attributes, verbatim.
    public var extensionAttributes: String?

    /// Creates an extmap.
    public init(id: UInt16, direction: SDPDirection? = nil, uri: String, extensionAttributes: String? = nil) {
        self.id = id
        self.direction = direction
        self.uri = uri
        self.extensionAttributes = extensionAttributes
    }

    /// Parses the value after `a=extmap:`.
    public init(parsing value: Substring) throws(SDPError) {
        let fields = value.split(separator: " ", maxSplits: 2)
        guard fields.count >= 2 else { throw SDPError(.badAttribute, "a=extmap needs <id> <URI>") }
        var idText = fields[0]
        var direction: SDPDirection?
        if let slash = idText.firstIndex(of: "/") {
            guard let parsed = SDPDirection(rawValue: String(idText[idText.index(after: slash)...])) else {
                throw SDPError(.badAttribute, "a=extmap direction must be sendrecv, sendonly, recvonly or inactive")
            }
            direction = parsed
            idText = idText[..<slash]
        }
        guard let id = SDPNumber.parse(idText, as: UInt16.self), (1...255).contains(id) || (4096...4351).contains(id)
        else {
            throw SDPError(.badAttribute, "a=extmap id must be in 1...255 or 4096...4351")
        }
        self.init(
            id: id,
            direction: direction,
            uri: String(fields[1]),
            extensionAttributes: fields.count == 3 ? String(fields[2]) : nil
        )
    }

    /// The attribute value.
    public var attributeValue: String {
        var text = "\(self.id)"
        if let direction { text += "/\(direction.rawValue)" }
        text += " \(self.uri)"
        if let extensionAttributes { text += " \(extensionAttributes)" }
        return text
    }
}

/// `a=ssrc:<ssrc-id> <attribute>[:<value>]` (RFC 5576 §4.1), e.g. `1234 cname:abc`.
public struct SDPSSRCAttribute: Hashable, Sendable {
    /// The SSRC.
    public var ssrc: UInt32
    /// The source attribute name (`cname`, `msid`, …).
    public var name: String
    /// The source attribute value.
    public var value: String?

    /// Creates an ssrc attribute.
    public init(ssrc: UInt32, name: String, value: String? = nil) {
        self.ssrc = ssrc
        self.name = name
        self.value = value
    }

    /// Parses the value after `a=ssrc:`.
    public init(parsing value: Substring) throws(SDPError) {
        let fields = value.split(separator: " ", maxSplits: 1)
        guard fields.count == 2, let ssrc = SDPNumber.parse(fields[0], as: UInt32.self) else {
            throw SDPError(.badAttribute, "a=ssrc needs <32-bit ssrc> <attribute>[:<value>]")
        }
        let rest = fields[1]
        if let colon = rest.firstIndex(of: ":") {
            self.init(ssrc: ssrc, name: String(rest[..<colon]), value: String(rest[rest.index(after: colon)...]))
        } else {
            self.init(ssrc: ssrc, name: String(rest))
        }
    }

    /// The attribute value.
    public var attributeValue: String {
        guard let value else { return "\(self.ssrc) \(self.name)" }
        return "\(self.ssrc) \(self.name):\(value)"
    }
}

/// `a=ssrc-group:<semantics> <ssrc-id> ...` (RFC 5576 §4.2), e.g. `FID 1234 5678` or `SIM 1 2 3`.
public struct SDPSSRCGroup: Hashable, Sendable {
    /// `FID` (RTX pairing), `SIM` (simulcast), `FEC-FR`, …
    public var semantics: String
    /// The SSRCs in order.
    public var ssrcs: [UInt32]

    /// Creates an ssrc group.
    public init(semantics: String, ssrcs: [UInt32]) {
        self.semantics = semantics
        self.ssrcs = ssrcs
    }

    /// Parses the value after `a=ssrc-group:`.
    public init(parsing value: Substring) throws(SDPError) {
        let fields = value.split(separator: " ")
        guard fields.count >= 2 else { throw SDPError(.badAttribute, "a=ssrc-group needs <semantics> <ssrc>...") }
        var ssrcs: [UInt32] = []
        for field in fields.dropFirst() {
            guard let ssrc = SDPNumber.parse(field, as: UInt32.self) else {
                throw SDPError(.badAttribute, "a=ssrc-group SSRC is not a 32-bit number")
            }
            ssrcs.append(ssrc)
        }
        self.init(semantics: String(fields[0]), ssrcs: ssrcs)
    }

    /// The attribute value.
    public var attributeValue: String { ([self.semantics] + self.ssrcs.map(String.init)).joined(separator: " ") }
}

/// `a=rid:<rid-id> <send|recv> [pt=<fmt>,...;][<key>=<value>;...]` (RFC 8851 §10).
///
/// ```
/// rid-syntax  = %s"a=rid:" rid-id SP rid-dir [ rid-pt-param-list / rid-param-list ]
/// rid-pt-param-list = SP rid-fmt-list *(";" rid-param)
/// rid-fmt-list = %s"pt=" fmt *( "," fmt )
/// rid-param-list = SP rid-param *(";" rid-param)
/// ```
public struct SDPRID: Hashable, Sendable {
    /// Whether the RID describes a stream the side sends or receives.
    public enum Direction: String, Hashable, Sendable {
        case send, recv
    }

    /// The RID (`q`, `h`, `f`, …): alphanumerics, `-` and `_`.
    public var id: String
    /// Send or receive.
    public var direction: Direction
    /// The `pt=` list, empty when absent.
    public var payloadTypes: [UInt8]
    /// The other restrictions (`max-width=1280`, …) in order.
    public var restrictions: [SDPParameter]

    /// Creates a RID.
    public init(id: String, direction: Direction, payloadTypes: [UInt8] = [], restrictions: [SDPParameter] = []) {
        self.id = id
        self.direction = direction
        self.payloadTypes = payloadTypes
        self.restrictions = restrictions
    }

    /// Parses the value after `a=rid:`.
    public init(parsing value: Substring) throws(SDPError) {
        let fields = value.split(separator: " ", maxSplits: 2)
        guard fields.count >= 2 else { throw SDPError(.badAttribute, "a=rid needs <rid-id> <send|recv>") }
        guard SDPRID.isValidID(fields[0]) else {
            throw SDPError(.badAttribute, "a=rid id must be 1-255 alphanumerics, '-' or '_'")
        }
        guard let direction = Direction(rawValue: String(fields[1])) else {
            throw SDPError(.badAttribute, "a=rid direction must be send or recv")
        }
        var payloadTypes: [UInt8] = []
        var restrictions: [SDPParameter] = []
        if fields.count == 3 {
            for parameter in SDPParameter.parseList(fields[2]) {
                if parameter.name == "pt" {
                    for pt in (parameter.value ?? "").split(separator: ",", omittingEmptySubsequences: false) {
                        payloadTypes.append(try SDPPayloadType.parse(pt, attribute: "rid pt="))
                    }
                } else {
                    restrictions.append(parameter)
                }
            }
        }
        self.init(id: String(fields[0]), direction: direction, payloadTypes: payloadTypes, restrictions: restrictions)
    }

    static func isValidID(_ text: Substring) -> Bool {
        (1...255).contains(text.utf8.count)
            && text.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                    UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    true
                default: false
                }
            }
    }

    /// The attribute value.
    public var attributeValue: String {
        var text = "\(self.id) \(self.direction.rawValue)"
        var parameters: [String] = []
        if !self.payloadTypes.isEmpty {
            parameters.append("pt=" + self.payloadTypes.map(String.init).joined(separator: ","))
        }
        parameters += self.restrictions.map(\.description)
        if !parameters.isEmpty { text += " " + parameters.joined(separator: ";") }
        return text
    }
}

/// `a=simulcast` (RFC 8853 §5.1).
///
/// ```
/// sc-value     = ( sc-send [SP sc-recv] ) / ( sc-recv [SP sc-send] )
/// sc-send      = %s"send" SP sc-str-list
/// sc-recv      = %s"recv" SP sc-str-list
/// sc-str-list  = sc-alt-list *( ";" sc-alt-list )
/// sc-alt-list  = sc-id *( "," sc-id )
/// sc-id        = [sc-id-paused] rid-id      ; sc-id-paused = "~"
/// ```
/// The draft-03 form `a=simulcast: send rid=a;b;c` (older Firefox) is accepted too.
public struct SDPSimulcast: Hashable, Sendable {
    /// One RID in a simulcast list, possibly paused (`~`).
    public struct Stream: Hashable, Sendable, CustomStringConvertible {
        /// The RID.
        public var rid: String
        /// Whether the stream starts paused (`~`).
        public var paused: Bool

        /// Creates a stream entry.
        public init(rid: String, paused: Bool = false) {
            self.rid = rid
            self.paused = paused
        }

        public var description: String { (self.paused ? "~" : "") + self.rid }
    }

    /// Streams this side sends: each inner array is one simulcast stream and its alternatives.
    public var send: [[Stream]]
    /// Streams this side receives.
    public var recv: [[Stream]]

    /// Creates a simulcast description.
    public init(send: [[Stream]] = [], recv: [[Stream]] = []) {
        self.send = send
        self.recv = recv
    }

    /// Parses the value after `a=simulcast:`.
    public init(parsing value: Substring) throws(SDPError) {
        let fields = value.split(separator: " ")
        guard fields.count == 2 || fields.count == 4 else {
            throw SDPError(.badAttribute, "a=simulcast needs send and/or recv followed by a stream list")
        }
        var send: [[Stream]]?
        var recv: [[Stream]]?
        var index = 0
        while index + 1 < fields.count {
            let list = try SDPSimulcast.parseList(fields[index + 1])
            switch fields[index] {
            case "send" where send == nil: send = list
            case "recv" where recv == nil: recv = list
            default: throw SDPError(.badAttribute, "a=simulcast direction must be send or recv, each at most once")
            }
            index += 2
        }
        self.init(send: send ?? [], recv: recv ?? [])
    }

    private static func parseList(_ text: Substring) throws(SDPError) -> [[Stream]] {
        var text = text
        if text.hasPrefix("rid=") { text = text.dropFirst(4) }  // draft-ietf-mmusic-sdp-simulcast-03
        var streams: [[Stream]] = []
        for alternatives in text.split(separator: ";", omittingEmptySubsequences: false) {
            var group: [Stream] = []
            for item in alternatives.split(separator: ",", omittingEmptySubsequences: false) {
                let paused = item.hasPrefix("~")
                let rid = paused ? item.dropFirst() : item
                guard SDPRID.isValidID(rid) else {
                    throw SDPError(.badAttribute, "a=simulcast stream id must be a rid-id, optionally after '~'")
                }
                group.append(Stream(rid: String(rid), paused: paused))
            }
            streams.append(group)
        }
        return streams
    }

    /// The attribute value in RFC 8853 form.
    public var attributeValue: String {
        var parts: [String] = []
        if !self.send.isEmpty { parts.append("send " + SDPSimulcast.render(self.send)) }
        if !self.recv.isEmpty { parts.append("recv " + SDPSimulcast.render(self.recv)) }
        return parts.joined(separator: " ")
    }

    private static func render(_ list: [[Stream]]) -> String {
        list.map { $0.map(\.description).joined(separator: ",") }.joined(separator: ";")
    }
}

/// An ICE candidate (RFC 8839 §5.1).
///
/// ```
/// candidate-attribute = "candidate" ":" foundation SP component-id SP transport SP priority SP
///                       connection-address SP port SP cand-type
///                       [SP rel-addr] [SP rel-port] *(SP cand-extension)
/// cand-type           = "typ" SP candidate-types     ; host / srflx / prflx / relay / token
/// rel-addr            = "raddr" SP connection-address
/// rel-port            = "rport" SP port
/// cand-extension      = extension-att-name SP extension-att-value
/// ```
public struct SDPCandidate: Hashable, Sendable {
    /// Candidate types (RFC 8839 §5.1).
    public enum Kind: Hashable, Sendable, CustomStringConvertible {
        case host, srflx, prflx, relay
        case other(String)

        init(_ text: String) {
            switch text {
            case "host": self = .host
            case "srflx": self = .srflx
            case "prflx": self = .prflx
            case "relay": self = .relay
            default: self = .other(text)
            }
        }

        public var description: String {
            switch self {
            case .host: "host"
            case .srflx: "srflx"
            case .prflx: "prflx"
            case .relay: "relay"
            case .other(let text): text
            }
        }
    }

    /// 1–32 ice-chars.
    public var foundation: String
    /// 1–256; 1 is RTP (the only one with rtcp-mux).
    public var component: UInt16
    /// `UDP` or `TCP`, as written (compare case-insensitively).
    public var transport: String
    /// 32-bit priority.
    public var priority: UInt32
    /// IP address or FQDN (e.g. an mDNS `.local` name).
    public var address: String
    /// The port.
    public var port: UInt16
    /// host, srflx, prflx, relay, …
    public var kind: Kind
    /// `raddr`.
    public var relatedAddress: String?
    /// `rport`.
    public var relatedPort: UInt16?
    /// Further name/value pairs (`generation 0`, `tcptype active`, `ufrag x`, `network-id 1`) in order.
    public var extensions: [SDPParameter]

    /// Creates a candidate.
    public init(
        foundation: String,
        component: UInt16 = 1,
        transport: String = "udp",
        priority: UInt32,
        address: String,
        port: UInt16,
        kind: Kind = .host,
        relatedAddress: String? = nil,
        relatedPort: UInt16? = nil,
        extensions: [SDPParameter] = []
    ) {
        self.foundation = foundation
        self.component = component
        self.transport = transport
        self.priority = priority
        self.address = address
        self.port = port
        self.kind = kind
        self.relatedAddress = relatedAddress
        self.relatedPort = relatedPort
        self.extensions = extensions
    }

    /// Parses the value after `a=candidate:` (a leading `candidate:` is tolerated, as in trickle JSON).
    public init(parsing value: Substring) throws(SDPError) {
        var value = value
        if value.hasPrefix("candidate:") { value = value.dropFirst("candidate:".count) }
        let fields = value.split(separator: " ")
        guard fields.count >= 8, fields[6] == "typ" else {
            throw SDPError(
                .badAttribute,
                "a=candidate needs <foundation> <component> <transport> <priority> "
                    + "<address> <port> typ <type>"
            )
        }
        guard (1...32).contains(fields[0].utf8.count) else {
            throw SDPError(.badAttribute, "a=candidate foundation must be 1-32 characters")
        }
        guard let component = SDPNumber.parse(fields[1], as: UInt16.self), (1...256).contains(component) else {
            throw SDPError(.badAttribute, "a=candidate component must be in 1...256")
        }
        guard let priority = SDPNumber.parse(fields[3], as: UInt32.self) else {
            throw SDPError(.badAttribute, "a=candidate priority must be a 32-bit number")
        }
        guard let port = SDPNumber.parse(fields[5], as: UInt16.self) else {
            throw SDPError(.badAttribute, "a=candidate port must be in 0...65535")
        }
        var relatedAddress: String?
        var relatedPort: UInt16?
        var extensions: [SDPParameter] = []
        var index = 8
        while index < fields.count {
            guard index + 1 < fields.count else {
                throw SDPError(.badAttribute, "a=candidate extension \(fields[index]) has no value")
            }
            let name = fields[index]
            let item = fields[index + 1]
            switch name {
            case "raddr" where relatedAddress == nil:
                relatedAddress = String(item)
            case "rport" where relatedPort == nil:
                guard let parsed = SDPNumber.parse(item, as: UInt16.self) else {
                    throw SDPError(.badAttribute, "a=candidate rport must be in 0...65535")
                }
                relatedPort = parsed
            default:
                extensions.append(SDPParameter(String(name), String(item)))
            }
            index += 2
        }
        self.init(
            foundation: String(fields[0]),
            component: component,
            transport: String(fields[2]),
            priority: priority,
            address: String(fields[4]),
            port: port,
            kind: Kind(String(fields[7])),
            relatedAddress: relatedAddress,
            relatedPort: relatedPort,
            extensions: extensions
        )
    }

    /// The attribute value (after `a=candidate:`).
    public var attributeValue: String {
        var text = "\(self.foundation) \(self.component) \(self.transport) \(self.priority) \(self.address) "
        text += "\(self.port) typ \(self.kind)"
        if let relatedAddress { text += " raddr \(relatedAddress)" }
        if let relatedPort { text += " rport \(relatedPort)" }
        for item in self.extensions { text += " \(item.name) \(item.value ?? "")" }
        return text
    }
}

// MARK: - Grammar checks applied while parsing

enum SDPPayloadType {
    static func parse(_ text: Substring, attribute: String) throws(SDPError) -> UInt8 {
        guard let value = SDPNumber.parse(text, as: UInt8.self), value <= 127 else {
            throw SDPError(.badAttribute, "a=\(attribute) payload type must be a number in 0...127")
        }
        return value
    }
}

enum SDPAttributeGrammar {
    /// Throws if a known attribute's value breaks its grammar; unknown attributes pass unchanged.
    static func validate(name: Substring, value: Substring?) throws(SDPError) {
        switch name {
        case "group": _ = try SDPGroup(parsing: try required(name, value))
        case "msid": _ = try SDPMsid(parsing: try required(name, value))
        case "fingerprint": _ = try SDPFingerprint(parsing: try required(name, value))
        case "setup":
            guard SDPSetupRole(rawValue: String(try required(name, value))) != nil else {
                throw SDPError(.badAttribute, "a=setup must be actpass, active, passive or holdconn")
            }
        case "rtpmap": _ = try SDPRTPMap(parsing: try required(name, value))
        case "fmtp": _ = try SDPFormatParameters(parsing: try required(name, value))
        case "rtcp-fb": _ = try SDPRTCPFeedback(parsing: try required(name, value))
        case "extmap": _ = try SDPExtMap(parsing: try required(name, value))
        case "ssrc": _ = try SDPSSRCAttribute(parsing: try required(name, value))
        case "ssrc-group": _ = try SDPSSRCGroup(parsing: try required(name, value))
        case "rid": _ = try SDPRID(parsing: try required(name, value))
        case "simulcast": _ = try SDPSimulcast(parsing: try required(name, value).trimmingSpaces)
        case "candidate": _ = try SDPCandidate(parsing: try required(name, value))
        case "mid", "ice-ufrag", "ice-pwd":
            guard let value, !value.isEmpty, !value.contains(" ") else {
                throw SDPError(.badAttribute, "a=\(name) needs a single non-empty token")
            }
        case "sctp-port":
            guard SDPNumber.parse(try required(name, value), as: UInt16.self) != nil else {
                throw SDPError(.badAttribute, "a=sctp-port must be a port number")
            }
        default: break
        }
    }

    private static func required(_ name: Substring, _ value: Substring?) throws(SDPError) -> Substring {
        guard let value, !value.isEmpty else { throw SDPError(.badAttribute, "a=\(name) needs a value") }
        return value
    }
}

extension Substring {
    /// The text without leading and trailing spaces and tabs.
    var trimmingSpaces: Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\t" { text = text.dropLast() }
        return text
    }
}
