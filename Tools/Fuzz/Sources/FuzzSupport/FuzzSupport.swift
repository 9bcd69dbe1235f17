// What the script-driven fuzz targets share: reading an input as records, and checking what a router sends.
public import BraidSFU
import BraidWire
public import NIOCore

/// A fuzz input read as a script of records `[op][length: 2 bytes, big endian][bytes]`.
///
/// Two layouts are in use, kept as they are so that the committed corpora and fail cases keep their meaning:
/// - ``framed(_:carriesBytes:)``: a record needs its three header bytes (a shorter tail is ignored); an op
///   for which `carriesBytes` is false carries none (its length is a parameter, a tick's milliseconds);
///   the bytes are cut short where the input ends.
/// - ``tailed(_:)``: every op carries bytes, at most what the input still holds; an op with fewer than two
///   bytes after it takes them as its bytes, without a length.
public struct FuzzScript: Sequence, IteratorProtocol {
    public struct Record {
        public var op: UInt8
        /// The length field (for an op without bytes, its parameter).
        public var length: Int
        public var bytes: UnsafeRawBufferPointer
    }

    private let input: UnsafeRawBufferPointer
    private var offset = 0
    private let carriesBytes: ((UInt8) -> Bool)?

    private init(input: UnsafeRawBufferPointer, carriesBytes: ((UInt8) -> Bool)?) {
        self.input = input
        self.carriesBytes = carriesBytes
    }

    public static func framed(_ input: UnsafeRawBufferPointer, carriesBytes: @escaping (UInt8) -> Bool) -> FuzzScript {
        FuzzScript(input: input, carriesBytes: carriesBytes)
    }

    public static func tailed(_ input: UnsafeRawBufferPointer) -> FuzzScript {
        FuzzScript(input: input, carriesBytes: nil)
    }

    /// The input of libFuzzer's entry point.
    public static func input(_ start: UnsafeRawPointer?, _ count: Int) -> UnsafeRawBufferPointer? {
        guard let start else { return nil }
        return UnsafeRawBufferPointer(start: start, count: count)
    }

    public mutating func next() -> Record? {
        let input = self.input
        guard let carriesBytes = self.carriesBytes else {
            guard self.offset < input.count else { return nil }
            let op = input[self.offset]
            var length = input.count - self.offset - 1
            if length >= 2 {
                length = Swift.min(Int(input[self.offset + 1]) << 8 | Int(input[self.offset + 2]), input.count - self.offset - 3)
                self.offset += 3
            } else {
                self.offset += 1
            }
            let bytes = UnsafeRawBufferPointer(rebasing: input[self.offset..<(self.offset + length)])
            self.offset += length
            return Record(op: op, length: length, bytes: bytes)
        }
        guard self.offset + 3 <= input.count else { return nil }
        let op = input[self.offset]
        let length = Int(input[self.offset + 1]) << 8 | Int(input[self.offset + 2])
        self.offset += 3
        guard carriesBytes(op) else {
            return Record(op: op, length: length, bytes: UnsafeRawBufferPointer(rebasing: input[self.offset..<self.offset]))
        }
        let end = Swift.min(input.count, self.offset + length)
        let bytes = UnsafeRawBufferPointer(rebasing: input[self.offset..<end])
        self.offset = end
        return Record(op: op, length: length, bytes: bytes)
    }
}

/// A subscriber's transport that checks every packet a router sends it: valid RTP, or an RTCP compound
/// whose every packet parses; anything else is a bug and calls fatalError. The router reuses its buffers,
/// so the check runs inside the call.
public final class CheckingTransport: MediaTransport {
    public init() {}

    public func sendRTP(_ packet: ByteBuffer) {
        guard (try? RTPPacket(packet)) != nil else { fatalError("the router sent invalid RTP: \(packet)") }
    }

    public func sendRTCP(_ packet: ByteBuffer) {
        guard let compound = try? RTCPCompoundPacket(packet) else {
            fatalError("the router sent an invalid RTCP compound: \(packet)")
        }
        for _ in compound {}
    }
}
