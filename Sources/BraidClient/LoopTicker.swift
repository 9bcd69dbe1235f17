import NIOConcurrencyHelpers
import NIOCore

/// One timer per event loop that ticks many peers: light subscribers (thousands per loop) each need a
/// 100 ms tick for feedback and reports, and a timer each would cost the loop's scheduler a heap insertion
/// per tick per peer. The ticker fires every 10 ms and serves one tenth of its peers each time, so every
/// peer is ticked every 100 ms and the feedback they send is spread evenly instead of leaving in bursts.
final class LoopTicker: @unchecked Sendable {
    /// Ticks per period: each fire serves one of this many groups.
    static let groups = 10
    static let interval = TimeAmount.milliseconds(10)

    private static let tickers = NIOLockedValueBox<[ObjectIdentifier: LoopTicker]>([:])

    let eventLoop: any EventLoop
    /// Confined to the event loop.
    private var entries: [[ObjectIdentifier: (NIODeadline) -> Bool]] = Array(repeating: [:], count: LoopTicker.groups)
    private var count = 0
    private var next = 0
    private var nextGroup = 0
    private var task: RepeatedTask?

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// The ticker of `loop`.
    static func on(_ loop: any EventLoop) -> LoopTicker {
        Self.tickers.withLockedValue { tickers in
            if let ticker = tickers[ObjectIdentifier(loop)] { return ticker }
            let ticker = LoopTicker(eventLoop: loop)
            tickers[ObjectIdentifier(loop)] = ticker
            return ticker
        }
    }

    /// Calls `tick` every 100 ms on the event loop until ``remove(_:)``, or until it returns false (its
    /// owner is gone). On the event loop.
    func add(_ owner: AnyObject, tick: @escaping (NIODeadline) -> Bool) {
        self.eventLoop.assertInEventLoop()
        let id = ObjectIdentifier(owner)
        // Groups are filled in turn, so they stay about the same size.
        let group = self.nextGroup
        self.nextGroup = (self.nextGroup + 1) % Self.groups
        if self.entries[group].updateValue(tick, forKey: id) == nil { self.count += 1 }
        if self.task == nil {
            self.task = self.eventLoop.scheduleRepeatedTask(initialDelay: Self.interval, delay: Self.interval) {
                [unowned self] _ in self.fire()
            }
        }
    }

    /// Stops ticking `owner`. On the event loop.
    func remove(_ owner: AnyObject) {
        self.eventLoop.assertInEventLoop()
        let id = ObjectIdentifier(owner)
        for group in self.entries.indices where self.entries[group].removeValue(forKey: id) != nil {
            self.count -= 1
        }
        if self.count == 0 {
            self.task?.cancel()
            self.task = nil
        }
    }

    private func fire() {
        let now = NIODeadline.now()
        let group = self.next
        self.next = (self.next + 1) % Self.groups
        var gone: [ObjectIdentifier] = []
        for (id, tick) in self.entries[group] where !tick(now) { gone.append(id) }
        for id in gone { self.entries[group][id] = nil }
        self.count -= gone.count
        if self.count == 0 {
            self.task?.cancel()
            self.task = nil
        }
    }
}
