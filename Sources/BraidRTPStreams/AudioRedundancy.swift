import Foundation
import BraidWire
public import NIOCore

/// How much redundancy an audio stream needs on a link with random loss `p`, within a playout deadline.
///
/// A frame reaches the receiver if any of its `c` copies does: `1 − pᶜ`, so `c = ⌈log(1 − target) / log p⌉`.
/// Copies only help if they arrive before the receiver plays the frame: the copy in the packet `j` frames
/// later lands `j · frame` after the first, so at most `⌊window / frame⌋` later packets can carry it,
/// `window = deadline − one-way delay − margin` (the margin covers the publisher's uplink and the node).
/// RED (RFC 2198) puts one copy of each of the last `distance` frames in every packet. When that is not
/// enough (80 % loss needs 14 copies for 95 %, a 200 ms deadline allows about 7 packets at 20 ms), each
/// packet is sent up to three times, spread over its frame interval, multiplying the copies in the same
/// window (LOSS-NOTES §1.3: 18 packets at 10 ms instead of 9 at 20 ms).
public struct AudioRedundancyPolicy: Sendable, Hashable {
    /// Probability a frame should reach the receiver in time.
    public var target: Double = 0.99
    /// The receiver's playout deadline after capture.
    public var playoutDeadline: TimeAmount = .milliseconds(200)
    /// Time set aside in the deadline for the publisher's uplink, the node and the receiver.
    public var margin: TimeAmount = .milliseconds(40)
    /// Most redundant blocks in one packet (Chromium's RED splitter takes up to 32 blocks).
    public var maximumDistance: Int = 16
    /// Below this loss no redundancy is sent: a clean link costs nothing.
    public var lossThreshold: Double = 0.005
    /// Most times a packet is sent (1: never repeated).
    public var maximumSendsPerFrame: Int = 3

    /// What to send: `distance` earlier frames in each packet, each packet sent `sendsPerFrame` times.
    public struct Plan: Sendable, Hashable {
        /// Earlier frames carried as redundant blocks (0: no RED).
        public var distance: Int
        /// Times each packet is sent, spread evenly over the frame interval (1: once).
        public var sendsPerFrame: Int
        /// Copies of each frame sent.
        public var copies: Int { (self.distance + 1) * self.sendsPerFrame }
        /// Whether packets are repeated.
        public var repeats: Bool { self.sendsPerFrame > 1 }

        public init(distance: Int, sendsPerFrame: Int = 1) {
            self.distance = distance
            self.sendsPerFrame = max(1, sendsPerFrame)
        }

        /// No redundancy.
        public static let none = Plan(distance: 0)
    }

    /// A receiver that NACKs lost audio (BraidClient, `a=rtcp-fb:<opus> nack`): its round trip, and the
    /// copies the sender resends in each round (round 0 first).
    public struct NACKRounds: Sendable, Hashable {
        public var roundTrip: TimeAmount
        public var copies: [Int]
        /// How much later than one round trip a receiver asks again.
        public var retryMargin: TimeAmount

        public init(roundTrip: TimeAmount, copies: [Int], retryMargin: TimeAmount = .milliseconds(20)) {
            self.roundTrip = roundTrip
            self.copies = copies
            self.retryMargin = retryMargin
        }
    }

    public init() {}

    /// The plan for a link with random loss `loss` (0–1) and one-way delay `oneWayDelay`, for frames of
    /// `frameDuration`.
    ///
    /// With `nack` (the receiver asks for lost frames), the plan with the fewest sends per frame and then the
    /// fewest copies sent per frame, counting the resends the rounds are expected to take, whose frames
    /// reach the target once the rounds
    /// that can still arrive before the playout deadline are counted: a frame every copy of which was lost
    /// is seen missing when the first packet after its last copy arrives, and each round's answer comes a
    /// round trip after it is asked for. Where no such plan exists (the copies alone fill the deadline, as
    /// at 80 % loss), the plan without NACK.
    public func plan(loss: Double, oneWayDelay: TimeAmount, frameDuration: TimeAmount, nack: NACKRounds? = nil) -> Plan {
        guard loss.isFinite, loss >= self.lossThreshold else { return .none }
        if let nack, loss < 1, frameDuration.nanoseconds > 0,
            let plan = self.planWithNACK(loss: loss, oneWayDelay: oneWayDelay, frameDuration: frameDuration, nack: nack)
        {
            return plan
        }
        return self.plan(oneWayDelay: oneWayDelay, frameDuration: frameDuration) { plan in
            pow(loss, Double(plan.copies))
        }
    }

