import BraidICE
import BraidSDP
import BraidSecurity
import BraidWire
import NIOCore
import Testing

@testable import BraidClient

@Suite("Offer builder and answer parsing")
struct OfferAndAnswerTests {
    static let credentials = try! ICECredentials(ufrag: "clientufrag1", password: "clientpassword0123456789")
    static let fingerprint = try! DTLSFingerprint(algorithm: .sha256, bytes: Array(0..<32))

    static func publishOffer() -> SessionDescription {
        ClientOffer.make(
            tracks: [
                OfferedTrack(kind: .audio, ssrc: 1111, trackID: "a0"),
                OfferedTrack(kind: .video, ssrc: 2222, rtxSSRC: 3333, trackID: "v0"),
            ],
            direction: .sendonly, credentials: credentials, fingerprint: fingerprint,
            candidates: [SDPCandidate(foundation: "1", priority: 2_130_706_431, address: "127.0.0.1", port: 40000)],
            cname: "cn", streamID: "st", sessionID: 42)
    }

    @Test("A publish offer parses back with every attribute WHIP servers need")
    func publishOffer() throws {
        let text = Self.publishOffer().text
        let offer = try SessionDescription(parsing: text)
        #expect(offer.bundleMids == ["0", "1"])
        #expect(offer.media.count == 2)
        let audio = offer.media[0]
        let video = offer.media[1]
        for media in offer.media {
            #expect(media.iceUfrag == "clientufrag1")
            #expect(media.icePwd == "clientpassword0123456789")
            #expect(media.setup == .actpass)
            #expect(media.rtcpMux)
            #expect(media.direction == .sendonly)
            #expect(media.fingerprints.count == 1)
            #expect(media.fingerprints.first?.bytes == Array(0..<32))
            #expect(media.candidates.first?.address == "127.0.0.1")
            #expect(media.endOfCandidates)
            #expect(media.msids.first?.streamID == "st")
            let uris = Dictionary(uniqueKeysWithValues: media.extMaps.map { ($0.uri, $0.id) })
            #expect(uris[RTPHeaderExtensionMap.midURI] == ClientOffer.ExtensionID.mid)
            #expect(uris[RTPHeaderExtensionMap.transportSequenceNumberURI] == ClientOffer.ExtensionID.transportWideCC)
            #expect(uris[RTPHeaderExtensionMap.absSendTimeURI] == ClientOffer.ExtensionID.absSendTime)
            #expect(uris[RTPHeaderExtensionMap.absCaptureTimeURI] == ClientOffer.ExtensionID.absCaptureTime)
        }
        #expect(audio.mid == "0" && video.mid == "1")
        #expect(audio.extMaps.contains { $0.uri == RTPHeaderExtensionMap.audioLevelURI })
        #expect(!video.extMaps.contains { $0.uri == RTPHeaderExtensionMap.audioLevelURI })
        // RED around Opus: the publisher protects its audio uplink once the node reports loss.
        #expect(audio.formats == ["111", "63"])
        #expect(audio.rtpMap(for: 63)?.encoding == "red")
        #expect(audio.parameters(for: 63).isEmpty == false)
        #expect(audio.rtpMap(for: 111)?.encoding == "opus")
        #expect(audio.rtpMap(for: 111)?.clockRate == 48000)
        #expect(audio.parameters(for: 111).contains(SDPParameter("useinbandfec", "1")))
        #expect(video.formats == ["96", "97"])
        #expect(video.rtpMap(for: 96)?.encoding == "VP8")
        #expect(video.rtpMap(for: 97)?.encoding == "rtx")
        #expect(video.parameters(for: 97).contains(SDPParameter("apt", "96")))
        let feedback = Set(video.rtcpFeedback.filter { $0.payloadType == 96 }.map(\.feedbackName))
        #expect(feedback.isSuperset(of: ["nack", "nack pli", "transport-cc", "ccm fir"]))
        #expect(video.ssrcGroups == [SDPSSRCGroup(semantics: "FID", ssrcs: [2222, 3333])])
        #expect(Set(video.ssrcAttributes.map(\.ssrc)) == [2222, 3333])
        #expect(audio.ssrcAttributes.contains(SDPSSRCAttribute(ssrc: 1111, name: "cname", value: "cn")))
    }

