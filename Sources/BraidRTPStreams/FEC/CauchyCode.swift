/// A systematic MDS erasure code over GF(2⁸) (``GF256``): `k` source symbols and up to
/// ``maximumRepairs`` repair symbols, any `k` of which give the sources back.
///
/// Repair symbol `i` is `Σⱼ C[i][j] · sourceⱼ` with the Cauchy matrix `C[i][j] = 1 / (xᵢ + yⱼ)`,
/// `xᵢ = 128 + i`, `yⱼ = j`: every square submatrix of a Cauchy matrix is invertible, so the generator
/// `[I; C]` is MDS (Blömer et al., "An XOR-based erasure-resilient coding scheme", ICSI TR-95-048, 1995).
/// A source shorter than the others counts as zero-padded; repair symbols are as long as the longest.
///
/// Decoding `e` missing sources with `e` repair symbols: subtract the present sources from each repair
/// symbol, then solve the `e × e` Cauchy system by Gauss–Jordan elimination (``GF256``'s, shared with
/// ``SlidingWindowFECDecoder``). Pure functions; the encoder writes into caller memory and allocates nothing.
public enum CauchyCode {
    /// Most source symbols in one block.
    public static let maximumSources = 128
    /// Most repair symbols of one block.
    public static let maximumRepairs = 128

    /// `C[repair][source]`.
    public static func coefficient(repair: Int, source: Int) -> UInt8 {
        GF256.inverse(UInt8(truncatingIfNeeded: 128 + repair) ^ UInt8(truncatingIfNeeded: source))
    }

    /// Adds source symbol `source` (its bytes, zero beyond them) into repair symbol `repair`'s accumulator
    /// `symbol`, which starts zeroed and is at least as long as every source.
    public static func accumulate(
        _ bytes: UnsafeRawBufferPointer, source: Int, repair: Int, into symbol: UnsafeMutableRawBufferPointer
    ) {
        precondition((0..<Self.maximumSources).contains(source) && (0..<Self.maximumRepairs).contains(repair))
        GF256.multiplyAdd(Self.coefficient(repair: repair, source: source), bytes, into: symbol)
    }

    /// Repair symbol `repair` of `sources` (test and client convenience; the node accumulates in place).
    public static func encode(_ sources: [[UInt8]], repair: Int) -> [UInt8] {
        var symbol = [UInt8](repeating: 0, count: sources.map(\.count).max() ?? 0)
        symbol.withUnsafeMutableBytes { out in
            for (index, source) in sources.enumerated() {
                source.withUnsafeBytes { Self.accumulate($0, source: index, repair: repair, into: out) }
            }
        }
        return symbol
    }

    /// Recovers the missing sources of a block of `sources.count` symbols (nil = missing) from repair
    /// symbols `(index, bytes)`. Returns the recovered symbols by source index, each as long as the longest
    /// repair symbol (zero-padded as encoded), or nil when fewer repair symbols than missing sources came,
    /// or the input is inconsistent (indexes out of range, a repetition).
    public static func recover(sources: [[UInt8]?], repairs: [(index: Int, symbol: [UInt8])]) -> [Int: [UInt8]]? {
        let missing = sources.indices.filter { sources[$0] == nil }
        guard !missing.isEmpty else { return [:] }
        guard sources.count <= Self.maximumSources, repairs.count >= missing.count,
            Set(repairs.map(\.index)).count == repairs.count,
            repairs.allSatisfy({ (0..<Self.maximumRepairs).contains($0.index) })
        else { return nil }
        let used = Array(repairs.prefix(missing.count))
        let length = used.map(\.symbol.count).max() ?? 0
        guard sources.allSatisfy({ ($0?.count ?? 0) <= length }) else { return nil }

        // b_r = repair_r − Σ present C[r][j] · source_j (in GF(2⁸), − is +).
        var residues = used.map { repair -> [UInt8] in
            var residue = repair.symbol + [UInt8](repeating: 0, count: length - repair.symbol.count)
            residue.withUnsafeMutableBytes { out in
                for (index, source) in sources.enumerated() {
                    guard let source else { continue }
                    source.withUnsafeBytes { Self.accumulate($0, source: index, repair: repair.index, into: out) }
                }
            }
            return residue
        }

        // Gauss–Jordan on M[a][c] = C[used[a]][missing[c]]: a Cauchy matrix, so every unknown is solved.
        var matrix = used.map { repair in missing.map { Self.coefficient(repair: repair.index, source: $0) } }
        let solved = GF256.eliminate(&matrix, &residues, columns: missing.count)
        guard solved.count == missing.count else { return nil }
        var recovered: [Int: [UInt8]] = [:]
        for (column, row) in solved { recovered[missing[column]] = residues[row] }
        return recovered
    }
}
