// Typed read access to the attributes of a session or media section.
//
// The parser already checked every known attribute against its grammar, so these accessors decode with
// `try?`: a value that fails here was put into the model by hand and is skipped rather than trapping.

/// A level of a description that holds `a=` lines: the session or one media section.
public protocol SDPAttributeHolder {
    /// The `a=` lines in order.
    var attributes: [SDPAttribute] { get set }
}

extension SessionDescription: SDPAttributeHolder {}
extension SDPMediaDescription: SDPAttributeHolder {}

extension SDPAttributeHolder {
    /// The value of the first attribute named `name`; `nil` if absent or a property attribute.
    public func value(of name: String) -> String? {
        self.attributes.first { $0.name == name }?.value
    }

    /// The values of every attribute named `name`, in order.
    public func values(of name: String) -> [String] {
        self.attributes.compactMap { $0.name == name ? $0.value : nil }
    }

    /// Whether an attribute named `name` is present (e.g. `rtcp-mux`).
    public func has(_ name: String) -> Bool {
        self.attributes.contains { $0.name == name }
    }

    /// `a=ice-ufrag`.
    public var iceUfrag: String? { self.value(of: "ice-ufrag") }
    /// `a=ice-pwd`.
    public var icePwd: String? { self.value(of: "ice-pwd") }
    /// `a=ice-options` tokens (`trickle`, `ice2`, `renomination`).
    public var iceOptions: [String] {
        self.values(of: "ice-options").flatMap { $0.split(separator: " ").map(String.init) }
    }
    /// `a=fingerprint` lines (more than one means several hash functions).
    public var fingerprints: [SDPFingerprint] {
        self.values(of: "fingerprint").compactMap { try? SDPFingerprint(parsing: Substring($0)) }
    }
    /// `a=setup`.
    public var setup: SDPSetupRole? { self.value(of: "setup").flatMap(SDPSetupRole.init(rawValue:)) }
    /// `a=extmap` lines.
    public var extMaps: [SDPExtMap] {
        self.values(of: "extmap").compactMap { try? SDPExtMap(parsing: Substring($0)) }
    }
    /// `a=extmap-allow-mixed` (RFC 8285 §6).
    public var extmapAllowMixed: Bool { self.has("extmap-allow-mixed") }
    /// `a=candidate` lines.
    public var candidates: [SDPCandidate] {
        self.values(of: "candidate").compactMap { try? SDPCandidate(parsing: Substring($0)) }
    }
    /// `a=end-of-candidates` (RFC 8840 §8.2).
    public var endOfCandidates: Bool { self.has("end-of-candidates") }
    /// The direction attribute, if any (`nil` means the default, `sendrecv`).
    public var direction: SDPDirection? {
        for attribute in self.attributes where attribute.value == nil {
            if let direction = SDPDirection(rawValue: attribute.name) { return direction }
        }
        return nil
    }
}

extension SessionDescription {
    /// `a=ice-lite` (RFC 8839 §5.3).
    public var iceLite: Bool { self.has("ice-lite") }
    /// `a=group` lines.
    public var groups: [SDPGroup] {
        self.values(of: "group").compactMap { try? SDPGroup(parsing: Substring($0)) }
    }
    /// The mids of the first `a=group:BUNDLE`, or `nil` if there is none.
    public var bundleMids: [String]? {
        self.groups.first { $0.semantics == "BUNDLE" }?.mids
    }
    /// The media section whose `a=mid` is `mid`.
    public func media(withMid mid: String) -> SDPMediaDescription? {
        self.media.first { $0.mid == mid }
    }
}

extension SDPMediaDescription {
    /// `a=mid` (RFC 5888 §4).
    public var mid: String? { self.value(of: "mid") }
    /// `a=msid` lines.
    public var msids: [SDPMsid] {
        self.values(of: "msid").compactMap { try? SDPMsid(parsing: Substring($0)) }
    }
    /// `a=rtcp-mux` (RFC 5761).
    public var rtcpMux: Bool { self.has("rtcp-mux") }
    /// `a=rtcp-mux-only` (RFC 8858).
    public var rtcpMuxOnly: Bool { self.has("rtcp-mux-only") }
    /// `a=rtcp-rsize` (RFC 5506).
    public var rtcpReducedSize: Bool { self.has("rtcp-rsize") }
    /// `a=bundle-only` (RFC 9143 §6).
    public var bundleOnly: Bool { self.has("bundle-only") }
    /// `a=rtpmap` lines.
    public var rtpMaps: [SDPRTPMap] {
        self.values(of: "rtpmap").compactMap { try? SDPRTPMap(parsing: Substring($0)) }
    }
    /// `a=fmtp` lines.
    public var formatParameters: [SDPFormatParameters] {
        self.values(of: "fmtp").compactMap { try? SDPFormatParameters(parsing: Substring($0)) }
    }
    /// `a=rtcp-fb` lines.
    public var rtcpFeedback: [SDPRTCPFeedback] {
        self.values(of: "rtcp-fb").compactMap { try? SDPRTCPFeedback(parsing: Substring($0)) }
    }
    /// `a=ssrc` lines.
    public var ssrcAttributes: [SDPSSRCAttribute] {
        self.values(of: "ssrc").compactMap { try? SDPSSRCAttribute(parsing: Substring($0)) }
    }
    /// `a=ssrc-group` lines.
    public var ssrcGroups: [SDPSSRCGroup] {
        self.values(of: "ssrc-group").compactMap { try? SDPSSRCGroup(parsing: Substring($0)) }
    }
    /// `a=rid` lines.
    public var rids: [SDPRID] {
        self.values(of: "rid").compactMap { try? SDPRID(parsing: Substring($0)) }
    }
    /// `a=simulcast`.
    public var simulcast: SDPSimulcast? {
        self.value(of: "simulcast").flatMap { try? SDPSimulcast(parsing: Substring($0)) }
    }
    /// `a=sctp-port` (RFC 8841 §5).
    public var sctpPort: UInt16? {
        self.value(of: "sctp-port").flatMap { SDPNumber.parse(Substring($0), as: UInt16.self) }
    }
    /// Whether this is a data channel section (SCTP proto, `a=sctp-port` or legacy `a=sctpmap`).
    public var isDataChannel: Bool {
        self.proto.uppercased().hasSuffix("SCTP") || self.has("sctp-port") || self.has("sctpmap")
    }
    /// The rtpmap for `payloadType`.
    public func rtpMap(for payloadType: UInt8) -> SDPRTPMap? {
        self.rtpMaps.first { $0.payloadType == payloadType }
    }
    /// The fmtp parameters for `payloadType` (empty if none).
    public func parameters(for payloadType: UInt8) -> [SDPParameter] {
        self.formatParameters.first { $0.payloadType == payloadType }?.parameters ?? []
    }
}
