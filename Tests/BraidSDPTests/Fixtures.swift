import BraidSDP

/// Offers shaped like the ones real clients send (PTs, extmap IDs and attribute order as those stacks
/// write them); credentials, fingerprints and addresses are made up.
enum Fixtures {
    static let fingerprintHex =
        "D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F"

    /// Chromium publishing (WHIP): opus + red, VP8 + rtx first, three-layer simulcast, transport-cc.
    static let chromium = """
        v=0
        o=- 4215775240449105457 2 IN IP4 127.0.0.1
        s=-
        t=0 0
        a=group:BUNDLE 0 1
        a=extmap-allow-mixed
        a=msid-semantic: WMS 7c5d0b5e
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
        c=IN IP4 0.0.0.0
        a=rtcp:9 IN IP4 0.0.0.0
        a=ice-ufrag:Lx7d
        a=ice-pwd:bM5u3F0l2wQpV1nX9sYt8cZr
        a=ice-options:trickle
        a=fingerprint:sha-256 \(fingerprintHex)
        a=setup:actpass
        a=mid:0
        a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
        a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
        a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
        a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
        a=sendonly
        a=msid:7c5d0b5e 2f7a9c10
        a=rtcp-mux
        a=rtcp-rsize
        a=rtpmap:111 opus/48000/2
        a=rtcp-fb:111 transport-cc
        a=fmtp:111 minptime=10;useinbandfec=1
        a=rtpmap:63 red/48000/2
        a=fmtp:63 111/111
        a=rtpmap:9 G722/8000
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=rtpmap:13 CN/8000
        a=rtpmap:110 telephone-event/48000
        a=rtpmap:126 telephone-event/8000
        a=ssrc:3735928559 cname:R2d2C3po
        a=ssrc:3735928559 msid:7c5d0b5e 2f7a9c10
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 45 46 102 103 104 105
        c=IN IP4 0.0.0.0
        a=rtcp:9 IN IP4 0.0.0.0
        a=ice-ufrag:Lx7d
        a=ice-pwd:bM5u3F0l2wQpV1nX9sYt8cZr
        a=ice-options:trickle
        a=fingerprint:sha-256 \(fingerprintHex)
        a=setup:actpass
        a=mid:1
        a=extmap:14 urn:ietf:params:rtp-hdrext:toffset
        a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
        a=extmap:13 urn:3gpp:video-orientation
        a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
        a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay
        a=extmap:6 http://www.webrtc.org/experiments/rtp-hdrext/video-content-type
        a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/video-timing
        a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/color-space
        a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
        a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
        a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
        a=extmap:9 http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time
        a=sendonly
        a=msid:7c5d0b5e 9e1b4d22
        a=rtcp-mux
        a=rtcp-rsize
        a=rtpmap:96 VP8/90000
        a=rtcp-fb:96 goog-remb
        a=rtcp-fb:96 transport-cc
        a=rtcp-fb:96 ccm fir
        a=rtcp-fb:96 nack
        a=rtcp-fb:96 nack pli
        a=rtpmap:97 rtx/90000
        a=fmtp:97 apt=96
        a=rtpmap:98 VP9/90000
        a=rtcp-fb:98 goog-remb
        a=rtcp-fb:98 transport-cc
        a=rtcp-fb:98 ccm fir
        a=rtcp-fb:98 nack
        a=rtcp-fb:98 nack pli
        a=fmtp:98 profile-id=0
        a=rtpmap:99 rtx/90000
        a=fmtp:99 apt=98
        a=rtpmap:45 AV1/90000
        a=rtcp-fb:45 nack
        a=fmtp:45 level-idx=5;profile=0;tier=0
        a=rtpmap:46 rtx/90000
        a=fmtp:46 apt=45
        a=rtpmap:102 H264/90000
        a=rtcp-fb:102 nack
        a=rtcp-fb:102 nack pli
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
        a=rtpmap:103 rtx/90000
        a=fmtp:103 apt=102
        a=rtpmap:104 red/90000
        a=rtpmap:105 ulpfec/90000
        a=rid:q send
        a=rid:h send
        a=rid:f send
        a=simulcast:send q;h;f

        """

