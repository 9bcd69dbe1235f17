import Testing

@testable import BraidCongestion

@Suite("Inter-arrival grouping (draft §5.2)")
struct InterArrivalGrouperTests {
    /// Feeds packets sent every `spacingUs`, arriving `offset + send + extra(i)`, returns the deltas.
    static func feed(
        _ grouper: inout InterArrivalGrouper,
        count: Int,
        spacingUs: Int64,
        offsetUs: Int64,
        extraDelayUs: (Int) -> Int64 = { _ in 0 }
    ) -> [InterArrivalDelta] {
        var deltas: [InterArrivalDelta] = []
        for i in 0..<count {
            let send = Int64(i) * spacingUs
            if let d = grouper.add(sendTimeUs: send, arrivalTimeUs: offsetUs + send + extraDelayUs(i), size: 100) {
                deltas.append(d)
            }
        }
        return deltas
    }

    @Test("packets within 5 ms of send time form one group; deltas use each group's last packet")
    func groupsBySendTime() {
        var grouper = InterArrivalGrouper()
        // Sent at 0, 2, 4 ms (group A), 10, 12 ms (group B), 20 ms (group C opens, closes B).
        let sends: [Int64] = [0, 2_000, 4_000, 10_000, 12_000, 20_000, 30_000]
        var deltas: [InterArrivalDelta] = []
        for send in sends {
            if let d = grouper.add(sendTimeUs: send, arrivalTimeUs: send + 40_000, size: 100) { deltas.append(d) }
        }
        // B vs A, then C vs B (emitted when the 30 ms packet opens group D).
        #expect(deltas.count == 2)
        #expect(
            deltas[0]
                == InterArrivalDelta(
                    sendDeltaUs: 8_000,
                    arrivalDeltaUs: 8_000,
                    sizeDeltaBytes: -100,
                    arrivalTimeUs: 52_000
                )
        )
        #expect(deltas[1].sendDeltaUs == 8_000)
        #expect(deltas[1].sizeDeltaBytes == -100)
        #expect(deltas[1].delayVariationUs == 0)
    }

    @Test("a burst released by a queue joins the group even when sent later")
    func burstArrival() {
        var grouper = InterArrivalGrouper()
        _ = grouper.add(sendTimeUs: 0, arrivalTimeUs: 100_000, size: 100)
        // Sent 20 ms later but arrives 1 ms later: d < 0 and inter-arrival < 5 ms.
        #expect(grouper.add(sendTimeUs: 20_000, arrivalTimeUs: 101_000, size: 100) == nil)
        #expect(grouper.add(sendTimeUs: 40_000, arrivalTimeUs: 102_000, size: 100) == nil)
        // A normally spaced packet opens the next group.
        _ = grouper.add(sendTimeUs: 60_000, arrivalTimeUs: 160_000, size: 100)
        let d = grouper.add(sendTimeUs: 80_000, arrivalTimeUs: 180_000, size: 100)
        #expect(d?.sendDeltaUs == 20_000)  // 60 ms vs the burst group's last send, 40 ms
        #expect(d?.arrivalDeltaUs == 58_000)
        #expect(d?.sizeDeltaBytes == -200)
    }

    @Test("a constant arrival-clock offset does not change any delta")
    func clockOffsetInvariance() {
        var a = InterArrivalGrouper()
        var b = InterArrivalGrouper()
        let jitter: (Int) -> Int64 = { Int64(($0 * 7919) % 3_000) }
        let near = Self.feed(&a, count: 200, spacingUs: 3_000, offsetUs: 0, extraDelayUs: jitter)
        let far = Self.feed(&b, count: 200, spacingUs: 3_000, offsetUs: -9_000_000_000_000, extraDelayUs: jitter)
        #expect(near.count > 50)
        #expect(near.map(\.sendDeltaUs) == far.map(\.sendDeltaUs))
        #expect(near.map(\.arrivalDeltaUs) == far.map(\.arrivalDeltaUs))
    }

    @Test("packets sent before the current group are ignored and counted")
    func reorderedPacket() {
        var grouper = InterArrivalGrouper()
        _ = grouper.add(sendTimeUs: 0, arrivalTimeUs: 50_000, size: 100)
        _ = grouper.add(sendTimeUs: 10_000, arrivalTimeUs: 60_000, size: 100)
        #expect(grouper.add(sendTimeUs: 5_000, arrivalTimeUs: 61_000, size: 100) == nil)
        #expect(grouper.reorderedPackets == 1)
    }

    @Test("groups arriving out of order yield no delta; repeated reordering resets")
    func reorderedGroups() {
        var grouper = InterArrivalGrouper()
        var deltas: [InterArrivalDelta] = []
        // Groups every 10 ms; arrival times go backwards from group 3 on.
        let arrivals: [Int64] = [100_000, 110_000, 120_000, 90_000, 80_000, 70_000, 60_000, 70_000]
        for (i, arrival) in arrivals.enumerated() {
            if let d = grouper.add(sendTimeUs: Int64(i) * 10_000, arrivalTimeUs: arrival, size: 100) {
                deltas.append(d)
            }
        }
        #expect(deltas.allSatisfy { $0.arrivalDeltaUs >= 0 })
        #expect(grouper.resets == 1)
    }

    @Test("a jump of the arrival clock resets instead of producing a huge delta")
    func clockJump() {
        var grouper = InterArrivalGrouper()
        var deltas = Self.feed(&grouper, count: 20, spacingUs: 10_000, offsetUs: 0)
        for i in 20..<40 {
            let send = Int64(i) * 10_000
            if let d = grouper.add(sendTimeUs: send, arrivalTimeUs: send + 3_600_000_000, size: 100) {
                deltas.append(d)
            }
        }
        #expect(grouper.resets == 1)
        #expect(deltas.allSatisfy { abs($0.delayVariationUs) < 1_000 })
    }

    @Test("extreme timestamps never trap")
    func hostileTimestamps() {
        var grouper = InterArrivalGrouper()
        let values: [Int64] = [.min, .max, 0, -1, .min + 1, .max - 1, 5_000, .min, .max]
        for send in values {
            for arrival in values {
                _ = grouper.add(sendTimeUs: send, arrivalTimeUs: arrival, size: .max)
                _ = grouper.add(sendTimeUs: send, arrivalTimeUs: arrival, size: .min)
            }
        }
        #expect(grouper.resets > 0)
    }
}

