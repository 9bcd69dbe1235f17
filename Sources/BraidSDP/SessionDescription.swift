// Session description model (RFC 8866 §5, https://www.rfc-editor.org/rfc/rfc8866#section-5).
//
//   Session description
//      v=  (protocol version)
//      o=  (originator and session identifier)
//      s=  (session name)
//      i=* (session information)
//      u=* (URI of description)
//      e=* (email address)
//      p=* (phone number)
//      c=* (connection information -- not required if included in all media descriptions)
//      b=* (zero or more bandwidth information lines)
//      One or more time descriptions ("t=" and "r=" lines; see below)
//      z=* (time zone adjustments)
//      k=* (obsolete)
//      a=* (zero or more session attribute lines)
//      Zero or more media descriptions
//
//   Time description
//      t=  (time the session is active)
//      r=* (zero or more repeat times)
//
//   Media description, if present
//      m=  (media name and transport address)
//      i=* (media title)
//      c=* (connection information -- optional if included at session level)
//      b=* (zero or more bandwidth information lines)
//      k=* (obsolete)
//      a=* (zero or more media attribute lines)

/// One `a=` line: a property attribute (`a=rtcp-mux`, ``value`` is `nil`) or a value attribute
/// (`a=mid:0`, ``value`` is `"0"`). Unknown attributes are kept verbatim and in order.
public struct SDPAttribute: Hashable, Sendable, CustomStringConvertible {
    /// The attribute name, the text before the first `:`.
    public var name: String
    /// The text after the first `:`, or `nil` for a property attribute.
    public var value: String?

    /// Creates an attribute.
    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }

    /// The attribute as it appears after `a=`.
    public var description: String {
        guard let value else { return self.name }
        return "\(self.name):\(value)"
    }
}

/// The `o=` line: `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
/// (RFC 8866 §5.2).
public struct SDPOrigin: Hashable, Sendable {
    /// The user name, `-` when the host has no users.
    public var username: String
    /// A numeric session identifier, kept as text because some stacks exceed 64 bits.
    public var sessionID: String
    /// A numeric version, increased on each change of the description.
    public var sessionVersion: String
    /// `IN` for the Internet.
    public var networkType: String
    /// `IP4` or `IP6`.
    public var addressType: String
    /// The originating host's address (often a placeholder such as `127.0.0.1` or `0.0.0.0`).
    public var address: String

    /// Creates an origin line.
    public init(
        username: String = "-",
        sessionID: String,
        sessionVersion: String,
        networkType: String = "IN",
        addressType: String = "IP4",
        address: String = "127.0.0.1"
    ) {
        self.username = username
        self.sessionID = sessionID
        self.sessionVersion = sessionVersion
        self.networkType = networkType
        self.addressType = addressType
        self.address = address
    }
}

/// The `c=` line: `c=<nettype> <addrtype> <connection-address>` (RFC 8866 §5.7).
public struct SDPConnection: Hashable, Sendable {
    /// `IN` for the Internet.
    public var networkType: String
    /// `IP4` or `IP6`.
    public var addressType: String
    /// The address, possibly with `/ttl` or `/count` suffixes, kept as text.
    public var address: String

    /// Creates a connection line; the default is the JSEP placeholder `IN IP4 0.0.0.0`.
    public init(networkType: String = "IN", addressType: String = "IP4", address: String = "0.0.0.0") {
        self.networkType = networkType
        self.addressType = addressType
        self.address = address
    }
}

/// The `b=` line: `b=<bwtype>:<bandwidth>` (RFC 8866 §5.8), e.g. `b=AS:2500` or `b=TIAS:2500000`.
public struct SDPBandwidth: Hashable, Sendable {
    /// `AS`, `CT`, `TIAS` or an extension type.
    public var type: String
    /// The value, in kbit/s for `AS` and `CT`, bit/s for `TIAS`.
    public var value: UInt64

    /// Creates a bandwidth line.
    public init(type: String, value: UInt64) {
        self.type = type
        self.value = value
    }
}

/// A time description: `t=<start-time> <stop-time>` and its `r=` repeat lines (RFC 8866 §5.9–5.10).
public struct SDPTiming: Hashable, Sendable {
    /// NTP start time, 0 for an unbounded session.
    public var start: UInt64
    /// NTP stop time, 0 for an unbounded session.
    public var stop: UInt64
    /// The `r=` lines that follow, verbatim.
    public var repeats: [String]

    /// Creates a time description; the default `t=0 0` is what WebRTC uses.
    public init(start: UInt64 = 0, stop: UInt64 = 0, repeats: [String] = []) {
        self.start = start
        self.stop = stop
        self.repeats = repeats
    }
}

/// The media type of an `m=` line.
public struct SDPMediaKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The token as written on the `m=` line.
    public var rawValue: String
    /// Wraps a media token.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// `audio`.
    public static let audio = SDPMediaKind(rawValue: "audio")
    /// `video`.
    public static let video = SDPMediaKind(rawValue: "video")
    /// `application` (data channels).
    public static let application = SDPMediaKind(rawValue: "application")

    public var description: String { self.rawValue }
}

/// One media description: the `m=` line and the lines up to the next `m=` (RFC 8866 §5.14).
///
/// ```
/// m=<media> <port>[/<number of ports>] <proto> <fmt> ...
/// ```
public struct SDPMediaDescription: Hashable, Sendable {
    /// `audio`, `video`, `application`, …
    public var kind: SDPMediaKind
    /// The transport port; 0 marks a rejected (or bundle-only) section.
    public var port: UInt16
    /// The optional `/<number of ports>` suffix.
    public var portCount: UInt16?
    /// The transport protocol, e.g. `UDP/TLS/RTP/SAVPF` or `UDP/DTLS/SCTP`.
    public var proto: String
    /// The media formats: RTP payload types as text, or e.g. `webrtc-datachannel`.
    public var formats: [String]
    /// The `i=` media title.
    public var information: String?
    /// The `c=` lines.
    public var connections: [SDPConnection]
    /// The `b=` lines.
    public var bandwidths: [SDPBandwidth]
    /// The obsolete `k=` line, verbatim.
    public var encryptionKey: String?
    /// The `a=` lines in order.
    public var attributes: [SDPAttribute]