    /// Firefox publishing: session-level fingerprint, different PTs/IDs, `/sendonly` RID extmaps,
    /// per-layer SSRCs with FID groups beside the rids.
    static let firefox = """
        v=0
        o=mozilla...THIS_IS_SDPARTA-99.0 7052848360639826063 0 IN IP4 0.0.0.0
        s=-
        t=0 0
        a=fingerprint:sha-256 \(fingerprintHex)
        a=group:BUNDLE 0 1
        a=ice-options:trickle
        a=msid-semantic:WMS *
        m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101
        c=IN IP4 0.0.0.0
        a=sendonly
        a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
        a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level
        a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid
        a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1
        a=fmtp:101 0-15
        a=ice-pwd:7a3f0d8e26b1c9a45e0f1d2c3b4a5968
        a=ice-ufrag:3c8e41a2
        a=mid:0
        a=msid:{5f1b2c3d-0000-4000-8000-000000000001} {a3c90000-0000-4000-8000-000000000002}
        a=rtcp-mux
        a=rtpmap:109 opus/48000/2
        a=rtpmap:9 G722/8000/1
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=rtpmap:101 telephone-event/8000
        a=setup:actpass
        a=ssrc:2655508255 cname:{735484ea-0000-4000-8000-000000000003}
        m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98 123 122 119
        c=IN IP4 0.0.0.0
        a=sendonly
        a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid
        a=extmap:4 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
        a=extmap:5 urn:ietf:params:rtp-hdrext:toffset
        a=extmap:6/recvonly http://www.webrtc.org/experiments/rtp-hdrext/playout-delay
        a=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
        a=extmap:8/sendonly urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
        a=extmap:9/sendonly urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
        a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1
        a=fmtp:97 profile-level-id=42e01f;level-asymmetry-allowed=1
        a=fmtp:120 max-fs=12288;max-fr=60
        a=fmtp:124 apt=120
        a=fmtp:121 max-fs=12288;max-fr=60
        a=fmtp:125 apt=121
        a=fmtp:127 apt=126
        a=fmtp:98 apt=97
        a=fmtp:119 apt=122
        a=ice-pwd:7a3f0d8e26b1c9a45e0f1d2c3b4a5968
        a=ice-ufrag:3c8e41a2
        a=mid:1
        a=msid:{5f1b2c3d-0000-4000-8000-000000000001} {b7d20000-0000-4000-8000-000000000004}
        a=rid:h send
        a=rid:m send
        a=rid:l send
        a=rtcp-fb:120 nack
        a=rtcp-fb:120 nack pli
        a=rtcp-fb:120 ccm fir
        a=rtcp-fb:120 goog-remb
        a=rtcp-fb:120 transport-cc
        a=rtcp-fb:121 nack
        a=rtcp-fb:121 nack pli
        a=rtcp-fb:121 ccm fir
        a=rtcp-fb:121 goog-remb
        a=rtcp-fb:121 transport-cc
        a=rtcp-fb:126 nack
        a=rtcp-fb:126 nack pli
        a=rtcp-fb:126 ccm fir
        a=rtcp-fb:126 goog-remb
        a=rtcp-fb:126 transport-cc
        a=rtcp-fb:97 nack
        a=rtcp-fb:97 nack pli
        a=rtcp-fb:97 ccm fir
        a=rtcp-fb:97 goog-remb
        a=rtcp-fb:97 transport-cc
        a=rtcp-fb:123 nack
        a=rtcp-fb:123 nack pli
        a=rtcp-fb:123 ccm fir
        a=rtcp-fb:123 goog-remb
        a=rtcp-fb:123 transport-cc
        a=rtcp-fb:122 nack
        a=rtcp-fb:122 nack pli
        a=rtcp-fb:122 ccm fir
        a=rtcp-fb:122 goog-remb
        a=rtcp-fb:122 transport-cc
        a=rtcp-mux
        a=rtcp-rsize
        a=rtpmap:120 VP8/90000
        a=rtpmap:124 rtx/90000
        a=rtpmap:121 VP9/90000
        a=rtpmap:125 rtx/90000
        a=rtpmap:126 H264/90000
        a=rtpmap:127 rtx/90000
        a=rtpmap:97 H264/90000
        a=rtpmap:98 rtx/90000
        a=rtpmap:123 ulpfec/90000
        a=rtpmap:122 red/90000
        a=rtpmap:119 rtx/90000
        a=setup:actpass
        a=simulcast:send h;m;l
        a=ssrc:1160417003 cname:{735484ea-0000-4000-8000-000000000003}
        a=ssrc:2394584946 cname:{735484ea-0000-4000-8000-000000000003}
        a=ssrc:3300000001 cname:{735484ea-0000-4000-8000-000000000003}
        a=ssrc:3300000002 cname:{735484ea-0000-4000-8000-000000000003}
        a=ssrc:3300000003 cname:{735484ea-0000-4000-8000-000000000003}
        a=ssrc:3300000004 cname:{735484ea-0000-4000-8000-000000000003}
        a=ssrc-group:FID 1160417003 2394584946
        a=ssrc-group:FID 3300000001 3300000002
        a=ssrc-group:FID 3300000003 3300000004

        """

