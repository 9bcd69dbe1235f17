// libFuzzer target for Braid's sliding-window FEC (BraidRTPStreams): the repair header parser and the
// decoder, driven by a script of operations on a genuine encoder and on forged repair packets.
//
// Script, one operation per step (the input is read until it runs out):
//   0x00–0x3F  a source packet of 12 + (byte & 0x3F) · 19 bytes goes through the encoder; in the next
//              byte, bit 0x20 says whether the decoder receives it; if not, bit 0x40 starts the
//              decoder's record at it (a first loss) and bit 0x80 tells the decoder it came another way
//              (a retransmission); bit 0x10 drops the equations before it (a keyframe)
//   0x40–0x5F  the encoder writes a repair over up to (byte & 0x0F) + 1 recent packets (growth limit 2
//              when bit 0x10 is set); the decoder receives it
//   0x60–0x7F  the encoder writes a repair round from (byte & 0x0F) packets behind the newest through the
//              newest (over that packet alone when bit 0x10 is set); the decoder receives it
//   0x80–0xFF  a forged repair payload of (byte & 0x7F) bytes taken from the input
//
// Properties: nothing traps or hangs; every packet the decoder returns is at least an RTP header long; and
// while no forged repair has been seen, every packet it returns is exactly the source sent under that
// sequence number (the code is exact; a repair it cannot use is dropped, never half-trusted).
import BraidRTPStreams
import NIOCore

private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

/// A source packet: a 12-byte RTP-like header carrying `sequence`, then a payload derived from it.
private func source(_ sequence: UInt16, length: Int) -> [UInt8] {
    var bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ Int(sequence) &* 7) }
    bytes[0] = 0x80
    bytes[2] = UInt8(sequence >> 8)
    bytes[3] = UInt8(sequence & 0xFF)
    return bytes
}

private func fuzz(_ input: [UInt8]) {
    var encoder = SlidingWindowFECEncoder(capacity: 32, maximumPacketSize: 1500)
    var decoder = SlidingWindowFECDecoder()
    let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    var sent: [UInt16: [UInt8]] = [:]
    var next: UInt16 = 65_500  // crosses the wrap
    var forged = false
    var index = 0
    func take() -> UInt8? {
        guard index < input.count else { return nil }
        defer { index += 1 }
        return input[index]
    }
    func received(_ rebuilt: [ByteBuffer]) {
        for packet in rebuilt {
            check(packet.readableBytes >= 12, "a rebuilt packet shorter than an RTP header")
            guard !forged else { continue }
            let sequence = packet.getInteger(at: packet.readerIndex + 2, as: UInt16.self)!
            check(sent[sequence] == Array(packet.readableBytesView), "rebuilt packet \(sequence) differs from the one sent")
        }
    }
    while let operation = take() {
        switch operation {
        case 0x00..<0x40:
            let bytes = source(next, length: 12 + Int(operation & 0x3F) * 19)
            let buffer = ByteBuffer(bytes: bytes)
            encoder.add(buffer, sequenceNumber: next, now: now)
            sent[next] = bytes
            let flags = take() ?? 0
            if flags & 0x20 != 0 {
                decoder.sourceReceived(buffer, sequenceNumber: next)
            } else {
                if flags & 0x40 != 0 { decoder.startRecording(from: next) }
                if flags & 0x80 != 0 { decoder.sourceRecoveredElsewhere(sequenceNumber: next) }
            }
            if flags & 0x10 != 0 { decoder.forgetEquations(before: next) }
            next &+= 1
        case 0x40..<0x80:
            var payload = ByteBuffer()
            let written: Bool
            if operation < 0x60 {
                written = encoder.writeRepair(
                    now: now, maximumAge: .seconds(1), maximumSources: Int(operation & 0x0F) + 1,
                    maximumSymbolGrowth: operation & 0x10 != 0 ? 2 : Int.max, into: &payload)
            } else {
                let since = next &- 1 &- UInt16(operation & 0x0F)
                written = encoder.writeRepair(since: since, count: operation & 0x10 != 0 ? 1 : nil, into: &payload)
                check(written == (encoder.sourcesSince(since) != nil), "a repair round over kept packets failed")
            }
            guard written else { continue }
            if let header = try? FECRepairHeader(payload) {
                check(header.sourceCount >= 1 && header.sourceCount <= 32, "encoder wrote a bad source count")
                check(header.answersNACK == (operation >= 0x60), "a repair round is not flagged as one")
            } else {
                fatalError("the encoder's repair header does not parse")
            }
            received(decoder.repairReceived(payload))
        default:
            let length = Int(operation & 0x7F)
            let end = min(input.count, index + length)
            let payload = ByteBuffer(bytes: input[index..<end])
            index = end
            _ = try? FECRepairHeader(payload)
            forged = true
            received(decoder.repairReceived(payload))
        }
    }
    _ = (decoder.packetsRecovered, decoder.repairsReceived, decoder.repairsDiscarded)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start, count >= 0 else { return 0 }
    fuzz(Array(UnsafeRawBufferPointer(start: start, count: count)))
    return 0
}
