import BraidRTPStreams

/// Audio frames as a player with a fixed playout deadline counts them: a frame is identified by its RTP
/// timestamp, whether it came as a packet's primary or as a redundant block of a later packet (RED,
/// RFC 2198), and it is *in time* when its first copy arrived no later than ``deadlineMicroseconds`` after
/// its capture. Frames never received by the time the stream has moved ``window`` frames past them are
/// *missing* (a player conceals them); frames that only arrived after their deadline are *late* (concealed
/// too, but they show that more delay, not more redundancy, would have saved them).
///
/// Frame boundaries come from timestamps: the frame length is the first frame's duration (its Opus TOC;
/// 20 ms = 960 ticks at 48 kHz). Pure state, fed by the subscriber; no allocation after `init`.
struct AudioFrameDeadlines {
    /// Frames tracked beyond the newest before they are settled (5 s at 20 ms).
    static let window = 256

    /// The playout deadline after capture.
    let deadlineMicroseconds: Int64
    private var timestamps = TimestampUnwrapper()
    /// Ticks per frame (from the first frame).
    private(set) var frameTicks: Int64 = 960
    /// Extended timestamp of frame index 0.
    private var origin: Int64?
    /// Newest frame index seen, and the first index not yet settled.
    private var newest: Int64 = -1
    private var settledBelow: Int64 = 0
    /// Per open frame: 0 not received, 1 in time, 2 only late.
    private var states: [UInt8]

    private(set) var framesInTime = 0
    private(set) var framesLate = 0
    private(set) var framesMissing = 0
    /// Frames whose first copy was a redundant block (the primary was lost or slower).
    private(set) var framesFromRedundancy = 0
    /// Copies of frames already received (redundant blocks and repeated packets that were not needed).
    private(set) var duplicateCopies = 0

    init(deadlineMicroseconds: Int64) {
        self.deadlineMicroseconds = deadlineMicroseconds
        self.states = Array(repeating: 0, count: Self.window)
    }

    /// In time, late and missing counts including the frames not settled yet.
    var totals: (inTime: Int, late: Int, missing: Int) {
        let open = self.openFrames
        return (self.framesInTime + open.inTime, self.framesLate + open.late, self.framesMissing + open.missing)
    }

    private var openFrames: (inTime: Int, late: Int, missing: Int) {
        var result = (inTime: 0, late: 0, missing: 0)
        guard self.newest >= self.settledBelow else { return result }
        for index in self.settledBelow...self.newest {
            switch self.states[Int(index % Int64(Self.window))] {
            case 1: result.inTime += 1
            case 2: result.late += 1
            default: result.missing += 1
            }
        }
        return result
    }

    /// A copy of the frame with RTP timestamp `timestamp` arrived `latencyMicroseconds` after its capture
    /// (nil: unknown, counted as in time); `redundant` when it was a RED block rather than a primary.
    /// `durationTicks` is the frame's length from its Opus TOC (the first frame's sets the frame length).
    mutating func received(timestamp: UInt32, durationTicks: Int?, latencyMicroseconds: Int64?, redundant: Bool) {
        let extended = self.timestamps.unwrap(timestamp)
        guard let origin = self.origin else {
            if let durationTicks, durationTicks > 0 { self.frameTicks = Int64(durationTicks) }
            self.origin = extended
            self.record(index: 0, latencyMicroseconds: latencyMicroseconds, redundant: redundant)
            return
        }
        let delta = extended - origin
        // Frames from before the first one received (redundant blocks of early packets) are not counted.
        guard delta >= 0 else { return }
        self.record(index: delta / self.frameTicks, latencyMicroseconds: latencyMicroseconds, redundant: redundant)
    }

    /// Whether a copy of the frame with RTP timestamp `timestamp` has arrived (in time or late). Frames
    /// already settled, or from before the first one, count as arrived: nothing can be done for them.
    func hasFrame(timestamp: UInt32) -> Bool {
        guard let origin = self.origin else { return false }
        let delta = self.timestamps.peek(timestamp) - origin
        guard delta >= 0 else { return true }
        let index = delta / self.frameTicks
        guard index >= self.settledBelow else { return true }
        guard index <= self.newest else { return false }
        return self.states[Int(index % Int64(Self.window))] != 0
    }

    private mutating func record(index: Int64, latencyMicroseconds: Int64?, redundant: Bool) {
        guard index >= self.settledBelow else {
            self.duplicateCopies += 1
            return
        }
        while self.newest < index {
            self.newest += 1
            // Settle the frame leaving the window before its slot is reused.
            if self.newest - self.settledBelow >= Int64(Self.window) { self.settle(self.settledBelow) }
            self.states[Int(self.newest % Int64(Self.window))] = 0
        }
        let slot = Int(index % Int64(Self.window))
        let inTime = (latencyMicroseconds ?? 0) <= self.deadlineMicroseconds
        switch self.states[slot] {
        case 0:
            self.states[slot] = inTime ? 1 : 2
            if redundant { self.framesFromRedundancy += 1 }
        case 2 where inTime:
            self.states[slot] = 1
        default:
            self.duplicateCopies += 1
        }
    }

    private mutating func settle(_ index: Int64) {
        switch self.states[Int(index % Int64(Self.window))] {
        case 1: self.framesInTime += 1
        case 2: self.framesLate += 1
        default: self.framesMissing += 1
        }
        self.settledBelow = index + 1
    }
}
