// Answer generation for an ICE-lite, DTLS-passive, BUNDLE, rtcp-mux SFU endpoint.
//
// Offer/answer rules: RFC 3264 §6 (same m-lines, same order, port 0 to reject, reuse the offer's payload
// types), JSEP RFC 8829 §5.3, BUNDLE RFC 9143 §7.3, ICE-lite RFC 8839 §5.3 (session level only),
// DTLS role RFC 8842 §5 (answer `passive`), rtcp-mux RFC 5761 / RFC 8858 §4.3 (answer `a=rtcp-mux`, never
// `a=rtcp-mux-only`), header extensions RFC 8285 §7 (keep the offer's IDs), simulcast RFC 8853 §5.3,
// WHIP RFC 9725 (the node receives: `recvonly`), WHEP draft (the node sends: `sendonly`).

/// Which way media flows for this endpoint.
public enum SDPMediaRole: Hashable, Sendable {
    /// WHIP: the client publishes and the node receives; sections are answered `recvonly`.
    case receive
    /// WHEP: the node sends and the client plays; sections are answered `sendonly`.
    case send
}

/// A codec the endpoint can forward, matched against an offer's `a=rtpmap` lines.
public struct SDPCodecSpec: Hashable, Sendable, CustomStringConvertible {
    /// The media kind the codec belongs to.
    public var kind: SDPMediaKind
    /// The encoding name, compared case-insensitively.
    public var encoding: String
    /// The clock rate in Hz.
    public var clockRate: UInt32
    /// The channel count, for audio.
    public var channels: UInt8?

    /// Creates a codec spec.
    public init(kind: SDPMediaKind, encoding: String, clockRate: UInt32, channels: UInt8? = nil) {
        self.kind = kind
        self.encoding = encoding
        self.clockRate = clockRate
        self.channels = channels
    }

    /// Opus, `opus/48000/2` (RFC 7587 §7: always written with 2 channels).
    public static let opus = SDPCodecSpec(kind: .audio, encoding: "opus", clockRate: 48000, channels: 2)
    /// VP8, `VP8/90000` (RFC 7741 §6.1).
    public static let vp8 = SDPCodecSpec(kind: .video, encoding: "VP8", clockRate: 90000)

    func matches(_ map: SDPRTPMap) -> Bool {
        map.encoding.lowercased() == self.encoding.lowercased() && map.clockRate == self.clockRate
            && (map.channels ?? 1) == (self.channels ?? 1)
    }

    public var description: String {
        guard let channels else { return "\(self.encoding)/\(self.clockRate)" }
        return "\(self.encoding)/\(self.clockRate)/\(channels)"
    }
}

/// Header extension URIs the answer builder knows.
public enum SDPHeaderExtensionURI {
    /// RFC 9143 §15.2.
    public static let mid = "urn:ietf:params:rtp-hdrext:sdes:mid"
    /// RFC 8852 §4.
    public static let rid = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
    /// RFC 8852 §4.
    public static let repairedRID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
    /// abs-send-time (webrtc.org).
    public static let absSendTime = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    /// draft-holmer-rmcat-transport-wide-cc-extensions-01.
    public static let transportCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    /// RFC 6464.
    public static let audioLevel = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    /// abs-capture-time (webrtc.org).
    public static let absCaptureTime = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"

    /// Everything the node handles, in the order above.
    public static let supported: [String] = [
        mid, rid, repairedRID, absSendTime, transportCC, audioLevel, absCaptureTime,
    ]
}

/// What the node sends in one WHEP section: its track id and SSRCs.
public struct SDPLocalSender: Hashable, Sendable {
    /// The msid track id (the same stream id is used for every section, see ``SDPLocalParameters/streamID``).
    public var trackID: String
    /// The media SSRC.
    public var ssrc: UInt32
    /// The RTX SSRC, announced with `a=ssrc-group:FID` when RTX is negotiated.
    public var rtxSSRC: UInt32?
    /// The repair SSRC, announced with `a=ssrc-group:FEC-FR` when ``SDPLocalParameters/videoFECEncoding``
    /// is negotiated.
    public var fecSSRC: UInt32?

    /// Creates a sender description.
    public init(trackID: String, ssrc: UInt32, rtxSSRC: UInt32? = nil, fecSSRC: UInt32? = nil) {
        self.trackID = trackID
        self.ssrc = ssrc
        self.rtxSSRC = rtxSSRC
        self.fecSSRC = fecSSRC
    }
}