@Suite("Trendline estimator (draft §5.3)")
struct TrendlineEstimatorTests {
    @Test("least squares slope of exact lines")
    func regression() {
        #expect(TrendlineEstimator.leastSquaresSlope([0, 1, 2, 3], [1, 3, 5, 7]) == 2)
        #expect(TrendlineEstimator.leastSquaresSlope([0, 10, 20], [4, 4, 4]) == 0)
        #expect(TrendlineEstimator.leastSquaresSlope([5, 5, 5], [1, 2, 3]) == nil)
    }

    @Test("constant delay gives a zero trend; growing delay a positive one, shrinking a negative one")
    func trendSign() {
        func run(extraPerGroupUs: Int64) -> (TrendlineEstimator, Double) {
            var estimator = TrendlineEstimator()
            var trend = 0.0
            var arrival: Int64 = 1_000_000
            for _ in 0..<100 {
                arrival += 5_000 + extraPerGroupUs
                trend = estimator.update(
                    InterArrivalDelta(
                        sendDeltaUs: 5_000,
                        arrivalDeltaUs: 5_000 + extraPerGroupUs,
                        sizeDeltaBytes: 0,
                        arrivalTimeUs: arrival
                    )
                )
            }
            return (estimator, trend)
        }
        #expect(run(extraPerGroupUs: 0).1 == 0)
        let (growing, growingTrend) = run(extraPerGroupUs: 1_000)
        // Delay grows 1 ms per 6 ms of arrival time: the smoothed slope tends to 1/6.
        #expect(abs(growing.slope - 1.0 / 6) < 0.01)
        #expect(abs(growingTrend - 60 * 4 * growing.slope) < 1e-9)
        #expect(run(extraPerGroupUs: -1_000).1 < 0)
    }