    /// aiortc: sendrecv, session-level ICE credentials, no transport-cc/rsize/simulcast, H264 and VP8,
    /// candidates gathered before the offer, real port on the m-line.
    static let aiortc = """
        v=0
        o=- 3905427093 3905427093 IN IP4 0.0.0.0
        s=-
        t=0 0
        a=group:BUNDLE 0 1
        a=msid-semantic:WMS *
        a=ice-ufrag:f3Zq
        a=ice-pwd:Xq8uVb2JmK4nLp6RsT0wYz
        m=audio 52044 UDP/TLS/RTP/SAVPF 96 0 8
        c=IN IP4 192.0.2.10
        a=sendrecv
        a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
        a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level
        a=mid:0
        a=msid:4b0e2f7c 6a1f3e9d
        a=rtcp:9 IN IP4 0.0.0.0
        a=rtcp-mux
        a=ssrc:1856520134 cname:7f2d4c1a-aiortc
        a=rtpmap:96 opus/48000/2
        a=rtpmap:0 PCMU/8000
        a=rtpmap:8 PCMA/8000
        a=candidate:9a6e1f0c1b2c3d4e5f60718293a4b5c6 1 udp 2130706431 192.0.2.10 52044 typ host
        a=end-of-candidates
        a=fingerprint:sha-256 \(fingerprintHex)
        a=setup:actpass
        m=video 52044 UDP/TLS/RTP/SAVPF 97 98 99 100 101 102
        c=IN IP4 192.0.2.10
        a=sendrecv
        a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
        a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
        a=mid:1
        a=msid:4b0e2f7c 8c2d5b1e
        a=rtcp:9 IN IP4 0.0.0.0
        a=rtcp-mux
        a=ssrc-group:FID 2418374501 2881237402
        a=ssrc:2418374501 cname:7f2d4c1a-aiortc
        a=ssrc:2881237402 cname:7f2d4c1a-aiortc
        a=rtpmap:97 H264/90000
        a=rtcp-fb:97 nack
        a=rtcp-fb:97 nack pli
        a=rtcp-fb:97 goog-remb
        a=fmtp:97 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
        a=rtpmap:98 rtx/90000
        a=fmtp:98 apt=97
        a=rtpmap:99 VP8/90000
        a=rtcp-fb:99 nack
        a=rtcp-fb:99 nack pli
        a=rtcp-fb:99 goog-remb
        a=rtpmap:100 rtx/90000
        a=fmtp:100 apt=99
        a=rtpmap:101 H264/90000
        a=rtcp-fb:101 nack
        a=rtcp-fb:101 nack pli
        a=rtcp-fb:101 goog-remb
        a=fmtp:101 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
        a=rtpmap:102 rtx/90000
        a=fmtp:102 apt=101
        a=candidate:9a6e1f0c1b2c3d4e5f60718293a4b5c6 1 udp 2130706431 192.0.2.10 52044 typ host
        a=end-of-candidates
        a=fingerprint:sha-256 \(fingerprintHex)
        a=setup:actpass

        """

    /// A WHEP player (Chromium, recvonly transceivers).
    static let whep = """
        v=0
        o=- 1657793490019 1 IN IP4 127.0.0.1
        s=-
        t=0 0
        a=group:BUNDLE 0 1
        a=extmap-allow-mixed
        a=msid-semantic: WMS
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63
        c=IN IP4 0.0.0.0
        a=rtcp:9 IN IP4 0.0.0.0
        a=ice-ufrag:Wp3k
        a=ice-pwd:Hq5tZ7nV2cX9bR4mL8sD1fG6
        a=ice-options:trickle
        a=fingerprint:sha-256 \(fingerprintHex)
        a=setup:actpass
        a=mid:0
        a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
        a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
        a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
        a=recvonly
        a=rtcp-mux
        a=rtcp-rsize
        a=rtpmap:111 opus/48000/2
        a=rtcp-fb:111 transport-cc
        a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1
        a=rtpmap:63 red/48000/2
        a=fmtp:63 111/111
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103
        c=IN IP4 0.0.0.0
        a=rtcp:9 IN IP4 0.0.0.0
        a=ice-ufrag:Wp3k
        a=ice-pwd:Hq5tZ7nV2cX9bR4mL8sD1fG6
        a=ice-options:trickle
        a=fingerprint:sha-256 \(fingerprintHex)
        a=setup:actpass
        a=mid:1
        a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
        a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01
        a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
        a=recvonly
        a=rtcp-mux
        a=rtcp-rsize
        a=rtpmap:96 VP8/90000
        a=rtcp-fb:96 goog-remb
        a=rtcp-fb:96 transport-cc
        a=rtcp-fb:96 ccm fir
        a=rtcp-fb:96 nack
        a=rtcp-fb:96 nack pli
        a=rtpmap:97 rtx/90000
        a=fmtp:97 apt=96
        a=rtpmap:102 H264/90000
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
        a=rtpmap:103 rtx/90000
        a=fmtp:103 apt=102

        """