/// The node's side of the negotiation.
public struct SDPLocalParameters: Sendable {
    /// ICE username fragment, 4–256 ice-chars (RFC 8839 §5.4).
    public var iceUfrag: String
    /// ICE password, 22–256 ice-chars (RFC 8839 §5.4).
    public var icePwd: String
    /// The DTLS certificate fingerprint (exactly one is written per section).
    public var fingerprint: SDPFingerprint
    /// The node's candidates, written in every accepted section before `a=end-of-candidates`.
    public var candidates: [SDPCandidate]
    /// WHIP (``SDPMediaRole/receive``) or WHEP (``SDPMediaRole/send``).
    public var role: SDPMediaRole
    /// Primary codecs, in no particular order (the offer's order decides).
    public var codecs: [SDPCodecSpec]
    /// Whether to accept RTX (RFC 4588) for video codecs.
    public var videoRTX: Bool
    /// Whether to accept RED (RFC 2198) for audio when offered.
    public var audioRED: Bool
    /// Whether to accept video FEC: Braid's sliding-window code (``videoFECEncoding``) from a receiver or a
    /// publisher that offers it, else FlexFEC (``flexFECEncoding``) toward a receiver.
    public var videoFEC: Bool
    /// Supported `a=rtcp-fb` values (`type[ parameter]`).
    public var feedback: [String]
    /// Supported header extension URIs.
    public var headerExtensions: [String]
    /// The `o=` session id: a decimal number.
    public var sessionID: String
    /// The `o=` session version: a decimal number.
    public var sessionVersion: String
    /// The msid stream id shared by every sending section, so the player syncs audio and video.
    public var streamID: String
    /// The RTCP CNAME written on `a=ssrc` lines.
    public var cname: String
    /// Per offered mid: what the node sends in that section (WHEP). A sending section without an entry
    /// still gets `a=msid` (track id `<kind>-<mid>`) but no `a=ssrc` lines.
    public var senders: [String: SDPLocalSender]
    /// The `m=` port of accepted sections; 9 (discard) as JSEP does, the candidates carry the real one.
    public var port: UInt16

    /// Creates local parameters with the node's defaults (Opus and VP8, RTX, RED, the usual feedback and
    /// header extensions).
    public init(
        iceUfrag: String,
        icePwd: String,
        fingerprint: SDPFingerprint,
        candidates: [SDPCandidate],
        role: SDPMediaRole,
        codecs: [SDPCodecSpec] = [.opus, .vp8],
        videoRTX: Bool = true,
        audioRED: Bool = true,
        videoFEC: Bool = true,
        feedback: [String] = ["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"],
        headerExtensions: [String] = SDPHeaderExtensionURI.supported,
        sessionID: String = "1",
        sessionVersion: String = "1",
        streamID: String = "braid",
        cname: String = "braid",
        senders: [String: SDPLocalSender] = [:],
        port: UInt16 = 9
    ) {
        self.iceUfrag = iceUfrag
        self.icePwd = icePwd
        self.fingerprint = fingerprint
        self.candidates = candidates
        self.role = role
        self.codecs = codecs
        self.videoRTX = videoRTX
        self.audioRED = audioRED
        self.videoFEC = videoFEC
        self.feedback = feedback
        self.headerExtensions = headerExtensions
        self.sessionID = sessionID
        self.sessionVersion = sessionVersion
        self.streamID = streamID
        self.cname = cname
        self.senders = senders
        self.port = port
    }
}

extension SDPLocalParameters {
    /// The encoding name of the repair stream on hops Braid controls at both ends (BraidClient ↔ node):
    /// sliding-window FEC over GF(2⁸) (BraidRTPStreams' `FECRepairHeader` describes the payload). Not a
    /// registered name, hence the `x-`; browsers never offer it.
    public static let videoFECEncoding = "x-braid-fec"
    /// FlexFEC as browsers decode it (draft-ietf-payload-flexible-fec-scheme-03; Chromium offers it in
    /// every video section it receives with). Answered only where ``videoFECEncoding`` is not offered.
    public static let flexFECEncoding = "flexfec-03"
    /// ULPFEC (RFC 5109) inside video RED (RFC 2198), which every browser offers: answered, with the
    /// offer's video `red`, only where neither ``videoFECEncoding`` nor ``flexFECEncoding`` is offered.
    /// Its repairs travel on the media SSRC, so no FEC-FR group is announced.
    public static let ulpfecEncoding = "ulpfec"
}

/// The codec chosen for a section.
public struct SDPNegotiatedCodec: Hashable, Sendable {
    /// The offer's payload type for it.
    public var payloadType: UInt8
    /// The encoding name as the offer wrote it.
    public var encoding: String
    /// The RTP clock rate.
    public var clockRate: UInt32
    /// The channel count, for audio.
    public var channels: UInt8?
    /// The format parameters written in the answer.
    public var parameters: [SDPParameter]
    /// The RTCP feedback negotiated for this payload type.
    public var feedback: [SDPRTCPFeedback]
}

