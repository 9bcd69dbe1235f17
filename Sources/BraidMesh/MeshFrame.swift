public import BraidSFU
public import NIOCore

/// One unit of what a mesh link carries inside its encrypted datagrams.
///
/// The plaintext of a mesh datagram (see ``MeshLink``) is a sequence of frames:
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     type      |         body length           |  body ...    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// type 1 record       a RouterLink media record: origin u64 | track number u32 | layer u8 |
///                     flags u8 | packet length u16 | packet in origin form
/// type 2 want layers  origin u64 | track number u32 | layer set u32 (0: stop sending it)
/// type 3 keyframe     origin u64 | track number u32 | layer u8
/// type 4 layer rates  origin u64 | track number u32 | count u8 | count × bitrate u32 (bit/s)
/// type 5 probe        probe id u32 | sender's clock u64 (ns)
/// type 6 probe reply  probe id u32 | echoed clock u64 | datagrams expected u64 | gaps seen u64
/// type 7 nack         count × hop sequence number u64 (datagrams to send again)
/// ```
///
/// Integers are big-endian. Unknown types are skipped (their length says how far), so a newer node can
/// add frames an older one ignores.
public enum MeshFrame: Sendable, Equatable {
    /// A media record, exactly as ``RouterLink`` batches them (header and packet).
    case record(ByteBuffer)
    /// The sender wants these layers of a track of the receiver.
    case wantLayers(TrackID, LayerSet)
    /// The sender needs a keyframe on a layer of a track of the receiver.
    case keyframe(TrackID, layer: Int)
    /// Measured bitrate per layer of a track the receiver pulls.
    case layerRates(TrackID, [Int])
    /// A liveness and RTT probe.
    case probe(id: UInt32, sentAt: UInt64)
    /// The answer to a probe, with the answering side's receive counters since the link started: hop
    /// sequence numbers covered and those seen missing (for the prober's loss, before repair).
    case probeReply(id: UInt32, echoedSentAt: UInt64, expected: UInt64, gaps: UInt64)
    /// Datagrams the sender missed, by hop sequence number.
    case nack([UInt64])

    enum Kind: UInt8 {
        case record = 1
        case wantLayers = 2
        case keyframe = 3
        case layerRates = 4
        case probe = 5
        case probeReply = 6
        case nack = 7
    }

    /// Frame header length (type and body length).
    public static let headerLength = 3
    /// Record header length inside a record frame (see ``RouterLink``).
    static let recordHeaderLength = RouterLink.recordHeaderLength

    /// Why a frame could not be read.
    public enum DecodingError: Error, Sendable, Hashable {
        /// Fewer bytes than the frame header or its stated body.
        case truncated
        /// A body whose length does not fit its type.
        case malformed(type: UInt8)
    }

    /// The frame for a non-media ``RouterLinkMessage`` (nil for media, which travels as records, and for
    /// announcements, which a mesh link does not carry: the cluster directory does).
    public init?(_ message: RouterLinkMessage) {
        switch message {
        case .wantLayers(let id, let layers): self = .wantLayers(id, layers)
        case .keyframe(let id, let layer): self = .keyframe(id, layer: layer)
        case .layerRates(let id, let rates): self = .layerRates(id, rates)
        case .media, .published, .ended: return nil
        }
    }

    /// The encoded length, header included.
    public var encodedLength: Int {
        Self.headerLength + self.bodyLength
    }

    private var bodyLength: Int {
        switch self {
        case .record(let bytes): bytes.readableBytes
        case .wantLayers: 16
        case .keyframe: 13
        case .layerRates(_, let rates): 13 + 4 * min(rates.count, 255)
        case .probe: 12
        case .probeReply: 28
        case .nack(let numbers): 8 * min(numbers.count, 1024)
        }
    }