    /// Audio plus a data channel section (which the node does not support).
    static let dataChannel = """
        v=0
        o=- 6120843125311532781 2 IN IP4 127.0.0.1
        s=-
        t=0 0
        a=group:BUNDLE 0 1
        a=extmap-allow-mixed
        m=audio 9 UDP/TLS/RTP/SAVPF 111
        c=IN IP4 0.0.0.0
        a=ice-ufrag:Dc9x
        a=ice-pwd:Pq2wE4rT6yU8iO0pA1sD3fG5
        a=fingerprint:sha-256 \(fingerprintHex)
        a=setup:actpass
        a=mid:0
        a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
        a=sendonly
        a=rtcp-mux
        a=rtpmap:111 opus/48000/2
        a=fmtp:111 minptime=10;useinbandfec=1
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel
        c=IN IP4 0.0.0.0
        a=ice-ufrag:Dc9x
        a=ice-pwd:Pq2wE4rT6yU8iO0pA1sD3fG5
        a=fingerprint:sha-256 \(fingerprintHex)
        a=setup:actpass
        a=mid:1
        a=sctp-port:5000
        a=max-message-size:262144

        """

    /// Video only with codecs the node does not forward.
    static let unsupportedCodecs = """
        v=0
        o=- 1 1 IN IP4 127.0.0.1
        s=-
        t=0 0
        a=group:BUNDLE 0
        m=video 9 UDP/TLS/RTP/SAVPF 102 103 45
        c=IN IP4 0.0.0.0
        a=ice-ufrag:Zz11
        a=ice-pwd:Zz11Zz11Zz11Zz11Zz11Zz11
        a=fingerprint:sha-256 \(fingerprintHex)
        a=setup:actpass
        a=mid:0
        a=sendonly
        a=rtcp-mux
        a=rtpmap:102 H264/90000
        a=rtpmap:103 rtx/90000
        a=fmtp:103 apt=102
        a=rtpmap:45 AV1/90000

        """

    static let all: [(name: String, text: String)] = [
        ("chromium", chromium), ("firefox", firefox), ("aiortc", aiortc), ("whep", whep),
        ("dataChannel", dataChannel), ("unsupportedCodecs", unsupportedCodecs),
    ]

    static let localFingerprint = SDPFingerprint(algorithm: "sha-256", bytes: (0..<32).map { UInt8($0 * 7 & 0xFF) })

    static let localCandidate = SDPCandidate(
        foundation: "1",
        component: 1,
        transport: "udp",
        priority: 2_130_706_431,
        address: "203.0.113.5",
        port: 3478
    )

    static func local(
        _ role: SDPMediaRole,
        senders: [String: SDPLocalSender] = [:],
        audioRED: Bool = true
    ) -> SDPLocalParameters {
        SDPLocalParameters(
            iceUfrag: "brd1",
            icePwd: "0123456789abcdefABCDEF+/",
            fingerprint: localFingerprint,
            candidates: [localCandidate],
            role: role,
            audioRED: audioRED,
            sessionID: "7311",
            sessionVersion: "1",
            streamID: "room1-alice",
            cname: "braidnode",
            senders: senders
        )
    }

    /// The lines of each m-section of `text` (index 0 = session level).
    static func sections(_ text: String) -> [[String]] {
        var result: [[String]] = [[]]
        for line in text.split(separator: "\r\n").map(String.init) {
            if line.hasPrefix("m=") { result.append([]) }
            result[result.count - 1].append(line)
        }
        return result
    }
}
