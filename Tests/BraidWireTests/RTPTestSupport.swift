import BraidWire
import NIOCore
import Testing

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
