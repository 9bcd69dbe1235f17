import BraidRTPStreams
import Foundation
import Testing

/// The two-state loss chain fitted to per-packet results, and the chance a back-to-back round delivers.
@Suite struct BurstLossModelTests {
    /// P(Binomial(n, q) ≥ k), summed directly.
    static func binomialAtLeast(_ k: Int, of n: Int, arriving q: Double) -> Double {
        (k...n).reduce(0.0) { sum, i in
            var choose = 1.0
            for j in 0..<i { choose = choose * Double(n - j) / Double(j + 1) }
            return sum + choose * pow(q, Double(i)) * pow(1 - q, Double(n - i))
        }
    }

    @Test func independentLossIsTheBinomial() {
        for q in [0.1, 0.5, 0.8] {
            for (k, n) in [(1, 1), (1, 4), (3, 9), (5, 12), (12, 12)] {
                let chain = BurstLossModel.atLeast(k, of: n, enterBurst: q, leaveBurst: 1 - q)
                #expect(abs(chain - Self.binomialAtLeast(k, of: n, arriving: 1 - q)) < 1e-12, "q \(q) k \(k) n \(n)")
            }
        }
        #expect(BurstLossModel.atLeast(0, of: 0, enterBurst: 0.5, leaveBurst: 0.5) == 1)
        #expect(BurstLossModel.atLeast(3, of: 2, enterBurst: 0.5, leaveBurst: 0.5) == 0)
        #expect(BurstLossModel.atLeast(3, of: 3, enterBurst: 0, leaveBurst: 0) == 1)  // never leaves good
        #expect(BurstLossModel.atLeast(1, of: 3, enterBurst: 1, leaveBurst: 0) == 0)  // always lost
    }

    @Test func aBurstTakesABackToBackRoundAsAWhole() {
        // 20 % mean loss in bursts of five (LOSS-NOTES §1.4): a round of n fails outright when it starts in a
        // burst that outlasts it, P = 0.2 · 0.8^(n − 1), however large n grows.
        for n in [1, 2, 5, 10] {
            let chain = BurstLossModel.atLeast(1, of: n, enterBurst: 0.05, leaveBurst: 0.2)
            #expect(abs(chain - (1 - 0.2 * pow(0.8, Double(n - 1)))) < 1e-12, "n \(n)")
        }
        // Independent loss at the same rate loses 1 − 0.2⁵ of five: far surer.
        #expect(BurstLossModel.atLeast(1, of: 5, enterBurst: 0.2, leaveBurst: 0.8) > 0.999)
        #expect(BurstLossModel.atLeast(1, of: 5, enterBurst: 0.05, leaveBurst: 0.2) < 0.92)
        // More repairs never make a round less likely to deliver.
        var last = 0.0
        for n in 3...20 {
            let chance = BurstLossModel.atLeast(3, of: n, enterBurst: 0.05, leaveBurst: 0.2)
            #expect(chance >= last)
            last = chance
        }
    }

    @Test func theFitFindsTheBurstsOfAPattern() {
        // 15 arrived, then 5 lost, again and again: p = 1/15, r = 1/5, 25 % loss, bursts of five.
        var model = BurstLossModel()
        #expect(!model.hasSamples && model.lossRate == 0 && model.meanBurstLength == 1)
        var sequence: UInt16 = 65_000  // across the wrap
        for _ in 0..<100 {
            for index in 0..<20 {
                model.add(sequence: sequence, lost: index >= 15)
                sequence &+= 1
            }
        }
        #expect(abs(model.enterBurst - 1.0 / 15) < 0.01)
        #expect(abs(model.leaveBurst - 0.2) < 0.02)
        #expect(abs(model.lossRate - 0.25) < 0.02)
        #expect(abs(model.meanBurstLength - 5) < 0.5)
        #expect(model.isBursty)
        // Independent loss at 50 % (a seeded generator) is not taken for bursts.
        var independent = BurstLossModel()
        var state: UInt64 = 11
        for index in 0..<5_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            independent.add(sequence: UInt16(index), lost: state >> 63 == 1)
            if index > 100 { #expect(!independent.isBursty, "after \(index) packets") }
        }
        #expect(abs(independent.lossRate - 0.5) < 0.1)
    }

    @Test func aModelCanStartFromKnownTransitions() {
        let model = BurstLossModel(enterBurst: 0.05, leaveBurst: 0.2)
        #expect(model.hasSamples && model.isBursty)
        #expect(abs(model.enterBurst - 0.05) < 1e-12 && abs(model.leaveBurst - 0.2) < 1e-12)
        #expect(abs(model.lossRate - 0.2) < 1e-12 && abs(model.meanBurstLength - 5) < 1e-9)
        #expect(!BurstLossModel(enterBurst: 0.3, leaveBurst: 0.7).isBursty)  // independent 30 %
    }

    @Test func onlyConsecutivePacketsMakeATransition() {
        var model = BurstLossModel()
        model.add(sequence: 10, lost: true)
        model.add(sequence: 12, lost: true)  // 11 was never reported: no transition
        #expect(model.leaveBurst == 1 && model.enterBurst == 0)
        model.add(sequence: 13, lost: false)
        #expect(model.leaveBurst == 1 && model.lossRate == 0)  // one burst of one, nothing after an arrival
        model.add(sequence: 14, lost: true)
        #expect(model.enterBurst == 1 && model.lossRate == 0.5)
        // A fit of a few packets is not used yet.
        #expect(!model.hasSamples)
        for sequence in UInt16(15)..<50 { model.add(sequence: sequence, lost: false) }
        #expect(model.hasSamples)
    }
}
