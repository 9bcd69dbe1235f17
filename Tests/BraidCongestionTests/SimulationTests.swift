import BraidCongestion
import Testing

@Suite("Bottleneck link simulations")
struct SimulationTests {
    static func makeEstimator(start: Int = 300_000) -> BandwidthEstimator {
        var estimator = BandwidthEstimator(
            configuration: .init(startBitrate: start, minBitrate: 50_000, maxBitrate: 5_000_000)
        )
        estimator.onRTT(50_000)
        return estimator
    }

    @Test("converges to a 1.5 Mbps bottleneck from 300 kbps and stays within ±25 %")
    func convergence() throws {
        var sim = LinkSimulation(capacityBps: 1_500_000, estimator: Self.makeEstimator())
        sim.run(until: 90_000_000)
        let converged = try #require(sim.firstTime(from: 0, in: 1_125_000...1_875_000))
        print("convergence 300k -> 1.5M: \(Double(converged) / 1e6) s")
        #expect(converged <= 40_000_000)
        let tail = sim.bitrates(from: converged + 5_000_000, to: 90_000_000)
        let mean = Double(tail.reduce(0, +)) / Double(tail.count)
        print("steady state: mean \(Int(mean)) min \(tail.min()!) max \(tail.max()!)")
        print("lost \(sim.lostPackets) of \(sim.sentPackets) packets")
        #expect(mean >= 1_125_000 && mean <= 1_875_000)
        #expect(tail.min()! >= 900_000)
        #expect(tail.max()! <= 1_875_000)
    }

    @Test("drops below 600 kbps within a few seconds when capacity falls to 500 kbps, then recovers")
    func capacityDropAndRecovery() throws {
        var sim = LinkSimulation(capacityBps: 1_500_000, estimator: Self.makeEstimator(start: 1_200_000))
        sim.run(until: 30_000_000)
        let before = sim.bitrate
        #expect(before >= 1_125_000)

        sim.capacityBps = 500_000
        sim.run(until: 60_000_000)
        let dropped = try #require(sim.firstTime(from: 30_000_000, in: 0...600_000))
        print("drop 1.5M -> 0.5M: below 600k after \(Double(dropped - 30_000_000) / 1e6) s")
        #expect(dropped - 30_000_000 <= 4_000_000)
        let low = sim.bitrates(from: 40_000_000, to: 60_000_000)
        let lowMean = Double(low.reduce(0, +)) / Double(low.count)
        print("at 500k: mean \(Int(lowMean)) min \(low.min()!) max \(low.max()!)")
        #expect(lowMean >= 375_000 && lowMean <= 625_000)

        sim.capacityBps = 1_500_000
        sim.run(until: 120_000_000)
        let recovered = try #require(sim.firstTime(from: 60_000_000, in: 1_125_000...1_875_000))
        print("recovery 0.5M -> 1.5M: within ±25% after \(Double(recovered - 60_000_000) / 1e6) s")
        #expect(recovered - 60_000_000 <= 40_000_000)
    }

    @Test("5 % random loss does not collapse the estimate; 20 % loss reduces it")
    func randomLoss() {
        var light = LinkSimulation(capacityBps: 1_500_000, estimator: Self.makeEstimator(start: 1_200_000))
        light.run(until: 20_000_000)
        light.randomLoss = 0.05
        light.run(until: 60_000_000)
        let lightTail = light.bitrates(from: 30_000_000, to: 60_000_000)
        let lightMean = Double(lightTail.reduce(0, +)) / Double(lightTail.count)
        print("5% loss: mean \(Int(lightMean)) min \(lightTail.min()!) lost \(light.lostPackets)/\(light.sentPackets)")
        #expect(lightTail.min()! >= 900_000)

        var heavy = LinkSimulation(capacityBps: 1_500_000, estimator: Self.makeEstimator(start: 1_200_000))
        heavy.run(until: 20_000_000)
        let beforeLoss = heavy.bitrate
        heavy.randomLoss = 0.20
        heavy.run(until: 30_000_000)
        let heavyTail = heavy.bitrates(from: 25_000_000, to: 30_000_000)
        print("20% loss: before \(beforeLoss), after 5-10 s max \(heavyTail.max()!)")
        #expect(heavyTail.max()! < beforeLoss / 2)
        // The loss-based controller, not the delay-based one, is what holds the target down.
        #expect(heavy.estimator.estimate.lossBasedBitrate < heavy.estimator.estimate.delayBasedBitrate)
    }

    @Test("a REMB below the link capacity caps the target")
    func rembCaps() {
        var sim = LinkSimulation(capacityBps: 1_500_000, estimator: Self.makeEstimator(start: 1_200_000))
        sim.estimator.onREMB(bitrate: 800_000)
        sim.run(until: 20_000_000)
        let tail = sim.bitrates(from: 1_000_000, to: 20_000_000)
        #expect(tail.allSatisfy { $0 <= 800_000 })
        #expect(sim.bitrate == 800_000)
        sim.estimator.clearREMB()
        sim.run(until: 40_000_000)
        #expect(sim.bitrate > 900_000)
    }

    @Test("jitter that reorders packets does not stop convergence")
    func jitterAndReordering() throws {
        var sim = LinkSimulation(capacityBps: 1_500_000, estimator: Self.makeEstimator())
        sim.jitterUs = 15_000
        sim.run(until: 90_000_000)
        let converged = try #require(sim.firstTime(from: 0, in: 1_125_000...1_875_000))
        let tail = sim.bitrates(from: converged + 5_000_000, to: 90_000_000)
        let mean = Double(tail.reduce(0, +)) / Double(tail.count)
        print("15 ms jitter: converged after \(Double(converged) / 1e6) s, then mean \(Int(mean)) min \(tail.min()!)")
        #expect(converged <= 45_000_000)
        #expect(mean >= 1_125_000 && mean <= 1_875_000)
    }
}
