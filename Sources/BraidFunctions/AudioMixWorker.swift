#if canImport(Glibc)
    import Glibc
#endif
import NIOConcurrencyHelpers
import NIOCore

/// One encoded output frame on its way from a worker to the router's event loop.
struct EmittedFrame: Sendable {
    /// nil: the mix for everyone; otherwise the participant this mix-minus output is for.
    var listener: String?
    /// The worker tick that made it: the output's RTP timestamp is `tick × 960` past its base, so a pause
    /// (every input idle) shows as a timestamp gap, as a muted sender's would.
    var tick: Int64
    var payload: [UInt8]
    var captureNTP: UInt64?
    /// RFC 6464 level, −dBov (0 loudest, 127 silence).
    var level: UInt8
}

/// What a worker measured, published once a second for status reads from any thread.
struct WorkerStatistics: Sendable {
    var framesInPerSecond: Double = 0
    var framesOutPerSecond: Double = 0
    var framesOut = 0
    var lateTicks = 0
    var cpuPercent: Double = 0
    var delayP50Ms: Double?
    var delayP95Ms: Double?
    var inputs: [String: AudioMix.InputStatistics] = [:]
}

/// Runs an ``AudioMix`` on a worker event loop, off the forwarding loops: every 20 ms (deadlines fixed
/// from the start, so the clock does not drift with scheduling delays) it drains the inbox into the
/// jitter buffers, mixes one frame and hands the encoded outputs to `deliver` (which moves them to the
/// router's loop). A worker starved for more than five frames skips ahead and counts the skipped ticks.
///
/// Confined to `loop` after ``start()``; the statistics box is the only state read from elsewhere.
final class AudioMixWorker: @unchecked Sendable {
    static let frameInterval = TimeAmount.milliseconds(20)

    let loop: any EventLoop
    private let mix: AudioMix
    private let inbox: FunctionInbox
    private let deliver: @Sendable ([EmittedFrame]) -> Void
    let statistics = NIOLockedValueBox(WorkerStatistics())

    private var started = NIODeadline.uptimeNanoseconds(0)
    private var tickIndex: Int64 = 0
    private var task: Scheduled<Void>?
    private var stopped = false
    // The current one-second window.
    private var windowStart = NIODeadline.uptimeNanoseconds(0)
    private var windowFramesIn = 0
    private var windowFramesOut = 0
    private var windowCPUNanoseconds: Int64 = 0
    private var framesOut = 0
    private var lateTicks = 0
    /// The function's own delay of the last 256 output frames, ms.
    private var delays: [Double] = []
    private var delayCursor = 0

    init(loop: any EventLoop, mix: AudioMix, inbox: FunctionInbox, deliver: @escaping @Sendable ([EmittedFrame]) -> Void) {
        self.loop = loop
        self.mix = mix
        self.inbox = inbox
        self.deliver = deliver
    }

    /// Starts ticking (from any thread).
    func start() {
        self.loop.execute {
            self.started = .now()
            self.windowStart = self.started
            self.scheduleNext()
        }
    }

    /// Stops ticking (from any thread); the mix is dropped with the worker.
    func stop() {
        self.loop.execute {
            self.stopped = true
            self.task?.cancel()
            self.task = nil
        }
    }

    private func scheduleNext() {
        guard !self.stopped else { return }
        let deadline = self.started + .nanoseconds(Self.frameInterval.nanoseconds * (self.tickIndex + 1))
        self.task = self.loop.scheduleTask(deadline: deadline) { [self] in self.tick() }
    }

    private func tick() {
        guard !self.stopped else { return }
        let now = NIODeadline.now()
        let due = (now - self.started).nanoseconds / Self.frameInterval.nanoseconds
        if due > self.tickIndex + 5 {
            self.lateTicks += Int(due - self.tickIndex - 1)
            self.tickIndex = due - 1
        }
        self.tickIndex += 1
        let cpuBefore = Self.threadCPUNanoseconds()
        self.inbox.drain { event, payload in
            switch event {
            case .frame(let input, let timestamp, _, _, let arrival, let capture):
                self.windowFramesIn += 1
                _ = self.mix.receive(
                    input, timestamp: timestamp, payload: payload, arrivalNanoseconds: arrival, captureNTP: capture)
            case .added(let input, let participant):
                try? self.mix.addInput(input, participant: participant)
            case .removed(let input):
                self.mix.removeInput(input)
            }
        }
        var frames: [EmittedFrame] = []
        let nowNanoseconds = Int64(now.uptimeNanoseconds)
        let tick = self.tickIndex
        self.mix.tick(nowNanoseconds: nowNanoseconds) { frame in
            if let arrival = frame.newestArrival {
                self.recordDelay(Double(Int64(NIODeadline.now().uptimeNanoseconds) - arrival) / 1e6)
            }
            let dBov = frame.level > 0 ? -20 * log10(Double(frame.level)) : 127
            frames.append(
                EmittedFrame(
                    listener: frame.listener, tick: tick, payload: Array(frame.payload), captureNTP: frame.captureNTP,
                    level: UInt8(max(0, min(127, dBov.rounded())))))
        }
        if !frames.isEmpty {
            self.framesOut += 1
            self.windowFramesOut += 1
            self.deliver(frames)
        }
        self.windowCPUNanoseconds += Self.threadCPUNanoseconds() - cpuBefore
        if now - self.windowStart >= .seconds(1) { self.publishStatistics(now: now) }
        self.scheduleNext()
    }

    private func recordDelay(_ milliseconds: Double) {
        if self.delays.count < 256 {
            self.delays.append(milliseconds)
        } else {
            self.delays[self.delayCursor] = milliseconds
            self.delayCursor = (self.delayCursor + 1) % 256
        }
    }

    private func publishStatistics(now: NIODeadline) {
        let seconds = Double((now - self.windowStart).nanoseconds) / 1e9
        let sorted = self.delays.sorted()
        func percentile(_ p: Double) -> Double? {
            sorted.isEmpty ? nil : sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
        }
        var inputs: [String: AudioMix.InputStatistics] = [:]
        for id in self.mix.inputIDs { inputs[id] = self.mix.statistics(of: id) }
        let snapshot = WorkerStatistics(
            framesInPerSecond: Double(self.windowFramesIn) / seconds,
            framesOutPerSecond: Double(self.windowFramesOut) / seconds, framesOut: self.framesOut,
            lateTicks: self.lateTicks, cpuPercent: Double(self.windowCPUNanoseconds) / 1e7 / seconds,
            delayP50Ms: percentile(0.5), delayP95Ms: percentile(0.95), inputs: inputs)
        self.statistics.withLockedValue { $0 = snapshot }
        self.windowStart = now
        self.windowFramesIn = 0
        self.windowFramesOut = 0
        self.windowCPUNanoseconds = 0
    }

    /// CPU time of the calling thread.
    static func threadCPUNanoseconds() -> Int64 {
        #if canImport(Glibc)
            var time = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
            return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
        #else
            return 0
        #endif
    }
}