    @Test("A publisher offers Braid FEC on its video uplink and RED on its audio, and the node's WHIP answer takes both")
    func publishOfferWithUplinkFEC() throws {
        let tracks = [
            OfferedTrack(kind: .audio, ssrc: 1111, trackID: "a0"),
            OfferedTrack(kind: .video, ssrc: 2222, rtxSSRC: 3333, fecSSRC: 4444, trackID: "v0"),
        ]
        func offer(_ protection: Bool) throws -> SessionDescription {
            try SessionDescription(
                parsing: ClientOffer.make(
                    tracks: tracks, direction: .sendonly, credentials: Self.credentials, fingerprint: Self.fingerprint,
                    cname: "cn", streamID: "st", sessionID: 42, lossProtection: protection
                ).text)
        }
        let protected = try offer(true)
        let video = protected.media[1]
        #expect(video.formats == ["96", "97", "98"])
        #expect(video.rtpMap(for: 98)?.encoding == SDPLocalParameters.videoFECEncoding)
        #expect(video.ssrcGroups.contains(SDPSSRCGroup(semantics: "FEC-FR", ssrcs: [2222, 4444])))
        #expect(Set(video.ssrcAttributes.map(\.ssrc)) == [2222, 3333, 4444])
        #expect(!protected.media[0].formats.contains("98"))
        // Without loss protection: no repair stream offered, and no RED.
        let plain = try offer(false).media[1]
        #expect(plain.formats == ["96", "97"])
        #expect(try offer(false).media[0].formats == ["111"])
        #expect(!plain.ssrcGroups.contains { $0.semantics == "FEC-FR" })

        // The node as WHIP endpoint answers the repair payload type (and never FlexFEC, which it only sends).
        let local = SDPLocalParameters(
            iceUfrag: "brd1", icePwd: "0123456789abcdefABCDEF+/",
            fingerprint: SDPFingerprint(algorithm: "sha-256", bytes: Array(0..<32)),
            candidates: [SDPCandidate(foundation: "1", priority: 2_130_706_431, address: "127.0.0.1", port: 40000)],
            role: .receive, sessionID: "1", sessionVersion: "1", streamID: "s", cname: "node")
        let answer = try SDPAnswerBuilder(local: local).answer(to: protected)
        #expect(answer.sections[0].redPayloadType == 63)
        #expect(answer.sections[1].fecPayloadType == 98)
        #expect(answer.sections[1].fecEncoding == SDPLocalParameters.videoFECEncoding)
        #expect(answer.sections[1].remoteSSRCGroups.contains(SDPSSRCGroup(semantics: "FEC-FR", ssrcs: [2222, 4444])))
        let parsed = try RemoteAnswer(parsing: answer.text, offeredSections: 2)
        #expect(parsed.sections[1].fecPayloadType == 98)
    }

    @Test("A subscribe offer has N audio and M video receive-only sections and no SSRC")
    func subscribeOffer() throws {
        let tracks =
            (0..<2).map { OfferedTrack(kind: .audio, trackID: "a\($0)") }
            + (0..<3).map { OfferedTrack(kind: .video, trackID: "v\($0)") }
        let offer = try SessionDescription(
            parsing: ClientOffer.make(
                tracks: tracks, direction: .recvonly, credentials: Self.credentials, fingerprint: Self.fingerprint,
                cname: "cn", streamID: "st", sessionID: 1
            ).text)
        #expect(offer.media.map(\.kind) == [.audio, .audio, .video, .video, .video])
        #expect(offer.bundleMids == ["0", "1", "2", "3", "4"])
        #expect(offer.media.allSatisfy { $0.direction == .recvonly && $0.ssrcAttributes.isEmpty })
        #expect(offer.media.allSatisfy { $0.candidates.isEmpty })
    }

