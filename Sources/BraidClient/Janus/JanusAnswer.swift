import BraidICE
import BraidSDP
import BraidSecurity
import BraidWire
import Foundation
import NIOCore

/// A subscriber's answer to the JSEP offer Janus's VideoRoom sends it, and what the transport needs from
/// that offer.
///
/// Roles (Janus 1.1.2, `src/ice.c`, `src/sdp.c`): Janus made the offer, so it is the controlling ICE agent
/// and sends the checks; the answer says `a=ice-lite` and this side only answers them (``ICELiteAgent``).
/// Janus offers `a=setup:actpass`; the answer takes `passive` (RFC 5763 §5 lets the answerer pick either),
/// so Janus is the DTLS client and this side the server, as a Braid node is to its peers.
///
/// Per offered m-section: audio keeps Opus, video VP8 and its RTX (`apt`), each with the offer's payload
/// types; header extensions keep the offer's IDs for the URIs this client reads (mid, transport-wide
/// sequence number, abs-send-time, audio level, abs-capture-time; RFC 8285 §7); `rtcp-fb` keeps `nack`,
/// `nack pli`, `ccm fir` and, with its extension, `transport-cc`. A section without a usable codec, and
/// any other kind (data channels), is rejected with port 0.
public struct JanusSubscriberAnswer: Sendable {
    /// The SDP answer to send with VideoRoom `start`.
    public var sdp: String
    /// The offer seen as the remote description the transport and the media state use.
    public var remote: RemoteAnswer

    /// Extension URIs the answer accepts.
    static let acceptedExtensions: Set<String> = [
        RTPHeaderExtensionMap.midURI, RTPHeaderExtensionMap.transportSequenceNumberURI,
        RTPHeaderExtensionMap.absSendTimeURI, RTPHeaderExtensionMap.audioLevelURI,
        RTPHeaderExtensionMap.absCaptureTimeURI,
    ]

    /// Answers `offer`.
    /// - Throws: ``BraidClientError/malformedAnswer(_:)`` when the offer does not parse or lacks ICE
    ///   credentials, a fingerprint or any usable audio/video section.
    public init(
        offer text: String, credentials: ICECredentials, fingerprint: DTLSFingerprint, candidates: [SDPCandidate],
        sessionID: UInt64 = UInt64.random(in: 1...(1 << 62))
    ) throws(BraidClientError) {
        let offer: SessionDescription
        do {
            offer = try SessionDescription(parsing: text)
        } catch {
            throw .malformedAnswer("Janus offer does not parse: \(error)")
        }
        let first = offer.media.first(where: { $0.port != 0 })
        guard let ufrag = first?.iceUfrag ?? offer.iceUfrag, let password = first?.icePwd ?? offer.icePwd else {
            throw .malformedAnswer("Janus offer has no a=ice-ufrag / a=ice-pwd")
        }
        guard let sdpFingerprint = first?.fingerprints.first ?? offer.fingerprints.first else {
            throw .malformedAnswer("Janus offer has no a=fingerprint")
        }
        let remoteFingerprint: DTLSFingerprint
        do {
            remoteFingerprint = try DTLSFingerprint(sdpValue: sdpFingerprint.attributeValue)
        } catch {
            throw .malformedAnswer("Janus offer: unusable fingerprint \(sdpFingerprint.attributeValue): \(error)")
        }
        var remoteCandidates: [(UInt32, SocketAddress)] = []
        var sections: [RemoteAnswer.Section] = []
        var media: [SDPMediaDescription] = []
        var bundle: [String] = []
        let localFingerprint = SDPFingerprint(algorithm: fingerprint.algorithm.rawValue, bytes: fingerprint.bytes)

        for (index, offered) in offer.media.enumerated() {
            let mid = offered.mid ?? String(index)
            for candidate in offered.candidates + offer.candidates
            where candidate.transport.lowercased() == "udp" && candidate.component == 1 {
                if let address = try? SocketAddress(ipAddress: candidate.address, port: Int(candidate.port)),
                    !remoteCandidates.contains(where: { $0.1 == address })
                {
                    remoteCandidates.append((candidate.priority, address))
                }
            }
            let kind: OfferedTrack.Kind? =
                offered.kind == .audio ? .audio : offered.kind == .video ? .video : nil
            var payloadType: UInt8?
            var rtxPayloadType: UInt8?
            if let kind, offered.port != 0 {
                let types = offered.formats.compactMap { UInt8($0) }
                payloadType = types.first { offered.rtpMap(for: $0)?.encoding.lowercased() == (kind == .audio ? "opus" : "vp8") }
                if let payloadType, kind == .video {
                    rtxPayloadType = types.first { pt in
                        offered.rtpMap(for: pt)?.encoding.lowercased() == "rtx"
                            && offered.parameters(for: pt).contains { $0.name == "apt" && $0.value == String(payloadType) }
                    }
                }
            }
            guard let kind, let payloadType else {
                // Rejected (RFC 3264 §6): port 0, the offered formats.
                media.append(
                    SDPMediaDescription(
                        kind: offered.kind, port: 0, proto: offered.proto, formats: offered.formats,
                        connections: [SDPConnection()], attributes: [SDPAttribute("mid", mid)]))
                if let kind {
                    sections.append(
                        RemoteAnswer.Section(
                            mid: mid, kind: kind, accepted: false, direction: .inactive, payloadType: nil,
                            rtxPayloadType: nil, extensions: RTPHeaderExtensionMap([]), ssrc: nil, rtxSSRC: nil))
                }
                continue
            }
            bundle.append(mid)
            let extmaps = offered.extMaps.filter { Self.acceptedExtensions.contains($0.uri) }
            let extensions = RTPHeaderExtensionMap(extmaps.map { (id: Int($0.id), uri: $0.uri) })
            var attributes: [SDPAttribute] = [
                SDPAttribute("ice-ufrag", credentials.ufrag),
                SDPAttribute("ice-pwd", credentials.password),
                SDPAttribute("fingerprint", localFingerprint.attributeValue),
                SDPAttribute("setup", SDPSetupRole.passive.rawValue),
                SDPAttribute("mid", mid),
            ]
            for candidate in candidates { attributes.append(SDPAttribute("candidate", candidate.attributeValue)) }
            if !candidates.isEmpty { attributes.append(SDPAttribute("end-of-candidates")) }
            for extmap in extmaps { attributes.append(SDPAttribute("extmap", "\(extmap.id) \(extmap.uri)")) }
            attributes.append(SDPAttribute(SDPDirection.recvonly.rawValue))
            attributes.append(SDPAttribute("rtcp-mux"))
            var formats = [String(payloadType)]
            let wantsTWCC = extensions.transportSequenceNumber != nil
            for pt in [payloadType] + (rtxPayloadType.map { [$0] } ?? []) {
                if let map = offered.rtpMap(for: pt) { attributes.append(SDPAttribute("rtpmap", map.attributeValue)) }
                if let fmtp = offered.formatParameters.first(where: { $0.payloadType == pt }) {
                    attributes.append(SDPAttribute("fmtp", fmtp.attributeValue))
                }
                for feedback in offered.rtcpFeedback where feedback.payloadType == pt {
                    let name = ([feedback.type] + (feedback.parameter.map { [$0] } ?? [])).joined(separator: " ")
                    let kept = name == "nack" || name == "nack pli" || name == "ccm fir"
                        || (name == "transport-cc" && wantsTWCC)
                    if kept { attributes.append(SDPAttribute("rtcp-fb", feedback.attributeValue)) }
                }
            }
            if let rtxPayloadType { formats.append(String(rtxPayloadType)) }
            media.append(
                SDPMediaDescription(
                    kind: offered.kind, port: 9, proto: offered.proto, formats: formats,
                    connections: [SDPConnection()], attributes: attributes))
            var ssrc: UInt32?
            var rtxSSRC: UInt32?
            if let fid = offered.ssrcGroups.first(where: { $0.semantics == "FID" }), fid.ssrcs.count >= 2 {
                ssrc = fid.ssrcs[0]
                rtxSSRC = fid.ssrcs[1]
            } else {
                ssrc = offered.ssrcAttributes.first?.ssrc
            }
            sections.append(
                RemoteAnswer.Section(
                    mid: mid, kind: kind, accepted: true, direction: .sendonly, payloadType: payloadType,
                    rtxPayloadType: rtxPayloadType, extensions: extensions, ssrc: ssrc, rtxSSRC: rtxSSRC))
        }
        guard !bundle.isEmpty else { throw .malformedAnswer("Janus offer has no Opus or VP8 section") }
        var answer = SessionDescription(
            origin: SDPOrigin(sessionID: String(sessionID), sessionVersion: "2"),
            attributes: [
                SDPAttribute("ice-lite"),
                SDPAttribute("group", (["BUNDLE"] + bundle).joined(separator: " ")),
            ])
        answer.media = media
        self.sdp = answer.text
        self.remote = RemoteAnswer(
            iceUfrag: ufrag, icePassword: password, fingerprint: remoteFingerprint, dtlsRole: .server,
            candidates: remoteCandidates.sorted { $0.0 > $1.0 }.map(\.1), iceLite: offer.iceLite, sections: sections)
    }
}

