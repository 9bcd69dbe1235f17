@_spi(SRTPReference) import BraidSecurity
import CBraidShims
import Foundation
import Testing

// Heap per SRTP session, both implementations. A measurement rather than a check (glibc's heap counters are
// process-wide, and other suites allocate in parallel), so it runs only when asked, alone:
//
//   BRAID_MEASURE_SRTP_MEMORY=1 swift test --skip-build --filter SRTPMemoryTests

@Suite("SRTP memory per session")
struct SRTPMemoryTests {
    @Test(
        "heap per SRTPSession, with one SSRC's RTP and RTCP each way",
        .enabled(if: ProcessInfo.processInfo.environment["BRAID_MEASURE_SRTP_MEMORY"] != nil)
    )
    func memoryPerSession() throws {
        for profile in SRTPProfile.allCases {
            for implementation in SRTPImplementation.allCases {
                let key = try testMasterKey(profile)
                let keys = SRTPKeys(profile: profile, local: key, remote: key)
                func exercise(_ session: SRTPSession) throws {
                    let rtp = try session.outbound.protectRTP(makeRTP(ssrc: 1, sequence: 1, payloadLength: 100))
                    _ = try session.inbound.unprotectRTP(rtp)
                    let rtcp = try session.outbound.protectRTCP(makeRTCP(ssrc: 1, fill: 0))
                    _ = try session.inbound.unprotectRTCP(rtcp)
                }
                try exercise(SRTPSession(keys: keys, implementation: implementation))  // one-time setup
                let count = 200
                let before = braid_heap_bytes_in_use()
                var sessions: [SRTPSession] = []
                sessions.reserveCapacity(count)
                for _ in 0..<count {
                    let session = try SRTPSession(keys: keys, implementation: implementation)
                    try exercise(session)
                    sessions.append(session)
                }
                let after = braid_heap_bytes_in_use()
                let perSession = (Int(after) - Int(before)) / count
                print("SRTP memory: \(profile) \(implementation): \(perSession) bytes per session")
                #expect(sessions.count == count)
            }
        }
    }
}
