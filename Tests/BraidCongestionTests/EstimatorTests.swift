import BraidCongestion
import Testing

@Suite("Bandwidth estimator façade")
struct BandwidthEstimatorTests {
    static let configuration = BandwidthEstimator.Configuration(
        startBitrate: 500_000,
        minBitrate: 100_000,
        maxBitrate: 3_000_000
    )

    @Test("without transport-wide feedback the REMB is the target, clamped")
    func rembFallback() {
        var estimator = BandwidthEstimator(configuration: Self.configuration)
        #expect(estimator.estimate.bitrate == 500_000)
        #expect(estimator.onREMB(bitrate: 2_000_000).bitrate == 2_000_000)
        #expect(estimator.onREMB(bitrate: 9_000_000).bitrate == 3_000_000)
        #expect(estimator.onREMB(bitrate: -5).bitrate == 100_000)
        estimator.clearREMB()
        #expect(estimator.estimate.bitrate == 500_000)
    }

    @Test("an empty feedback changes nothing; all-lost feedback feeds the loss controller")
    func emptyAndLost() {
        var estimator = BandwidthEstimator(configuration: Self.configuration)
        let before = estimator.estimate
        #expect(estimator.onFeedback(results: [PacketResult](), now: 0) == before)
        var lost: [PacketResult] = []
        for i in 0..<40 {
            lost.append(
                PacketResult(sequenceNumber: UInt16(i), sendTimeUs: Int64(i) * 1_000, size: 1200, arrivalTimeUs: nil)
            )
        }
        let after = estimator.onFeedback(results: lost, now: 1_000_000)
        #expect(after.lossFraction == 1)
        #expect(after.bitrate == 250_000)
        #expect(after.lossBasedBitrate == 250_000)
    }

    @Test("hostile feedback never traps and keeps the target in range")
    func hostileFeedback() {
        var estimator = BandwidthEstimator(configuration: Self.configuration)
        var rng = SplitMix64(seed: 42)
        let extremes: [Int64] = [.min, .max, 0, -1, 1, .min + 1, .max - 1]
        func pick(_ r: inout SplitMix64) -> Int64 {
            r.next() % 3 == 0 ? extremes[Int(r.next() % UInt64(extremes.count))] : Int64(bitPattern: r.next() >> 20)
        }
        var batch: [PacketResult] = []
        for round in 0..<200 {
            batch.removeAll(keepingCapacity: true)
            for _ in 0..<50 {
                let send = pick(&rng)
                let arrival: Int64? = rng.next() % 5 == 0 ? nil : pick(&rng)
                let size = rng.next() % 4 == 0 ? Int(bitPattern: UInt(rng.next())) : Int(rng.next() % 1500)
                batch.append(
                    PacketResult(
                        sequenceNumber: UInt16(truncatingIfNeeded: rng.next()),
                        sendTimeUs: send,
                        size: size,
                        arrivalTimeUs: arrival
                    )
                )
            }
            let estimate = estimator.onFeedback(results: batch, now: round % 7 == 0 ? .min : pick(&rng))
            #expect((100_000...3_000_000).contains(estimate.bitrate))
            estimator.onRTT(pick(&rng))
        }
    }

    @Test("feedback in any Collection, e.g. an ArraySlice, is accepted")
    func sliceInput() {
        var estimator = BandwidthEstimator(configuration: Self.configuration)
        var packets: [PacketResult] = []
        for i in 0..<100 {
            let send = Int64(i) * 8_000
            packets.append(
                PacketResult(sequenceNumber: UInt16(i), sendTimeUs: send, size: 1200, arrivalTimeUs: send + 30_000)
            )
        }
        estimator.onFeedback(results: packets[0..<50], now: 450_000)
        let estimate = estimator.onFeedback(results: packets[50...], now: 850_000)
        #expect(estimate.usage == .normal)
        #expect(estimate.lossFraction == 0)
        #expect(estimate.ackedBitrate.map { abs($0 - 1_200_000) < 150_000 } == true)
    }
}

@Suite("Layer selection with hysteresis")
struct LayerSelectorTests {
    static let layers = [150_000, 500_000, 1_500_000]