    /// Creates a media description.
    public init(
        kind: SDPMediaKind,
        port: UInt16,
        portCount: UInt16? = nil,
        proto: String,
        formats: [String],
        information: String? = nil,
        connections: [SDPConnection] = [],
        bandwidths: [SDPBandwidth] = [],
        encryptionKey: String? = nil,
        attributes: [SDPAttribute] = []
    ) {
        self.kind = kind
        self.port = port
        self.portCount = portCount
        self.proto = proto
        self.formats = formats
        self.information = information
        self.connections = connections
        self.bandwidths = bandwidths
        self.encryptionKey = encryptionKey
        self.attributes = attributes
    }
}

/// A parsed session description (RFC 8866): an offer or an answer.
///
/// Parse with ``init(parsing:limits:)``; serialize with ``serialize(into:)`` or ``text``.
/// `SessionDescription(parsing: x.text) == x` holds for every description this module parses or builds.
public struct SessionDescription: Hashable, Sendable {
    /// The `v=` protocol version, always 0.
    public var version: Int
    /// The `o=` line.
    public var origin: SDPOrigin
    /// The `s=` session name (`-` in WebRTC).
    public var sessionName: String
    /// The `i=` session information.
    public var information: String?
    /// The `u=` URI.
    public var uri: String?
    /// The `e=` lines.
    public var emails: [String]
    /// The `p=` lines.
    public var phones: [String]
    /// The session-level `c=` line.
    public var connection: SDPConnection?
    /// The session-level `b=` lines.
    public var bandwidths: [SDPBandwidth]
    /// The time descriptions (at least one in a full description).
    public var timings: [SDPTiming]
    /// The `z=` line, verbatim.
    public var timeZones: String?
    /// The obsolete `k=` line, verbatim.
    public var encryptionKey: String?
    /// The session-level `a=` lines in order.
    public var attributes: [SDPAttribute]
    /// The media descriptions in order.
    public var media: [SDPMediaDescription]

    /// Creates a description with WebRTC's usual defaults (`s=-`, `t=0 0`).
    public init(
        origin: SDPOrigin,
        sessionName: String = "-",
        connection: SDPConnection? = nil,
        bandwidths: [SDPBandwidth] = [],
        timings: [SDPTiming] = [SDPTiming()],
        attributes: [SDPAttribute] = [],
        media: [SDPMediaDescription] = []
    ) {
        self.version = 0
        self.origin = origin
        self.sessionName = sessionName
        self.information = nil
        self.uri = nil
        self.emails = []
        self.phones = []
        self.connection = connection
        self.bandwidths = bandwidths
        self.timings = timings
        self.timeZones = nil
        self.encryptionKey = nil
        self.attributes = attributes
        self.media = media
    }
}

// MARK: - Serializer

extension SessionDescription {
    /// Appends the description to `output` as SDP text: CRLF line endings, RFC 8866 line order.
    public func serialize(into output: inout String) {
        output += "v=\(self.version)\r\n"
        let o = self.origin
        output +=
            "o=\(o.username) \(o.sessionID) \(o.sessionVersion) \(o.networkType) \(o.addressType) \(o.address)\r\n"
        output += "s=\(self.sessionName)\r\n"
        if let information { output += "i=\(information)\r\n" }
        if let uri { output += "u=\(uri)\r\n" }
        for email in self.emails { output += "e=\(email)\r\n" }
        for phone in self.phones { output += "p=\(phone)\r\n" }
        if let connection { connection.serialize(into: &output) }
        for bandwidth in self.bandwidths { bandwidth.serialize(into: &output) }
        for timing in self.timings {
            output += "t=\(timing.start) \(timing.stop)\r\n"
            for line in timing.repeats { output += "r=\(line)\r\n" }
        }
        if let timeZones { output += "z=\(timeZones)\r\n" }
        if let encryptionKey { output += "k=\(encryptionKey)\r\n" }
        for attribute in self.attributes { output += "a=\(attribute)\r\n" }
        for media in self.media { media.serialize(into: &output) }
    }

    /// The description as SDP text with CRLF line endings.
    public var text: String {
        var output = ""
        output.reserveCapacity(2048)
        self.serialize(into: &output)
        return output
    }
}

extension SDPMediaDescription {
    /// Appends this media section (from its `m=` line on) to `output`.
    public func serialize(into output: inout String) {
        output += "m=\(self.kind.rawValue) \(self.port)"
        if let portCount { output += "/\(portCount)" }
        output += " \(self.proto)"
        for format in self.formats { output += " \(format)" }
        output += "\r\n"
        if let information { output += "i=\(information)\r\n" }
        for connection in self.connections { connection.serialize(into: &output) }
        for bandwidth in self.bandwidths { bandwidth.serialize(into: &output) }
        if let encryptionKey { output += "k=\(encryptionKey)\r\n" }
        for attribute in self.attributes { output += "a=\(attribute)\r\n" }
    }
}

extension SDPConnection {
    fileprivate func serialize(into output: inout String) {
        output += "c=\(self.networkType) \(self.addressType) \(self.address)\r\n"
    }
}

extension SDPBandwidth {
    fileprivate func serialize(into output: inout String) {
        output += "b=\(self.type):\(self.value)\r\n"
    }
}
