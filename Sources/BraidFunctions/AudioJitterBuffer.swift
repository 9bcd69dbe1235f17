import BraidRTPStreams

/// One function input's encoded audio frames, put back in timestamp order and released one frame per
/// tick of the function's own clock after a fixed buffering delay: the jitter buffer in front of a
/// decoder.
///
/// ```
///  insert (any order, repeats, late)        pop (one per 20 ms tick)
///  ts 960 ─┐   ┌───┬───┬───┬───┬───┐
///  ts   0 ─┼─▶ │ 0 │960│   │2880│   │ ─▶ .frame(0) .frame(960) .lost(next: 2880) .frame(2880) …
///  ts 2880─┘   └───┴───┴───┴───┴───┘       after `delayFrames` ticks of buffering
/// ```
///
/// - A stream starts (or starts again after going idle) with the target delay's ticks of buffering, so
///   frames that arrive up to that much later than the first are in time. The target starts at
///   `delayFrames` and adapts, as NetEq does it in spirit:
///   - each frame's transit (arrival time minus its timestamp's time) goes into a history of the last
///     `historyFrames` frames; every `adaptationWindowFrames` turns the target becomes what that history
///     needs: the spread between its fastest frame and its `delayPercentile` frame, in frames (rounded up),
///     lowered by at most one frame per evaluation and only after one without late frames;
///   - a frame that arrives after its turn raises the target by one frame at once (the buffer stretches:
///     one concealed turn);
///   - a standing queue (more frames buffered than the target all through an evaluation window, after a
///     burst or a stall) is drained by skipping up to `maximumSkipsPerEvaluation` of the oldest frames.
/// - A frame missing at its turn is `.lost`: the decoder conceals it, or rebuilds it from the next
///   frame's in-band FEC when that one is already here (handed over as `next`).
/// - After `idleAfterFrames` turns with nothing buffered the input is idle (muted, DTX, gone): it
///   yields `.idle` (silence, no concealment) until a frame arrives again.
/// - When more than the target delay plus `maximumExtraFrames` are buffered (the sender's clock runs fast, or a
///   burst arrived after a stall), the oldest are skipped to get back to the target delay.
///
/// Frames are told apart by RTP timestamp in units of `frameTicks` (20 ms at 48 kHz by default). Payloads
/// are copied into preallocated slots: no allocation per frame after `init`. Pure state; the caller's
/// clock drives ``pop(_:)``.
public struct AudioJitterBuffer {
    /// How the buffer is sized.
    public struct Configuration: Sendable, Hashable {
        /// RTP ticks per frame (960: 20 ms at 48 kHz).
        public var frameTicks: Int64
        /// Ticks of buffering before a stream starts playing, and the least the adaptive delay goes to.
        public var delayFrames: Int
        /// The most the adaptive delay grows to.
        public var maximumDelayFrames: Int
        /// Turns between evaluations of the target delay (50: once a second).
        public var adaptationWindowFrames: Int
        /// Frames whose transit the target is computed from (250: the last 5 s).
        public var historyFrames: Int
        /// The share of the history's frames the target keeps in time (0.95).
        public var delayPercentile: Double
        /// Frames skipped at most per evaluation to drain a standing queue.
        public var maximumSkipsPerEvaluation: Int
        /// Playout time of a frame (20 ms), to turn transit into frames.
        public var frameNanoseconds: Int64
        /// Frames buffered beyond the delay before the oldest are skipped.
        public var maximumExtraFrames: Int
        /// Empty turns in a row after which the input counts as idle.
        public var idleAfterFrames: Int
        /// Largest payload kept (an Opus packet is at most 1275 bytes per frame).
        public var maximumPayloadBytes: Int