/// The remote side's transport parameters, taken from the BUNDLE-tagged section (or session level).
public struct SDPRemoteTransport: Hashable, Sendable {
    /// The client's ICE ufrag.
    public var iceUfrag: String
    /// The client's ICE password.
    public var icePwd: String
    /// The client's `a=ice-options` tokens.
    public var iceOptions: [String]
    /// The client's certificate fingerprint (the sha-256 one when several are offered).
    public var fingerprint: SDPFingerprint
    /// The client's `a=setup` (`actpass` or `active`; the node is always passive).
    public var setup: SDPSetupRole
    /// Candidates present in the offer (often none: trickled later by PATCH).
    public var candidates: [SDPCandidate]
    /// Whether the offer already said `a=end-of-candidates`.
    public var endOfCandidates: Bool
}

/// What was negotiated for one m-section, so the node can configure streams without reparsing.
public struct SDPNegotiatedSection: Hashable, Sendable {
    /// The section's index in the offer and answer.
    public var index: Int
    /// The offer's `a=mid`.
    public var mid: String?
    /// audio, video, application, …
    public var kind: SDPMediaKind
    /// Whether the section was accepted (port ≠ 0 in the answer).
    public var accepted: Bool
    /// Why the section was rejected, when it was.
    public var rejectionReason: String?
    /// The direction the offer asked for (`sendrecv` when absent).
    public var offeredDirection: SDPDirection
    /// The answer's direction, from the node's point of view.
    public var direction: SDPDirection
    /// The chosen primary codec.
    public var codec: SDPNegotiatedCodec?
    /// The RTX payload type paired with ``codec`` (`apt=`), if negotiated.
    public var rtxPayloadType: UInt8?
    /// The RED payload type wrapping ``codec``, if negotiated.
    public var redPayloadType: UInt8?
    /// The repair (FEC) payload type protecting ``codec``, if negotiated.
    public var fecPayloadType: UInt8?
    /// Its encoding name, lowercased (``SDPLocalParameters/videoFECEncoding``,
    /// ``SDPLocalParameters/flexFECEncoding`` or ``SDPLocalParameters/ulpfecEncoding``, the last with video
    /// ``redPayloadType``).
    public var fecEncoding: String?
    /// The negotiated header extensions with the offer's IDs.
    public var extensions: [SDPExtMap]
    /// Simulcast layers the client sends, in `a=simulcast` order (empty without simulcast).
    public var rids: [SDPRID]
    /// Paused flags and grouping of the negotiated simulcast streams, as answered (`recv` side).
    public var simulcast: SDPSimulcast?
    /// The offer's `a=ssrc` lines.
    public var remoteSSRCs: [SDPSSRCAttribute]
    /// The offer's `a=ssrc-group` lines (FID pairs media and RTX SSRCs; SIM lists layers).
    public var remoteSSRCGroups: [SDPSSRCGroup]
    /// The offer's `a=msid`.
    public var remoteMsid: SDPMsid?
    /// Whether reduced-size RTCP (RFC 5506) was negotiated.
    public var reducedSizeRTCP: Bool
    /// What the node sends in this section (WHEP).
    public var localSender: SDPLocalSender?

    /// The negotiated ID of the header extension `uri`, if any.
    public func extensionID(for uri: String) -> UInt16? {
        self.extensions.first { $0.uri == uri }?.id
    }
}

/// An answer and what it negotiated.
public struct SDPAnswer: Hashable, Sendable {
    /// The answer as a model.
    public var session: SessionDescription
    /// Per offered m-section, in order.
    public var sections: [SDPNegotiatedSection]
    /// The mids in the answer's `a=group:BUNDLE`, in offer order.
    public var bundleMids: [String]
    /// The client's ICE and DTLS parameters.
    public var remote: SDPRemoteTransport

    /// The answer as SDP text with CRLF line endings.
    public var text: String { self.session.text }
}

/// Builds answers for an ICE-lite, DTLS-passive, BUNDLE, rtcp-mux SFU endpoint.
///
/// ```swift
/// let builder = try SDPAnswerBuilder(local: parameters)
/// let answer = try builder.answer(to: SessionDescription(parsing: offerText))
/// respond(201, body: answer.text)
/// ```
public struct SDPAnswerBuilder: Sendable {
    /// The node's parameters.
    public let local: SDPLocalParameters