extension RemoteAnswer {
    /// A remote description built field by field (from a Janus offer).
    init(
        iceUfrag: String, icePassword: String, fingerprint: DTLSFingerprint, dtlsRole: DTLSRole,
        candidates: [SocketAddress], iceLite: Bool, sections: [Section]
    ) {
        self.iceUfrag = iceUfrag
        self.icePassword = icePassword
        self.fingerprint = fingerprint
        self.dtlsRole = dtlsRole
        self.candidates = candidates
        self.iceLite = iceLite
        self.sections = sections
    }
}

/// Capture times of one publisher's video frames by VP8 picture ID, for a server that forwards no
/// abs-capture-time (Janus 1.1.2's VideoRoom negotiates no such extension, and Janus rewrites RTP
/// timestamps and sequence numbers per subscriber, `src/rtp.c` `janus_rtp_header_update`). The VP8
/// payload, its descriptor included, is forwarded as sent (no simulcast), so a subscriber in the same
/// process finds a frame's capture time by its 15-bit picture ID: the same host clock on both sides, as
/// with abs-capture-time. IDs wrap after 32768 frames (18 min at 30 fps); an entry is overwritten then.
///
/// Audio has no such key, so a Janus subscriber's latency figures are video only.
public final class CaptureTimeLog: @unchecked Sendable {
    private let lock = NSLock()
    private var times = [UInt64](repeating: 0, count: 1 << 15)

    public init() {}

    /// Records the NTP capture time of the frame with `pictureID`.
    public func record(pictureID: UInt16, captureTime: UInt64) {
        self.lock.lock()
        self.times[Int(pictureID & 0x7FFF)] = captureTime
        self.lock.unlock()
    }

    /// The NTP capture time of the frame with `pictureID`, if recorded.
    public func captureTime(pictureID: UInt16) -> UInt64? {
        self.lock.lock()
        defer { self.lock.unlock() }
        let value = self.times[Int(pictureID & 0x7FFF)]
        return value == 0 ? nil : value
    }
}
