import BraidICE
import BraidSDP
import BraidSecurity
import BraidWire

/// One m-section of an offer this client makes.
public struct OfferedTrack: Hashable, Sendable {
    /// Audio (Opus) or video (VP8 + RTX).
    public enum Kind: Hashable, Sendable {
        case audio
        case video
    }

    /// The kind of media.
    public var kind: Kind
    /// The media SSRC this side sends (publish only; nil for a receive-only section).
    public var ssrc: UInt32?
    /// The RTX SSRC this side sends (publish video only).
    public var rtxSSRC: UInt32?
    /// The FEC repair SSRC this side sends (publish video only, offered with loss protection).
    public var fecSSRC: UInt32?
    /// The track id in `a=msid`.
    public var trackID: String

    /// Creates a section description.
    public init(kind: Kind, ssrc: UInt32? = nil, rtxSSRC: UInt32? = nil, fecSSRC: UInt32? = nil, trackID: String) {
        self.fecSSRC = fecSSRC
        self.kind = kind
        self.ssrc = ssrc
        self.rtxSSRC = rtxSSRC
        self.trackID = trackID
    }
}

/// Builds the SDP offer of a WHIP publisher or WHEP subscriber
/// ([RFC 8829 §5.2](https://www.rfc-editor.org/rfc/rfc8829#section-5.2) shape, as Chrome writes it).
///
/// Every section carries the full transport (ICE credentials, `a=fingerprint` with `a=setup:actpass`,
/// `a=rtcp-mux`), so a peer that ignores BUNDLE still has what it needs; all sections share one BUNDLE
/// group ([RFC 9143](https://www.rfc-editor.org/rfc/rfc9143)). Codecs: Opus on PT 111
/// (`minptime=10;useinbandfec=1`, [RFC 7587 §7](https://www.rfc-editor.org/rfc/rfc7587#section-7)); VP8 on
/// PT 96 with RTX on 97 (`apt=96`, [RFC 4588 §8](https://www.rfc-editor.org/rfc/rfc4588#section-8)) and
/// `nack`, `nack pli`, `ccm fir`, `transport-cc` feedback. Header extensions, one ID each across the bundle
/// (RFC 8285 §5): see ``ExtensionID``.
public enum ClientOffer {
    /// The extension IDs this client offers. The answer may drop some; the IDs of those it keeps are
    /// read back from the answer, never assumed.
    public enum ExtensionID {
        public static let mid: UInt16 = 1
        public static let absSendTime: UInt16 = 2
        public static let transportWideCC: UInt16 = 3
        public static let audioLevel: UInt16 = 4
        public static let absCaptureTime: UInt16 = 5
    }

    /// Payload types offered.
    public enum PayloadType {
        public static let opus: UInt8 = 111
        public static let vp8: UInt8 = 96
        public static let rtx: UInt8 = 97
        /// RED (RFC 2198) around Opus, offered by receivers and publishers (Chrome's number).
        public static let red: UInt8 = 63
        /// Braid's sliding-window video FEC (`x-braid-fec`), offered by receivers and by publishers.
        public static let fec: UInt8 = 98
    }

