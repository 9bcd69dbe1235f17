import BraidWire
import NIOCore

/// A point on the injected clock, in milliseconds from an arbitrary origin.
func at(_ milliseconds: Int64) -> NIODeadline {
    .uptimeNanoseconds(UInt64(1_000_000_000 + milliseconds * 1_000_000))
}

/// Builds and parses one RTP packet.
func makePacket(
    sequenceNumber: UInt16, timestamp: UInt32 = 0, ssrc: UInt32 = 0x1111_1111, payloadType: UInt8 = 96,
    marker: Bool = true, payload: [UInt8] = [0xAA, 0xBB], paddingLength: Int = 0
) throws -> RTPPacket {
    var buffer = ByteBufferAllocator().buffer(capacity: 64)
    try buffer.writeRTPPacket(
        RTPHeader(
            marker: marker, payloadType: payloadType, sequenceNumber: sequenceNumber, timestamp: timestamp, ssrc: ssrc),
        payload: ByteBuffer(bytes: payload), paddingLength: paddingLength)
    return try RTPPacket(buffer)
}

/// A VP8 payload: descriptor with a PictureID (15-bit when `longPictureID`) and TL0PICIDX, then one byte
/// of VP8 data (0x00: a keyframe header when the packet starts the frame).
func vp8Payload(pictureID: UInt16, tl0: UInt8, longPictureID: Bool = true) throws -> [UInt8] {
    let descriptor = VP8PayloadDescriptor(
        isStartOfPartition: true,
        pictureID: longPictureID ? .long(pictureID) : .short(UInt8(pictureID)),
        tl0PicIndex: tl0)
    var buffer = ByteBuffer()
    try descriptor.write(into: &buffer)
    buffer.writeInteger(UInt8(0))
    return Array(buffer.readableBytesView)
}

func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }
