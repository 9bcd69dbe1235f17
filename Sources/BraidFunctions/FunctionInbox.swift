import NIOConcurrencyHelpers

/// What the forwarding event loop hands a function's worker: input frames (copied out of the router's
/// buffers) and input changes, in order. Bounded: when the worker falls behind, frames are refused (the
/// router counts them as back-pressure, the function reports them as drops) and forwarding goes on.
final class FunctionInbox: Sendable {
    enum Event: Sendable {
        case frame(input: String, timestamp: UInt32, payload: [UInt8], arrivalNanoseconds: Int64, captureNTP: UInt64?)
        case added(input: String, participant: String)
        case removed(input: String)
    }

    private struct State {
        var events: [Event] = []
        var spare: [Event] = []
        var frames = 0
    }

    /// Frames held at most (about 0.3 s of 20 ms frames for 16 inputs).
    let capacity: Int
    private let state = NIOLockedValueBox(State())

    init(capacity: Int = 256) {
        self.capacity = capacity
    }

    /// Queues a frame; false (refused) when the inbox is full.
    func push(
        input: String, timestamp: UInt32, payload: [UInt8], arrivalNanoseconds: Int64, captureNTP: UInt64?
    ) -> Bool {
        self.state.withLockedValue { state in
            guard state.frames < self.capacity else { return false }
            state.frames += 1
            state.events.append(
                .frame(
                    input: input, timestamp: timestamp, payload: payload, arrivalNanoseconds: arrivalNanoseconds,
                    captureNTP: captureNTP))
            return true
        }
    }

    /// Queues an input change (never refused).
    func push(_ event: Event) {
        self.state.withLockedValue { $0.events.append(event) }
    }

    /// Takes everything queued, oldest first. The two arrays swap roles, so their capacity is reused.
    func drain(_ body: (Event) -> Void) {
        var taken = self.state.withLockedValue { state -> [Event] in
            let taken = state.events
            state.events = state.spare
            state.spare = []
            state.frames = 0
            return taken
        }
        for event in taken { body(event) }
        taken.removeAll(keepingCapacity: true)
        let spare = taken
        self.state.withLockedValue { state in
            if state.spare.isEmpty { state.spare = spare }
        }
    }
}