        /// A configuration.
        public init(
            frameTicks: Int64 = 960, delayFrames: Int = 1, maximumDelayFrames: Int = 8, adaptationWindowFrames: Int = 50,
            historyFrames: Int = 250, delayPercentile: Double = 0.95, maximumSkipsPerEvaluation: Int = 3,
            frameNanoseconds: Int64 = 20_000_000, maximumExtraFrames: Int = 10, idleAfterFrames: Int = 15,
            maximumPayloadBytes: Int = 1500
        ) {
            self.frameTicks = frameTicks
            self.delayFrames = max(0, delayFrames)
            self.maximumDelayFrames = max(self.delayFrames, maximumDelayFrames)
            self.adaptationWindowFrames = max(1, adaptationWindowFrames)
            self.historyFrames = max(2, historyFrames)
            self.delayPercentile = min(1, max(0.5, delayPercentile))
            self.maximumSkipsPerEvaluation = max(0, maximumSkipsPerEvaluation)
            self.frameNanoseconds = max(1, frameNanoseconds)
            self.maximumExtraFrames = maximumExtraFrames
            self.idleAfterFrames = idleAfterFrames
            self.maximumPayloadBytes = maximumPayloadBytes
        }
    }

    /// What ``insert(timestamp:payload:arrival:capture:)`` did with a frame.
    public enum InsertOutcome: Sendable, Hashable {
        /// Kept for its turn.
        case stored
        /// Already buffered (a repeat or a redundant copy).
        case duplicate
        /// Its turn has passed: concealed already.
        case late
        /// Larger than ``Configuration/maximumPayloadBytes``.
        case tooLarge
    }

    /// A frame's side information: when it arrived (monotonic ns) and when it was captured (NTP, from
    /// abs-capture-time, if the sender said).
    public struct FrameInfo: Sendable, Hashable {
        public var arrivalNanoseconds: Int64
        public var captureNTP: UInt64?
    }

    /// What a turn yields.
    public enum Turn {
        /// Decode this frame (the bytes are valid during the ``pop(_:)`` call only).
        case frame(UnsafeRawBufferPointer, FrameInfo)
        /// Lost: conceal it, or rebuild it from `next` (the following frame, if already here) by in-band FEC.
        case lost(next: UnsafeRawBufferPointer?)
        /// Nothing to play: buffering, or idle.
        case idle
    }

    private struct Slot {
        /// Extended timestamp of the frame held, nil when empty.
        var position: Int64?
        var length = 0
        var info = FrameInfo(arrivalNanoseconds: 0, captureNTP: nil)
    }

    public let configuration: Configuration
    private var slots: [Slot]
    /// Payload bytes, `maximumPayloadBytes` per slot.
    private var bytes: [UInt8]
    private var timestamps = TimestampUnwrapper()
    /// Extended timestamp of the frame whose turn is next; nil while idle.
    private var next: Int64?
    /// Extended timestamp of the newest frame stored since the stream (re)started.
    private var newest: Int64 = 0
    private var bufferingTurns = 0
    /// The delay now, in frames (adapts between `delayFrames` and `maximumDelayFrames`).
    public private(set) var targetDelay: Int
    /// Turns to conceal without advancing (the delay just grew).
    private var stretchTurns = 0
    private var windowTurns = 0
    private var windowLate = 0
    private var windowMinimumDepth = Int.max
    private var emptyTurns = 0
    private var stored = 0
    /// Transit of the last `historyFrames` frames (arrival minus timestamp time, ns; only differences
    /// matter), a ring; and a scratch copy for the percentile, so evaluating allocates nothing.
    private var transits: [Int64]
    private var transitCount = 0
    private var transitCursor = 0
    private var sortedTransits: [Int64]

    /// Frames played from the buffer.
    public private(set) var framesPlayed = 0
    /// Turns with the frame missing while the stream was playing.
    public private(set) var framesLost = 0
    /// Frames that came after their turn.
    public private(set) var framesLate = 0
    /// Frames skipped to get back to the target delay.
    public private(set) var framesSkipped = 0
    /// Repeats and redundant copies of frames already buffered.
    public private(set) var duplicates = 0
    /// Turns concealed to grow the delay.
    public private(set) var framesStretched = 0

