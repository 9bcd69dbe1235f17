import BraidSDP
import Testing

@Suite("SDP answers for the ICE-lite SFU")
struct AnswerTests {
    private func answer(_ offerText: String, _ local: SDPLocalParameters) throws(SDPError) -> SDPAnswer {
        try SDPAnswerBuilder(local: local).answer(to: SessionDescription(parsing: offerText))
    }

    /// Checks every rule that holds for any accepted section of any answer.
    private func expectTransportRules(_ lines: [String], mid: String, sourceLocation: SourceLocation = #_sourceLocation)
    {
        #expect(
            lines.filter { $0.hasPrefix("a=fingerprint:") }
                == ["a=fingerprint:\(Fixtures.localFingerprint.attributeValue)"],
            sourceLocation: sourceLocation
        )
        #expect(lines.filter { $0.hasPrefix("a=setup:") } == ["a=setup:passive"], sourceLocation: sourceLocation)
        #expect(lines.contains("a=ice-ufrag:brd1"), sourceLocation: sourceLocation)
        #expect(lines.contains("a=ice-pwd:0123456789abcdefABCDEF+/"), sourceLocation: sourceLocation)
        #expect(lines.contains("a=rtcp-mux"), sourceLocation: sourceLocation)
        #expect(!lines.contains("a=rtcp-mux-only"), sourceLocation: sourceLocation)  // RFC 8858 §4.3
        #expect(!lines.contains("a=ice-lite"), sourceLocation: sourceLocation)
        #expect(lines.filter { $0.hasPrefix("a=mid:") } == ["a=mid:\(mid)"], sourceLocation: sourceLocation)
        #expect(
            lines.suffix(2) == ["a=candidate:1 1 udp 2130706431 203.0.113.5 3478 typ host", "a=end-of-candidates"],
            sourceLocation: sourceLocation
        )
        #expect(
            lines.first?.hasPrefix("m=") == true && lines.first?.contains(" 9 UDP/TLS/RTP/SAVPF ") == true,
            sourceLocation: sourceLocation
        )
    }

    @Test("Chromium WHIP offer: line-by-line answer")
    func chromiumWHIP() throws {
        let answer = try self.answer(Fixtures.chromium, Fixtures.local(.receive))
        let sections = Fixtures.sections(answer.text)
        #expect(sections.count == 3)
        #expect(
            sections[0] == [
                "v=0", "o=- 7311 1 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=ice-lite", "a=group:BUNDLE 0 1",
                "a=extmap-allow-mixed",
            ]
        )
        #expect(
            sections[1] == [
                "m=audio 9 UDP/TLS/RTP/SAVPF 111 63",
                "c=IN IP4 0.0.0.0",
                "a=ice-ufrag:brd1",
                "a=ice-pwd:0123456789abcdefABCDEF+/",
                "a=fingerprint:\(Fixtures.localFingerprint.attributeValue)",
                "a=setup:passive",
                "a=mid:0",
                "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
                "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
                "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
                "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
                "a=recvonly",
                "a=rtcp-mux",
                "a=rtcp-rsize",
                "a=rtpmap:111 opus/48000/2",
                "a=rtcp-fb:111 transport-cc",
                "a=fmtp:111 minptime=10;useinbandfec=1",
                "a=rtpmap:63 red/48000/2",
                "a=fmtp:63 111/111",
                "a=candidate:1 1 udp 2130706431 203.0.113.5 3478 typ host",
                "a=end-of-candidates",
            ]
        )
        let video = sections[2]
        self.expectTransportRules(video, mid: "1")
        #expect(video[0] == "m=video 9 UDP/TLS/RTP/SAVPF 96 97")
        #expect(
            video.filter { $0.hasPrefix("a=extmap:") } == [
                "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
                "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
                "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
                "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
                "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
                "a=extmap:9 http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time",
            ]
        )
        #expect(
            video.filter { $0.hasPrefix("a=rtcp-fb:") } == [
                "a=rtcp-fb:96 goog-remb", "a=rtcp-fb:96 transport-cc", "a=rtcp-fb:96 ccm fir", "a=rtcp-fb:96 nack",
                "a=rtcp-fb:96 nack pli",
            ]
        )
        #expect(video.contains("a=rtpmap:96 VP8/90000"))
        #expect(video.contains("a=rtpmap:97 rtx/90000"))
        #expect(video.contains("a=fmtp:97 apt=96"))
        #expect(
            !video.contains {
                $0.contains("VP9") || $0.contains("H264") || $0.contains("ulpfec") || $0.contains("red/90000")
            }
        )
        #expect(video.contains("a=recvonly"))
        #expect(!video.contains { $0.hasPrefix("a=msid") || $0.hasPrefix("a=ssrc") })
        #expect(
            video.filter { $0.hasPrefix("a=rid:") || $0.hasPrefix("a=simulcast:") } == [
                "a=rid:q recv", "a=rid:h recv", "a=rid:f recv", "a=simulcast:recv q;h;f",
            ]
        )

        // The typed result.
        #expect(answer.bundleMids == ["0", "1"])
        let audio = answer.sections[0]
        #expect(audio.accepted && audio.kind == .audio && audio.mid == "0")
        #expect(audio.offeredDirection == .sendonly && audio.direction == .recvonly)
        #expect(audio.codec?.payloadType == 111 && audio.codec?.clockRate == 48000 && audio.codec?.channels == 2)
        #expect(audio.codec?.parameters == [SDPParameter("minptime", "10"), SDPParameter("useinbandfec", "1")])
        #expect(audio.redPayloadType == 63 && audio.rtxPayloadType == nil)
        #expect(audio.extensionID(for: SDPHeaderExtensionURI.audioLevel) == 1)
        #expect(audio.remoteSSRCs.first?.ssrc == 3_735_928_559)
        #expect(audio.remoteMsid == SDPMsid(streamID: "7c5d0b5e", trackID: "2f7a9c10"))
        #expect(audio.reducedSizeRTCP)
        let videoSection = answer.sections[1]
        #expect(videoSection.codec?.payloadType == 96 && videoSection.codec?.encoding == "VP8")
        #expect(videoSection.rtxPayloadType == 97 && videoSection.redPayloadType == nil)
        #expect(videoSection.rids.map(\.id) == ["q", "h", "f"])
        #expect(videoSection.extensionID(for: SDPHeaderExtensionURI.rid) == 10)
        #expect(videoSection.extensionID(for: SDPHeaderExtensionURI.repairedRID) == 11)
        #expect(videoSection.extensionID(for: "urn:ietf:params:rtp-hdrext:toffset") == nil)
        #expect(answer.remote.iceUfrag == "Lx7d")
        #expect(answer.remote.icePwd == "bM5u3F0l2wQpV1nX9sYt8cZr")
        #expect(answer.remote.fingerprint.hex == Fixtures.fingerprintHex)
        #expect(answer.remote.setup == .actpass)
        #expect(answer.remote.iceOptions == ["trickle"])

        // The answer is itself valid SDP and round-trips.
        #expect(try SessionDescription(parsing: answer.text) == answer.session)
    }

    @Test("RED can be switched off")
    func noRED() throws {
        let answer = try self.answer(Fixtures.chromium, Fixtures.local(.receive, audioRED: false))
        #expect(Fixtures.sections(answer.text)[1][0] == "m=audio 9 UDP/TLS/RTP/SAVPF 111")
        #expect(answer.sections[0].redPayloadType == nil)
    }

    @Test("Firefox WHIP offer: its own PTs and IDs, extmap directions reversed, session-level fingerprint")
    func firefoxWHIP() throws {
        let answer = try self.answer(Fixtures.firefox, Fixtures.local(.receive))
        let sections = Fixtures.sections(answer.text)
        #expect(sections[0].contains("a=group:BUNDLE 0 1"))
        #expect(!sections[0].contains("a=extmap-allow-mixed"))
        #expect(!sections[0].contains { $0.hasPrefix("a=fingerprint") })
        let audio = sections[1]
        self.expectTransportRules(audio, mid: "0")
        #expect(audio[0] == "m=audio 9 UDP/TLS/RTP/SAVPF 109")
        // stereo kept as offered, maxplaybackrate dropped.
        #expect(audio.contains("a=fmtp:109 stereo=1;useinbandfec=1"))
        #expect(
            audio.filter { $0.hasPrefix("a=extmap:") } == [
                "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
                "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid",
            ]
        )
        #expect(!audio.contains("a=rtcp-rsize"))
        let video = sections[2]
        self.expectTransportRules(video, mid: "1")
        #expect(video[0] == "m=video 9 UDP/TLS/RTP/SAVPF 120 124")
        #expect(video.contains("a=fmtp:120 max-fs=12288;max-fr=60"))
        #expect(video.contains("a=fmtp:124 apt=120"))
        #expect(video.contains("a=extmap:8/recvonly urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"))
        #expect(video.contains("a=extmap:9/recvonly urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"))
        #expect(video.contains("a=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"))
        #expect(!video.contains { $0.contains("playout-delay") || $0.contains("toffset") })
        #expect(
            video.filter { $0.hasPrefix("a=rid:") || $0.hasPrefix("a=simulcast:") } == [
                "a=rid:h recv", "a=rid:m recv", "a=rid:l recv", "a=simulcast:recv h;m;l",
            ]
        )
        #expect(answer.sections[1].remoteSSRCGroups.count == 3)
        #expect(
            answer.sections[1].codec?.feedback.map(\.feedbackName)
                == ["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"]
        )
        #expect(answer.remote.fingerprint.hex == Fixtures.fingerprintHex)
        #expect(answer.remote.iceUfrag == "3c8e41a2")
    }

    @Test("Firefox draft-03 simulcast syntax and paused layers")
    func simulcastVariants() throws {
        let draft = Fixtures.firefox.replacingOccurrences("a=simulcast:send h;m;l", "a=simulcast: send rid=h;m;l")
        let draftAnswer = try self.answer(draft, Fixtures.local(.receive))
        #expect(Fixtures.sections(draftAnswer.text)[2].contains("a=simulcast:recv h;m;l"))

        let paused = Fixtures.chromium.replacingOccurrences("a=simulcast:send q;h;f", "a=simulcast:send q;h;~f")
        let pausedAnswer = try self.answer(paused, Fixtures.local(.receive))
        #expect(Fixtures.sections(pausedAnswer.text)[2].contains("a=simulcast:recv q;h;~f"))
        #expect(pausedAnswer.sections[1].simulcast?.recv.last == [SDPSimulcast.Stream(rid: "f", paused: true)])

        // Order follows a=simulcast, not the a=rid lines; RIDs without a=rid are not invented.
        let reordered = Fixtures.chromium.replacingOccurrences("a=simulcast:send q;h;f", "a=simulcast:send f;q;x")
        let reorderedAnswer = try self.answer(reordered, Fixtures.local(.receive))
        let lines = Fixtures.sections(reorderedAnswer.text)[2]
        #expect(
            lines.filter { $0.hasPrefix("a=rid:") || $0.hasPrefix("a=simulcast:") } == [
                "a=rid:f recv", "a=rid:q recv", "a=simulcast:recv f;q",
            ]
        )

        // Without the RID header extension the layers cannot be told apart: simulcast is not answered.
        let noRIDExtension = Fixtures.chromium.replacingOccurrences(
            "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\n", "")
        let single = try self.answer(noRIDExtension, Fixtures.local(.receive))
        #expect(!Fixtures.sections(single.text)[2].contains { $0.hasPrefix("a=rid") || $0.hasPrefix("a=simulcast") })
        #expect(single.sections[1].rids.isEmpty && single.sections[1].simulcast == nil)
    }

    @Test("aiortc offer: session-level credentials, VP8 chosen after H264, no transport-cc or rsize")
    func aiortc() throws {
        let answer = try self.answer(Fixtures.aiortc, Fixtures.local(.receive))
        let sections = Fixtures.sections(answer.text)
        #expect(sections[0].contains("a=group:BUNDLE 0 1"))
        let audio = sections[1]
        self.expectTransportRules(audio, mid: "0")
        #expect(audio[0] == "m=audio 9 UDP/TLS/RTP/SAVPF 96")
        #expect(audio.contains("a=recvonly"))  // offered sendrecv, the node only receives
        #expect(!audio.contains { $0.hasPrefix("a=fmtp") })
        let video = sections[2]
        self.expectTransportRules(video, mid: "1")
        #expect(video[0] == "m=video 9 UDP/TLS/RTP/SAVPF 99 100")
        #expect(
            video.filter { $0.hasPrefix("a=rtcp-fb:") } == [
                "a=rtcp-fb:99 nack", "a=rtcp-fb:99 nack pli", "a=rtcp-fb:99 goog-remb",
            ]
        )
        #expect(video.contains("a=fmtp:100 apt=99"))
        #expect(!video.contains("a=rtcp-rsize"))
        #expect(!video.contains { $0.hasPrefix("a=simulcast") || $0.hasPrefix("a=rid") })
        #expect(answer.remote.iceUfrag == "f3Zq")
        #expect(answer.remote.icePwd == "Xq8uVb2JmK4nLp6RsT0wYz")
        #expect(answer.remote.candidates.count == 1)
        #expect(answer.remote.endOfCandidates)
        #expect(
            answer.sections[1].remoteSSRCGroups == [
                SDPSSRCGroup(semantics: "FID", ssrcs: [2_418_374_501, 2_881_237_402])
            ]
        )
    }

    @Test("WHEP offer: sendonly, msid with one stream id, SSRCs and FID")
    func whep() throws {
        let senders = [
            "0": SDPLocalSender(trackID: "alice-audio", ssrc: 1111),
            "1": SDPLocalSender(trackID: "alice-video", ssrc: 2222, rtxSSRC: 3333),
        ]
        let answer = try self.answer(Fixtures.whep, Fixtures.local(.send, senders: senders))
        let sections = Fixtures.sections(answer.text)
        #expect(
            sections[0] == [
                "v=0", "o=- 7311 1 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=ice-lite", "a=group:BUNDLE 0 1",
                "a=extmap-allow-mixed",
            ]
        )
        let audio = sections[1]
        self.expectTransportRules(audio, mid: "0")
        #expect(audio.contains("a=sendonly"))
        #expect(audio.contains("a=msid:room1-alice alice-audio"))
        #expect(audio.contains("a=ssrc:1111 cname:braidnode"))
        #expect(!audio.contains { $0.hasPrefix("a=ssrc-group") })
        #expect(audio.contains("a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1"))
        let video = sections[2]
        self.expectTransportRules(video, mid: "1")
        #expect(video[0] == "m=video 9 UDP/TLS/RTP/SAVPF 96 97")
        #expect(video.contains("a=sendonly"))
        #expect(video.contains("a=msid:room1-alice alice-video"))
        #expect(video.contains("a=ssrc-group:FID 2222 3333"))
        #expect(video.contains("a=ssrc:2222 cname:braidnode"))
        #expect(video.contains("a=ssrc:3333 cname:braidnode"))
        #expect(answer.sections.map(\.direction) == [.sendonly, .sendonly])
        #expect(answer.sections[1].localSender == senders["1"])

        // A WHIP endpoint answering a recvonly offer has nothing to do: inactive, still bundled.
        let whip = try self.answer(Fixtures.whep, Fixtures.local(.receive))
        #expect(whip.sections.map(\.direction) == [.inactive, .inactive])
        #expect(Fixtures.sections(whip.text)[1].contains("a=inactive"))
    }

    @Test("video FEC: FlexFEC as Chromium offers it, Braid's own code where offered, else ULPFEC in RED, nothing otherwise")
    func videoFEC() throws {
        let senders = [
            "0": SDPLocalSender(trackID: "alice-audio", ssrc: 1111),
            "1": SDPLocalSender(trackID: "alice-video", ssrc: 2222, rtxSSRC: 3333, fecSSRC: 4444),
        ]
        // Chromium 156's recvonly video section lists flexfec-03 after VP8 and its RTX.
        let flexOffer = Fixtures.whep
            .replacing("m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103", with: "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 49")
            .replacing(
                "a=fmtp:103 apt=102\n",
                with: "a=fmtp:103 apt=102\na=rtpmap:49 flexfec-03/90000\na=rtcp-fb:49 goog-remb\na=rtcp-fb:49 transport-cc\na=fmtp:49 repair-window=10000000\n")
        let flex = try self.answer(flexOffer, Fixtures.local(.send, senders: senders))
        let video = Fixtures.sections(flex.text)[2]
        #expect(video[0] == "m=video 9 UDP/TLS/RTP/SAVPF 96 97 49")
        #expect(video.contains("a=rtpmap:49 flexfec-03/90000"))
        #expect(video.contains("a=fmtp:49 repair-window=10000000"))
        #expect(flex.sections[1].fecPayloadType == 49)
        #expect(flex.sections[1].fecEncoding == SDPLocalParameters.flexFECEncoding)
        // The media SSRC's a=ssrc line comes first: Chromium takes the first one as the media SSRC.
        let ssrcLines = video.filter { $0.hasPrefix("a=ssrc:") }
        #expect(ssrcLines == ["a=ssrc:2222 cname:braidnode", "a=ssrc:3333 cname:braidnode", "a=ssrc:4444 cname:braidnode"])
        #expect(video.contains("a=ssrc-group:FEC-FR 2222 4444"))
        #expect(flex.sections[0].fecPayloadType == nil)

        // Offered both: Braid's sliding-window code wins.
        let bothOffer = flexOffer
            .replacing("96 97 102 103 49", with: "96 97 102 103 49 50")
            .replacing("a=fmtp:49 repair-window=10000000\n", with: "a=fmtp:49 repair-window=10000000\na=rtpmap:50 x-braid-fec/90000\n")
        let both = try self.answer(bothOffer, Fixtures.local(.send, senders: senders))
        #expect(both.sections[1].fecPayloadType == 50)
        #expect(both.sections[1].fecEncoding == SDPLocalParameters.videoFECEncoding)
        #expect(!Fixtures.sections(both.text)[2].contains { $0.contains("flexfec") })

        // A browser without FlexFEC (Firefox; Chromium without its receive default) offers red and ulpfec:
        // ULPFEC inside RED, on the media SSRC, so no FEC-FR group.
        let ulpOffer = Fixtures.whep
            .replacing("m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103", with: "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 116 117 118")
            .replacing(
                "a=fmtp:103 apt=102\n",
                with: "a=fmtp:103 apt=102\na=rtpmap:116 red/90000\na=rtpmap:117 rtx/90000\na=fmtp:117 apt=116\na=rtpmap:118 ulpfec/90000\n")
        let ulp = try self.answer(ulpOffer, Fixtures.local(.send, senders: senders))
        let ulpVideo = Fixtures.sections(ulp.text)[2]
        #expect(ulpVideo[0] == "m=video 9 UDP/TLS/RTP/SAVPF 96 97 116 118")
        #expect(ulpVideo.contains("a=rtpmap:116 red/90000") && ulpVideo.contains("a=rtpmap:118 ulpfec/90000"))
        #expect(!ulpVideo.contains { $0.hasPrefix("a=fmtp:116") || $0.hasPrefix("a=fmtp:118") })  // none offered
        #expect(ulp.sections[1].redPayloadType == 116)
        #expect(ulp.sections[1].fecPayloadType == 118)
        #expect(ulp.sections[1].fecEncoding == SDPLocalParameters.ulpfecEncoding)
        #expect(!ulpVideo.contains { $0.contains("FEC-FR") || $0.contains("4444") })
        // Offered with FlexFEC too: FlexFEC, and no video RED.
        let ulpAndFlex = try self.answer(
            ulpOffer.replacing("96 97 102 103 116 117 118", with: "96 97 102 103 116 117 118 49")
                .replacing("a=rtpmap:118 ulpfec/90000\n", with: "a=rtpmap:118 ulpfec/90000\na=rtpmap:49 flexfec-03/90000\n"),
            Fixtures.local(.send, senders: senders))
        #expect(ulpAndFlex.sections[1].fecEncoding == SDPLocalParameters.flexFECEncoding)
        #expect(ulpAndFlex.sections[1].redPayloadType == nil)
        // Receiving (WHIP): a publisher's red and ulpfec are not taken.
        let ulpWHIP = try self.answer(
            ulpOffer.replacing("a=recvonly", with: "a=sendonly"), Fixtures.local(.receive))
        #expect(ulpWHIP.sections[1].fecPayloadType == nil && ulpWHIP.sections[1].redPayloadType == nil)

        // Not offered, or not sending (WHIP): no repair stream.
        let plain = try self.answer(Fixtures.whep, Fixtures.local(.send, senders: senders))
        #expect(plain.sections[1].fecPayloadType == nil)
        #expect(!Fixtures.sections(plain.text)[2].contains { $0.contains("FEC-FR") })
    }

    @Test("data channel section: rejected with port 0, mid kept, left out of BUNDLE")
    func dataChannelRejected() throws {
        let answer = try self.answer(Fixtures.dataChannel, Fixtures.local(.receive))
        let sections = Fixtures.sections(answer.text)
        #expect(sections[0].contains("a=group:BUNDLE 0"))
        self.expectTransportRules(sections[1], mid: "0")
        #expect(sections[2] == ["m=application 0 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0", "a=mid:1"])
        #expect(answer.bundleMids == ["0"])
        #expect(!answer.sections[1].accepted)
        #expect(answer.sections[1].rejectionReason == "data channels are not supported")
    }

    @Test("no common codec: the error names what was offered and what is supported")
    func noCommonCodec() throws {
        #expect(
            throws: SDPError(
                .noCommonCodec,
                "no common codec: offered H264/90000, AV1/90000; supported opus/48000/2, VP8/90000"
            )
        ) {
            try self.answer(Fixtures.unsupportedCodecs, Fixtures.local(.receive))
        }
        // With another section acceptable, the codec-less one is rejected and the reason recorded.
        let mixed = Fixtures.chromium.replacingOccurrences("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP7/90000")
        let answer = try self.answer(mixed, Fixtures.local(.receive))
        #expect(!answer.sections[1].accepted)
        #expect(answer.sections[1].rejectionReason?.hasPrefix("no common codec: offered VP7/90000, VP9/90000") == true)
        #expect(
            Fixtures.sections(answer.text)[2].prefix(1) == [
                "m=video 0 UDP/TLS/RTP/SAVPF 96 97 98 99 45 46 102 103 104 105"
            ]
        )
        #expect(answer.bundleMids == ["0"])
        #expect(Fixtures.sections(answer.text)[0].contains("a=group:BUNDLE 0"))
    }

    @Test("offers the node cannot take")
    func unsupportedOffers() throws {
        let passive = Fixtures.aiortc.replacingOccurrences("a=setup:actpass", "a=setup:passive")
        #expect(throws: SDPError.self) { try self.answer(passive, Fixtures.local(.receive)) }
        let active = Fixtures.aiortc.replacingOccurrences("a=setup:actpass", "a=setup:active")
        #expect(try self.answer(active, Fixtures.local(.receive)).remote.setup == .active)

        let noCredentials = Fixtures.aiortc.replacingOccurrences("a=ice-pwd:Xq8uVb2JmK4nLp6RsT0wYz\n", "")
        #expect(throws: SDPError(.unsupportedOffer, "the offer has no a=ice-ufrag/a=ice-pwd")) {
            try self.answer(noCredentials, Fixtures.local(.receive))
        }
        let noFingerprint = Fixtures.firefox.replacingOccurrences(
            "a=fingerprint:sha-256 \(Fixtures.fingerprintHex)\n",
            ""
        )
        #expect(throws: SDPError(.unsupportedOffer, "the offer has no a=fingerprint")) {
            try self.answer(noFingerprint, Fixtures.local(.receive))
        }
        let noMux = Fixtures.dataChannel.replacingOccurrences("a=rtcp-mux\n", "")
        do {
            _ = try self.answer(noMux, Fixtures.local(.receive))
            Issue.record("answered an offer without rtcp-mux")
        } catch {
            #expect(error.code == .unsupportedOffer)
            #expect(error.reason.contains("no a=rtcp-mux"))
            #expect(error.reason.contains("data channels are not supported"))
        }
    }

    @Test("an extension ID bound to two URIs in one BUNDLE group is refused")
    func conflictingExtmap() {
        let conflicting = Fixtures.chromium.replacingOccurrences(
            "a=extmap:9 http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time",
            "a=extmap:1 http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
        )
        do {
            _ = try self.answer(conflicting, Fixtures.local(.receive))
            Issue.record("answered a conflicting offer")
        } catch {
            #expect(error.code == .conflictingOffer)
        }
    }

    @Test("sections outside BUNDLE, and offers without BUNDLE")
    func bundleRules() throws {
        let partial = Fixtures.chromium.replacingOccurrences("a=group:BUNDLE 0 1", "a=group:BUNDLE 1")
        let answer = try self.answer(partial, Fixtures.local(.receive))
        #expect(answer.bundleMids == ["1"])
        #expect(!answer.sections[0].accepted)
        #expect(answer.sections[0].rejectionReason == "mid 0 is not in the BUNDLE group")

        let none = Fixtures.aiortc.replacingOccurrences("a=group:BUNDLE 0 1\n", "")
        let unbundled = try self.answer(none, Fixtures.local(.receive))
        #expect(unbundled.sections.map(\.accepted) == [true, false])
        #expect(!Fixtures.sections(unbundled.text)[0].contains { $0.hasPrefix("a=group") })
    }

    @Test("a mid used twice is accepted once")
    func duplicateMid() throws {
        let duplicated = Fixtures.aiortc.replacingOccurrences("a=mid:1", "a=mid:0")
        let answer = try self.answer(duplicated, Fixtures.local(.receive))
        #expect(answer.sections.map(\.accepted) == [true, false])
        #expect(answer.sections[1].rejectionReason == "mid 0 is used by an earlier section")
        #expect(answer.bundleMids == ["0"])
    }

    @Test("bad local parameters are refused")
    func badLocal() {
        var local = Fixtures.local(.receive)
        local.iceUfrag = "abc"
        #expect(throws: SDPError.self) { try SDPAnswerBuilder(local: local) }
        local = Fixtures.local(.receive)
        local.icePwd = "short"
        #expect(throws: SDPError.self) { try SDPAnswerBuilder(local: local) }
        local = Fixtures.local(.receive)
        local.iceUfrag = "has space"
        #expect(throws: SDPError.self) { try SDPAnswerBuilder(local: local) }
        local = Fixtures.local(.receive)
        local.fingerprint = SDPFingerprint(algorithm: "sha-256", bytes: [])
        #expect(throws: SDPError.self) { try SDPAnswerBuilder(local: local) }
    }

    @Test("every fixture's answer keeps m-line count, order, kind and mid", arguments: Fixtures.all.map(\.name))
    func structure(name: String) throws {
        let text = try #require(Fixtures.all.first { $0.name == name }).text
        let offer = try SessionDescription(parsing: text)
        guard let answer = try? SDPAnswerBuilder(local: Fixtures.local(.receive)).answer(to: offer) else {
            #expect(name == "unsupportedCodecs")
            return
        }
        #expect(answer.session.media.map(\.kind) == offer.media.map(\.kind))
        #expect(answer.session.media.map(\.mid) == offer.media.map(\.mid))
        #expect(answer.session.iceLite)
        #expect(answer.session.media.allSatisfy { !$0.has("ice-lite") })
        for (media, section) in zip(answer.session.media, answer.sections) {
            #expect((media.port != 0) == section.accepted)
            if section.accepted {
                #expect(media.fingerprints.count == 1)
                #expect(media.setup == .passive)
                // PTs and extension IDs are the offer's.
                let offered = offer.media[section.index]
                for map in media.rtpMaps { #expect(offered.rtpMap(for: map.payloadType)?.encoding == map.encoding) }
                for ext in media.extMaps { #expect(offered.extMaps.contains { $0.id == ext.id && $0.uri == ext.uri }) }
            }
        }
    }
}

extension String {
    /// Replaces every occurrence of `target` (Foundation-free).
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
