import BraidFunctions
import BraidSFU
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
        let video = try decode(
            #"{"kind": "composite", "inputs": "all-video", "parameters": {"width": 1280, "height": 720, "frame_rate": 15, "highlight_speaker": false}}"#)
        #expect(video.kind == .composite && video.inputs == .allVideo)
        #expect(video.parameters == .init(width: 1280, height: 720, frameRate: 15, highlightSpeaker: false))
        // What the API returns encodes back to what it read.
        let again = try JSONDecoder().decode(FunctionRequest.self, from: JSONEncoder().encode(listed))
        #expect(again == listed)
    }

    @Test(arguments: [
        #"{"kind": "karaoke", "inputs": "all-audio"}"#,  // unknown kind
        #"{"inputs": "all-audio"}"#,  // no kind
        #"{"kind": "audio-mix"}"#,  // no inputs
        #"{"kind": "audio-mix", "inputs": "all-tracks"}"#,  // neither "all-audio", "all-video" nor a list
        #"{"kind": "composite", "inputs": "all-video", "parameters": {"framerate": 15}}"#,  // misspelt parameter
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
