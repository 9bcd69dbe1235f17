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
        print("steady state: mean \(Int(mean)) min \(tail.min()!) max \(tail.max()!) lost \(sim.lostPackets)/\(sim.sentPackets)")
        #expect(mean >= 1_125_000 && mean <= 1_875_000)
        #expect(tail.min()! >= 900_000)
        #expect(tail.max()! <= 1_875_000)
    }
}
