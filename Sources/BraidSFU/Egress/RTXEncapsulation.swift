import BraidWire
import NIOCore

extension RTPPacket {
    /// Appends this packet RTX-encapsulated to `buffer`
    /// ([RFC 4588 §4](https://www.rfc-editor.org/rfc/rfc4588#section-4)):
    ///
    /// ```
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |  RTP header: RTX payload type, RTX sequence number, RTX SSRC  |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |            OSN                |  original payload ...          |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// ```
    ///
    /// The header is the original's (CSRCs, extensions, marker and timestamp kept) with P cleared, as the
    /// original padding is not carried.
    func writeRTX(ssrc: UInt32, payloadType: UInt8, sequenceNumber: UInt16, into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        let bytes = self.bytes
        let headerLength = self.headerLength
        bytes.withUnsafeReadableBytes { packet in
            _ = buffer.writeBytes(UnsafeRawBufferPointer(rebasing: packet[0..<headerLength]))
            buffer.setInteger(packet[0] & ~0x20, at: start)
            buffer.setInteger(packet[1] & 0x80 | payloadType & 0x7F, at: start + 1)
        }
        buffer.setInteger(sequenceNumber, at: start + 2)
        buffer.setInteger(ssrc, at: start + 8)
        buffer.writeInteger(self.sequenceNumber)
        var payload = self.payload
        buffer.writeBuffer(&payload)
    }
}
