import BraidCongestion
import NIOCore

// How a subscriber's bandwidth is shared: the estimate (transport-wide feedback or REMB), capped by the
// operator, less the audio it receives, split over its video slots; a LayerSelector per slot picks the
// layer (down at once, up after a dwell).

extension SFUSubscriber {
    // MARK: - Periodic work

    /// The subscriber's available bitrate: the estimate (or unlimited without any feedback), capped.
    var availableBitrate: Int {
        let estimate = self.hasBandwidthFeedback ? self.estimator.estimate.bitrate : Int.max
        return min(estimate, self.maximumBitrate ?? Int.max)
    }

    /// How often the tick looks at the sender-report timers.
    static let senderReportCheckInterval = TimeAmount.milliseconds(100)

    func tick(now: NIODeadline) {
        self.lastActivity = now
        self.outbound.roll(now: now, window: self.configuration.bitrateWindow)
        // SRs are due every 1-2 s: looking at every slot's timer on every 10 ms tick was 2 % of the node's
        // CPU at 200 subscribers; a tenth of a second late is well inside RFC 3550's randomised intervals.
        if self.nextSenderReportCheck.map({ now >= $0 }) ?? true {
            self.nextSenderReportCheck = now + Self.senderReportCheckInterval
            self.sendSenderReports(now: now)
            self.planProtection()
        }
        if self.hasRepeatingSlots { self.sendRepeats(now: now) }
        if self.lastLayerDecisionAt.map({ now - $0 >= self.configuration.layerDecisionInterval }) ?? true {
            self.decideLayers(now: now)
        }
    }

    /// Splits the available bitrate over the video slots (audio is always forwarded; its measured rate is
    /// set aside first) and lets each slot's layer selector pick a layer.
    func decideLayers(now: NIODeadline) {
        self.lastLayerDecisionAt = now
        var budget = self.availableBitrate
        var videoSlots = 0
        for slot in self.slots {
            guard let producer = slot.producer else { continue }
            if slot.kind == .audio {
                let rate = producer.layers.isEmpty ? 0 : producer.rate(of: 0)
                budget = budget == Int.max ? budget : max(0, budget - rate)
            } else {
                videoSlots += 1
            }
        }
        guard videoSlots > 0 else { return }
        let share = budget == Int.max ? Int.max : budget / videoSlots
        for slot in self.slots where slot.kind == .video {
            // The slot's share is its estimate upstream: a relay source can size what it pulls by it.
            slot.consumer?.downstreamEstimate = share == Int.max ? nil : share
            guard let producer = slot.producer, producer.layers.count > 1 else { continue }
            // Only layers that are flowing are candidates: a browser stops its top layers when its own
            // estimate drops, and a layer never measured yet cannot be ranked.
            let order = producer.qualityOrder().filter { producer.isFlowing($0, now: now) }
            guard !order.isEmpty else { continue }
            // LayerSelector wants strictly increasing rates (equal measurements are nudged apart).
            var rates: [Int] = []
            rates.reserveCapacity(order.count)
            for index in order {
                rates.append(max(producer.rate(of: index), (rates.last ?? 0) + 1))
            }
            // A target that stopped flowing: start from the best flowing layer, the selector goes down
            // from there at once if the estimate does not cover it.
            let currentRank = order.firstIndex(of: slot.targetLayer) ?? (order.count - 1)
            if slot.selector.map({ !Self.similar($0.layerBitrates, rates) }) ?? true {
                var selectorConfiguration = LayerSelector.Configuration()
                selectorConfiguration.upThreshold = self.configuration.layerUpThreshold
                selectorConfiguration.downThreshold = self.configuration.layerDownThreshold
                selectorConfiguration.upDwellUs = self.configuration.layerUpDwell.nanoseconds / 1000
                slot.selector = try? LayerSelector(
                    layerBitrates: rates, initialLayer: currentRank, configuration: selectorConfiguration)
            }
            guard var selector = slot.selector else { continue }
            let rank = selector.update(estimate: share, now: now.microseconds)
            slot.selector = selector
            let layer = order[min(rank, order.count - 1)]
            if layer != slot.targetLayer { slot.setTargetLayer(layer, now: now) }
        }
    }

    /// Whether two rate lists differ by less than a quarter per layer (measurement noise): the selector
    /// is rebuilt only on a real change, so its up-dwell is not restarted by every new measurement.
    private static func similar(_ a: [Int], _ b: [Int]) -> Bool {
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where abs(x - y) * 4 > max(x, y) { return false }
        return true
    }

}
