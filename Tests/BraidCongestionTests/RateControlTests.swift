import Testing

@testable import BraidCongestion

@Suite("AIMD rate controller (draft §5.5)")
struct AIMDRateControllerTests {
    @Test("far from convergence the rate grows about 8 % per second")
    func multiplicativeIncrease() {
        var controller = AIMDRateController(startBitrate: 1_000_000, minBitrate: 10_000, maxBitrate: 50_000_000)
        var now: Int64 = 0
        controller.update(usage: .normal, ackedBitrate: nil, rttUs: 100_000, now: now)
        for _ in 0..<10 {
            now += 100_000
            controller.update(usage: .normal, ackedBitrate: nil, rttUs: 100_000, now: now)
        }
        #expect(controller.state == .increase)
        #expect(abs(controller.bitrate - 1_080_000) < 1_000)
    }

    @Test("over-use cuts to 0.85 × the acknowledged rate, then holds")
    func decrease() {
        var controller = AIMDRateController(startBitrate: 2_000_000, minBitrate: 10_000, maxBitrate: 50_000_000)
        controller.update(usage: .overusing, ackedBitrate: 1_000_000, rttUs: 100_000, now: 0)
        #expect(controller.bitrate == 850_000)
        #expect(controller.state == .hold)
        // Another over-use within the RTT does not cut again.
        controller.update(usage: .overusing, ackedBitrate: 900_000, rttUs: 100_000, now: 50_000)
        #expect(controller.bitrate == 850_000)
        // Normal after a decrease: hold first, then increase.
        controller.update(usage: .normal, ackedBitrate: 900_000, rttUs: 100_000, now: 300_000)
        #expect(controller.state == .increase)
    }

    @Test("under-use holds the rate")
    func underuseHolds() {
        var controller = AIMDRateController(startBitrate: 1_000_000, minBitrate: 10_000, maxBitrate: 50_000_000)
        controller.update(usage: .normal, ackedBitrate: nil, rttUs: 100_000, now: 0)
        controller.update(usage: .underusing, ackedBitrate: 1_000_000, rttUs: 100_000, now: 1_000_000)
        #expect(controller.state == .hold)
        #expect(controller.bitrate == 1_000_000)
    }

    @Test("increases never exceed 1.5 × the acknowledged rate + 10 kbps")
    func ackedCap() {
        var controller = AIMDRateController(startBitrate: 1_000_000, minBitrate: 10_000, maxBitrate: 50_000_000)
        var now: Int64 = 0
        for _ in 0..<200 {
            now += 100_000
            controller.update(usage: .normal, ackedBitrate: 800_000, rttUs: 100_000, now: now)
        }
        #expect(controller.bitrate == 1_210_000)
    }

    @Test("near convergence the increase is about one packet per response time")
    func additiveIncrease() {
        var controller = AIMDRateController(startBitrate: 1_200_000, minBitrate: 10_000, maxBitrate: 50_000_000)
        controller.update(usage: .overusing, ackedBitrate: 1_200_000, rttUs: 100_000, now: 0)
        #expect(controller.bitrate == 1_020_000)
        // The decrease sample sets the capacity mean to 1.2 Mbps; 1.02 Mbps is outside 3σ (≈ 66 kbps)
        // so growth is multiplicative until the rate reaches the band, then additive.
        var now: Int64 = 1_000_000
        controller.update(usage: .normal, ackedBitrate: 1_100_000, rttUs: 100_000, now: now)
        controller.update(usage: .normal, ackedBitrate: 1_100_000, rttUs: 100_000, now: now)
        while !controller.isNearConvergence {
            now += 100_000
            controller.update(usage: .normal, ackedBitrate: 1_100_000, rttUs: 100_000, now: now)
        }
        let start = controller.bitrate
        now += 1_000_000
        controller.update(usage: .normal, ackedBitrate: 1_100_000, rttUs: 100_000, now: now)
        // 9600 bits per 200 ms response time = 48 kbps per second.
        #expect(abs(controller.bitrate - start - 48_000) < 1)
    }

