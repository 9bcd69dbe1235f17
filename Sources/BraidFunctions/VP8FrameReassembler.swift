import BraidRTPStreams
import BraidWire
import NIOCore

/// Rebuilds whole VP8 frames from an input track's RTP payloads, for a decoder
/// ([RFC 7741 §4](https://www.rfc-editor.org/rfc/rfc7741#section-4)).
///
/// ``VP8FrameAssembler`` decides when a frame is complete and whether a decoder can take it (in order,
/// reference chain intact); this keeps the VP8 data of recent packets (descriptor stripped) in a ring of
/// fixed slots indexed by sequence number, and concatenates a released frame's packets into one buffer.
/// Repaired packets (retransmissions, out of order) take their original slot. A frame whose packets
/// were overwritten in the ring is reported lost like one that never completed.
///
/// Storage is fixed at creation: nothing is allocated per packet once the frame buffer has grown to the
/// largest frame.
struct VP8FrameReassembler {
    /// One frame, in decode order; `data` is valid during the `emit` call only.
    struct Frame {
        var timestamp: UInt32
        var isKeyframe: Bool
        /// A decoder holding every earlier released frame can decode it.
        var isDecodable: Bool
        var data: UnsafeRawBufferPointer
        /// The newest arrival (monotonic ns) among its packets.
        var newestArrival: Int64
        /// Its capture time (NTP), if the sender said.
        var captureNTP: UInt64?
    }

    private struct Slot {
        var sequenceNumber: Int32 = -1
        var offset = 0
        var length = 0
        var arrival: Int64 = 0
        var captureNTP: UInt64?
    }

    let slotBytes: Int
    private var assembler: VP8FrameAssembler
    private var slots: [Slot]
    private var bytes: [UInt8]
    private var frame: [UInt8] = []
    private var parseScratch = ByteBuffer()
    /// Events the assembler released during one call (kept to reuse its storage).
    private var released: [VP8FrameAssembler.Event] = []
    /// Packets refused: not VP8, or larger than a slot.
    private(set) var malformedPackets = 0

    init(slotCount: Int = 512, slotBytes: Int = 1500) {
        self.slotBytes = slotBytes
        self.slots = Array(repeating: Slot(), count: slotCount)
        self.bytes = [UInt8](repeating: 0, count: slotCount * slotBytes)
        self.assembler = VP8FrameAssembler(
            maximumWait: .milliseconds(150), maximumWaitBeforeKeyframe: .milliseconds(50), capacity: 32)
        self.frame.reserveCapacity(64 * 1024)
    }

    /// Whether the decoder's reference chain is broken until a keyframe arrives.
    var needsKeyframe: Bool { self.assembler.needsKeyframe }
    /// Frames given up (incomplete in time) or lost whole.
    var framesLost: Int { self.assembler.framesLost }

    /// Adds one RTP payload (descriptor included).
    mutating func insert(
        sequenceNumber: UInt16, timestamp: UInt32, marker: Bool, payload: UnsafeRawBufferPointer,
        arrivalNanoseconds: Int64, captureNTP: UInt64?, now: NIODeadline, _ emit: (Frame) -> Void
    ) {
        self.parseScratch.clear()
        self.parseScratch.writeBytes(payload)
        guard let parsed = try? VP8Payload(self.parseScratch), parsed.data.readableBytes <= self.slotBytes else {
            self.malformedPackets += 1
            return
        }
        let index = Int(sequenceNumber) % self.slots.count
        let offset = index * self.slotBytes
        let length = parsed.data.readableBytes
        self.bytes.withUnsafeMutableBytes { store in
            parsed.data.withUnsafeReadableBytes { data in
                UnsafeMutableRawBufferPointer(rebasing: store[offset..<(offset + length)]).copyMemory(from: data)
            }
        }
        self.slots[index] = Slot(
            sequenceNumber: Int32(sequenceNumber), offset: offset, length: length, arrival: arrivalNanoseconds,
            captureNTP: captureNTP)
        var released = self.takeReleased()
        self.assembler.insert(
            sequenceNumber: sequenceNumber, timestamp: timestamp, marker: marker, payload: parsed, now: now
        ) { released.append($0) }
        self.release(&released, emit)
    }

    /// Gives up frames whose repair did not come in time (call it on a timer).
    mutating func poll(now: NIODeadline, _ emit: (Frame) -> Void) {
        var released = self.takeReleased()
        self.assembler.poll(now: now) { released.append($0) }
        self.release(&released, emit)
    }

    private mutating func takeReleased() -> [VP8FrameAssembler.Event] {
        var taken: [VP8FrameAssembler.Event] = []
        swap(&taken, &self.released)
        return taken
    }

    private mutating func release(_ events: inout [VP8FrameAssembler.Event], _ emit: (Frame) -> Void) {
        for event in events { self.release(event, emit) }
        events.removeAll(keepingCapacity: true)
        swap(&events, &self.released)
    }

    private mutating func release(_ event: VP8FrameAssembler.Event, _ emit: (Frame) -> Void) {
        guard case .frame(let info) = event else { return }
        self.frame.removeAll(keepingCapacity: true)
        var newest: Int64 = 0
        var capture: UInt64?
        var sequence = info.firstSequenceNumber
        while true {
            let slot = self.slots[Int(sequence) % self.slots.count]
            // Overwritten by a packet a ring length later: the frame cannot be rebuilt.
            guard slot.sequenceNumber == Int32(sequence) else { return }
            self.frame.append(contentsOf: self.bytes[slot.offset..<(slot.offset + slot.length)])
            newest = max(newest, slot.arrival)
            capture = capture ?? slot.captureNTP
            if sequence == info.lastSequenceNumber { break }
            sequence &+= 1
        }
        self.frame.withUnsafeBytes { data in
            emit(
                Frame(
                    timestamp: info.timestamp, isKeyframe: info.isKeyframe, isDecodable: info.isDecodable, data: data,
                    newestArrival: newest, captureNTP: capture))
        }
    }
}