    /// An empty, idle buffer.
    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        self.targetDelay = configuration.delayFrames
        let capacity = configuration.maximumDelayFrames + configuration.maximumExtraFrames + 2
        self.slots = Array(repeating: Slot(), count: capacity)
        self.bytes = Array(repeating: 0, count: capacity * configuration.maximumPayloadBytes)
        self.transits = Array(repeating: 0, count: configuration.historyFrames)
        self.sortedTransits = []
        self.sortedTransits.reserveCapacity(configuration.historyFrames)
    }

    /// The delay the transit history asks for, in frames (nil with too little history).
    public var neededDelay: Int? {
        mutating get {
            guard self.transitCount >= 10 else { return nil }
            self.sortedTransits.removeAll(keepingCapacity: true)
            self.sortedTransits.append(contentsOf: self.transits[0..<self.transitCount])
            self.sortedTransits.sort()
            let index = min(self.transitCount - 1, Int(Double(self.transitCount) * self.configuration.delayPercentile))
            let spread = self.sortedTransits[index] - self.sortedTransits[0]
            let frames = Int((spread + self.configuration.frameNanoseconds - 1) / self.configuration.frameNanoseconds)
            return min(self.configuration.maximumDelayFrames, max(self.configuration.delayFrames, frames))
        }
    }

    private mutating func recordTransit(position: Int64, arrivalNanoseconds: Int64) {
        let ticks = self.configuration.frameTicks
        // The frame's place on the sender's clock, in ns (frames of `frameNanoseconds`).
        let sent = position / ticks * self.configuration.frameNanoseconds + position % ticks * self.configuration.frameNanoseconds / ticks
        self.transits[self.transitCursor] = arrivalNanoseconds &- sent
        self.transitCursor = (self.transitCursor + 1) % self.transits.count
        self.transitCount = min(self.transitCount + 1, self.transits.count)
    }

    /// Whether a stream is buffering or playing (not idle).
    public var isActive: Bool { self.next != nil }

    /// Frames buffered now.
    public var depth: Int { self.stored }

    /// Keeps the frame with RTP timestamp `timestamp` for its turn.
    public mutating func insert(
        timestamp: UInt32, payload: UnsafeRawBufferPointer, arrivalNanoseconds: Int64, captureNTP: UInt64? = nil
    ) -> InsertOutcome {
        guard payload.count <= self.configuration.maximumPayloadBytes else { return .tooLarge }
        let position = self.timestamps.unwrap(timestamp)
        let ticks = self.configuration.frameTicks
        let capacity = Int64(self.slots.count)
        self.recordTransit(position: position, arrivalNanoseconds: arrivalNanoseconds)
        if let next = self.next {
            if position < next {
                self.framesLate += 1
                self.windowLate += 1
                // Jitter beyond the delay: grow it by a frame (one concealed turn stretches the buffer).
                if self.targetDelay < self.configuration.maximumDelayFrames {
                    self.targetDelay += 1
                    self.stretchTurns += 1
                }
                return .late
            }
            // Far ahead of the turn (a new stream, a jump after a long stall): start over from it.
            if (position - next) / ticks >= capacity + Int64(self.configuration.idleAfterFrames) {
                self.restart(at: position)
            } else {
                // Make room: skip turns until the frame fits in the window.
                while (position - self.next!) / ticks >= capacity {
                    self.skipOldest()
                }
            }
        } else {
            self.restart(at: position)
        }
        let index = self.slotIndex(position)
        if self.slots[index].position == position {
            self.duplicates += 1
            return .duplicate
        }
        if self.slots[index].position == nil { self.stored += 1 }
        self.slots[index] = Slot(
            position: position, length: payload.count,
            info: FrameInfo(arrivalNanoseconds: arrivalNanoseconds, captureNTP: captureNTP))
        let start = index * self.configuration.maximumPayloadBytes
        self.bytes.withUnsafeMutableBytes { storage in
            UnsafeMutableRawBufferPointer(rebasing: storage[start..<(start + payload.count)]).copyMemory(from: payload)
        }
        self.emptyTurns = 0
        self.newest = max(self.newest, position)
        // Too much buffered (sender clock fast, a burst after a stall): back to the target delay.
        let limit = Int64(self.targetDelay + self.configuration.maximumExtraFrames)
        while (self.newest - self.next!) / ticks >= limit {
            self.skipOldest()
        }
        return .stored
    }

    /// One turn of the function's clock: the frame to decode, a lost frame, or nothing.
    public mutating func pop<Result>(_ body: (Turn) throws -> Result) rethrows -> Result {
        guard let position = self.next else { return try body(.idle) }
        if self.bufferingTurns > 0 {
            self.bufferingTurns -= 1
            return try body(.idle)
        }
        if self.stretchTurns > 0 {
            self.stretchTurns -= 1
            self.framesStretched += 1
            return try body(.lost(next: nil))
        }
        let ticks = self.configuration.frameTicks
        let index = self.slotIndex(position)
        self.next = position + ticks
        if self.slots[index].position == position {
            let slot = self.slots[index]
            self.slots[index].position = nil
            self.stored -= 1
            self.framesPlayed += 1
            self.emptyTurns = 0
            self.adapt()
            let start = index * self.configuration.maximumPayloadBytes
            return try self.bytes.withUnsafeBytes { storage in
                try body(.frame(UnsafeRawBufferPointer(rebasing: storage[start..<(start + slot.length)]), slot.info))
            }
        }
        if self.stored == 0 {
            self.emptyTurns += 1
            if self.emptyTurns >= self.configuration.idleAfterFrames {
                self.next = nil
                self.emptyTurns = 0
                return try body(.idle)
            }
        }
        self.framesLost += 1
        let following = self.slotIndex(position + ticks)
        guard self.slots[following].position == position + ticks else { return try body(.lost(next: nil)) }
        let start = following * self.configuration.maximumPayloadBytes
        let length = self.slots[following].length
        return try self.bytes.withUnsafeBytes { storage in
            try body(.lost(next: UnsafeRawBufferPointer(rebasing: storage[start..<(start + length)])))
        }
    }

    /// Every `adaptationWindowFrames` turns: the target follows the transit history (down by at most a
    /// frame, and only after a window without late frames; up at once), then a standing queue beyond the
    /// target is drained.
    private mutating func adapt() {
        self.windowTurns += 1
        self.windowMinimumDepth = min(self.windowMinimumDepth, self.stored)
        guard self.windowTurns >= self.configuration.adaptationWindowFrames else { return }
        if let needed = self.neededDelay {
            if needed > self.targetDelay {
                self.stretchTurns += needed - self.targetDelay
                self.targetDelay = needed
            } else if needed < self.targetDelay, self.windowLate == 0 {
                self.targetDelay -= 1
            }
        }
        if self.windowLate == 0, self.windowMinimumDepth != .max, self.windowMinimumDepth > self.targetDelay {
            for _ in 0..<min(self.windowMinimumDepth - self.targetDelay, self.configuration.maximumSkipsPerEvaluation) {
                self.skipOldest()
            }
        }
        self.windowTurns = 0
        self.windowLate = 0
        self.windowMinimumDepth = .max
    }

    private func slotIndex(_ position: Int64) -> Int {
        let frame = position / self.configuration.frameTicks
        let count = Int64(self.slots.count)
        return Int(((frame % count) + count) % count)
    }

    private mutating func restart(at position: Int64) {
        for index in self.slots.indices { self.slots[index].position = nil }
        self.stored = 0
        self.next = position
        self.newest = position
        self.bufferingTurns = self.targetDelay
        self.stretchTurns = 0
        self.emptyTurns = 0
    }

    /// Drops the frame whose turn is next (or skips the empty turn).
    private mutating func skipOldest() {
        guard let position = self.next else { return }
        let index = self.slotIndex(position)
        if self.slots[index].position == position {
            self.slots[index].position = nil
            self.stored -= 1
        }
        self.framesSkipped += 1
        self.next = position + self.configuration.frameTicks
    }
}
