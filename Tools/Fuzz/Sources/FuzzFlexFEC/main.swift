// libFuzzer target for the XOR FEC browsers decode: FlexFEC (BraidRTPStreams' FlexFECHeader,
// FlexFECEncoder, FlexFECDecoder) and ULPFEC (ULPFECHeader, ULPFECEncoder, ULPFECDecoder). The header
// parsers and the decoders, driven by one script of operations on genuine encoders of both formats (fed the
// same packets) and on forged repair packets (given to both decoders).
//
// Script, one operation per step (the input is read until it runs out):
//   0x00–0x7F  a media packet of 28 + (byte & 0x3F) · 23 bytes (a one-byte extension block with
//              abs-send-time and transport-wide sequence data the encoder zeroes) goes through the encoder;
//              bit 0x40 says whether the decoder receives it; the sequence number skips one when the next
//              byte is 0xFF (a gap the encoder must not bridge)
//   0x80–0xBF  each encoder writes a repair over up to (byte & 0x3F) + 1 newest packets; its decoder gets it
//   0xC0–0xFF  a forged repair payload of (byte & 0x3F) · 2 bytes taken from the input
//
// Properties: nothing traps or hangs; a header that parses writes back to one that parses equal; every
// packet the decoder returns is at least an RTP header long; and while no forged repair has been seen,
// every packet it returns is exactly the packet sent under that sequence number (extension data zeroed).
import BraidRTPStreams
import NIOCore

private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

private let ssrc: UInt32 = 0x0BAD_CAFE

/// A media packet: header with `sequence`, a one-byte extension block (id 1: 3 bytes of abs-send-time,
/// id 2: 2 bytes of transport-wide sequence, id 3: 1 byte kept), then a payload derived from it.
private func media(_ sequence: UInt16, length: Int) -> (sent: [UInt8], zeroed: [UInt8]) {
    var bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ Int(sequence) &* 7) }
    bytes[0] = 0x90
    bytes[1] = sequence % 3 == 0 ? 0xE0 : 0x60
    bytes[2] = UInt8(sequence >> 8)
    bytes[3] = UInt8(sequence & 0xFF)
    bytes[8] = 0x0B; bytes[9] = 0xAD; bytes[10] = 0xCA; bytes[11] = 0xFE
    bytes.replaceSubrange(12..<16, with: [0xBE, 0xDE, 0x00, 0x03])
    bytes[16] = 0x12; bytes[20] = 0x21; bytes[23] = 0x30; bytes[25] = 0; bytes[26] = 0; bytes[27] = 0
    var zeroed = bytes
    for index in [17, 18, 19, 21, 22] { zeroed[index] = 0 }
    return (bytes, zeroed)
}

private func fuzz(_ input: [UInt8]) {
    var encoder = FlexFECEncoder(capacity: 64, maximumPacketSize: 1500, mutableExtensionIDs: (1, 2, 0))
    var decoder = FlexFECDecoder(ssrc: ssrc)
    var ulpEncoder = ULPFECEncoder(capacity: 48, maximumPacketSize: 1500, mutableExtensionIDs: (1, 2, 0))
    var ulpDecoder = ULPFECDecoder(ssrc: ssrc)
    var sent: [UInt16: [UInt8]] = [:]
    var next: UInt16 = 65_500  // crosses the wrap
    var forged = false
    var index = 0
    func take() -> UInt8? {
        guard index < input.count else { return nil }
        defer { index += 1 }
        return input[index]
    }
    func checkRebuilt(_ rebuilt: ByteBuffer?) {
        guard let rebuilt else { return }
        check(rebuilt.readableBytes >= 12, "a rebuilt packet shorter than an RTP header")
        guard !forged else { return }
        let sequence = rebuilt.getInteger(at: rebuilt.readerIndex + 2, as: UInt16.self)!
        check(sent[sequence] == Array(rebuilt.readableBytesView), "rebuilt packet \(sequence) differs from the one sent")
    }
    func deliver(_ payload: ByteBuffer) {
        if let header = try? FlexFECHeader(payload) {
            var written = ByteBuffer()
            header.write(into: &written)
            check((try? FlexFECHeader(written)) == header, "a parsed FlexFEC header does not write back to itself")
        }
        checkRebuilt(decoder.repairReceived(payload))
    }
    func deliverULP(_ payload: ByteBuffer) {
        if let header = try? ULPFECHeader(payload) {
            var written = ByteBuffer()
            header.write(into: &written)
            written.writeRepeatingByte(0, count: Int(header.protectionLength))
            check((try? ULPFECHeader(written)) == header, "a parsed ULPFEC header does not write back to itself")
        }
        checkRebuilt(ulpDecoder.repairReceived(payload))
    }
    while let operation = take() {
        switch operation {
        case 0x00..<0x80:
            let packet = media(next, length: 28 + Int(operation & 0x3F) * 23)
            encoder.add(ByteBuffer(bytes: packet.sent), sequenceNumber: next)
            ulpEncoder.add(ByteBuffer(bytes: packet.sent), sequenceNumber: next)
            sent[next] = packet.zeroed
            if operation & 0x40 != 0 {
                decoder.received(ByteBuffer(bytes: packet.zeroed), sequenceNumber: next)
                ulpDecoder.received(ByteBuffer(bytes: packet.zeroed), sequenceNumber: next)
            }
            next &+= index < input.count && input[index] == 0xFF ? 2 : 1
        case 0x80..<0xC0:
            var payload = ByteBuffer()
            if encoder.writeRepair(protecting: ssrc, span: Int(operation & 0x3F) + 1, into: &payload) {
                deliver(payload)
            }
            payload.clear()
            if ulpEncoder.writeRepair(span: Int(operation & 0x3F) + 1, into: &payload) { deliverULP(payload) }
        default:
            let length = Int(operation & 0x3F) * 2
            let end = min(input.count, index + length)
            let payload = ByteBuffer(bytes: input[index..<end])
            index = end
            forged = true
            deliver(payload)
            deliverULP(payload)
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start, count >= 0 else { return 0 }
    fuzz(Array(UnsafeRawBufferPointer(start: start, count: count)))
    return 0
}