    /// Checks the local parameters once.
    /// - Throws: ``SDPError/Code/badLocalParameters`` for ICE credentials outside RFC 8839 §5.4, an empty
    ///   fingerprint or no codecs.
    public init(local: SDPLocalParameters) throws(SDPError) {
        guard (4...256).contains(local.iceUfrag.utf8.count), local.iceUfrag.utf8.allSatisfy(Self.isICEChar) else {
            throw SDPError(.badLocalParameters, "ice-ufrag must be 4-256 ice-chars (RFC 8839 §5.4)")
        }
        guard (22...256).contains(local.icePwd.utf8.count), local.icePwd.utf8.allSatisfy(Self.isICEChar) else {
            throw SDPError(.badLocalParameters, "ice-pwd must be 22-256 ice-chars (RFC 8839 §5.4)")
        }
        guard !local.fingerprint.bytes.isEmpty, !local.fingerprint.algorithm.isEmpty else {
            throw SDPError(.badLocalParameters, "fingerprint is empty")
        }
        guard !local.codecs.isEmpty else { throw SDPError(.badLocalParameters, "no codecs configured") }
        guard local.sessionID.utf8.allSatisfy({ (0x30...0x39).contains($0) }), !local.sessionID.isEmpty,
            local.sessionVersion.utf8.allSatisfy({ (0x30...0x39).contains($0) }), !local.sessionVersion.isEmpty
        else {
            throw SDPError(.badLocalParameters, "session id and version must be decimal numbers")
        }
        self.local = local
    }

