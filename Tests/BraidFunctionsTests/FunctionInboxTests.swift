import Testing

@testable import BraidFunctions

@Suite struct FunctionInboxTests {
    /// Everything drained, as (input, timestamp, payload) for frames and a label for input changes.
    private func drained(_ inbox: FunctionInbox) -> [String] {
        var seen: [String] = []
        inbox.drain { event, payload in
            switch event {
            case .frame(let input, let timestamp, _, _, _, _, _, _): seen.append("\(input)@\(timestamp):\(Array(payload))")
            case .added(let input, _): seen.append("+\(input)")
            case .removed(let input): seen.append("-\(input)")
            case .control(let control): seen.append("control \(control)")
            }
        }
        return seen
    }

    private func push(_ inbox: FunctionInbox, _ input: String, _ timestamp: UInt32, _ payload: [UInt8]) -> FunctionInbox.Refusal? {
        payload.withUnsafeBytes {
            inbox.push(input: input, timestamp: timestamp, payload: $0, arrivalNanoseconds: 0, captureNTP: nil)
        }
    }

    @Test func framesAndInputChangesComeOutInOrderWithTheirBytes() {
        let inbox = FunctionInbox(capacity: 4, slotBytes: 8)
        inbox.push(.added(input: "a", participant: "p"))
        #expect(push(inbox, "a", 960, [1, 2, 3]) == nil)
        #expect(push(inbox, "a", 1920, []) == nil)
        inbox.push(.removed(input: "a"))
        #expect(drained(inbox) == ["+a", "a@960:[1, 2, 3]", "a@1920:[]", "-a"])
        #expect(drained(inbox) == [])
    }

    @Test func aFullBatchAndAnOversizedFrameAreRefusedAndTheNextBatchTakesFramesAgain() {
        let inbox = FunctionInbox(capacity: 2, slotBytes: 4)
        #expect(push(inbox, "a", 0, [9, 9, 9, 9, 9]) == .oversized)
        #expect(push(inbox, "a", 0, [1, 1, 1, 1]) == nil)
        #expect(push(inbox, "b", 0, [2]) == nil)
        #expect(push(inbox, "a", 960, [3]) == .full)
        // Input changes are never refused.
        inbox.push(.removed(input: "b"))
        #expect(drained(inbox) == ["a@0:[1, 1, 1, 1]", "b@0:[2]", "-b"])
        // The batches swap: frames go in again, the bytes of the old batch do not leak into the new one.
        for round in 0..<3 {
            #expect(push(inbox, "a", UInt32(round), [UInt8(round)]) == nil)
            #expect(push(inbox, "a", UInt32(round) + 100, [7, 7]) == nil)
            #expect(drained(inbox) == ["a@\(round):[\(round)]", "a@\(round + 100):[7, 7]"])
        }
    }
}
