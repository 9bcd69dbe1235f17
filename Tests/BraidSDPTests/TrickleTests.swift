import BraidSDP
import Testing

@Suite("trickle-ice-sdpfrag")
struct TrickleTests {
    @Test("RFC 9725 §4.3.1 PATCH body")
    func rfcExample() throws {
        let body = """
            a=ice-ufrag:EsAw\r
            a=ice-pwd:bP+XJMM09aR8AiX1jdukzR6Y\r
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r
            a=mid:0\r
            a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r
            a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r
            a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1\r
            a=candidate:2154773085 1 tcp 1518214911 198.51.100.2 9 typ host tcptype active generation 0 ufrag EsAw network-id 2\r
            a=end-of-candidates\r

            """
        let fragment = try SDPTrickleFragment(parsing: body)
        #expect(fragment.iceUfrag == "EsAw")
        #expect(fragment.icePwd == "bP+XJMM09aR8AiX1jdukzR6Y")
        #expect(fragment.sections.count == 1)
        let section = fragment.sections[0]
        #expect(section.mid == "0")
        #expect(section.iceUfrag == "EsAw")
        #expect(section.candidates.count == 4)
        #expect(section.candidates[0].address == "192.0.2.1" && section.candidates[0].port == 61764)
        #expect(section.candidates[2].transport == "tcp")
        #expect(section.candidates[2].extensions.first == SDPParameter("tcptype", "active"))
        #expect(section.endOfCandidates)
        #expect(fragment.endOfCandidates)
        #expect(fragment.allCandidates.count == 4)
        #expect(!fragment.isICERestart(currentUfrag: "EsAw"))
        #expect(fragment.isICERestart(currentUfrag: "old1"))
    }

    @Test("a candidate-only fragment, LF endings")
    func candidateOnly() throws {
        let fragment = try SDPTrickleFragment(
            parsing: """
                a=ice-options:trickle ice2
                m=video 9 UDP/TLS/RTP/SAVPF 96
                a=mid:1
                a=candidate:1 1 udp 1677729535 198.51.100.7 46154 typ srflx raddr 0.0.0.0 rport 0
                """
        )
        #expect(fragment.iceOptions == ["trickle", "ice2"])
        #expect(fragment.iceUfrag == nil)
        #expect(!fragment.endOfCandidates)
        #expect(fragment.sections[0].candidates[0].relatedAddress == "0.0.0.0")
        #expect(!fragment.isICERestart(currentUfrag: "x"))
    }

    @Test("fragments refuse full-description lines and bad candidates, with line numbers")
    func malformed() {
        do {
            _ = try SDPTrickleFragment(parsing: "a=ice-ufrag:EsAw\nv=0\n")
            Issue.record("parsed")
        } catch {
            #expect(error.line == 2)
            #expect(error.code == .misplacedLine)
        }
        do {
            _ = try SDPTrickleFragment(
                parsing: "m=audio 9 UDP/TLS/RTP/SAVPF 111\na=mid:0\na=candidate:1 1 udp x 1.2.3.4 9 typ host\n"
            )
            Issue.record("parsed")
        } catch {
            #expect(error.line == 3)
            #expect(error.code == .badAttribute)
        }
    }
}
