import BraidClient
import BraidICE
import BraidSDP
import BraidSecurity
import BraidWire
import Foundation
import Testing

@Suite("Janus VideoRoom signalling: JSON messages and the subscriber's answer (socket-free)")
struct JanusSignallingTests {
    @Test("An event with a JSEP offer: sender, transaction, plugin data and SDP")
    func eventWithJSEP() throws {
        let text = """
            {"janus":"event","session_id":123,"transaction":"t1","sender":456,
             "plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"attached","room":42,"id":7}},
             "jsep":{"type":"offer","sdp":"v=0\\r\\n"}}
            """
        let message = try JanusMessage(json: text)
        #expect(message.kind == "event")
        #expect(message.transaction == "t1")
        #expect(message.sender == 456)
        #expect(message.sessionID == 123)
        #expect(message.videoroom == "attached")
        #expect(message.jsep?.type == "offer")
        #expect(message.jsep?.sdp == "v=0\r\n")
        #expect(message.failure == nil)
    }

    @Test("ack, success with data.id, keepalive array")
    func replies() throws {
        #expect(try JanusMessage(json: #"{"janus":"ack","session_id":1,"transaction":"x"}"#).kind == "ack")
        let success = try JanusMessage(json: #"{"janus":"success","transaction":"x","data":{"id":8765432109876}}"#)
        #expect(success.dataID == 8_765_432_109_876)
        let events = try JanusMessage.events(json: #"[{"janus":"keepalive"},{"janus":"webrtcup","sender":3}]"#)
        #expect(events.map(\.kind) == ["keepalive", "webrtcup"])
        #expect(events[1].sender == 3)
    }

    @Test("Core errors 457/458 and the VideoRoom's 428 are errors with code and reason")
    func errors() throws {
        let noSession = try JanusMessage(
            json: #"{"janus":"error","transaction":"x","error":{"code":458,"reason":"No such session 1"}}"#)
        #expect(noSession.failure == .api(code: 458, reason: "No such session 1"))
        let badPath = try JanusMessage(
            json: #"{"janus":"error","error":{"code":457,"reason":"Unhandled request 'foo' at this path"}}"#)
        #expect(badPath.failure == .api(code: 457, reason: "Unhandled request 'foo' at this path"))
        let noFeed = try JanusMessage(
            json: #"""
                {"janus":"event","transaction":"y","sender":5,"plugindata":{"plugin":"janus.plugin.videoroom",
                 "data":{"videoroom":"event","error_code":428,"error":"No such feed (99)"}}}
                """#)
        #expect(noFeed.failure == .plugin(code: 428, reason: "No such feed (99)"))
        #expect(noFeed.failure?.description.contains("error 428") == true)
    }

    @Test("Malformed input is an error, never a crash", arguments: [
        "", "not json", "[1,2]", #"{"transaction":"x"}"#, #"{"janus":5}"#, #"{"janus":"event","jsep":{"type":"offer"}}"#,
        #"{"janus":"success","data":{"id":-4}}"#, #"{"janus":"success","data":{"id":"abc"}}"#,
    ])
    func malformed(text: String) {
        do {
            let message = try JanusMessage(json: text)
            // Only the id cases parse; their id is then unusable.
            #expect(message.dataID == nil)
        } catch {
            #expect(error.description.contains("malformed"))
        }
    }

    @Test("Requests: create, attach, message with JSEP, VideoRoom join and start")
    func requests() throws {
        #expect(JanusRequest.createSession(transaction: "a") == #"{"janus":"create","transaction":"a"}"#)
        #expect(
            JanusRequest.attach(transaction: "b")
                == #"{"janus":"attach","plugin":"janus.plugin.videoroom","transaction":"b"}"#)
        let text = JanusRequest.message(
            transaction: "c", body: JanusRequest.joinSubscriber(room: 42, feeds: [7]), jsep: ("answer", "v=0\r\n"))
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["janus"] as? String == "message")
        let body = try #require(object["body"] as? [String: Any])
        #expect(body["ptype"] as? String == "subscriber")
        #expect((body["streams"] as? [[String: Any]])?.first?["feed"] as? Int == 7)
        #expect((object["jsep"] as? [String: Any])?["sdp"] as? String == "v=0\r\n")
        #expect(JanusRequest.json(JanusRequest.start().fields) == #"{"request":"start"}"#)
    }

    /// A subscriber offer shaped as Janus 1.1.2's VideoRoom writes it (audio + video with RTX).
    static let janusOffer = [
        "v=0", "o=- 1733300000000000 1 IN IP4 10.200.0.2", "s=VideoRoom 1234", "t=0 0",
        "a=group:BUNDLE 0 1", "a=ice-options:trickle", "a=fingerprint:sha-256 " + Array(repeating: "AB", count: 32).joined(separator: ":"),
        "a=extmap-allow-mixed", "a=msid-semantic: WMS *",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 10.200.0.2", "a=sendonly", "a=mid:0", "a=rtcp-mux",
        "a=ice-ufrag:JnUf", "a=ice-pwd:JanusPasswordJanusPassword", "a=ice-options:trickle", "a=setup:actpass",
        "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid", "a=extmap:4 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:9 urn:3gpp:video-orientation",
        "a=msid:janus janus0", "a=ssrc:1111 cname:janus",
        "a=candidate:1 1 udp 2015363327 10.200.0.2 20000 typ host", "a=end-of-candidates",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "c=IN IP4 10.200.0.2", "a=sendonly", "a=mid:1", "a=rtcp-mux",
        "a=ice-ufrag:JnUf", "a=ice-pwd:JanusPasswordJanusPassword", "a=ice-options:trickle", "a=setup:actpass",
        "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 ccm fir", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli",
        "a=rtcp-fb:96 goog-remb", "a=rtcp-fb:96 transport-cc",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "a=extmap:12 urn:3gpp:video-orientation",
        "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96", "a=ssrc-group:FID 2222 3333",
        "a=msid:janus janus1", "a=ssrc:2222 cname:janus", "a=ssrc:3333 cname:janus",
        "a=candidate:1 1 udp 2015363327 10.200.0.2 20000 typ host", "a=end-of-candidates",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 10.200.0.2", "a=mid:2", "a=sctp-port:5000",
        "",
    ].joined(separator: "\r\n")

    @Test("The answer to a Janus offer: ice-lite, passive, Opus and VP8+RTX with the offer's PTs and IDs")
    func subscriberAnswer() throws {
        let certificate = try DTLSCertificate(commonName: "test")
        let credentials = ICECredentials.random()
        let candidate = SDPCandidate(foundation: "1", priority: 2_130_706_431, address: "10.200.0.1", port: 40000)
        let answer = try JanusSubscriberAnswer(
            offer: Self.janusOffer, credentials: credentials, fingerprint: certificate.fingerprint,
            candidates: [candidate])
        let sdp = try SessionDescription(parsing: answer.sdp)
        #expect(sdp.iceLite)
        #expect(sdp.bundleMids == ["0", "1"])
        #expect(sdp.media.count == 3)
        let audio = sdp.media[0]
        let video = sdp.media[1]
        #expect(audio.formats == ["111"] && audio.direction == .recvonly && audio.setup == .passive)
        #expect(audio.iceUfrag == credentials.ufrag && audio.candidates.first?.port == 40000)
        #expect(audio.extMaps.map(\.id) == [1, 4])
        #expect(video.formats == ["96", "97"] && video.mid == "1" && video.setup == .passive)
        #expect(video.extMaps.map(\.uri).contains("urn:3gpp:video-orientation") == false)
        #expect(Set(video.rtcpFeedback.map { $0.type + ($0.parameter.map { " " + $0 } ?? "") })
            == ["ccm fir", "nack", "nack pli", "transport-cc"])
        #expect(video.parameters(for: 97).contains { $0.name == "apt" && $0.value == "96" })
        #expect(sdp.media[2].port == 0 && sdp.media[2].mid == "2")
        #expect(video.fingerprints.first?.bytes == certificate.fingerprint.bytes)

        let remote = answer.remote
        #expect(remote.iceUfrag == "JnUf" && remote.icePassword == "JanusPasswordJanusPassword")
        #expect(remote.dtlsRole == .server)
        #expect(remote.sections.count == 2)
        #expect(remote.sections[0].payloadType == 111 && remote.sections[0].ssrc == 1111)
        #expect(remote.sections[1].payloadType == 96 && remote.sections[1].rtxPayloadType == 97)
        #expect(remote.sections[1].ssrc == 2222 && remote.sections[1].rtxSSRC == 3333)
        #expect(remote.sections[1].extensions.transportSequenceNumber == 3)
        #expect(remote.candidates.count == 1)
    }

    @Test("An offer without Opus or VP8, or without ICE credentials, is refused with a reason")
    func unusableOffers() throws {
        let certificate = try DTLSCertificate(commonName: "test")
        let noCodec = Self.janusOffer.replacingOccurrences(of: "opus/48000/2", with: "PCMU/8000")
            .replacingOccurrences(of: "VP8/90000", with: "H264/90000")
        #expect(throws: BraidClientError.self) {
            try JanusSubscriberAnswer(
                offer: noCodec, credentials: .random(), fingerprint: certificate.fingerprint, candidates: [])
        }
        let noICE = Self.janusOffer.replacingOccurrences(of: "a=ice-ufrag:JnUf\r\n", with: "")
        #expect(throws: BraidClientError.self) {
            try JanusSubscriberAnswer(
                offer: noICE, credentials: .random(), fingerprint: certificate.fingerprint, candidates: [])
        }
        #expect(throws: BraidClientError.self) {
            try JanusSubscriberAnswer(
                offer: "garbage", credentials: .random(), fingerprint: certificate.fingerprint, candidates: [])
        }
    }

    @Test("CaptureTimeLog: 15-bit picture IDs, unknown is nil")
    func captureLog() {
        let log = CaptureTimeLog()
        #expect(log.captureTime(pictureID: 5) == nil)
        log.record(pictureID: 5, captureTime: 99)
        #expect(log.captureTime(pictureID: 5) == 99)
        #expect(log.captureTime(pictureID: 5 | 0x8000) == 99)
    }
}