    @Test("the rate stays within the configured bounds")
    func bounds() {
        var controller = AIMDRateController(startBitrate: 100_000, minBitrate: 80_000, maxBitrate: 120_000)
        controller.update(usage: .overusing, ackedBitrate: 1, rttUs: 0, now: 0)
        #expect(controller.bitrate == 80_000)
        var now: Int64 = 0
        for _ in 0..<100 {
            now += 1_000_000
            controller.update(usage: .normal, ackedBitrate: .infinity, rttUs: .max, now: now)
        }
        #expect(controller.bitrate == 120_000)
        controller.update(usage: .overusing, ackedBitrate: .nan, rttUs: .min, now: .min)
        #expect(controller.bitrate >= 80_000)
    }
}

@Suite("Loss-based controller (draft §6)")
struct LossBasedControllerTests {
    @Test("loss below 2 % increases 5 %, above 10 % decreases by half the loss, in between holds")
    func rules() {
        var controller = LossBasedController(startBitrate: 1_000_000, minBitrate: 10_000, maxBitrate: 10_000_000)
        controller.update(received: 100, lost: 1, delayBasedBitrate: 5_000_000, now: 0)
        #expect(abs(controller.bitrate - 1_050_000) < 1e-6)
        controller.update(received: 95, lost: 5, delayBasedBitrate: 5_000_000, now: 1_000_000)
        #expect(abs(controller.bitrate - 1_050_000) < 1e-6)
        controller.update(received: 80, lost: 20, delayBasedBitrate: 5_000_000, now: 2_000_000)
        #expect(abs(controller.bitrate - 945_000) < 1e-6)
        #expect(controller.lastLossFraction == 0.2)
    }

    @Test("loss is evaluated over enough packets and time, and increases stop at the delay-based rate")
    func accumulation() {
        var controller = LossBasedController(startBitrate: 1_000_000, minBitrate: 10_000, maxBitrate: 10_000_000)
        // 1 of 5 lost is not yet an evaluation.
        controller.update(received: 4, lost: 1, delayBasedBitrate: 5_000_000, now: 0)
        #expect(controller.bitrate == 1_000_000)
        controller.update(received: 16, lost: 0, delayBasedBitrate: 5_000_000, now: 100_000)
        // 1 / 21 ≈ 4.8 %: hold.
        #expect(controller.bitrate == 1_000_000)
        controller.update(received: 30, lost: 0, delayBasedBitrate: 1_020_000, now: 200_000)
        #expect(controller.bitrate == 1_000_000)  // too soon after the last evaluation
        controller.update(received: 30, lost: 0, delayBasedBitrate: 1_020_000, now: 700_000)
        #expect(controller.bitrate == 1_020_000)
        controller.update(received: .max, lost: .max, delayBasedBitrate: .nan, now: 1_300_000)
        #expect(controller.bitrate >= 10_000)
    }
}

@Suite("Acknowledged bitrate")
struct AcknowledgedBitrateEstimatorTests {
    @Test("a steady stream measures its rate; a single burst measures nothing")
    func steadyRate() throws {
        var estimator = AcknowledgedBitrateEstimator()
        estimator.add(arrivalTimeUs: 0, size: 1200)
        #expect(estimator.bitrate == nil)
        // 1200 B every 8 ms = 1.2 Mbps, for 2 s.
        for i in 1..<250 {
            estimator.add(arrivalTimeUs: Int64(i) * 8_000, size: 1200)
        }
        let rate = try #require(estimator.bitrate)
        #expect(abs(rate - 1_200_000) < 120_000)
    }

    @Test("a receiver clock jump restarts the window instead of freezing it")
    func clockJump() throws {
        var estimator = AcknowledgedBitrateEstimator()
        for i in 0..<100 { estimator.add(arrivalTimeUs: Int64(i) * 8_000, size: 1200) }
        for i in 0..<100 { estimator.add(arrivalTimeUs: -50_000_000_000 + Int64(i) * 8_000, size: 600) }
        let rate = try #require(estimator.bitrate)
        #expect(abs(rate - 600_000) < 60_000)
        estimator.add(arrivalTimeUs: .max, size: .max)
        estimator.add(arrivalTimeUs: .min, size: .max)
        estimator.add(arrivalTimeUs: .min + 60_000, size: .max)
        #expect(estimator.bitrate != nil)
    }
}
