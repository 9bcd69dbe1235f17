// libFuzzer entry point for the SDP parser, the answer builder and the trickle fragment parser.
// Build: swiftc -sanitize=fuzzer,address -parse-as-library (wired up in Tools/Fuzz/Package.swift).
import BraidSDP

/// Built once: the local parameters are valid, so `try!` cannot fail here.
private let builders: [SDPAnswerBuilder] = [
    try! SDPAnswerBuilder(
        local: SDPLocalParameters(
            iceUfrag: "fuzz",
            icePwd: "0123456789abcdefABCDEF",
            fingerprint: SDPFingerprint(
                algorithm: "sha-256",
                bytes: Array(repeating: 0xAB, count: 32)
            ),
            candidates: [SDPCandidate(foundation: "1", priority: 1, address: "127.0.0.1", port: 9)],
            role: .receive
        )
    ),
    try! SDPAnswerBuilder(
        local: SDPLocalParameters(
            iceUfrag: "fuzz",
            icePwd: "0123456789abcdefABCDEF",
            fingerprint: SDPFingerprint(
                algorithm: "sha-256",
                bytes: Array(repeating: 0xCD, count: 32)
            ),
            candidates: [],
            role: .send,
            senders: ["0": SDPLocalSender(trackID: "t", ssrc: 1, rtxSSRC: 2)]
        )
    ),
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    if let offer = try? SessionDescription(parsing: bytes) {
        // A parsed description must survive its own serialization.
        guard let again = try? SessionDescription(parsing: offer.text), again == offer else {
            fatalError("serialize/parse round trip changed the description")
        }
        for builder in builders {
            if let answer = try? builder.answer(to: offer) {
                guard (try? SessionDescription(parsing: answer.text)) == answer.session else {
                    fatalError("an answer did not parse back to itself")
                }
            }
        }
    }
    _ = try? SDPTrickleFragment(parsing: String(decoding: bytes, as: UTF8.self))
    return 0
}
