import BraidWire
import NIOCore
import Testing

/// The hot path's header writer against the general builder: the same bytes, or a clear refusal.
@Suite struct RTPHeaderWriterTests {
    /// Writes `header`, `csrcs` and `elements` with the fast writer; nil when it refuses.
    static func fast(_ header: RTPHeader, csrcs: [UInt32], _ elements: [(UInt8, [UInt8])]) -> [UInt8]? {
        var memory = [UInt8](repeating: 0xEE, count: RTPHeaderWriter.maximumLength)
        let length = memory.withUnsafeMutableBytes { memory -> Int? in
            var writer = RTPHeaderWriter(into: memory, header: header, csrcs: csrcs)
            for (id, value) in elements { value.withUnsafeBytes { writer.append(id: id, bytes: $0) } }
            return writer.finish()
        }
        return length.map { Array(memory.prefix($0)) }
    }

    /// The same with the general builder (header only: no payload).
    static func general(_ header: RTPHeader, csrcs: [UInt32], _ elements: [(UInt8, [UInt8])]) throws -> [UInt8] {
        var extensions = RTPHeaderExtensionBuilder()
        for (id, value) in elements { try extensions.append(id: id, bytes: value) }
        var buffer = ByteBuffer()
        try buffer.writeRTPPacket(header, csrcs: csrcs, extensions: extensions, payload: ByteBuffer())
        return Array(buffer.readableBytesView)
    }

    @Test("random headers and one-byte-form elements: byte-identical to the general builder")
    func matchesGeneralBuilder() throws {
        var random = SplitMix64(state: 0x5EED)
        for _ in 0..<2000 {
            let header = RTPHeader(
                marker: Bool.random(using: &random), payloadType: UInt8.random(in: 0...127, using: &random),
                sequenceNumber: .random(in: .min ... .max, using: &random),
                timestamp: .random(in: .min ... .max, using: &random), ssrc: .random(in: .min ... .max, using: &random))
            let csrcs = (0..<Int.random(in: 0...3, using: &random)).map { _ in UInt32.random(in: .min ... .max, using: &random) }
            var ids = Array(UInt8(1)...14)
            ids.shuffle(using: &random)
            let elements = ids.prefix(Int.random(in: 0...6, using: &random)).map { id in
                (id, (0..<Int.random(in: 1...16, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) })
            }
            let fast = try #require(Self.fast(header, csrcs: csrcs, elements))
            #expect(fast == (try Self.general(header, csrcs: csrcs, elements)))
        }
    }

    @Test("typed values: abs-send-time and transport-wide sequence as the builder writes them")
    func typedValues() throws {
        let header = RTPHeader(marker: false, payloadType: 111, sequenceNumber: 7, timestamp: 960, ssrc: 42)
        var memory = [UInt8](repeating: 0, count: RTPHeaderWriter.maximumLength)
        let fast = memory.withUnsafeMutableBytes { memory -> [UInt8]? in
            var writer = RTPHeaderWriter(into: memory, header: header, csrcs: [UInt32]())
            writer.append(id: 3, bigEndian: UInt64(AbsSendTime(rawValue: 0xABCDEF).rawValue), length: 3)
            writer.append(id: 5, bigEndian: 0x1234, length: 2)
            return writer.finish().map { Array(memory.prefix($0)) }
        }
        var extensions = RTPHeaderExtensionBuilder()
        try extensions.append(AbsSendTime(rawValue: 0xABCDEF), id: 3)
        try extensions.append(TransportSequenceNumber(0x1234), id: 5)
        var buffer = ByteBuffer()
        try buffer.writeRTPPacket(header, extensions: extensions, payload: ByteBuffer())
        #expect(fast == Array(buffer.readableBytesView))
    }

    @Test("what the one-byte form cannot carry is refused, for the caller's two-byte fallback")
    func refusals() {
        let header = RTPHeader(marker: false, payloadType: 96, sequenceNumber: 1, timestamp: 2, ssrc: 3)
        #expect(Self.fast(header, csrcs: [], [(15, [1])]) == nil)  // ID 15 is reserved in the one-byte form
        #expect(Self.fast(header, csrcs: [], [(0, [1])]) == nil)  // ID 0 is padding
        #expect(Self.fast(header, csrcs: [], [(1, [])]) == nil)  // no zero-length values in the one-byte form
        #expect(Self.fast(header, csrcs: [], [(1, Array(repeating: 9, count: 17))]) == nil)
        let invalidPT = RTPHeader(marker: false, payloadType: 200, sequenceNumber: 1, timestamp: 2, ssrc: 3)
        #expect(Self.fast(invalidPT, csrcs: [], []) == nil)
        // Too little memory for the element: refused, never written past the end.
        var small = [UInt8](repeating: 0, count: 20)
        let element = [UInt8](repeating: 1, count: 16)
        let length = small.withUnsafeMutableBytes { memory -> Int? in
            element.withUnsafeBytes { bytes in
                var writer = RTPHeaderWriter(into: memory, header: header, csrcs: [UInt32]())
                writer.append(id: 1, bytes: bytes)
                return writer.finish()
            }
        }
        #expect(length == nil)
        // Without elements: a bare 12-byte header, X = 0.
        #expect(Self.fast(header, csrcs: [], []) == [0x80, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
    }
}
