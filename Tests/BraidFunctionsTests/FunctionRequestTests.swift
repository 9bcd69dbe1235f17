import BraidFunctions
import Foundation
import Testing

@Suite struct FunctionRequestTests {
    private func decode(_ json: String) throws -> FunctionRequest {
        try JSONDecoder().decode(FunctionRequest.self, from: Data(json.utf8))
    }

    @Test func aRequestNamesItsKindInputsAndParameters() throws {
        let all = try decode(#"{"kind": "audio-mix", "inputs": "all-audio"}"#)
        #expect(all.kind == .audioMix && all.inputs == .allAudio && all.parameters == .init())
        let listed = try decode(
            #"{"kind": "audio-mix", "inputs": ["00000000000000a1/5", "00000000000000a1/6"], "parameters": {"bitrate": 24000, "mix_minus": true}}"#)
        guard case .tracks(let ids) = listed.inputs else {
            Issue.record("\(listed.inputs)")
            return
        }
        #expect(ids.map(\.description) == ["00000000000000a1/5", "00000000000000a1/6"])
        #expect(listed.parameters == .init(bitrate: 24_000, mixMinus: true))
        // What the API returns encodes back to what it read.
        let again = try JSONDecoder().decode(FunctionRequest.self, from: JSONEncoder().encode(listed))
        #expect(again == listed)
    }

    @Test(arguments: [
        #"{"kind": "karaoke", "inputs": "all-audio"}"#,  // unknown kind
        #"{"inputs": "all-audio"}"#,  // no kind
        #"{"kind": "audio-mix"}"#,  // no inputs
        #"{"kind": "audio-mix", "inputs": "all-video"}"#,  // neither "all-audio" nor a list
        #"{"kind": "audio-mix", "inputs": ["not a track"]}"#,  // not a track id
        #"{"kind": "audio-mix", "inputs": "all-audio", "parameters": {"mixminus": true}}"#,  // misspelt parameter
        #"{"kind": "audio-mix", "inputs": "all-audio", "parameter": {}}"#,  // misspelt key
        #"{"kind": "audio-mix", "inputs": "all-audio", "parameters": {"bitrate": "high"}}"#,  // wrong type
        #"{"kind": "audio-mix", "inputs": "all-audio""#,  // truncated
        #"[]"#,
    ])
    func malformedRequestsAreRefused(_ json: String) {
        #expect(throws: DecodingError.self) { try decode(json) }
    }

    @Test func anUnknownKeyIsNamedInTheError() {
        do {
            _ = try decode(#"{"kind": "audio-mix", "inputs": "all-audio", "parameters": {"mixminus": true}}"#)
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("mixminus"), "\(error)")
        }
    }
}