    @Test("goes up only after the estimate exceeded 1.2 × the layer for the dwell time")
    func upAfterDwell() throws {
        var selector = try LayerSelector(layerBitrates: Self.layers)
        var now: Int64 = 0
        while now < 1_900_000 {
            #expect(selector.update(estimate: 2_000_000, now: now) == 0)
            now += 100_000
        }
        now = 2_000_000
        // 2 Mbps ≥ 1.2 × 1.5 Mbps held for 2 s: straight to the top layer.
        #expect(selector.update(estimate: 2_000_000, now: now) == 2)
    }

    @Test("an interruption restarts the dwell")
    func dwellInterrupted() throws {
        var selector = try LayerSelector(layerBitrates: Self.layers)
        selector.update(estimate: 700_000, now: 0)
        selector.update(estimate: 550_000, now: 1_500_000)  // below 600k: dwell broken
        selector.update(estimate: 700_000, now: 1_600_000)
        #expect(selector.update(estimate: 700_000, now: 3_000_000) == 0)
        #expect(selector.update(estimate: 700_000, now: 3_600_000) == 1)
    }

    @Test("a dwell begun for a higher layer still counts when the estimate settles for a lower one")
    func dwellCarriesToLowerLayer() throws {
        var selector = try LayerSelector(layerBitrates: Self.layers)
        selector.update(estimate: 2_000_000, now: 0)
        selector.update(estimate: 700_000, now: 1_000_000)
        #expect(selector.update(estimate: 700_000, now: 2_000_000) == 1)
    }

    @Test("goes down at once, as far as needed, when the estimate falls below the current layer")
    func downImmediately() throws {
        var selector = try LayerSelector(layerBitrates: Self.layers, initialLayer: 2)
        #expect(selector.update(estimate: 1_450_000, now: 0) == 2)  // within the 5 % margin
        #expect(selector.update(estimate: 1_400_000, now: 100_000) == 1)
        #expect(selector.update(estimate: 100_000, now: 200_000) == 0)
        // The base layer is kept whatever the estimate.
        #expect(selector.update(estimate: 0, now: 300_000) == 0)
    }

    @Test("a flat estimate anywhere near a boundary never oscillates")
    func noOscillationOnFlatEstimate() throws {
        for estimate in stride(from: 100_000, through: 2_200_000, by: 5_000) {
            for start in 0..<Self.layers.count {
                var selector = try LayerSelector(layerBitrates: Self.layers, initialLayer: start)
                var now: Int64 = 0
                var history: [Int] = []
                while now <= 30_000_000 {
                    history.append(selector.update(estimate: estimate, now: now))
                    now += 100_000
                }
                // At most one switch, and the layer then holds.
                #expect(selector.switchCount <= 1, "estimate \(estimate) from layer \(start)")
                #expect(history.suffix(200).allSatisfy { $0 == history.last })
            }
        }
    }

    @Test("an estimate jittering ±5 % around a boundary does not flap")
    func noisyEstimate() throws {
        var selector = try LayerSelector(layerBitrates: Self.layers, initialLayer: 1)
        var rng = SplitMix64(seed: 7)
        var now: Int64 = 0
        // Around 1.5 Mbps: above layer 2's bitrate but well below its 1.8 Mbps up threshold.
        for _ in 0..<600 {
            let jitter = Double(rng.next() % 1_001) / 10_000 - 0.05
            selector.update(estimate: Int(1_500_000 * (1 + jitter)), now: now)
            now += 100_000
        }
        #expect(selector.currentLayer == 1)
        #expect(selector.switchCount == 0)
    }

    @Test("invalid layer lists and thresholds are rejected")
    func validation() {
        #expect(throws: LayerSelector.ConfigurationError.noLayers) { try LayerSelector(layerBitrates: []) }
        #expect(throws: LayerSelector.ConfigurationError.bitratesNotIncreasing) {
            try LayerSelector(layerBitrates: [500_000, 150_000])
        }
        #expect(throws: LayerSelector.ConfigurationError.bitratesNotIncreasing) {
            try LayerSelector(layerBitrates: [0, 10])
        }
        #expect(throws: LayerSelector.ConfigurationError.invalidThresholds) {
            try LayerSelector(
                layerBitrates: [1, 2],
                configuration: .init(upThreshold: 0.9, downThreshold: 0.95, upDwellUs: 0)
            )
        }
    }
}