    private func planWithNACK(loss: Double, oneWayDelay: TimeAmount, frameDuration: TimeAmount, nack: NACKRounds) -> Plan? {
        let frame = Double(frameDuration.nanoseconds)
        let deadline = Double(self.playoutDeadline.nanoseconds)
        let window = deadline - Double(oneWayDelay.nanoseconds + self.margin.nanoseconds)
        var best: Plan?
        var bestCost = Double.infinity
        for sends in 1...max(1, self.maximumSendsPerFrame) {
            let usable = window - frame * Double(sends - 1) / Double(sends)
            let reach = max(0, min(self.maximumDistance, Int(usable / frame)))
            for distance in 0...reach {
                let plan = Plan(distance: distance, sendsPerFrame: sends)
                // Age at which the receiver sees the frame missing: its last copy's send, the way to the
                // receiver, and the wait for the next packet that arrives.
                let lastCopy = Double(self.margin.nanoseconds + oneWayDelay.nanoseconds) + Double(distance) * frame
                    + frame * Double(sends - 1) / Double(sends)
                var askedAt = lastCopy + frame / Double(sends) / (1 - loss)
                var missing = pow(loss, Double(plan.copies))
                var cost = Double(plan.copies)
                for copies in nack.copies {
                    let answered = askedAt + Double(nack.roundTrip.nanoseconds)
                    guard answered <= deadline else { break }
                    cost += missing * Double(copies)
                    missing *= pow(loss, Double(copies))
                    askedAt = answered + Double(nack.retryMargin.nanoseconds)
                }
                if missing <= 1 - self.target, cost < bestCost {
                    best = plan
                    bestCost = cost
                }
            }
            // Repeats cost a whole packet each: more sends only when fewer cannot reach the target.
            if best != nil { return best }
        }
        return nil
    }

    /// The plan for a link whose losses come in bursts, as `bursts` measured them, where `spacing` of the
    /// link's packets go out per audio frame (audio shares the link with video and repairs).
    ///
    /// A frame's copies ride in consecutive audio packets, and repeats of one packet closer still, so one
    /// burst can take several of them: under the fitted chain (loss π, P(lost | arrived) = p, P(arrived |
    /// lost) = r), copies `x` packets apart are all lost with probability `π · P_bb(x)^(c − 1)`, where
    /// `P_bb(x) = π + (1 − π)(1 − p − r)^x` is the chance of a loss `x` packets after a loss. At 20 % loss
    /// in bursts of five, two packets apart, that is 0.65 per copy instead of 0.2: 99 % needs 8 copies
    /// instead of 3, and the deadline allows about 7.
    public func plan(
        bursts: BurstLossModel, spacing: Double, oneWayDelay: TimeAmount, frameDuration: TimeAmount
    ) -> Plan {
        let loss = bursts.lossRate
        guard loss.isFinite, loss >= self.lossThreshold else { return .none }
        // How fast a loss stops predicting the next; losses that alternate (negative) count as independent.
        let decay = max(0, 1 - bursts.enterBurst - bursts.leaveBurst)
        return self.plan(oneWayDelay: oneWayDelay, frameDuration: frameDuration) { plan in
            let apart = max(1, spacing / Double(plan.sendsPerFrame))
            let lostAgain = min(1, loss + (1 - loss) * pow(decay, apart))
            return loss * pow(lostAgain, Double(plan.copies - 1))
        }
    }