    /// Appends the frame to `buffer`.
    public func write(into buffer: inout ByteBuffer) {
        let kind: Kind
        switch self {
        case .record: kind = .record
        case .wantLayers: kind = .wantLayers
        case .keyframe: kind = .keyframe
        case .layerRates: kind = .layerRates
        case .probe: kind = .probe
        case .probeReply: kind = .probeReply
        case .nack: kind = .nack
        }
        buffer.writeMultipleIntegers(kind.rawValue, UInt16(truncatingIfNeeded: self.bodyLength))
        switch self {
        case .record(var bytes):
            buffer.writeBuffer(&bytes)
        case .wantLayers(let id, let layers):
            buffer.writeMultipleIntegers(id.origin.rawValue, id.number, layers.rawValue)
        case .keyframe(let id, let layer):
            buffer.writeMultipleIntegers(id.origin.rawValue, id.number, UInt8(truncatingIfNeeded: layer))
        case .layerRates(let id, let rates):
            let rates = rates.prefix(255)
            buffer.writeMultipleIntegers(id.origin.rawValue, id.number, UInt8(rates.count))
            for rate in rates { buffer.writeInteger(UInt32(clamping: rate)) }
        case .probe(let id, let sentAt):
            buffer.writeMultipleIntegers(id, sentAt)
        case .probeReply(let id, let echoed, let expected, let gaps):
            buffer.writeMultipleIntegers(id, echoed, expected, gaps)
        case .nack(let numbers):
            for number in numbers.prefix(1024) { buffer.writeInteger(number) }
        }
    }

    /// Reads one frame from `buffer`; nil for a frame of an unknown type (skipped). A record keeps a
    /// slice of `buffer`'s storage.
    public static func read(from buffer: inout ByteBuffer) throws(DecodingError) -> MeshFrame? {
        guard let (type, length) = buffer.readMultipleIntegers(as: (UInt8, UInt16).self) else { throw .truncated }
        guard var body = buffer.readSlice(length: Int(length)) else { throw .truncated }
        guard let kind = Kind(rawValue: type) else { return nil }
        func track() -> TrackID? {
            guard let (origin, number) = body.readMultipleIntegers(as: (UInt64, UInt32).self) else { return nil }
            return TrackID(origin: NodeID(rawValue: origin), number: number)
        }
        let frame: MeshFrame?
        switch kind {
        case .record:
            // The record's own header must agree with the frame's length.
            if body.readableBytes >= Self.recordHeaderLength,
                let packetLength = body.getInteger(
                    at: body.readerIndex + Self.recordHeaderLength - 2, as: UInt16.self),
                Int(packetLength) + Self.recordHeaderLength == body.readableBytes
            {
                frame = .record(body)
            } else {
                frame = nil
            }
        case .wantLayers:
            frame = body.readableBytes == 16 ? track().map { .wantLayers($0, LayerSet(rawValue: body.readInteger()!)) } : nil
        case .keyframe:
            frame = body.readableBytes == 13 ? track().map { .keyframe($0, layer: Int(body.readInteger(as: UInt8.self)!)) } : nil
        case .layerRates:
            if body.readableBytes >= 13, let id = track(), let count = body.readInteger(as: UInt8.self),
                body.readableBytes == 4 * Int(count)
            {
                frame = .layerRates(id, (0..<Int(count)).map { _ in Int(body.readInteger(as: UInt32.self)!) })
            } else {
                frame = nil
            }
        case .probe:
            frame = body.readMultipleIntegers(as: (UInt32, UInt64).self).flatMap {
                body.readableBytes == 0 ? .probe(id: $0.0, sentAt: $0.1) : nil
            }
        case .probeReply:
            frame = body.readMultipleIntegers(as: (UInt32, UInt64, UInt64, UInt64).self).flatMap {
                body.readableBytes == 0 ? .probeReply(id: $0.0, echoedSentAt: $0.1, expected: $0.2, gaps: $0.3) : nil
            }
        case .nack:
            if body.readableBytes % 8 == 0 {
                frame = .nack((0..<(body.readableBytes / 8)).map { _ in body.readInteger(as: UInt64.self)! })
            } else {
                frame = nil
            }
        }
        guard let frame else { throw .malformed(type: type) }
        return frame
    }
}
