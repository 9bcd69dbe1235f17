import BraidWire
import NIOCore

/// Splits VP8 frames into RTP payloads, [RFC 7741 §4](https://www.rfc-editor.org/rfc/rfc7741#section-4).
///
/// Each payload is a payload descriptor followed by a fragment of the frame:
///
/// ```
///        0 1 2 3 4 5 6 7
///       +-+-+-+-+-+-+-+-+
///       |X|R|N|S|R| PID | X = 1, S = 1 on the first packet of the frame, PID = 0
///       +-+-+-+-+-+-+-+-+
///  X:   |I|L|T|K| RSV   | I = 1 (PictureID), L and T = 1 with temporal layers
///       +-+-+-+-+-+-+-+-+
///  I:   |M| PictureID   | M = 1: 15-bit PictureID, incremented per frame
///       +-+-+-+-+-+-+-+-+
///       |   PictureID   |
///       +-+-+-+-+-+-+-+-+
///  L:   |   TL0PICIDX   | incremented on every temporal-layer-0 frame
///       +-+-+-+-+-+-+-+-+
///  T/K: |TID|Y| KEYIDX  |
///       +-+-+-+-+-+-+-+-+
///       |  VP8 payload  | (fragment)
/// ```
///
/// The whole frame is one partition as far as the descriptor goes (PID 0, S only on the first packet),
/// which RFC 7741 §4.4 allows. Fragments are of near-equal size so no tiny last packet is sent; the
/// marker bit goes on the last packet of the frame (§4.1).
///
/// Allocation: payloads are written into the caller's scratch buffer, one at a time, and handed to
/// `emit` before the next is written; nothing is allocated once the scratch buffer has grown.
public struct VP8Packetizer: Sendable {
    /// Largest RTP payload (descriptor included).
    public var maximumPayloadSize: Int
    /// The next frame's PictureID (15 bits).
    public private(set) var pictureID: UInt16
    /// The current TL0PICIDX.
    public private(set) var tl0PicIndex: UInt8

    /// Creates a packetizer.
    /// - Parameters:
    ///   - maximumPayloadSize: at least 16; 1200 keeps SRTP packets under common MTUs.
    ///   - initialPictureID: random in production (RFC 7741 §4.2 leaves it free).
    public init(maximumPayloadSize: Int = 1200, initialPictureID: UInt16 = 0, initialTL0PicIndex: UInt8 = 0) {
        self.maximumPayloadSize = max(16, maximumPayloadSize)
        self.pictureID = initialPictureID & 0x7FFF
        self.tl0PicIndex = initialTL0PicIndex
    }

    /// How many payloads a frame of `frameSize` bytes becomes.
    public func packetCount(frameSize: Int, temporalLayer: UInt8?) -> Int {
        let room = self.maximumPayloadSize - Self.descriptorLength(temporalLayer: temporalLayer)
        return max(1, (frameSize + room - 1) / room)
    }

    static func descriptorLength(temporalLayer: UInt8?) -> Int { temporalLayer == nil ? 4 : 6 }

    /// Packetizes one frame.
    ///
    /// - Parameters:
    ///   - frame: the encoded VP8 frame (its readable bytes); must not be empty.
    ///   - temporalLayer: the TID (0–3) when the stream has temporal layers, else nil.
    ///   - layerSync: Y: the frame depends only on TL0.
    ///   - scratch: reused for every payload.
    ///   - emit: called per payload, in order, with the payload and whether it is the last (marker).
    /// - Throws: `.badValue` for an empty frame or a TID over 3.
    public mutating func packetize<Failure: Error>(
        frame: ByteBuffer,
        temporalLayer: UInt8? = nil,
        layerSync: Bool = false,
        scratch: inout ByteBuffer,
        emit: (ByteBuffer, Bool) throws(Failure) -> Void
    ) throws(Failure) -> Int {
        guard frame.readableBytes > 0, (temporalLayer ?? 0) <= 3 else { return 0 }
        if temporalLayer == 0 { self.tl0PicIndex &+= 1 }
        let count = self.packetCount(frameSize: frame.readableBytes, temporalLayer: temporalLayer)
        let base = frame.readableBytes / count
        let remainder = frame.readableBytes % count
        var offset = frame.readerIndex
        for index in 0..<count {
            // The first `remainder` fragments carry one extra byte.
            let length = base + (index < remainder ? 1 : 0)
            let descriptor = VP8PayloadDescriptor(
                isStartOfPartition: index == 0,
                partitionIndex: 0,
                pictureID: .long(self.pictureID),
                tl0PicIndex: temporalLayer == nil ? nil : self.tl0PicIndex,
                temporalLayerIndex: temporalLayer,
                isLayerSync: layerSync
            )
            scratch.clear()
            scratch.reserveCapacity(minimumWritableBytes: length + 6)
            // Fields were range-checked above; PictureID is masked to 15 bits.
            _ = try? descriptor.write(into: &scratch)
            frame.withUnsafeReadableBytes { bytes in
                let start = offset - frame.readerIndex
                scratch.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[start..<(start + length)]))
            }
            offset += length
            try emit(scratch, index == count - 1)
        }
        self.pictureID = (self.pictureID &+ 1) & 0x7FFF
        return count
    }
}
