import BraidSDP
import Testing

/// SplitMix64: a small seeded generator so failures reproduce.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Property tests: whatever the input, parsing and answering return a value or throw ``SDPError``; they never
/// trap. Every throw is checked to be an ``SDPError`` with a line number when the parser raised it per line.
@Suite("SDP robustness")
struct RobustnessTests {
    private static let builders: [SDPAnswerBuilder] = [
        try! SDPAnswerBuilder(local: Fixtures.local(.receive)),
        try! SDPAnswerBuilder(
            local: Fixtures.local(.send, senders: ["1": SDPLocalSender(trackID: "v", ssrc: 5, rtxSSRC: 6)])
        ),
    ]

    /// Parses and, when that works, answers and re-parses the answer. Returns whether parsing succeeded.
    @discardableResult
    private func exercise(_ bytes: [UInt8]) -> Bool {
        let offer: SessionDescription
        do {
            offer = try SessionDescription(parsing: bytes)
        } catch {
            // Line-level failures name their line.
            if error.code == .malformedLine || error.code == .badAttribute || error.code == .unknownLineType {
                #expect(error.line != nil, "\(error)")
            }
            return false
        }
        // A parsed description always serializes to text that parses back to itself.
        #expect((try? SessionDescription(parsing: offer.text)) == offer)
        for builder in Self.builders {
            if let answer = try? builder.answer(to: offer) {
                #expect(answer.session.media.count == offer.media.count)
                #expect((try? SessionDescription(parsing: answer.text)) == answer.session)
            }
        }
        _ = try? SDPTrickleFragment(parsing: String(decoding: bytes, as: UTF8.self))
        return true
    }

    @Test("random bytes")
    func randomBytes() {
        var rng = SeededGenerator(state: 1)
        let alphabet = Array("v=0o- INIP4sta:mudiovd 9/RTPSAVPF0123456789\r\n;,~*".utf8)
        for round in 0..<2000 {
            let count = Int.random(in: 0...400, using: &rng)
            let bytes: [UInt8] =
                round % 2 == 0
                ? (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
                : (0..<count).map { _ in alphabet.randomElement(using: &rng)! }
            self.exercise(bytes)
        }
    }

    @Test("every truncation of every fixture", arguments: Fixtures.all.map(\.name))
    func truncations(name: String) throws {
        let bytes = Array(try #require(Fixtures.all.first { $0.name == name }).text.utf8)
        var parsedPrefixes = 0
        for end in stride(from: 0, through: bytes.count, by: 5) {
            if self.exercise(Array(bytes[..<end])) { parsedPrefixes += 1 }
        }
        #expect(parsedPrefixes > 0)
    }

    @Test("random line mutations of the fixtures", arguments: Fixtures.all.map(\.name))
    func lineMutations(name: String) throws {
        let text = try #require(Fixtures.all.first { $0.name == name }).text
        let lines = text.split(separator: "\n").map(String.init)
        var rng = SeededGenerator(state: UInt64(name.utf8.count) &* 7919)
        let junk = [
            "", " ", ":", "/", ";", "~", "*", "=", "-1", "0", "65536", "4294967296", "99999999999999999999999",
            "a=", "m=", "\u{0}", "é", "\r", "typ", "rid=", "a=rtpmap:", "a=candidate:", "a=simulcast:send ",
        ]
        var parsedCount = 0
        for _ in 0..<250 {
            var mutated = lines
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let index = Int.random(in: 0..<mutated.count, using: &rng)
                switch Int.random(in: 0..<7, using: &rng) {
                case 0: mutated.remove(at: index)
                case 1: mutated.insert(mutated[index], at: index)
                case 2: mutated.swapAt(index, Int.random(in: 0..<mutated.count, using: &rng))
                case 3:
                    let line = Array(mutated[index])
                    mutated[index] = String(line.prefix(Int.random(in: 0...line.count, using: &rng)))
                case 4:
                    var line = Array(mutated[index])
                    let position = Int.random(in: 0...line.count, using: &rng)
                    line.insert(contentsOf: junk.randomElement(using: &rng)!, at: position)
                    mutated[index] = String(line)
                case 5:
                    // Replace one space-separated field.
                    var fields = mutated[index].split(separator: " ", omittingEmptySubsequences: false).map(String.init)
                    fields[Int.random(in: 0..<fields.count, using: &rng)] = junk.randomElement(using: &rng)!
                    mutated[index] = fields.joined(separator: " ")
                default:
                    mutated.insert(lines.randomElement(using: &rng)!, at: index)
                }
                if mutated.isEmpty { mutated = ["v=0"] }
            }
            if self.exercise(Array(mutated.joined(separator: "\r\n").utf8)) { parsedCount += 1 }
        }
        // Many mutations (swapped attributes, duplicated lines) stay valid SDP; they exercise the builder.
        #expect(parsedCount > 0)
    }

    @Test("hostile sizes: many media sections, huge numbers, deep simulcast lists")
    func hostileShapes() {
        let header = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
        let huge = header + "m=audio 9 UDP/TLS/RTP/SAVPF " + String(repeating: "1", count: 3000) + "\r\n"
        self.exercise(Array(huge.utf8))
        let sim =
            header + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=simulcast:send "
            + Array(repeating: "a,b,~c", count: 500).joined(separator: ";") + "\r\n"
        self.exercise(Array(sim.utf8))
        // Sections packed with formats, rtpmaps and fmtps up to the limits: the builder stays linear.
        var packed = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE"
        for index in 0..<7 { packed += " \(index)" }
        packed += "\r\n"
        for index in 0..<7 {
            packed += "m=video 9 UDP/TLS/RTP/SAVPF " + (0..<900).map { String($0 % 128) }.joined(separator: " ")
            packed += "\r\na=mid:\(index)\r\na=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijabcdefghijab\r\n"
            packed += "a=fingerprint:sha-256 AB:CD\r\n"
            for pt in 0..<127 { packed += "a=rtpmap:\(pt) rtx/90000\r\na=fmtp:\(pt) apt=\((pt + 1) % 128)\r\n" }
            packed += "a=rtpmap:127 VP8/90000\r\n"
        }
        let packedBytes = Array(packed.utf8)
        #expect(packedBytes.count < SDPLimits.default.maxBytes)
        let packedParses = self.exercise(packedBytes)
        #expect(packedParses)
        let packedAnswer = try? Self.builders[0].answer(to: SessionDescription(parsing: packedBytes))
        #expect(packedAnswer?.sections.first?.codec?.payloadType == 127)
        #expect(packedAnswer?.sections.first?.rtxPayloadType == 126)

        let fragments = String(repeating: "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=candidate:x\r\n", count: 100)
        #expect(throws: SDPError.self) { try SDPTrickleFragment(parsing: fragments) }
    }
}
