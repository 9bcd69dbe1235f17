import BraidWire
import NIOCore

/// A packet in origin form: the media packet as the origin sent it, whatever hop it arrived on. The
/// header of the received packet with the layer's media `ssrc`, the media `sequenceNumber` and
/// `payloadType` written over it and P cleared (RFC 3550 §5.1: byte 0 `V P X CC`, byte 1 `M PT`,
/// bytes 2–3 sequence number, 8–11 SSRC), then the media payload (an RTX packet's OSN removed, padding
/// dropped). The packet store keeps this form, and relay links between routers carry it.
struct OriginForm {
    let rtp: RTPPacket
    let sequenceNumber: UInt16
    let ssrc: UInt32
    let payloadType: UInt8
    let payload: ByteBuffer

    var length: Int { self.rtp.headerLength + self.payload.readableBytes }

    /// Writes the packet to the first ``length`` bytes of `destination`.
    func write(to destination: UnsafeMutableRawBufferPointer) {
        let headerLength = self.rtp.headerLength
        self.rtp.bytes.withUnsafeReadableBytes { source in
            UnsafeMutableRawBufferPointer(rebasing: destination[0..<headerLength])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<headerLength]))
        }
        self.payload.withUnsafeReadableBytes { source in
            UnsafeMutableRawBufferPointer(rebasing: destination[headerLength..<(headerLength + source.count)])
                .copyMemory(from: source)
        }
        destination[0] &= ~0x20
        destination[1] = destination[1] & 0x80 | self.payloadType & 0x7F
        destination.storeBytes(of: self.sequenceNumber.bigEndian, toByteOffset: 2, as: UInt16.self)
        destination.storeBytes(of: self.ssrc.bigEndian, toByteOffset: 8, as: UInt32.self)
    }

    /// Appends the packet to `buffer`.
    func write(into buffer: inout ByteBuffer) {
        let length = self.length
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { destination in
            self.write(to: UnsafeMutableRawBufferPointer(rebasing: destination[0..<length]))
            return length
        }
    }
}
