/// Arithmetic in GF(2⁸) with the polynomial x⁸ + x⁴ + x³ + x² + 1 (0x11D), whose element 2 generates the
/// multiplicative group — the field of Reed–Solomon codes in RFC 5510 §8.1 and of RFC 8681's random linear
/// codes. Addition is XOR; multiplication goes through one 64 KiB product table built on first use, so
/// that scaling a packet by a constant is one table row lookup per byte.
public enum GF256 {
    /// `exp[i] = 2^i` for i in 0..<510 (doubled, so that `exp[log a + log b]` needs no modulo).
    static let exp: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 510)
        var value = 1
        for index in 0..<255 {
            table[index] = UInt8(value)
            table[index + 255] = UInt8(value)
            value <<= 1
            if value & 0x100 != 0 { value ^= 0x11D }
        }
        return table
    }()

    /// `log[a]` for a ≠ 0.
    static let log: [Int] = {
        var table = [Int](repeating: 0, count: 256)
        for index in 0..<255 { table[Int(exp[index])] = index }
        return table
    }()

    /// `products[a << 8 | b] = a · b`.
    static let products: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 256 * 256)
        for a in 1..<256 {
            for b in 1..<256 { table[a << 8 | b] = exp[log[a] + log[b]] }
        }
        return table
    }()

    /// a · b.
    public static func multiply(_ a: UInt8, _ b: UInt8) -> UInt8 {
        products[Int(a) << 8 | Int(b)]
    }

    /// The inverse of a non-zero `a` (a · a⁻¹ = 1).
    public static func inverse(_ a: UInt8) -> UInt8 {
        precondition(a != 0, "0 has no inverse in GF(256)")
        return exp[255 - log[Int(a)]]
    }

    /// `destination[i] ^= coefficient · source[i]` for every byte of `source` (`destination` at least as long).
    public static func multiplyAdd(
        _ coefficient: UInt8, _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) {
        precondition(destination.count >= source.count, "destination shorter than source")
        guard coefficient != 0, !source.isEmpty else { return }
        if coefficient == 1 {
            for index in 0..<source.count { destination[index] ^= source[index] }
            return
        }
        products.withUnsafeBufferPointer { table in
            let row = table.baseAddress! + Int(coefficient) << 8
            for index in 0..<source.count { destination[index] ^= row[Int(source[index])] }
        }
    }

    /// `bytes[i] = coefficient · bytes[i]`.
    public static func scale(_ bytes: UnsafeMutableRawBufferPointer, by coefficient: UInt8) {
        guard coefficient != 1 else { return }
        products.withUnsafeBufferPointer { table in
            let row = table.baseAddress! + Int(coefficient) << 8
            for index in 0..<bytes.count { bytes[index] = row[Int(bytes[index])] }
        }
    }

    /// Gauss–Jordan elimination of `matrix` (rows × `columns`), applying each row operation to `residues`
    /// too when given (empty: coefficients only). Returns (column, row) for every unknown whose row reduced
    /// to that unknown alone.
    static func eliminate(_ matrix: inout [[UInt8]], _ residues: inout [[UInt8]], columns: Int) -> [(Int, Int)] {
        let withResidues = !residues.isEmpty
        var pivotRow = 0
        var pivots: [(column: Int, row: Int)] = []
        for column in 0..<columns where pivotRow < matrix.count {
            guard let pivot = (pivotRow..<matrix.count).first(where: { matrix[$0][column] != 0 }) else { continue }
            matrix.swapAt(pivot, pivotRow)
            if withResidues { residues.swapAt(pivot, pivotRow) }
            let inverse = GF256.inverse(matrix[pivotRow][column])
            for index in column..<columns { matrix[pivotRow][index] = GF256.multiply(matrix[pivotRow][index], inverse) }
            if withResidues { residues[pivotRow].withUnsafeMutableBytes { GF256.scale($0, by: inverse) } }
            for row in matrix.indices where row != pivotRow && matrix[row][column] != 0 {
                let factor = matrix[row][column]
                for index in column..<columns { matrix[row][index] ^= GF256.multiply(factor, matrix[pivotRow][index]) }
                if withResidues {
                    let source = residues[pivotRow]
                    residues[row].withUnsafeMutableBytes { out in
                        source.withUnsafeBytes { GF256.multiplyAdd(factor, $0, into: out) }
                    }
                }
            }
            pivots.append((column, pivotRow))
            pivotRow += 1
        }
        // Solved: the pivot row has no other unknown left.
        return pivots.filter { pivot in
            matrix[pivot.row].indices.allSatisfy { $0 == pivot.column || matrix[pivot.row][$0] == 0 }
        }.map { ($0.column, $0.row) }
    }
}
