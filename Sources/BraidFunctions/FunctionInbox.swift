import NIOConcurrencyHelpers

/// What the forwarding event loop hands a function's worker: input frames (copied out of the router's
/// buffers) and input changes, in order. Bounded: when the worker falls behind, frames are refused (the
/// router counts them as back-pressure, the function reports them as drops) and forwarding goes on.
///
/// Frames are copied into fixed slots of a preallocated byte store, so a push allocates nothing on the
/// forwarding loop. Two batches take turns: the forwarding loop fills one while the worker reads the
/// other, and `drain` swaps them under the lock.
final class FunctionInbox: Sendable {
    enum Event: Sendable {
        /// An RTP packet's media payload; `slot` indexes the batch's byte store, `length` bytes of it are
        /// the payload.
        case frame(
            input: String, timestamp: UInt32, sequenceNumber: UInt16, marker: Bool, slot: Int, length: Int,
            arrivalNanoseconds: Int64, captureNTP: UInt64?)
        case added(input: String, participant: String)
        case removed(input: String)
        /// An ask from the router's side (an output's keyframe request or bitrate, the active speaker).
        case control(FunctionControl)
    }

    private struct Batch {
        var events: [Event]
        var bytes: [UInt8]
        var frames = 0

        init(capacity: Int, slotBytes: Int) {
            self.events = []
            self.events.reserveCapacity(capacity + 16)
            self.bytes = [UInt8](repeating: 0, count: capacity * slotBytes)
        }
    }

    private struct State {
        var filling: Batch
        /// The other batch; nil while the worker reads it.
        var spare: Batch?
    }

    /// Frames held at most per batch (about 0.3 s of 20 ms frames for 16 inputs; video functions take more).
    let capacity: Int
    /// The largest payload taken (Opus packets of up to 60 ms stay well below).
    let slotBytes: Int
    private let state: NIOLockedValueBox<State>

    init(capacity: Int = 256, slotBytes: Int = 1500) {
        self.capacity = capacity
        self.slotBytes = slotBytes
        self.state = NIOLockedValueBox(
            State(
                filling: Batch(capacity: capacity, slotBytes: slotBytes),
                spare: Batch(capacity: capacity, slotBytes: slotBytes)))
    }

    /// Why a frame was not queued.
    enum Refusal: Error {
        /// The worker fell behind: the batch is full.
        case full
        /// The payload is larger than a slot.
        case oversized
    }

    /// Queues a copy of a frame; nil when it was queued.
    func push(
        input: String, timestamp: UInt32, sequenceNumber: UInt16 = 0, marker: Bool = false,
        payload: UnsafeRawBufferPointer, arrivalNanoseconds: Int64, captureNTP: UInt64?
    ) -> Refusal? {
        guard payload.count <= self.slotBytes else { return .oversized }
        return self.state.withLockedValue { state -> Refusal? in
            guard state.filling.frames < self.capacity else { return .full }
            let slot = state.filling.frames
            state.filling.frames += 1
            let start = slot * self.slotBytes
            state.filling.bytes.withUnsafeMutableBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: bytes[start..<(start + payload.count)]).copyMemory(from: payload)
            }
            state.filling.events.append(
                .frame(
                    input: input, timestamp: timestamp, sequenceNumber: sequenceNumber, marker: marker, slot: slot,
                    length: payload.count,
                    arrivalNanoseconds: arrivalNanoseconds, captureNTP: captureNTP))
            return nil
        }
    }

    /// Queues an input change (never refused).
    func push(_ event: Event) {
        self.state.withLockedValue { $0.filling.events.append(event) }
    }

    /// Takes everything queued, oldest first; `payload` is the frame's bytes (empty for input changes),
    /// valid during the call. Only one caller drains at a time (the function's worker).
    func drain(_ body: (Event, _ payload: UnsafeRawBufferPointer) -> Void) {
        guard
            var taken = self.state.withLockedValue({ state -> Batch? in
                guard let spare = state.spare else { return nil }
                let taken = state.filling
                state.filling = spare
                state.spare = nil
                return taken
            })
        else { return }
        taken.bytes.withUnsafeBytes { bytes in
            for event in taken.events {
                if case .frame(_, _, _, _, let slot, let length, _, _) = event {
                    let start = slot * self.slotBytes
                    body(event, UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)]))
                } else {
                    body(event, UnsafeRawBufferPointer(start: nil, count: 0))
                }
            }
        }
        taken.events.removeAll(keepingCapacity: true)
        taken.frames = 0
        self.state.withLockedValue { $0.spare = taken }
    }
}
