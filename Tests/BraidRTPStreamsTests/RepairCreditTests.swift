import BraidRTPStreams
import Testing

@Suite("Repair credit (repairs per media packet, spread evenly)")
struct RepairCreditTests {
    @Test("ratio: margin · p / (1 − p), nothing below the threshold, capped")
    func ratio() {
        #expect(RepairCredit.ratio(loss: 0.004, threshold: 0.005, maximum: 2) == 0)
        #expect(RepairCredit.ratio(loss: 0.2, threshold: 0.005, maximum: 2) == 0.25)
        #expect(RepairCredit.ratio(loss: 0.5, margin: 0.5, threshold: 0.005, maximum: 2) == 0.5)
        #expect(RepairCredit.ratio(loss: 0.9, threshold: 0.005, maximum: 2) == 2)
        #expect(RepairCredit.ratio(loss: 1, threshold: 0.005, maximum: 2) == 2)
        #expect(RepairCredit.ratio(loss: .nan, threshold: 0.005, maximum: 2) == 0)
    }

    @Test("0.4 repairs per packet: 4 in 10 packets, never two in a row; 1.5: 3 in 2; 0 drops the carried fraction")
    func spreading() {
        var credit = RepairCredit()
        #expect(credit.packetSent() == 0)
        credit.set(ratio: 0.4)
        let repairs = (0..<10).map { _ in credit.packetSent() }
        #expect(repairs.reduce(0, +) == 4)
        #expect(repairs.allSatisfy { $0 <= 1 })
        #expect(!zip(repairs, repairs.dropFirst()).contains { $0 == 1 && $1 == 1 })
        credit.set(ratio: 1.5)
        #expect(credit.packetSent() + credit.packetSent() == 3)
        credit.set(ratio: 0.3)
        _ = credit.packetSent()  // 0.3 carried
        credit.set(ratio: 0)
        credit.set(ratio: 0.8)
        #expect(credit.packetSent() == 0)  // 0.8, not 1.1
    }
}