    /// The plan with the fewest sends per frame, then the fewest earlier frames, whose `miss` probability
    /// is within the target, among those whose copies all arrive before the playout deadline; the surest
    /// of them when none is.
    private func plan(oneWayDelay: TimeAmount, frameDuration: TimeAmount, miss: (Plan) -> Double) -> Plan {
        guard frameDuration.nanoseconds > 0 else { return .none }
        let frame = frameDuration.nanoseconds
        let window = self.playoutDeadline.nanoseconds - oneWayDelay.nanoseconds - self.margin.nanoseconds
        var best = Plan.none
        var bestMiss = miss(best)
        for sends in 1...max(1, self.maximumSendsPerFrame) {
            // The last send of a packet leaves (sends − 1) / sends of a frame after its first.
            let usable = window - frame * Int64(sends - 1) / Int64(sends)
            let reach = max(0, min(self.maximumDistance, Int(usable / frame)))
            for distance in 0...reach {
                let plan = Plan(distance: distance, sendsPerFrame: sends)
                let chance = miss(plan)
                if chance <= 1 - self.target { return plan }
                // At equal odds (a link losing everything) more copies, as the loss may yet ease.
                if chance < bestMiss || (chance == bestMiss && plan.copies > best.copies) {
                    best = plan
                    bestMiss = chance
                }
            }
        }
        return best
    }
}

/// The RED encoder of one audio slot: keeps the last frames it sent and wraps each new frame in RED
/// with the plan's number of them (RFC 2198; LOSS-NOTES §3 pitfalls 4: blocks more than 2¹⁴ ticks old,
/// as after DTX silence, or over 1023 bytes are left out).
///
/// Storage (a ring of ``AudioRedundancy/slotBytes``-byte slots and the last packet, for repeats) is made
/// the first time a plan asks for redundancy, so a slot on a clean link holds nothing. Owned by its slot
/// on the router's event loop.
public struct AudioRedundancy {
    public init() {}

    /// Longest frame kept (Opus at 64 kbit/s and 20 ms is 160 bytes; longer frames go unprotected).
    public static let slotBytes = 512
    /// Most bytes of redundant blocks in one packet, so that a packet stays well under the MTU: the
    /// oldest frames are left out first.
    public static let maximumRedundantBytes = 1000

    struct Frame {
        var timestamp: UInt32
        var length: Int
    }

    public private(set) var plan = AudioRedundancyPolicy.Plan.none
    /// Frames in send order, `capacity` slots of ``slotBytes``.
    private var frames: [Frame] = []
    private var storage: ByteBuffer?
    private var head = 0
    private var count = 0
    /// Scratch for the RED payload being written.
    private var payloadScratch: ByteBuffer?
    /// The last primary packet as sent, kept for its repeat (only while repeats are on).
    public var lastPacket: ByteBuffer?
    /// When the last primary went out, and how many of its repeats are still to send.
    public var lastPrimaryAt: NIODeadline?
    public var repeatsPending = 0

    /// Bytes of redundant blocks (headers included), and repeat packets sent.
    public private(set) var redundantBytesSent = 0
    public var repeatsSent = 0
    public var repeatBytesSent = 0

    /// Whether frames are kept (from the first plan with redundancy on); before that, `payload` has nothing
    /// to do.
    public var keepsFrames: Bool { self.storage != nil }
    /// Bytes held.
    public var footprint: Int {
        (self.storage?.capacity ?? 0) + (self.payloadScratch?.capacity ?? 0) + (self.lastPacket?.capacity ?? 0)
    }

    /// Adopts a new plan; the storage is made on the first plan with redundancy.
    public mutating func update(plan: AudioRedundancyPolicy.Plan) {
        self.plan = plan
        if plan.distance > 0, self.storage == nil {
            let capacity = AudioRedundancyPolicy().maximumDistance + 1
            let allocator = ByteBufferAllocator()
            self.storage = allocator.buffer(capacity: capacity * Self.slotBytes)
            self.storage!.moveWriterIndex(to: capacity * Self.slotBytes)
            self.frames = Array(repeating: Frame(timestamp: 0, length: -1), count: capacity)
            self.payloadScratch = allocator.buffer(capacity: 1500)
        }
        if !plan.repeats {
            self.lastPacket = nil
            self.repeatsPending = 0
        }
    }

    /// Forgets the frames (the slot shows another track: its timestamps are another clock's).
    public mutating func reset() {
        self.count = 0
        self.lastPacket = nil
        self.repeatsPending = 0
    }

