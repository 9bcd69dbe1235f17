import BraidRTPStreams
import Testing

@Suite struct CauchyCodeTests {
    @Test func fieldAxioms() {
        for a in 1...255 {
            #expect(GF256.multiply(UInt8(a), GF256.inverse(UInt8(a))) == 1)
            #expect(GF256.multiply(UInt8(a), 1) == UInt8(a))
            #expect(GF256.multiply(UInt8(a), 0) == 0)
        }
        // x · 2 is the shift with reduction by 0x11D.
        #expect(GF256.multiply(0x80, 2) == 0x1D)
        var generator = SeededGenerator(seed: 3)
        for _ in 0..<2000 {
            let (a, b, c) = (generator.byte(), generator.byte(), generator.byte())
            #expect(GF256.multiply(a, b ^ c) == GF256.multiply(a, b) ^ GF256.multiply(a, c))
            #expect(GF256.multiply(a, GF256.multiply(b, c)) == GF256.multiply(GF256.multiply(a, b), c))
        }
    }

    /// Sources of different lengths (a packet is as long as it is).
    static func sources(_ count: Int, seed: UInt64) -> [[UInt8]] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in (0..<(20 + Int(generator.byte()) % 80)).map { _ in generator.byte() } }
    }

    /// Checks that erasing `lost` (indexes into sources + repairs) is repaired byte for byte.
    static func roundTrip(_ sources: [[UInt8]], repairs: Int, lost: Set<Int>) -> Bool {
        let k = sources.count
        let symbols = (0..<repairs).map { CauchyCode.encode(sources, repair: $0) }
        let received = sources.indices.map { lost.contains($0) ? nil : sources[$0] }
        let repairsReceived = (0..<repairs).filter { !lost.contains(k + $0) }.map { (index: $0, symbol: symbols[$0]) }
        guard let recovered = CauchyCode.recover(sources: received, repairs: repairsReceived) else { return false }
        for index in sources.indices where lost.contains(index) {
            guard let bytes = recovered[index], Array(bytes.prefix(sources[index].count)) == sources[index],
                bytes.dropFirst(sources[index].count).allSatisfy({ $0 == 0 })
            else { return false }
        }
        return recovered.count == received.filter { $0 == nil }.count
    }

    @Test func everyPatternOfUpToMLossesIsRepaired() {
        let sources = Self.sources(10, seed: 1)
        let n = 14
        var patterns = 0
        // Every subset of at most 4 of the 14 symbols (1471 patterns).
        for mask in 0..<(1 << n) where mask.nonzeroBitCount <= 4 {
            let lost = Set((0..<n).filter { mask & (1 << $0) != 0 })
            #expect(Self.roundTrip(sources, repairs: 4, lost: lost), "pattern \(lost.sorted())")
            patterns += 1
        }
        #expect(patterns == 1471)
    }

    @Test func everyBurstUpToMIsRepairedInALargeBlock() {
        let sources = Self.sources(40, seed: 2)
        for length in 1...8 {
            for start in 0...(48 - length) {
                #expect(Self.roundTrip(sources, repairs: 8, lost: Set(start..<(start + length))))
            }
        }
    }

    @Test func moreLossesThanRepairsAreRefused() {
        let sources = Self.sources(5, seed: 3)
        let symbols = (0..<2).map { CauchyCode.encode(sources, repair: $0) }
        let received: [[UInt8]?] = [nil, nil, nil, sources[3], sources[4]]
        #expect(CauchyCode.recover(sources: received, repairs: [(0, symbols[0]), (1, symbols[1])]) == nil)
        // Nothing missing: nothing to do.
        #expect(CauchyCode.recover(sources: sources.map { $0 }, repairs: []) == [:])
        // A repeated or out-of-range repair index is refused.
        let one: [[UInt8]?] = [nil, sources[1], sources[2], sources[3], sources[4]]
        #expect(CauchyCode.recover(sources: one, repairs: [(0, symbols[0]), (0, symbols[0])]) == nil)
        #expect(CauchyCode.recover(sources: one, repairs: [(200, symbols[0])]) == nil)
    }
}

extension SeededGenerator {
    init(seed: UInt64) { self.init(state: seed) }
    /// The top byte of the next value.
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: self.next() >> 56) }
}