    static func answer(
        setup: String = "passive", fingerprint: Bool = true, candidate: String? = "127.0.0.1 5000",
        extraVideo: [String] = []
    ) -> String {
        var lines = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=ice-lite", "a=group:BUNDLE 0 1"]
        func transport(_ mid: String) -> [String] {
            var result = [
                "c=IN IP4 0.0.0.0", "a=ice-ufrag:nodeufrag", "a=ice-pwd:nodepassword0123456789abcd",
                "a=setup:\(setup)", "a=mid:\(mid)", "a=rtcp-mux",
            ]
            if fingerprint { result.append("a=fingerprint:sha-256 " + Self.fingerprintHex) }
            if let candidate { result.append("a=candidate:1 1 udp 2130706431 \(candidate) typ host") }
            return result
        }
        lines += ["m=audio 9 UDP/TLS/RTP/SAVPF 111"] + transport("0")
        lines += ["a=extmap:7 \(RTPHeaderExtensionMap.absCaptureTimeURI)", "a=sendonly", "a=rtpmap:111 opus/48000/2"]
        lines += ["a=ssrc:5555 cname:node"]
        lines += ["m=video 9 UDP/TLS/RTP/SAVPF 100 101"] + transport("1")
        lines += ["a=extmap:9 \(RTPHeaderExtensionMap.transportSequenceNumberURI)", "a=sendonly"]
        lines += ["a=rtpmap:100 VP8/90000", "a=rtpmap:101 rtx/90000", "a=fmtp:101 apt=100"]
        lines += ["a=ssrc-group:FID 6666 7777", "a=ssrc:6666 cname:node", "a=ssrc:7777 cname:node"] + extraVideo
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    static let fingerprintHex = (0..<32).map { (byte: Int) -> String in
        let digits = Array("0123456789ABCDEF")
        return String([digits[byte >> 4], digits[byte & 15]])
    }.joined(separator: ":")

    @Test("An answer yields credentials, candidates, payload types, extension IDs and SSRCs from the answer")
    func parsesAnswer() throws {
        let answer = try RemoteAnswer(parsing: Self.answer(), offeredSections: 2)
        #expect(answer.iceUfrag == "nodeufrag")
        #expect(answer.icePassword == "nodepassword0123456789abcd")
        #expect(answer.fingerprint.bytes == Array(0..<32))
        #expect(answer.dtlsRole == .client)
        #expect(answer.iceLite)
        #expect(answer.candidates.count == 1)
        #expect(answer.candidates.first?.port == 5000)
        #expect(answer.sections[0].payloadType == 111)
        #expect(answer.sections[0].extensions.absCaptureTime == 7)
        #expect(answer.sections[0].ssrc == 5555)
        #expect(answer.sections[1].payloadType == 100)
        #expect(answer.sections[1].rtxPayloadType == 101)
        #expect(answer.sections[1].extensions.transportSequenceNumber == 9)
        #expect(answer.sections[1].ssrc == 6666 && answer.sections[1].rtxSSRC == 7777)
        #expect(answer.sections.allSatisfy { $0.accepted })
    }

    @Test("Unusable answers are typed errors")
    func rejectsBadAnswers() {
        func reason(_ text: String, sections: Int = 2) -> BraidClientError? {
            do {
                _ = try RemoteAnswer(parsing: text, offeredSections: sections)
                return nil
            } catch {
                return error
            }
        }
        for (text, sections) in [
            ("hello", 2),
            (Self.answer(fingerprint: false), 2),
            (Self.answer(setup: "actpass"), 2),
            (Self.answer(candidate: nil), 2),
            (Self.answer(candidate: "node.local 5000"), 2),
            (Self.answer(), 3),
        ] {
            guard case .malformedAnswer = reason(text, sections: sections) else {
                Issue.record("expected malformedAnswer for \(text.prefix(40))…")
                continue
            }
        }
    }

    @Test("HTTP endpoints parse and resolve Location")
    func endpoints() throws {
        let endpoint = try HTTPEndpoint(url: "http://127.0.0.1:8080/whip/lobby")
        #expect(endpoint.host == "127.0.0.1" && endpoint.port == 8080 && endpoint.path == "/whip/lobby")
        #expect(try HTTPEndpoint(url: "http://example.org").port == 80)
        #expect(try HTTPEndpoint(url: "http://[::1]:9/x").host == "::1")
        #expect(try endpoint.resolving("/whip/lobby/abc").path == "/whip/lobby/abc")
        #expect(throws: BraidClientError.self) { try HTTPEndpoint(url: "https://x/") }
        #expect(throws: BraidClientError.self) { try HTTPEndpoint(url: "http://x:99999/") }
        #expect(throws: BraidClientError.self) { try HTTPEndpoint(url: "http:///path") }
    }

    @Test("A query parameter is appended with ? or &, its value percent-encoded")
    func queryParameters() throws {
        let endpoint = try HTTPEndpoint(url: "http://127.0.0.1:8080/whep/lobby")
        let linked = endpoint.appendingQuery(name: "participant", value: "6c1f0e2a9b3d4c5e8f7a6b5c4d3e2f10")
        #expect(linked.path == "/whep/lobby?participant=6c1f0e2a9b3d4c5e8f7a6b5c4d3e2f10")
        #expect(linked.appendingQuery(name: "x", value: "a b/ü&").path.hasSuffix("f10&x=a%20b%2F%C3%BC%26"))
    }
}