    /// RFC 8839 §5.4: `ice-char = ALPHA / DIGIT / "+" / "/"`.
    static func isICEChar(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
            true
        default: false
        }
    }

    /// Answers `offer`.
    ///
    /// Sections that cannot be accepted (data channels, no common codec, no `a=rtcp-mux`, outside the
    /// BUNDLE group, …) are answered with port 0 and their mid kept; ``SDPNegotiatedSection/rejectionReason``
    /// says why.
    /// - Throws: ``SDPError/Code/noCommonCodec`` when no section has a supported codec (the message names
    ///   what was offered and what is supported), ``SDPError/Code/unsupportedOffer`` when nothing else can be
    ///   accepted or the transport parameters are missing or unusable, ``SDPError/Code/conflictingOffer``
    ///   when the offer binds one extension ID or payload type to two things in the BUNDLE group.
    public func answer(to offer: SessionDescription) throws(SDPError) -> SDPAnswer {
        let bundleGroup = offer.bundleMids
        var plans: [SectionPlan] = []
        var acceptedMids = Set<String>()
        for (index, media) in offer.media.enumerated() {
            var plan = self.plan(media, index: index, bundleGroup: bundleGroup)
            if plan.section.accepted, bundleGroup == nil, !acceptedMids.isEmpty {
                // Without BUNDLE every section would need its own transport; the node offers one.
                plan.reject("the offer has no BUNDLE group; only one section can share the transport")
            }
            if plan.section.accepted, let mid = plan.section.mid, !acceptedMids.insert(mid).inserted {
                // RFC 5888 §4: a mid identifies one m-section of the session.
                plan.reject("mid \(mid) is used by an earlier section")
            }
            plans.append(plan)
        }
        guard let first = plans.first(where: { $0.section.accepted }) else {
            throw self.nothingAccepted(offer: offer, plans: plans)
        }
        try Self.checkBundleConsistency(offer: offer, plans: plans)
        let remote = try Self.remoteTransport(offer: offer, media: offer.media[first.section.index])

        var description = SessionDescription(
            origin: SDPOrigin(sessionID: self.local.sessionID, sessionVersion: self.local.sessionVersion)
        )
        description.attributes.append(SDPAttribute("ice-lite"))
        let bundleMids = plans.compactMap { $0.section.accepted ? $0.section.mid : nil }
        if bundleGroup != nil {
            description.attributes.append(
                SDPAttribute("group", SDPGroup(semantics: "BUNDLE", mids: bundleMids).attributeValue)
            )
        }
        if offer.extmapAllowMixed || offer.media.contains(where: \.extmapAllowMixed) {
            description.attributes.append(SDPAttribute("extmap-allow-mixed"))
        }
        for plan in plans {
            description.media.append(self.render(plan, offered: offer.media[plan.section.index]))
        }
        return SDPAnswer(
            session: description,
            sections: plans.map(\.section),
            bundleMids: bundleGroup == nil ? [] : bundleMids,
            remote: remote
        )
    }

    // MARK: Planning

    struct SectionPlan {
        var section: SDPNegotiatedSection
        /// Payload types in the answer's `m=` line, in offer order.
        var payloadTypes: [UInt8] = []
        var rtpMaps: [SDPRTPMap] = []
        var formatParameters: [SDPFormatParameters] = []
        var noCommonCodec = false

        mutating func reject(_ reason: String) {
            self.section.accepted = false
            self.section.rejectionReason = reason
            self.section.direction = .inactive
            self.section.codec = nil
            self.section.rtxPayloadType = nil
            self.section.redPayloadType = nil
            self.section.fecPayloadType = nil
            self.section.fecEncoding = nil
            self.section.extensions = []
            self.section.rids = []
            self.section.simulcast = nil
            self.section.localSender = nil
        }
    }

    private func plan(_ media: SDPMediaDescription, index: Int, bundleGroup: [String]?) -> SectionPlan {
        let offeredDirection = media.direction ?? .sendrecv
        var plan = SectionPlan(
            section: SDPNegotiatedSection(
                index: index,
                mid: media.mid,
                kind: media.kind,
                accepted: true,
                rejectionReason: nil,
                offeredDirection: offeredDirection,
                direction: .inactive,
                codec: nil,
                rtxPayloadType: nil,
                redPayloadType: nil,
                fecPayloadType: nil,
                fecEncoding: nil,
                extensions: [],
                rids: [],
                simulcast: nil,
                remoteSSRCs: media.ssrcAttributes,
                remoteSSRCGroups: media.ssrcGroups,
                remoteMsid: media.msids.first,
                reducedSizeRTCP: media.rtcpReducedSize,
                localSender: nil
            )
        )

        if media.isDataChannel {
            plan.reject("data channels are not supported")
            return plan
        }
        guard media.kind == .audio || media.kind == .video else {
            plan.reject("media kind \(media.kind) is not supported")
            return plan
        }
        if media.port == 0 && !media.bundleOnly {
            plan.reject("rejected in the offer (port 0)")
            return plan
        }
        let proto = media.proto.uppercased()
        guard proto.hasSuffix("RTP/SAVPF") || proto.hasSuffix("RTP/SAVP") else {
            plan.reject("transport \(media.proto) is not DTLS-SRTP")
            return plan
        }
        guard let mid = media.mid else {
            plan.reject("no a=mid")
            return plan
        }
        if let bundleGroup, !bundleGroup.contains(mid) {
            plan.reject("mid \(mid) is not in the BUNDLE group")
            return plan
        }
        guard media.rtcpMux else {
            plan.reject("no a=rtcp-mux (RFC 9143 needs it with BUNDLE)")
            return plan
        }

        // Codec: the first offered payload type that maps to a supported codec (the offer's preference).
        let table = PayloadTable(media)
        let offeredPTs = table.payloadTypes
        let specs = self.local.codecs.filter { $0.kind == media.kind }
        var chosen: SDPRTPMap?
        for pt in offeredPTs {
            if let map = table.maps[pt], specs.contains(where: { $0.matches(map) }) {
                chosen = map
                break
            }
        }
        guard let chosen else {
            plan.noCommonCodec = true
            let offered = Self.primaryCodecNames(media).joined(separator: ", ")
            plan.reject("no common codec: offered \(offered.isEmpty ? "none" : offered)")
            return plan
        }

        var rtx: SDPRTPMap?
        var red: SDPRTPMap?
        var fec: SDPRTPMap?
        var flexFEC: SDPRTPMap?
        var videoRED: SDPRTPMap?
        var ulpfec: SDPRTPMap?
        // Braid's code both ways (BraidClient receivers, and BraidClient publishers protecting their uplink);
        // FlexFEC and ULPFEC only toward a receiver.
        let takesVideoFEC = media.kind == .video && self.local.videoFEC
        let sendsVideoFEC = takesVideoFEC && self.local.role == .send
        for pt in offeredPTs {
            guard let map = table.maps[pt] else { continue }
            let name = map.encoding.lowercased()
            let parameters = table.parameters[pt] ?? []
            if name == "rtx", rtx == nil, media.kind == .video, self.local.videoRTX, map.clockRate == chosen.clockRate,
                parameters.value(of: "apt") == String(chosen.payloadType)
            {
                rtx = map
            } else if name == "red", red == nil, media.kind == .audio, self.local.audioRED,
                map.clockRate == chosen.clockRate, Self.redWraps(chosen.payloadType, parameters)
            {
                red = map
            } else if name == SDPLocalParameters.videoFECEncoding, fec == nil, takesVideoFEC,
                map.clockRate == chosen.clockRate
            {
                fec = map
            } else if name == SDPLocalParameters.flexFECEncoding, flexFEC == nil, sendsVideoFEC,
                map.clockRate == chosen.clockRate
            {
                flexFEC = map
            } else if name == "red", videoRED == nil, media.kind == .video, sendsVideoFEC, map.clockRate == chosen.clockRate {
                videoRED = map
            } else if name == SDPLocalParameters.ulpfecEncoding, ulpfec == nil, sendsVideoFEC,
                map.clockRate == chosen.clockRate
            {
                ulpfec = map
            }
        }
        // Braid's own code where the receiver decodes it, else FlexFEC, else ULPFEC inside RED.
        if fec == nil { fec = flexFEC }
        if fec == nil, let videoRED, let ulpfec {
            fec = ulpfec
            red = videoRED
        }

        // Header extensions: the offer's IDs, only URIs we handle (RFC 8285 §7).
        let extensions = media.extMaps.filter { self.local.headerExtensions.contains($0.uri) }.map { offered in
            SDPExtMap(id: offered.id, direction: offered.direction?.reversed, uri: offered.uri)
        }
        let hasTransportCC = extensions.contains { $0.uri == SDPHeaderExtensionURI.transportCC }

        // Feedback for the primary codec only; `*` lines apply to it too.
        var feedback: [SDPRTCPFeedback] = []
        for line in media.rtcpFeedback where line.payloadType == nil || line.payloadType == chosen.payloadType {
            let name = line.feedbackName
            guard self.local.feedback.contains(name) else { continue }
            if line.type == "transport-cc" && !hasTransportCC { continue }
            let item = SDPRTCPFeedback(payloadType: chosen.payloadType, type: line.type, parameter: line.parameter)
            if !feedback.contains(item) { feedback.append(item) }
        }

        let codecParameters = Self.answerParameters(for: chosen, offered: table.parameters[chosen.payloadType] ?? [])
        plan.section.codec = SDPNegotiatedCodec(
            payloadType: chosen.payloadType,
            encoding: chosen.encoding,
            clockRate: chosen.clockRate,
            channels: chosen.channels,
            parameters: codecParameters,
            feedback: feedback
        )
        plan.section.rtxPayloadType = rtx?.payloadType
        plan.section.redPayloadType = red?.payloadType
        plan.section.fecPayloadType = fec?.payloadType
        plan.section.fecEncoding = fec?.encoding.lowercased()
        plan.section.extensions = extensions

        let used = Set([chosen.payloadType] + [rtx?.payloadType, red?.payloadType, fec?.payloadType].compactMap { $0 })
        plan.payloadTypes = offeredPTs.filter { used.contains($0) }
        for pt in plan.payloadTypes {
            guard let map = table.maps[pt] else { continue }
            plan.rtpMaps.append(map)
            if pt == chosen.payloadType {
                if !codecParameters.isEmpty {
                    plan.formatParameters.append(SDPFormatParameters(payloadType: pt, parameters: codecParameters))
                }
            } else if pt == rtx?.payloadType {
                var parameters = [SDPParameter("apt", String(chosen.payloadType))]
                if let time = table.parameters[pt]?.value(of: "rtx-time") {
                    parameters.append(SDPParameter("rtx-time", time))
                }
                plan.formatParameters.append(SDPFormatParameters(payloadType: pt, parameters: parameters))
            } else if let parameters = table.parameters[pt], !parameters.isEmpty {
                // As offered; none offered (video red, ulpfec): no a=fmtp line at all.
                plan.formatParameters.append(SDPFormatParameters(payloadType: pt, parameters: parameters))
            }
        }

        // Direction (RFC 3264 §6.1): the node only receives (WHIP) or only sends (WHEP).
        switch self.local.role {
        case .receive: plan.section.direction = SDPDirection(sends: false, receives: offeredDirection.sends)
        case .send: plan.section.direction = SDPDirection(sends: offeredDirection.receives, receives: false)
        }

        // Simulcast (RFC 8853 §5.3.2): the client's send list becomes our recv list, same RIDs and order.
        // Without the RID header extension the layers cannot be told apart (and Chrome refuses the answer).
        let hasRID = extensions.contains { $0.uri == SDPHeaderExtensionURI.rid }
        if self.local.role == .receive, hasRID, let simulcast = media.simulcast, !simulcast.send.isEmpty {
            let offeredRIDs = media.rids.filter { $0.direction == .send }
            var streams: [[SDPSimulcast.Stream]] = []
            var rids: [SDPRID] = []
            for alternatives in simulcast.send {
                let known = alternatives.filter { stream in offeredRIDs.contains { $0.id == stream.rid } }
                guard !known.isEmpty else { continue }
                streams.append(known)
                for stream in known where !rids.contains(where: { $0.id == stream.rid }) {
                    if let rid = offeredRIDs.first(where: { $0.id == stream.rid }) { rids.append(rid) }
                }
            }
            if !streams.isEmpty {
                plan.section.rids = rids
                plan.section.simulcast = SDPSimulcast(recv: streams)
            }
        }

        if plan.section.direction.sends {
            plan.section.localSender = self.local.senders[mid]
        }
        return plan
    }

    /// A section's rtpmap and fmtp lines indexed by payload type, built once so that hostile offers (thousands
    /// of formats) cost linear time.
    private struct PayloadTable {
        /// The `m=` line's numeric formats, duplicates removed, in order.
        var payloadTypes: [UInt8] = []
        var maps: [UInt8: SDPRTPMap] = [:]
        var parameters: [UInt8: [SDPParameter]] = [:]

        init(_ media: SDPMediaDescription) {
            var seen = Set<UInt8>()
            for format in media.formats {
                if let pt = SDPNumber.parse(Substring(format), as: UInt8.self), seen.insert(pt).inserted {
                    self.payloadTypes.append(pt)
                }
            }
            for map in media.rtpMaps where self.maps[map.payloadType] == nil { self.maps[map.payloadType] = map }
            for fmtp in media.formatParameters where self.parameters[fmtp.payloadType] == nil {
                self.parameters[fmtp.payloadType] = fmtp.parameters
            }
        }
    }

    /// RED's fmtp lists the redundant encodings' payload types, e.g. `111/111` (RFC 2198 §5).
    private static func redWraps(_ payloadType: UInt8, _ parameters: [SDPParameter]) -> Bool {
        guard let first = parameters.first, first.value == nil else { return false }
        let parts = first.name.split(separator: "/")
        return !parts.isEmpty && parts.allSatisfy { $0 == Substring(String(payloadType)) }
    }

    /// Opus keeps the offer's FEC, ptime and stereo choices; other codecs keep their parameters as offered.
    private static func answerParameters(for codec: SDPRTPMap, offered: [SDPParameter]) -> [SDPParameter] {
        guard codec.encoding.lowercased() == "opus" else { return offered }
        let kept = ["minptime", "useinbandfec", "stereo", "sprop-stereo"]
        return offered.filter { kept.contains($0.name.lowercased()) }
    }

    private static let auxiliaryEncodings: Set<String> = [
        "rtx", "red", "ulpfec", "flexfec-03", "cn", "telephone-event",
    ]

    private static func primaryCodecNames(_ media: SDPMediaDescription) -> [String] {
        var names: [String] = []
        let table = PayloadTable(media)
        for pt in table.payloadTypes {
            guard let map = table.maps[pt], !auxiliaryEncodings.contains(map.encoding.lowercased()) else { continue }
            if !names.contains(map.codecName) { names.append(map.codecName) }
        }
        return names
    }

    private func nothingAccepted(offer: SessionDescription, plans: [SectionPlan]) -> SDPError {
        if plans.contains(where: \.noCommonCodec) {
            var offered: [String] = []
            for media in offer.media where media.kind == .audio || media.kind == .video {
                for name in Self.primaryCodecNames(media) where !offered.contains(name) { offered.append(name) }
            }
            let supported = self.local.codecs.map(\.description).joined(separator: ", ")
            return SDPError(
                .noCommonCodec,
                "no common codec: offered \(offered.isEmpty ? "none" : offered.joined(separator: ", ")); "
                    + "supported \(supported)"
            )
        }
        if plans.isEmpty { return SDPError(.unsupportedOffer, "the offer has no media sections") }
        let reasons = plans.map {
            "m-section \($0.section.index) (\($0.section.kind)): \($0.section.rejectionReason ?? "")"
        }
        return SDPError(.unsupportedOffer, "no acceptable media section: " + reasons.joined(separator: "; "))
    }

    /// RFC 8285 §6 / RFC 9143 §7.5: within a BUNDLE group an extension ID and a payload type each name one
    /// thing. The answer reuses the offer's numbers, so an inconsistent offer cannot be answered.
    private static func checkBundleConsistency(offer: SessionDescription, plans: [SectionPlan]) throws(SDPError) {
        var extensionURIs: [UInt16: String] = [:]
        var codecNames: [UInt8: String] = [:]
        for plan in plans where plan.section.accepted {
            let media = offer.media[plan.section.index]
            for ext in media.extMaps {
                if let known = extensionURIs[ext.id], known != ext.uri {
                    throw SDPError(.conflictingOffer, "extmap id \(ext.id) is bound to both \(known) and \(ext.uri)")
                }
                extensionURIs[ext.id] = ext.uri
            }
            for map in plan.rtpMaps {
                let name = map.codecName.lowercased()
                if let known = codecNames[map.payloadType], known != name {
                    throw SDPError(
                        .conflictingOffer,
                        "payload type \(map.payloadType) is bound to both \(known) and \(name)"
                    )
                }
                codecNames[map.payloadType] = name
            }
        }
    }

    private static func remoteTransport(
        offer: SessionDescription,
        media: SDPMediaDescription
    ) throws(SDPError) -> SDPRemoteTransport {
        guard let ufrag = media.iceUfrag ?? offer.iceUfrag, let pwd = media.icePwd ?? offer.icePwd else {
            throw SDPError(.unsupportedOffer, "the offer has no a=ice-ufrag/a=ice-pwd")
        }
        guard (4...256).contains(ufrag.utf8.count), (22...256).contains(pwd.utf8.count) else {
            throw SDPError(.unsupportedOffer, "the offer's ICE ufrag/pwd lengths break RFC 8839 §5.4")
        }
        let fingerprints = media.fingerprints.isEmpty ? offer.fingerprints : media.fingerprints
        guard let fingerprint = fingerprints.first(where: { $0.algorithm == "sha-256" }) ?? fingerprints.first else {
            throw SDPError(.unsupportedOffer, "the offer has no a=fingerprint")
        }
        // RFC 4145 §4: an absent a=setup means active.
        let setup = media.setup ?? offer.setup ?? .active
        guard setup == .actpass || setup == .active else {
            throw SDPError(.unsupportedOffer, "the offer has a=setup:\(setup.rawValue); the node is DTLS passive only")
        }
        return SDPRemoteTransport(
            iceUfrag: ufrag,
            icePwd: pwd,
            iceOptions: media.iceOptions.isEmpty ? offer.iceOptions : media.iceOptions,
            fingerprint: fingerprint,
            setup: setup,
            candidates: media.candidates,
            endOfCandidates: media.endOfCandidates || offer.endOfCandidates
        )
    }

    // MARK: Rendering

    private func render(_ plan: SectionPlan, offered: SDPMediaDescription) -> SDPMediaDescription {
        let section = plan.section
        guard section.accepted else {
            // RFC 3264 §6: a rejected stream keeps its m-line with port 0; JSEP keeps the mid.
            var rejected = SDPMediaDescription(
                kind: offered.kind,
                port: 0,
                proto: offered.proto,
                formats: offered.formats,
                connections: [SDPConnection()]
            )
            if let mid = section.mid { rejected.attributes.append(SDPAttribute("mid", mid)) }
            return rejected
        }
        var media = SDPMediaDescription(
            kind: offered.kind,
            port: self.local.port,
            proto: offered.proto,
            formats: plan.payloadTypes.map(String.init),
            connections: [SDPConnection()]
        )
        var a: [SDPAttribute] = []
        a.append(SDPAttribute("ice-ufrag", self.local.iceUfrag))
        a.append(SDPAttribute("ice-pwd", self.local.icePwd))
        a.append(SDPAttribute("fingerprint", self.local.fingerprint.attributeValue))
        a.append(SDPAttribute("setup", SDPSetupRole.passive.rawValue))
        if let mid = section.mid { a.append(SDPAttribute("mid", mid)) }
        for ext in section.extensions { a.append(SDPAttribute("extmap", ext.attributeValue)) }
        a.append(SDPAttribute(section.direction.rawValue))
        let sender = section.localSender
        if section.direction.sends {
            let trackID = sender?.trackID ?? "\(section.kind)-\(section.mid ?? String(section.index))"
            a.append(SDPAttribute("msid", SDPMsid(streamID: self.local.streamID, trackID: trackID).attributeValue))
        }
        a.append(SDPAttribute("rtcp-mux"))
        if section.reducedSizeRTCP { a.append(SDPAttribute("rtcp-rsize")) }
        for map in plan.rtpMaps {
            a.append(SDPAttribute("rtpmap", map.attributeValue))
            if map.payloadType == section.codec?.payloadType {
                for line in section.codec?.feedback ?? [] { a.append(SDPAttribute("rtcp-fb", line.attributeValue)) }
            }
            if let fmtp = plan.formatParameters.first(where: { $0.payloadType == map.payloadType }) {
                a.append(SDPAttribute("fmtp", fmtp.attributeValue))
            }
        }
        if let simulcast = section.simulcast {
            for rid in section.rids {
                a.append(SDPAttribute("rid", SDPRID(id: rid.id, direction: .recv).attributeValue))
            }
            a.append(SDPAttribute("simulcast", simulcast.attributeValue))
        }
        if let sender, section.direction.sends {
            if let rtxSSRC = sender.rtxSSRC, section.rtxPayloadType != nil {
                a.append(
                    SDPAttribute(
                        "ssrc-group",
                        SDPSSRCGroup(semantics: "FID", ssrcs: [sender.ssrc, rtxSSRC]).attributeValue
                    )
                )
                a.append(SDPAttribute("ssrc", "\(sender.ssrc) cname:\(self.local.cname)"))
                a.append(SDPAttribute("ssrc", "\(rtxSSRC) cname:\(self.local.cname)"))
            } else {
                a.append(SDPAttribute("ssrc", "\(sender.ssrc) cname:\(self.local.cname)"))
            }
            if let fecSSRC = sender.fecSSRC, section.fecPayloadType != nil,
                section.fecEncoding != SDPLocalParameters.ulpfecEncoding
            {
                a.append(
                    SDPAttribute(
                        "ssrc-group", SDPSSRCGroup(semantics: "FEC-FR", ssrcs: [sender.ssrc, fecSSRC]).attributeValue))
                a.append(SDPAttribute("ssrc", "\(fecSSRC) cname:\(self.local.cname)"))
            }
        }
        for candidate in self.local.candidates { a.append(SDPAttribute("candidate", candidate.attributeValue)) }
        a.append(SDPAttribute("end-of-candidates"))
        media.attributes = a
        return media
    }
}