    @Test("no trend until the window is full")
    func warmUp() {
        var estimator = TrendlineEstimator(windowSize: 20)
        for i in 1..<20 {
            let trend = estimator.update(
                InterArrivalDelta(
                    sendDeltaUs: 5_000,
                    arrivalDeltaUs: 8_000,
                    sizeDeltaBytes: 0,
                    arrivalTimeUs: Int64(i) * 8_000
                )
            )
            #expect(trend == 0)
        }
        #expect(
            estimator.update(
                InterArrivalDelta(sendDeltaUs: 5_000, arrivalDeltaUs: 8_000, sizeDeltaBytes: 0, arrivalTimeUs: 160_000)
            ) > 0
        )
    }
}

@Suite("Over-use detector (draft §5.4)")
struct OveruseDetectorTests {
    @Test("over-use needs more than one sample over 10 ms above the threshold")
    func overusePersistence() {
        var detector = OveruseDetector()
        // First sample above the 12.5 ms threshold: 2.5 ms of over-use counted, not yet signalled.
        #expect(detector.detect(modifiedTrend: 14, sendDeltaUs: 5_000, now: 0) == .normal)
        #expect(detector.detect(modifiedTrend: 15, sendDeltaUs: 5_000, now: 5_000) == .normal)
        // 12.5 ms > 10 ms and a third sample: signalled.
        #expect(detector.detect(modifiedTrend: 16, sendDeltaUs: 5_000, now: 10_000) == .overusing)
    }

    @Test("a falling trend above the threshold is not signalled as over-use")
    func fallingTrend() {
        var detector = OveruseDetector()
        detector.detect(modifiedTrend: 20, sendDeltaUs: 20_000, now: 0)
        #expect(detector.detect(modifiedTrend: 19, sendDeltaUs: 20_000, now: 20_000) == .normal)
    }

    @Test("under-use is immediate; a trend inside the threshold is normal")
    func underuse() {
        var detector = OveruseDetector()
        #expect(detector.detect(modifiedTrend: -13, sendDeltaUs: 5_000, now: 0) == .underusing)
        #expect(detector.detect(modifiedTrend: 1, sendDeltaUs: 5_000, now: 5_000) == .normal)
    }

    @Test("the threshold adapts towards |m| and stays within 6–600 ms")
    func thresholdBounds() {
        var detector = OveruseDetector()
        var now: Int64 = 0
        for _ in 0..<1_000 {
            now += 100_000
            detector.detect(modifiedTrend: 0, sendDeltaUs: 5_000, now: now)
        }
        #expect(detector.thresholdMs == 6)
        // Climb in steps below the 15 ms spike guard.
        for _ in 0..<100_000 {
            now += 100_000
            detector.detect(modifiedTrend: detector.thresholdMs + 14, sendDeltaUs: 5_000, now: now)
        }
        #expect(detector.thresholdMs == 600)
    }

    @Test("spikes far above the threshold do not move it; NaN is ignored")
    func spikes() {
        var detector = OveruseDetector()
        detector.detect(modifiedTrend: 500, sendDeltaUs: 5_000, now: 0)
        detector.detect(modifiedTrend: 500, sendDeltaUs: 5_000, now: 100_000)
        #expect(detector.thresholdMs == 12.5)
        detector.detect(modifiedTrend: .nan, sendDeltaUs: 5_000, now: 200_000)
        detector.detect(modifiedTrend: -.infinity, sendDeltaUs: .min, now: .min)
        #expect(detector.thresholdMs == 12.5)
    }
}
