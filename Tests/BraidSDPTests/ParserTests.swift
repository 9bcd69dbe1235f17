import BraidSDP
import Testing

@Suite("SDP parsing")
struct ParserTests {
    @Test("Chromium offer: session and media fields")
    func chromiumFields() throws {
        let offer = try SessionDescription(parsing: Fixtures.chromium)
        #expect(offer.version == 0)
        #expect(offer.origin.sessionID == "4215775240449105457")
        #expect(offer.origin.sessionVersion == "2")
        #expect(offer.origin.address == "127.0.0.1")
        #expect(offer.sessionName == "-")
        #expect(offer.timings == [SDPTiming(start: 0, stop: 0)])
        #expect(offer.bundleMids == ["0", "1"])
        #expect(offer.extmapAllowMixed)
        #expect(!offer.iceLite)
        #expect(offer.media.count == 2)

        let audio = offer.media[0]
        #expect(audio.kind == .audio)
        #expect(audio.port == 9)
        #expect(audio.proto == "UDP/TLS/RTP/SAVPF")
        #expect(audio.formats == ["111", "63", "9", "0", "8", "13", "110", "126"])
        #expect(audio.connections == [SDPConnection(address: "0.0.0.0")])
        #expect(audio.mid == "0")
        #expect(audio.direction == .sendonly)
        #expect(audio.iceUfrag == "Lx7d")
        #expect(audio.icePwd == "bM5u3F0l2wQpV1nX9sYt8cZr")
        #expect(audio.iceOptions == ["trickle"])
        #expect(audio.setup == .actpass)
        #expect(audio.rtcpMux && audio.rtcpReducedSize && !audio.rtcpMuxOnly)
        #expect(audio.msids == [SDPMsid(streamID: "7c5d0b5e", trackID: "2f7a9c10")])
        #expect(audio.rtpMap(for: 111) == SDPRTPMap(payloadType: 111, encoding: "opus", clockRate: 48000, channels: 2))
        #expect(audio.rtpMap(for: 0) == SDPRTPMap(payloadType: 0, encoding: "PCMU", clockRate: 8000))
        #expect(audio.parameters(for: 111) == [SDPParameter("minptime", "10"), SDPParameter("useinbandfec", "1")])
        #expect(audio.parameters(for: 63) == [SDPParameter("111/111")])
        #expect(audio.rtcpFeedback == [SDPRTCPFeedback(payloadType: 111, type: "transport-cc")])
        #expect(audio.ssrcAttributes.first == SDPSSRCAttribute(ssrc: 3_735_928_559, name: "cname", value: "R2d2C3po"))
        #expect(audio.extMaps.map(\.id) == [1, 2, 3, 4])

        let fingerprint = try #require(audio.fingerprints.first)
        #expect(fingerprint.algorithm == "sha-256")
        #expect(fingerprint.bytes.count == 32)
        #expect(fingerprint.bytes.first == 0xD2 && fingerprint.bytes.last == 0x0F)
        #expect(fingerprint.hex == Fixtures.fingerprintHex)

        let video = offer.media[1]
        #expect(video.rids.map(\.id) == ["q", "h", "f"])
        #expect(video.rids.allSatisfy { $0.direction == .send })
        #expect(video.simulcast == SDPSimulcast(send: [[.init(rid: "q")], [.init(rid: "h")], [.init(rid: "f")]]))
        #expect(
            video.rtcpFeedback.filter { $0.payloadType == 96 }.map(\.feedbackName)
                == ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]
        )
        #expect(video.extMaps.first { $0.uri == SDPHeaderExtensionURI.rid }?.id == 10)
        // Unknown attributes are kept verbatim, in order.
        #expect(video.attributes[0] == SDPAttribute("rtcp", "9 IN IP4 0.0.0.0"))
        #expect(offer.attributes.last == SDPAttribute("msid-semantic", " WMS 7c5d0b5e"))
    }

    @Test("Firefox offer: session-level fingerprint, extmap directions, FID groups")
    func firefoxFields() throws {
        let offer = try SessionDescription(parsing: Fixtures.firefox)
        #expect(offer.origin.username == "mozilla...THIS_IS_SDPARTA-99.0")
        #expect(offer.fingerprints.count == 1)
        #expect(offer.media[0].fingerprints.isEmpty)
        #expect(offer.iceOptions == ["trickle"])
        let video = offer.media[1]
        let rid = try #require(video.extMaps.first { $0.id == 8 })
        #expect(rid.direction == .sendonly)
        #expect(rid.uri == SDPHeaderExtensionURI.rid)
        #expect(video.ssrcGroups.count == 3)
        #expect(video.ssrcGroups[0] == SDPSSRCGroup(semantics: "FID", ssrcs: [1_160_417_003, 2_394_584_946]))
        #expect(video.parameters(for: 120) == [SDPParameter("max-fs", "12288"), SDPParameter("max-fr", "60")])
        #expect(offer.media[0].parameters(for: 101) == [SDPParameter("0-15")])
        #expect(offer.media[0].rtpMap(for: 9)?.channels == 1)
    }

    @Test("aiortc offer: session-level credentials, candidates, end-of-candidates")
    func aiortcFields() throws {
        let offer = try SessionDescription(parsing: Fixtures.aiortc)
        #expect(offer.iceUfrag == "f3Zq")
        #expect(offer.icePwd == "Xq8uVb2JmK4nLp6RsT0wYz")
        #expect(offer.media[0].iceUfrag == nil)
        #expect(offer.media[0].port == 52044)
        #expect(offer.media[0].direction == .sendrecv)
        #expect(offer.media[0].endOfCandidates)
        let candidate = try #require(offer.media[0].candidates.first)
        #expect(candidate.foundation == "9a6e1f0c1b2c3d4e5f60718293a4b5c6")
        #expect(candidate.component == 1)
        #expect(candidate.transport == "udp")
        #expect(candidate.priority == 2_130_706_431)
        #expect(candidate.address == "192.0.2.10")
        #expect(candidate.port == 52044)
        #expect(candidate.kind == .host)
    }

    @Test("data channel section is recognised")
    func dataChannel() throws {
        let offer = try SessionDescription(parsing: Fixtures.dataChannel)
        #expect(!offer.media[0].isDataChannel)
        #expect(offer.media[1].isDataChannel)
        #expect(offer.media[1].sctpPort == 5000)
        #expect(offer.media[1].formats == ["webrtc-datachannel"])
        let legacy = try SDPLineParser_parse("m=application 9 DTLS/SCTP 5000\r\na=sctpmap:5000 webrtc-datachannel 1024")
        #expect(legacy.media[0].isDataChannel)
    }

    @Test("CRLF and LF line endings give the same model", arguments: Fixtures.all.map(\.name))
    func lineEndings(name: String) throws {
        let text = try #require(Fixtures.all.first { $0.name == name }).text
        let lf = try SessionDescription(parsing: text)
        let crlf = try SessionDescription(parsing: text.split(separator: "\n").joined(separator: "\r\n") + "\r\n")
        #expect(lf == crlf)
    }

    @Test(
        "serialize then parse gives the same model; text is CRLF and line-for-line",
        arguments: Fixtures.all.map(\.name)
    )
    func roundTrip(name: String) throws {
        let text = try #require(Fixtures.all.first { $0.name == name }).text
        let parsed = try SessionDescription(parsing: text)
        let serialized = parsed.text
        #expect(try SessionDescription(parsing: serialized) == parsed)
        #expect(serialized.hasSuffix("\r\n"))
        #expect(!serialized.replacingCRLF.contains("\r"))
        // The fixtures are in RFC 8866 order, so the text itself survives.
        #expect(serialized == text.split(separator: "\n").joined(separator: "\r\n") + "\r\n")
        // Bytes input parses the same.
        #expect(try SessionDescription(parsing: Array(text.utf8)) == parsed)
    }

    @Test("typed attributes render back to their text")
    func typedRoundTrip() throws {
        let values: [(String, String)] = [
            ("rtpmap", "111 opus/48000/2"), ("rtpmap", "96 VP8/90000"), ("fmtp", "97 apt=96"),
            ("fmtp", "111 minptime=10;useinbandfec=1"), ("rtcp-fb", "* transport-cc"), ("rtcp-fb", "96 nack pli"),
            ("extmap", "8/sendonly urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
            ("extmap", "4096 urn:x-test some attributes"), ("ssrc", "1 cname:x"), ("ssrc-group", "SIM 1 2 3"),
            ("rid", "q send pt=96,97;max-width=320;max-height=180"), ("rid", "f recv"),
            ("simulcast", "send q;~h,h2;f recv a"), ("group", "BUNDLE 0 1 2"), ("msid", "- track"),
            ("candidate", "1 1 udp 2130706431 203.0.113.5 3478 typ host"),
            ("candidate", "842163049 1 udp 1677729535 198.51.100.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0"),
            ("candidate", "4 1 TCP 1518280447 192.0.2.1 9 typ host tcptype active"),
        ]
        for (name, value) in values {
            let v = Substring(value)
            let rendered: String =
                switch name {
                case "rtpmap": try SDPRTPMap(parsing: v).attributeValue
                case "fmtp": try SDPFormatParameters(parsing: v).attributeValue
                case "rtcp-fb": try SDPRTCPFeedback(parsing: v).attributeValue
                case "extmap": try SDPExtMap(parsing: v).attributeValue
                case "ssrc": try SDPSSRCAttribute(parsing: v).attributeValue
                case "ssrc-group": try SDPSSRCGroup(parsing: v).attributeValue
                case "rid": try SDPRID(parsing: v).attributeValue
                case "simulcast": try SDPSimulcast(parsing: v).attributeValue
                case "group": try SDPGroup(parsing: v).attributeValue
                case "msid": try SDPMsid(parsing: v).attributeValue
                default: try SDPCandidate(parsing: v).attributeValue
                }
            #expect(rendered == value, "\(name)")
        }
    }

    @Test("rid restrictions, simulcast alternatives, paused streams and the draft-03 form")
    func ridAndSimulcast() throws {
        let rid = try SDPRID(parsing: "h send pt=96,97;max-width=1280;max-fps=30")
        #expect(rid.id == "h")
        #expect(rid.payloadTypes == [96, 97])
        #expect(rid.restrictions == [SDPParameter("max-width", "1280"), SDPParameter("max-fps", "30")])

        let simulcast = try SDPSimulcast(parsing: "send 1,~4;2;~3 recv c")
        #expect(
            simulcast.send == [
                [.init(rid: "1"), .init(rid: "4", paused: true)], [.init(rid: "2")],
                [.init(rid: "3", paused: true)],
            ]
        )
        #expect(simulcast.recv == [[.init(rid: "c")]])
        let draft = try SDPSimulcast(parsing: " send rid=a;b;c")
        #expect(draft.send.map { $0[0].rid } == ["a", "b", "c"])
        #expect(throws: SDPError.self) { try SDPSimulcast(parsing: "send q;;f") }
        #expect(throws: SDPError.self) { try SDPSimulcast(parsing: "sideways q") }
        #expect(throws: SDPError.self) { try SDPSimulcast(parsing: "send q send h") }
    }

    @Test("candidate with raddr/rport and extensions")
    func candidateDetails() throws {
        let candidate = try SDPCandidate(
            parsing: "candidate:842163049 1 udp 1677729535 198.51.100.7 46154 typ srflx raddr 10.0.0.2 rport 51000 "
                + "generation 0 ufrag EsAw network-id 1"
        )
        #expect(candidate.kind == .srflx)
        #expect(candidate.relatedAddress == "10.0.0.2")
        #expect(candidate.relatedPort == 51000)
        #expect(
            candidate.extensions == [
                SDPParameter("generation", "0"), SDPParameter("ufrag", "EsAw"),
                SDPParameter("network-id", "1"),
            ]
        )
        #expect(throws: SDPError.self) { try SDPCandidate(parsing: "1 1 udp 1 192.0.2.1 9 typ host generation") }
        #expect(throws: SDPError.self) { try SDPCandidate(parsing: "1 0 udp 1 192.0.2.1 9 typ host") }
        #expect(throws: SDPError.self) { try SDPCandidate(parsing: "1 1 udp 4294967296 192.0.2.1 9 typ host") }
        #expect(throws: SDPError.self) { try SDPCandidate(parsing: "1 1 udp 1 192.0.2.1 65536 typ host") }
        #expect(throws: SDPError.self) { try SDPCandidate(parsing: "1 1 udp 1 192.0.2.1 9 type host") }
    }

    @Test(
        "malformed lines give typed errors naming the line",
        arguments: [
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 9 UDP/TLS/RTP/SAVPF\n", 5, "m= line needs 4+ fields"),
            ("v=0\no=- 1 1 IN IP4\ns=-\nt=0 0\n", 2, "o= line needs 6 fields"),
            ("v=1\n", 1, "v= must be 0"),
            ("o=- 1 1 IN IP4 127.0.0.1\n", 1, "SDP must start with v="),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nx=1\n", 5, "unknown line type x="),
            (
                "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 9 RTP/AVP 0\no=- 1 1 IN IP4 1.1.1.1\n", 6,
                "o= line is not allowed here"
            ),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 99999 RTP/AVP 0\n", 5, "m= port is not a number"),
            (
                "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 9 RTP/AVP 0\na=rtpmap:128 x/90000\n", 6,
                "a=rtpmap payload type must be a number in 0...127"
            ),
            (
                "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 9 RTP/AVP 0\na=rtpmap:96 VP8\n", 6,
                "a=rtpmap encoding"
            ),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 9 RTP/AVP 0\na=extmap:0 urn:x\n", 6, "a=extmap id"),
            (
                "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 9 RTP/AVP 0\na=extmap:3/sideways urn:x\n", 6,
                "a=extmap direction"
            ),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\na=fingerprint:sha-256 AB:C\n", 5, "colon-separated hex"),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\na=fingerprint:sha-256 +F:AB\n", 5, "colon-separated hex"),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\na=setup:sometimes\n", 5, "a=setup must be"),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=video 9 RTP/AVP 96\na=rid:q up\n", 6, "a=rid direction"),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=video 9 RTP/AVP 96\na=ssrc:x cname:y\n", 6, "a=ssrc needs"),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=video 9 RTP/AVP 96\na=mid:\n", 6, "a=mid needs"),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nmalformed\n", 5, "expected <letter>=<value>"),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nm=audio 9 RTP/AVP 0\n", 4, "no t= line before the first m= line"),
            ("v=0\no=- x 1 IN IP4 127.0.0.1\n", 2, "decimal numbers"),
            ("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\nb=AS:-1\n", 5, "b= line must be"),
        ] as [(String, Int, String)]
    )
    func malformed(text: String, line: Int, reason: String) {
        do {
            _ = try SessionDescription(parsing: text)
            Issue.record("parsed: \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.reason.contains(reason), "\(error)")
            #expect(error.description.hasPrefix("line \(line): "))
        }
    }

    @Test("the m= error reads as documented")
    func mLineMessage() {
        let text = "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nt=0 0\na=group:BUNDLE 0\na=ice-lite\nm=audio 9\n"
        #expect(throws: SDPError(.malformedLine, "m= line needs 4+ fields, found 2", line: 7)) {
            try SessionDescription(parsing: text)
        }
    }

    @Test("missing mandatory lines")
    func missingLines() {
        for text in ["", "v=0\n", "v=0\no=- 1 1 IN IP4 127.0.0.1\n", "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\n"] {
            #expect(throws: SDPError.self) { try SessionDescription(parsing: text) }
            do { _ = try SessionDescription(parsing: text) } catch { #expect(error.code == .missingLine) }
        }
    }

    @Test("limits: size, line length, media sections, attributes")
    func limits() throws {
        let header = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        let tooBig = header + String(repeating: "a=x\r\n", count: 20000)
        #expect(throws: SDPError.self) { try SessionDescription(parsing: tooBig) }
        do { _ = try SessionDescription(parsing: tooBig) } catch { #expect(error.code == .limitExceeded) }

        let longLine = header + "a=x:" + String(repeating: "y", count: 5000) + "\r\n"
        do { _ = try SessionDescription(parsing: longLine) } catch {
            #expect(error.code == .limitExceeded)
            #expect(error.line == 5)
        }

        let manyMedia = header + String(repeating: "m=audio 9 RTP/AVP 0\r\n", count: 65)
        do { _ = try SessionDescription(parsing: manyMedia) } catch {
            #expect(error.code == .limitExceeded)
            #expect(error.line == 69)
        }
        _ = try SessionDescription(parsing: header + String(repeating: "m=audio 9 RTP/AVP 0\r\n", count: 64))

        let limits = SDPLimits(maxAttributesPerSection: 3)
        let manyAttributes = header + "m=audio 9 RTP/AVP 0\r\n" + String(repeating: "a=x\r\n", count: 4)
        do { _ = try SessionDescription(parsing: manyAttributes, limits: limits) } catch {
            #expect(error.code == .limitExceeded)
            #expect(error.line == 9)
        }
    }

    @Test("encoding: invalid UTF-8, NUL and bare CR are rejected")
    func encoding() {
        var bytes = Array("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=".utf8)
        bytes += [0xC3, 0x28]
        #expect(throws: SDPError(.invalidEncoding, "SDP is not valid UTF-8")) { try SessionDescription(parsing: bytes) }
        do { _ = try SessionDescription(parsing: "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=a\u{0}b\n") } catch {
            #expect(error.code == .invalidEncoding)
            #expect(error.line == 3)
        }
        do { _ = try SessionDescription(parsing: "v=0\no=- 1 1 IN\rIP4 127.0.0.1\n") } catch {
            #expect(error.code == .invalidEncoding)
        }
    }

    @Test("building a model by hand and serializing it")
    func buildAndSerialize() throws {
        var media = SDPMediaDescription(kind: .audio, port: 9, proto: "UDP/TLS/RTP/SAVPF", formats: ["111"])
        media.attributes = [SDPAttribute("mid", "a"), SDPAttribute("rtcp-mux")]
        let description = SessionDescription(
            origin: SDPOrigin(sessionID: "1", sessionVersion: "2"),
            attributes: [SDPAttribute("ice-lite")],
            media: [media]
        )
        #expect(
            description.text == """
                v=0\r
                o=- 1 2 IN IP4 127.0.0.1\r
                s=-\r
                t=0 0\r
                a=ice-lite\r
                m=audio 9 UDP/TLS/RTP/SAVPF 111\r
                a=mid:a\r
                a=rtcp-mux\r

                """
        )
        #expect(try SessionDescription(parsing: description.text) == description)
    }
}

/// Parses a media-only snippet under a minimal session header.
private func SDPLineParser_parse(_ mediaLines: String) throws -> SessionDescription {
    try SessionDescription(parsing: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" + mediaLines + "\r\n")
}

extension String {
    var replacingCRLF: String {
        self.split(separator: "\r\n", omittingEmptySubsequences: false).joined(separator: "\n")
    }
}
