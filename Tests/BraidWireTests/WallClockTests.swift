import BraidWire
import NIOCore
import Testing

@Suite struct WallClockTests {
    static func at(_ milliseconds: UInt64) -> NIODeadline {
        .uptimeNanoseconds(5_000_000_000 + milliseconds * 1_000_000)
    }

    @Test func mapsTheLoopClockToNTP() {
        let clock = WallClock(referenceDeadline: Self.at(0), referenceUnixNanoseconds: 1_700_000_000_250_000_000)
        let ntp = clock.ntpTimestamp(at: Self.at(750))
        #expect(ntp >> 32 == 1_700_000_001 + 2_208_988_800)
        #expect(ntp & 0xFFFF_FFFF == 0)
        #expect(clock.ntpTimestamp(at: Self.at(500)) & 0xFFFF_FFFF == 0xC000_0000)
        #expect(WallClock.microseconds(fromNTP: clock.ntpTimestamp(at: Self.at(0)), to: ntp) == 750_000)
        #expect(WallClock.microseconds(fromNTP: ntp, to: clock.ntpTimestamp(at: Self.at(0))) == -750_000)
        #expect(WallClock.ntpTimestamp(unixNanoseconds: -5) == UInt64(2_208_988_800) << 32)
    }
}