    /// Builds an offer.
    ///
    /// - Parameters:
    ///   - tracks: one m-section each, in order; mids are `"0"`, `"1"`, ...
    ///   - direction: `.sendonly` for WHIP, `.recvonly` for WHEP.
    ///   - credentials: this side's ICE ufrag and password.
    ///   - fingerprint: this side's certificate fingerprint.
    ///   - candidates: this side's host candidates (a lite peer sends no checks, but the offer is complete).
    ///   - cname: the RTCP CNAME of this side's streams.
    ///   - streamID: the `a=msid` stream id shared by the tracks (one A/V sync group).
    ///   - sessionID: the `o=` session id.
    ///   - lossProtection: an audio section also offers RED (both ways: the node protects a receiver's
    ///     downlink, a publisher its uplink) and, receiving, generic NACK unless `audioNACK` is false; a
    ///     receive-only video section offers Braid's FEC, and a
    ///     send-only video section with a ``OfferedTrack/fecSSRC`` offers to protect its uplink with it.
    public static func make(
        tracks: [OfferedTrack],
        direction: SDPDirection,
        credentials: ICECredentials,
        fingerprint: DTLSFingerprint,
        candidates: [SDPCandidate] = [],
        cname: String,
        streamID: String,
        sessionID: UInt64,
        lossProtection: Bool = true,
        audioNACK: Bool = true
    ) -> SessionDescription {
        let mids = tracks.indices.map(String.init)
        var description = SessionDescription(
            origin: SDPOrigin(sessionID: String(sessionID), sessionVersion: "2"),
            attributes: [SDPAttribute("group", (["BUNDLE"] + mids).joined(separator: " "))]
        )
        let sdpFingerprint = SDPFingerprint(algorithm: fingerprint.algorithm.rawValue, bytes: fingerprint.bytes)
        for (index, track) in tracks.enumerated() {
            var attributes: [SDPAttribute] = [
                SDPAttribute("ice-ufrag", credentials.ufrag),
                SDPAttribute("ice-pwd", credentials.password),
                SDPAttribute("fingerprint", sdpFingerprint.attributeValue),
                SDPAttribute("setup", SDPSetupRole.actpass.rawValue),
                SDPAttribute("mid", mids[index]),
            ]
            for candidate in candidates { attributes.append(SDPAttribute("candidate", candidate.attributeValue)) }
            if !candidates.isEmpty { attributes.append(SDPAttribute("end-of-candidates")) }
            attributes.append(SDPAttribute("extmap", "\(ExtensionID.mid) \(RTPHeaderExtensionMap.midURI)"))
            attributes.append(
                SDPAttribute("extmap", "\(ExtensionID.absSendTime) \(RTPHeaderExtensionMap.absSendTimeURI)"))
            attributes.append(
                SDPAttribute(
                    "extmap", "\(ExtensionID.transportWideCC) \(RTPHeaderExtensionMap.transportSequenceNumberURI)"))
            if track.kind == .audio {
                attributes.append(
                    SDPAttribute("extmap", "\(ExtensionID.audioLevel) \(RTPHeaderExtensionMap.audioLevelURI)"))
            }
            attributes.append(
                SDPAttribute("extmap", "\(ExtensionID.absCaptureTime) \(RTPHeaderExtensionMap.absCaptureTimeURI)"))
            attributes.append(SDPAttribute(direction.rawValue))
            attributes.append(SDPAttribute("msid", "\(streamID) \(track.trackID)"))
            attributes.append(SDPAttribute("rtcp-mux"))
            var formats: [String]
            switch track.kind {
            case .audio:
                let pt = PayloadType.opus
                formats = [String(pt)]
                attributes.append(SDPAttribute("rtpmap", "\(pt) opus/48000/2"))
                attributes.append(SDPAttribute("rtcp-fb", "\(pt) transport-cc"))
                if lossProtection, audioNACK, direction == .recvonly {
                    // A receiver asks for a lost packet again while the answer can still make its playout
                    // point (SubscriberMedia.askForAudio); the node answers from its audio store.
                    attributes.append(SDPAttribute("rtcp-fb", "\(pt) nack"))
                }
                attributes.append(SDPAttribute("fmtp", "\(pt) minptime=10;useinbandfec=1"))
                if lossProtection {
                    // A receiver takes RED: the node sizes its redundancy from this link's loss. A publisher
                    // sends it: the node rebuilds lost uplink packets from the blocks (UplinkRED).
                    let red = PayloadType.red
                    formats.append(String(red))
                    attributes.append(SDPAttribute("rtpmap", "\(red) red/48000/2"))
                    attributes.append(SDPAttribute("fmtp", "\(red) \(pt)/\(pt)"))
                }
            case .video:
                let pt = PayloadType.vp8
                let rtx = PayloadType.rtx
                formats = [String(pt), String(rtx)]
                attributes.append(SDPAttribute("rtpmap", "\(pt) VP8/90000"))
                for feedback in ["transport-cc", "ccm fir", "nack", "nack pli"] {
                    attributes.append(SDPAttribute("rtcp-fb", "\(pt) \(feedback)"))
                }
                attributes.append(SDPAttribute("rtpmap", "\(rtx) rtx/90000"))
                attributes.append(SDPAttribute("fmtp", "\(rtx) apt=\(pt)"))
                if lossProtection, direction == .recvonly || track.fecSSRC != nil {
                    // A receiver takes the node's FEC repair stream, sized from this link's loss; a publisher
                    // sends one to the node, sized from the node's reports of its uplink's loss.
                    let fec = PayloadType.fec
                    formats.append(String(fec))
                    attributes.append(SDPAttribute("rtpmap", "\(fec) \(SDPLocalParameters.videoFECEncoding)/90000"))
                }
            }
            if let ssrc = track.ssrc {
                if let rtx = track.rtxSSRC { attributes.append(SDPAttribute("ssrc-group", "FID \(ssrc) \(rtx)")) }
                let repair = lossProtection ? track.fecSSRC : nil
                if let repair { attributes.append(SDPAttribute("ssrc-group", "FEC-FR \(ssrc) \(repair)")) }
                for source in [ssrc] + (track.rtxSSRC.map { [$0] } ?? []) + (repair.map { [$0] } ?? []) {
                    attributes.append(SDPAttribute("ssrc", "\(source) cname:\(cname)"))
                    attributes.append(SDPAttribute("ssrc", "\(source) msid:\(streamID) \(track.trackID)"))
                }
            }
            description.media.append(
                SDPMediaDescription(
                    kind: track.kind == .audio ? .audio : .video,
                    port: 9,
                    proto: "UDP/TLS/RTP/SAVPF",
                    formats: formats,
                    connections: [SDPConnection()],
                    attributes: attributes
                ))
        }
        return description
    }
}
