import BraidWire
import Testing

@Suite struct DemultiplexerTests {
    @Test func classifiesByFirstByte() {
        #expect(DatagramKind(classifying: [UInt8]()) == .unknown)
        #expect(DatagramKind(classifying: [0x00, 0x01]) == .stun)
        #expect(DatagramKind(classifying: [22, 0xfe]) == .dtls)
        #expect(DatagramKind(classifying: [0x80, 96]) == .rtp)
        #expect(DatagramKind(classifying: [0x80, 200]) == .rtcp)
        #expect(DatagramKind(classifying: [0x80]) == .rtp)
        #expect(DatagramKind(classifying: [0xff, 0]) == .unknown)
        #expect(DatagramKind(classifying: [70]) == .turnChannel)
    }

    @Test func everyFirstByteMapsToExactlyOneKind() {
        for first in UInt8.min...UInt8.max {
            for second: UInt8 in [0, 96, 191, 192, 223, 224] {
                let kind = DatagramKind(classifying: [first, second])
                #expect(kind == DatagramKind(firstByte: first, secondByte: second))
            }
        }
    }
}
