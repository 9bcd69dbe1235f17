import BraidSDP
import BraidSecurity
import BraidWire
import NIOCore

/// What this client needs from a WHIP/WHEP answer, checked once at join.
///
/// The answer is the authority on header extension IDs and payload types (RFC 8285 §7, RFC 3264 §6.1):
/// they are read from it, never assumed equal to the offer's.
public struct RemoteAnswer: Sendable {
    /// One answered m-section.
    public struct Section: Sendable {
        /// `a=mid`.
        public var mid: String?
        /// Audio or video.
        public var kind: OfferedTrack.Kind
        /// Port 0 marks a rejected section.
        public var accepted: Bool
        /// The answer's direction attribute.
        public var direction: SDPDirection
        /// The media payload type (Opus or VP8) the answer kept.
        public var payloadType: UInt8?
        /// The RTX payload type (`apt` = ``payloadType``), if any.
        public var rtxPayloadType: UInt8?
        /// The RED payload type (audio, RFC 2198), if the answer kept it.
        public var redPayloadType: UInt8? = nil
        /// The FEC repair payload type (video, `x-braid-fec`), if the answer kept it.
        public var fecPayloadType: UInt8? = nil
        /// Header extension IDs in force for this section.
        public var extensions: RTPHeaderExtensionMap
        /// The remote media SSRC (WHEP: `a=ssrc` / the first of `a=ssrc-group:FID`).
        public var ssrc: UInt32?
        /// The remote RTX SSRC (the second of `a=ssrc-group:FID`).
        public var rtxSSRC: UInt32?
        /// The remote repair SSRC (the second of `a=ssrc-group:FEC-FR`).
        public var fecSSRC: UInt32? = nil
        /// Whether the answer kept generic NACK (`a=rtcp-fb:<pt> nack`, RFC 4585 §4.2) for ``payloadType``.
        public var nack: Bool = false
    }

    /// The peer's ICE ufrag.
    public var iceUfrag: String
    /// The peer's ICE password.
    public var icePassword: String
    /// The peer's certificate fingerprint.
    public var fingerprint: DTLSFingerprint
    /// Our DTLS role: the answer's `passive` makes us the client, `active` the server.
    public var dtlsRole: DTLSRole
    /// The peer's UDP host candidates with literal IP addresses, best priority first.
    public var candidates: [SocketAddress]
    /// Whether the peer is ICE-lite (it sends no checks).
    public var iceLite: Bool
    /// The answered sections, in offer order.
    public var sections: [Section]

    /// Parses and checks an answer.
    /// - Throws: ``BraidClientError/malformedAnswer(_:)`` when the SDP does not parse or lacks what a
    ///   connection needs: ICE credentials, one fingerprint, a `passive`/`active` setup role and at least
    ///   one UDP host candidate with an IP address.
    public init(parsing text: String, offeredSections: Int) throws(BraidClientError) {
        let description: SessionDescription
        do {
            description = try SessionDescription(parsing: text)
        } catch {
            throw .malformedAnswer("SDP does not parse: \(error)")
        }
        guard description.media.count == offeredSections else {
            throw .malformedAnswer("\(description.media.count) m-sections answer an offer of \(offeredSections)")
        }
        let first = description.media.first(where: { $0.port != 0 })
        guard let ufrag = first?.iceUfrag ?? description.iceUfrag,
            let password = first?.icePwd ?? description.icePwd
        else { throw .malformedAnswer("no a=ice-ufrag / a=ice-pwd") }
        let sdpFingerprint = first?.fingerprints.first ?? description.fingerprints.first
        guard let sdpFingerprint else { throw .malformedAnswer("no a=fingerprint") }
        do {
            self.fingerprint = try DTLSFingerprint(sdpValue: sdpFingerprint.attributeValue)
        } catch {
            throw .malformedAnswer("unusable fingerprint \(sdpFingerprint.attributeValue): \(error)")
        }
        switch first?.setup ?? description.setup {
        case .passive: self.dtlsRole = .client
        case .active: self.dtlsRole = .server
        case let other:
            throw .malformedAnswer("a=setup must be passive or active in an answer, not \(String(describing: other))")
        }
        self.iceUfrag = ufrag
        self.icePassword = password
        self.iceLite = description.iceLite

        var candidates: [(UInt32, SocketAddress)] = []
        for media in description.media where media.port != 0 {
            for candidate in media.candidates + description.candidates
            where candidate.transport.lowercased() == "udp" && candidate.component == 1 {
                guard let address = try? SocketAddress(ipAddress: candidate.address, port: Int(candidate.port)) else {
                    continue  // FQDN / mDNS names: not resolved here
                }
                if !candidates.contains(where: { $0.1 == address }) { candidates.append((candidate.priority, address)) }
            }
        }
        guard !candidates.isEmpty else { throw .malformedAnswer("no UDP candidate with an IP address") }
        self.candidates = candidates.sorted { $0.0 > $1.0 }.map(\.1)

        self.sections = description.media.map { media in
            let kind: OfferedTrack.Kind = media.kind == .audio ? .audio : .video
            let payloadTypes = media.formats.compactMap { UInt8($0) }
            var payloadType: UInt8?
            var rtxPayloadType: UInt8?
            var redPayloadType: UInt8?
            var fecPayloadType: UInt8?
            for pt in payloadTypes {
                guard let map = media.rtpMap(for: pt) else { continue }
                let name = map.encoding.lowercased()
                if payloadType == nil, name == (kind == .audio ? "opus" : "vp8") { payloadType = pt }
                if redPayloadType == nil, kind == .audio, name == "red" { redPayloadType = pt }
                if fecPayloadType == nil, kind == .video, name == SDPLocalParameters.videoFECEncoding { fecPayloadType = pt }
            }
            if let payloadType {
                for pt in payloadTypes where media.rtpMap(for: pt)?.encoding.lowercased() == "rtx" {
                    if media.parameters(for: pt).contains(where: { $0.name == "apt" && $0.value == String(payloadType) }
                    ) {
                        rtxPayloadType = pt
                    }
                }
            }
            let extensions = RTPHeaderExtensionMap(media.extMaps.map { (id: Int($0.id), uri: $0.uri) })
            var ssrc: UInt32?
            var rtxSSRC: UInt32?
            if let fid = media.ssrcGroups.first(where: { $0.semantics == "FID" }), fid.ssrcs.count >= 2 {
                ssrc = fid.ssrcs[0]
                rtxSSRC = fid.ssrcs[1]
            } else {
                ssrc = media.ssrcAttributes.first?.ssrc
            }
            let fec = media.ssrcGroups.first(where: { $0.semantics == "FEC-FR" && $0.ssrcs.count >= 2 })?.ssrcs[1]
            let nack = media.rtcpFeedback.contains {
                ($0.payloadType == nil || $0.payloadType == payloadType) && $0.type == "nack" && $0.parameter == nil
            }
            return Section(
                mid: media.mid,
                kind: kind,
                accepted: media.port != 0 && payloadType != nil,
                direction: media.direction ?? .sendrecv,
                payloadType: payloadType,
                rtxPayloadType: rtxPayloadType,
                redPayloadType: redPayloadType,
                fecPayloadType: fecPayloadType,
                extensions: extensions,
                ssrc: ssrc,
                rtxSSRC: rtxSSRC,
                fecSSRC: fecPayloadType == nil ? nil : fec,
                nack: nack
            )
        }
        guard self.sections.contains(where: \.accepted) else {
            throw .malformedAnswer("every m-section was rejected")
        }
    }
}
