import BraidWire
import NIOCore
import Testing

/// SplitMix64: a small seeded generator so property tests are reproducible.
struct RTPTestRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A buffer holding exactly `bytes`.
func rtpBuffer(_ bytes: [UInt8]) -> ByteBuffer {
    ByteBuffer(bytes: bytes)
}

/// The readable bytes of `buffer` as an array.
func rtpBytes(_ buffer: ByteBuffer) -> [UInt8] {
    Array(buffer.readableBytesView)
}

/// Asserts that `body` throws a ``WireError`` with `code`.
func expectWireError<R>(
    _ code: WireError.Code, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws(WireError) -> R
) {
    do {
        _ = try body()
        Issue.record("expected WireError.\(code), got success", sourceLocation: sourceLocation)
    } catch {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    }
}
