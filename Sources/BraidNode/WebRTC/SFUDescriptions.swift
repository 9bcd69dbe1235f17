import BraidSDP
import BraidSFU

// What the forwarding core needs to know about a peer, read from what its SDP negotiated. The SDP module
// knows nothing of rooms and the forwarding core nothing of SDP: this file is the only place they meet.

extension RTPExtensionIDs {
    /// The ids of the header extensions the core uses. Under BUNDLE one id means one URI across every
    /// section (RFC 9143 §7.2.1, RFC 8285 §5), so the first accepted section that negotiated a URI decides.
    init(negotiated sections: [SDPNegotiatedSection]) {
        func id(_ uri: String) -> UInt8? {
            for section in sections where section.accepted {
                if let id = section.extensionID(for: uri) { return UInt8(exactly: id) }
            }
            return nil
        }
        self.init(
            mid: id(SDPHeaderExtensionURI.mid),
            rid: id(SDPHeaderExtensionURI.rid),
            repairedRID: id(SDPHeaderExtensionURI.repairedRID),
            absSendTime: id(SDPHeaderExtensionURI.absSendTime),
            transportWideSequence: id(SDPHeaderExtensionURI.transportCC),
            audioLevel: id(SDPHeaderExtensionURI.audioLevel),
            absCaptureTime: id(SDPHeaderExtensionURI.absCaptureTime)
        )
    }
}

extension RTCPFeedbackSupport {
    /// The `a=rtcp-fb` values negotiated for the section's codec (RFC 4585 §4.2, RFC 5104 §7.1).
    init(_ feedback: [SDPRTCPFeedback]) {
        func has(_ type: String, _ parameter: String? = nil) -> Bool {
            feedback.contains { $0.type.lowercased() == type && $0.parameter?.lowercased() == parameter }
        }
        self.init(
            nack: has("nack"),
            pli: has("nack", "pli"),
            fir: has("ccm", "fir"),
            transportCC: has("transport-cc"),
            remb: has("goog-remb")
        )
    }
}

extension MediaKind {
    init?(_ kind: SDPMediaKind) {
        switch kind {
        case .audio: self = .audio
        case .video: self = .video
        default: return nil
        }
    }
}

extension PublisherDescription {
    /// The tracks of a WHIP session: one per accepted section the client sends in.
    init(negotiated answer: SDPAnswer) {
        let sections = answer.sections.filter { $0.accepted && $0.codec != nil }
        var tracks: [PublishedTrackDescription] = []
        for section in sections {
            guard let codec = section.codec, let kind = MediaKind(section.kind) else { continue }
            let mid = section.mid ?? "\(section.index)"
            // FID groups pair a media SSRC with its RTX SSRC (RFC 5576 §4.2, RFC 4588 §8.1).
            var rtxSSRCs: [UInt32: UInt32] = [:]
            for group in section.remoteSSRCGroups where group.semantics.uppercased() == "FID" && group.ssrcs.count == 2 {
                rtxSSRCs[group.ssrcs[1]] = group.ssrcs[0]
            }
            // A FEC-FR group pairs the media SSRC with the repair stream of Braid's uplink FEC (RFC 5956 §4.1).
            let fecSSRC =
                section.fecEncoding == SDPLocalParameters.videoFECEncoding
                ? section.remoteSSRCGroups.first { $0.semantics.uppercased() == "FEC-FR" && $0.ssrcs.count == 2 }?.ssrcs[1]
                : nil
            var mediaSSRCs: [UInt32] = []
            for attribute in section.remoteSSRCs
            where rtxSSRCs[attribute.ssrc] == nil && attribute.ssrc != fecSSRC && !mediaSSRCs.contains(attribute.ssrc) {
                mediaSSRCs.append(attribute.ssrc)
            }
            let rids: [String]
            if let simulcast = section.simulcast, !simulcast.recv.isEmpty {
                // The answer's recv side lists the layers in a=simulcast order; the first alternative of each.
                rids = simulcast.recv.compactMap { $0.first?.rid }
            } else {
                rids = section.rids.map(\.id)
            }
            tracks.append(
                PublishedTrackDescription(
                    mid: mid,
                    kind: kind,
                    trackID: section.remoteMsid?.trackID ?? "\(kind.rawValue)-\(mid)",
                    streamID: section.remoteMsid?.streamID ?? "-",
                    codecName: codec.encoding,
                    payloadType: codec.payloadType,
                    clockRate: codec.clockRate,
                    rtxPayloadType: section.rtxPayloadType,
                    redPayloadType: section.redPayloadType,
                    rids: rids,
                    ssrcs: rids.isEmpty ? mediaSSRCs : [],
                    rtxSSRCs: rids.isEmpty ? rtxSSRCs : [:],
                    fecSSRC: rids.isEmpty ? fecSSRC : nil,
                    fecPayloadType: rids.isEmpty && fecSSRC != nil ? section.fecPayloadType : nil,
                    feedback: RTCPFeedbackSupport(codec.feedback)
                )
            )
        }
        self.init(extensions: RTPExtensionIDs(negotiated: sections), tracks: tracks)
    }
}

extension SubscriberDescription {
    /// The slots of a WHEP session: one per accepted section, with the SSRCs the answer announced; they
    /// take only `tracks` when it is not empty.
    init(negotiated answer: SDPAnswer, tracks: Set<TrackID> = []) {
        let sections = answer.sections.filter { $0.accepted && $0.codec != nil && $0.localSender != nil }
        var slots: [SubscriberSlotDescription] = []
        for section in sections {
            guard let codec = section.codec, let kind = MediaKind(section.kind), let sender = section.localSender
            else { continue }
            // ULPFEC repairs travel inside RED on the media SSRC.
            let isULPFEC = section.fecEncoding == SDPLocalParameters.ulpfecEncoding && section.redPayloadType != nil
            slots.append(
                SubscriberSlotDescription(
                    mid: section.mid ?? "\(section.index)",
                    kind: kind,
                    payloadType: codec.payloadType,
                    clockRate: codec.clockRate,
                    rtxPayloadType: sender.rtxSSRC == nil ? nil : section.rtxPayloadType,
                    redPayloadType: section.redPayloadType,
                    ssrc: sender.ssrc,
                    rtxSSRC: section.rtxPayloadType == nil ? nil : sender.rtxSSRC,
                    fecPayloadType: isULPFEC || sender.fecSSRC != nil ? section.fecPayloadType : nil,
                    fecSSRC: section.fecPayloadType == nil || isULPFEC ? nil : sender.fecSSRC,
                    fecScheme: VideoRepairScheme(encoding: section.fecEncoding),
                    feedback: RTCPFeedbackSupport(codec.feedback)
                )
            )
        }
        self.init(extensions: RTPExtensionIDs(negotiated: sections), slots: slots, tracks: tracks)
    }
}

extension VideoRepairScheme {
    /// The scheme of a negotiated FEC encoding name (Braid's own code when it is none of the browsers').
    init(encoding: String?) {
        switch encoding {
        case SDPLocalParameters.flexFECEncoding: self = .flexFEC
        case SDPLocalParameters.ulpfecEncoding: self = .ulpfec
        default: self = .slidingWindow
        }
    }
}
