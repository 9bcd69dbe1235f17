import BraidSecurity
import Foundation
import Testing

// The seed corpus of the FuzzSRTP libFuzzer target (Tools/Fuzz/Sources/FuzzSRTP), built here from the
// public API so that the seeds authenticate under the target's key and the fuzzer starts past the tag
// check. The test checks the seeds; with BRAID_FUZZ_SRTP_SEEDS=<folder> in the environment it also writes
// them there:
//
//   BRAID_FUZZ_SRTP_SEEDS=$PWD/Tools/Fuzz/Corpus/SRTP swift test --skip-build --filter SRTPFuzzSeedTests

/// FuzzSRTP's master key: key 01 02 … 10, salt 21 22 … (keep in step with the target's `fuzzSRTPKey`).
private func fuzzKey(_ profile: SRTPProfile) throws -> SRTPMasterKey {
    try SRTPMasterKey(
        key: (1...16).map { UInt8($0) },
        salt: (0..<profile.masterSaltLength).map { UInt8(0x21 + $0) },
        profile: profile
    )
}

/// One FuzzSRTP record: selector, 16-bit length, bytes.
private func record(_ profile: SRTPProfile, rtcp: Bool = false, inPlace: Bool = false, plain: Bool = false,
                    _ bytes: [UInt8]) -> [UInt8]
{
    let selector = (profile == .aeadAES128GCM ? 1 : 0) | (rtcp ? 2 : 0) | (inPlace ? 4 : 0) | (plain ? 8 : 0)
    return [UInt8(selector), UInt8(bytes.count >> 8), UInt8(bytes.count & 0xff)] + bytes
}

@Suite("FuzzSRTP seed corpus")
struct SRTPFuzzSeedTests {
    /// The seeds, by file name.
    static func seeds() throws -> [(name: String, bytes: [UInt8])] {
        var seeds: [(String, [UInt8])] = []
        for profile in SRTPProfile.allCases {
            let name = profile == .aeadAES128GCM ? "gcm" : "cm"
            let sender = try SRTPOutboundSession(profile: profile, masterKey: fuzzKey(profile))
            let first = try sender.protectRTP(makeRTP(ssrc: 0x1234_5678, sequence: 1, payloadLength: 40))
            let report = try sender.protectRTCP(makeRTCP(ssrc: 0x1234_5678, fill: 7))
            seeds.append(("\(name)-rtp", record(profile, first)))
            seeds.append(("\(name)-rtcp", record(profile, rtcp: true, report)))
            seeds.append((
                "\(name)-rtp-extension-csrcs-in-place",
                record(profile, inPlace: true,
                       try sender.protectRTP(makeRTP(ssrc: 9, sequence: 300, payloadLength: 20, csrcs: 2,
                                                     extensionWords: 2, padding: true)))
            ))
            // A stream across the sequence-number rollover, a replay, a packet older than the window, and
            // SRTCP in between.
            var script: [UInt8] = []
            let old = try sender.protectRTP(makeRTP(ssrc: 77, sequence: 65300, payloadLength: 8))
            for sequence: UInt16 in [65533, 65534, 65535, 0, 1] {
                script += record(profile, try sender.protectRTP(makeRTP(ssrc: 77, sequence: sequence,
                                                                        payloadLength: 16)))
                script += record(profile, rtcp: true, try sender.protectRTCP(makeRTCP(ssrc: 77, fill: 1)))
            }
            script += record(profile, try sender.protectRTP(makeRTP(ssrc: 77, sequence: 0, payloadLength: 16)))
            script += record(profile, old)
            seeds.append(("\(name)-rollover-replay-old", script))
            // Plain packets for the protect round trip.
            seeds.append((
                "\(name)-protect-round-trip",
                record(profile, plain: true, makeRTP(ssrc: 5, sequence: 10, payloadLength: 30, extensionWords: 1))
                    + record(profile, rtcp: true, plain: true, makeRTCP(ssrc: 5, fill: 3))
                    + record(profile, plain: true, makeRTP(ssrc: 5, sequence: 10, payloadLength: 30))
            ))
        }
        return seeds
    }

    @Test("every seed record that should authenticate does, under the target's key")
    func seedsAuthenticate() throws {
        let seeds = try Self.seeds()
        #expect(seeds.count == 10)
        for profile in SRTPProfile.allCases {
            let receiver = try SRTPInboundSession(profile: profile, masterKey: fuzzKey(profile))
            let name = profile == .aeadAES128GCM ? "gcm" : "cm"
            for (file, bytes) in seeds where file == "\(name)-rtp" || file == "\(name)-rtcp" {
                let packet = Array(bytes[3...])
                if file.hasSuffix("rtcp") {
                    #expect(throws: Never.self) { try receiver.unprotectRTCP(packet) }
                } else {
                    #expect(throws: Never.self) { try receiver.unprotectRTP(packet) }
                }
            }
        }
        if let folder = ProcessInfo.processInfo.environment["BRAID_FUZZ_SRTP_SEEDS"] {
            for (name, bytes) in seeds {
                try Data(bytes).write(to: URL(fileURLWithPath: folder).appendingPathComponent("\(name).bin"))
            }
        }
    }
}