    /// The payload to send for `primary` (timestamp `timestamp`): a RED payload of the plan's earlier frames
    /// and `primary` under `payloadType`, or nil when no redundancy is planned (send `primary` as it is).
    /// Either way the frame is kept for the next packets.
    public mutating func payload(primary: ByteBuffer, timestamp: UInt32, payloadType: UInt8) -> ByteBuffer? {
        guard var storage = self.storage.take() else { return nil }
        defer { self.storage = storage }
        var out: ByteBuffer?
        if self.plan.distance > 0, var scratch = self.payloadScratch.take() {
            scratch.clear()
            // The newest frames that fit the byte budget, counted back from the primary.
            var distance = 0
            var budget = Self.maximumRedundantBytes
            while distance < min(self.plan.distance, self.count) {
                let frame = self.frames[(self.head - distance - 1 + self.frames.count) % self.frames.count]
                guard frame.length + 4 <= budget else { break }
                budget -= max(0, frame.length) + 4
                distance += 1
            }
            // Headers first (oldest first), then the data in the same order, then the primary.
            for pass in 0..<2 {
                for back in stride(from: distance, through: 1, by: -1) {
                    let index = (self.head - back + self.frames.count) % self.frames.count
                    let frame = self.frames[index]
                    let offset = timestamp &- frame.timestamp
                    guard frame.length > 0, frame.length <= REDPayload.maximumBlockLength, offset > 0,
                        offset <= UInt32(REDPayload.maximumTimestampOffset)
                    else { continue }
                    if pass == 0 {
                        scratch.writeInteger(
                            REDPayload.redundantHeader(
                                payloadType: payloadType, timestampOffset: UInt16(offset), length: frame.length))
                        self.redundantBytesSent += frame.length + 4
                    } else {
                        let slice = storage.getSlice(at: index * Self.slotBytes, length: frame.length)!
                        scratch.writeImmutableBuffer(slice)
                    }
                }
                if pass == 0 {
                    scratch.writeInteger(payloadType & 0x7F)
                    self.redundantBytesSent += 1
                }
            }
            scratch.writeImmutableBuffer(primary)
            out = scratch
            self.payloadScratch = scratch
        }
        // Keep the primary.
        let length = primary.readableBytes
        let fits = length <= Self.slotBytes
        if fits { storage.setBuffer(primary, at: self.head * Self.slotBytes) }
        self.frames[self.head] = Frame(timestamp: timestamp, length: fits ? length : -1)
        self.head = (self.head + 1) % self.frames.count
        self.count = min(self.count + 1, self.frames.count)
        return out
    }

    /// Keeps a copy of the packet just sent, to repeat it over its frame interval.
    public mutating func keepForRepeat(_ packet: ByteBuffer, now: NIODeadline) {
        if self.lastPacket == nil { self.lastPacket = ByteBufferAllocator().buffer(capacity: 1500) }
        self.lastPacket!.clear()
        self.lastPacket!.writeImmutableBuffer(packet)
        self.lastPrimaryAt = now
        self.repeatsPending = self.plan.sendsPerFrame - 1
    }

    /// When the next repeat of the last packet is due: send `k` of `s` goes `k / s` of a frame after it.
    public func nextRepeatDue(clockRate: UInt32) -> NIODeadline? {
        guard self.repeatsPending > 0, let sentAt = self.lastPrimaryAt else { return nil }
        let sends = Int64(self.plan.sendsPerFrame)
        let index = sends - Int64(self.repeatsPending)
        return sentAt + .nanoseconds(self.frameDuration(clockRate: clockRate).nanoseconds * index / sends)
    }

    /// The duration of a frame: the timestamp step between the last two frames kept (48 kHz ticks),
    /// or 20 ms when unknown.
    public func frameDuration(clockRate: UInt32) -> TimeAmount {
        guard self.count >= 2, clockRate > 0 else { return .milliseconds(20) }
        let last = self.frames[(self.head - 1 + self.frames.count) % self.frames.count]
        let before = self.frames[(self.head - 2 + self.frames.count) % self.frames.count]
        let step = last.timestamp &- before.timestamp
        guard step > 0, step <= UInt32(clockRate / 10) else { return .milliseconds(20) }
        return .nanoseconds(Int64(step) * 1_000_000_000 / Int64(clockRate))
    }
}
