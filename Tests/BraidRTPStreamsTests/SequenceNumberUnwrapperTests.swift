import BraidRTPStreams
import Testing

@Suite struct SequenceNumberUnwrapperTests {
    @Test func unwrapsAcrossWrapAround() {
        var unwrapper = SequenceNumberUnwrapper()
        #expect([65534, 65535, 0, 1].map { unwrapper.unwrap($0) } == [65534, 65535, 65536, 65537])
        #expect(unwrapper.highest == 65537)
    }

    @Test func reorderedPacketsKeepTheirPlaceAcrossWrap() {
        var unwrapper = SequenceNumberUnwrapper()
        #expect([65535, 1, 0, 65534, 2].map { unwrapper.unwrap($0) } == [65535, 65537, 65536, 65534, 65538])
        #expect(unwrapper.highest == 65538)
    }

    @Test func packetBeforeTheFirstAcrossWrapIsNegative() {
        var unwrapper = SequenceNumberUnwrapper()
        #expect(unwrapper.unwrap(0) == 0)
        #expect(unwrapper.unwrap(65535) == -1)
        #expect(unwrapper.highest == 0)
        #expect(unwrapper.peek(32767) == 32767)
        #expect(unwrapper.peek(32768) == -32768)
    }

    @Test func longRunCountsCycles() {
        var unwrapper = SequenceNumberUnwrapper()
        var sequence: UInt16 = 60000
        var last: Int64 = 0
        for _ in 0..<200_000 {
            last = unwrapper.unwrap(sequence)
            sequence &+= 1
        }
        #expect(last == 60000 + 199_999)
    }

    @Test func timestampsUnwrap() {
        var unwrapper = TimestampUnwrapper()
        #expect(unwrapper.unwrap(0xFFFF_FF00) == 0xFFFF_FF00)
        #expect(unwrapper.unwrap(0x100) == 0x1_0000_0100)
        #expect(unwrapper.unwrap(0xFFFF_FFF0) == 0xFFFF_FFF0)
        #expect(unwrapper.highest == 0x1_0000_0100)
        unwrapper.reset()
        #expect(unwrapper.unwrap(5) == 5)
    }
}
