// SRTP protect/unprotect of 1200-byte payloads for both DTLS-SRTP profiles, on the default OpenSSL
// implementation and on the libsrtp2 reference, and a full DTLS 1.2 handshake between two in-process
// endpoints. Malloc counts are part of every result: the reference rows show what the Debian libsrtp2
// build (NSS backend) allocates per packet, the default rows that the OpenSSL path allocates nothing.
import Benchmark
@_spi(SRTPReference) import BraidSecurity

/// A 12-byte RTP header followed by `payloadLength` bytes, with room left for the SRTP trailer.
private struct RTPFixture {
    var packet: [UInt8]
    var protected: [UInt8]
    var unprotected: [UInt8]

    init(payloadLength: Int) {
        self.packet = [0x80, 96, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]
            + (0..<payloadLength).map { UInt8(truncatingIfNeeded: $0) }
        self.protected = [UInt8](repeating: 0, count: self.packet.count + 64)
        self.unprotected = [UInt8](repeating: 0, count: self.packet.count + 64)
    }

    /// Writes the next sequence number and timestamp so that libsrtp's replay check sees a fresh packet.
    mutating func advance(to sequence: UInt32) {
        self.packet[2] = UInt8(truncatingIfNeeded: sequence >> 8)
        self.packet[3] = UInt8(truncatingIfNeeded: sequence)
        let timestamp = sequence &* 3000
        self.packet[4] = UInt8(truncatingIfNeeded: timestamp >> 24)
        self.packet[5] = UInt8(truncatingIfNeeded: timestamp >> 16)
        self.packet[6] = UInt8(truncatingIfNeeded: timestamp >> 8)
        self.packet[7] = UInt8(truncatingIfNeeded: timestamp)
    }
}

private func sessionPair(_ profile: SRTPProfile, _ implementation: SRTPImplementation) throws
    -> (SRTPOutboundSession, SRTPInboundSession)
{
    let key = SRTPMasterKey.forBenchmark(profile)
    return (
        try SRTPOutboundSession(profile: profile, masterKey: key, implementation: implementation),
        try SRTPInboundSession(profile: profile, masterKey: key, replayWindowSize: 1024,
                               implementation: implementation)
    )
}

/// `count` consecutive 1200-byte SRTP packets (sequence numbers 1...count): the unprotect benchmark's input,
/// made before each sample's measurement starts.
private func protectedPackets(_ profile: SRTPProfile, _ implementation: SRTPImplementation, count: Int) throws
    -> [[UInt8]]
{
    let (outbound, _) = try sessionPair(profile, implementation)
    var fixture = RTPFixture(payloadLength: 1200)
    return try (1...count).map { sequence in
        fixture.advance(to: UInt32(sequence))
        let length = try fixture.packet.withUnsafeBytes { source in
            try fixture.protected.withUnsafeMutableBytes { try outbound.protectRTP(source, into: $0) }
        }
        return Array(fixture.protected[..<length])
    }
}

extension SRTPMasterKey {
    fileprivate static func forBenchmark(_ profile: SRTPProfile) -> SRTPMasterKey {
        try! SRTPMasterKey(
            key: (0..<profile.masterKeyLength).map { UInt8($0 &* 7) },
            salt: (0..<profile.masterSaltLength).map { UInt8($0 &* 13) },
            profile: profile
        )
    }
}

private let profiles: [(name: String, profile: SRTPProfile)] = [
    ("AES_CM_128_HMAC_SHA1_80", .aesCM128HMACSHA1_80),
    ("AEAD_AES_128_GCM", .aeadAES128GCM),
]

/// The default implementation, then the libsrtp2 reference (suffix " libsrtp").
private let implementations: [(suffix: String, implementation: SRTPImplementation)] = [
    ("", .openSSL),
    (" libsrtp", .libsrtp),
]

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        // 1000 packets per sample keeps the harness's own fixed cost (a handful of mallocs and the clock
        // reads per sample) out of the per-packet figures; results are shown per packet.
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 10_000,
        // Allocations per packet are deterministic: the committed Thresholds/ hold each benchmark's p90 and
        // `benchmark thresholds check` fails on one malloc more (see README.md, "Regression check").
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )

    for (name, profile) in profiles {
        for (suffix, implementation) in implementations {
            Benchmark("SRTP protect 1200 B \(name)\(suffix)") { benchmark in
                let (outbound, _) = try sessionPair(profile, implementation)
                var fixture = RTPFixture(payloadLength: 1200)
                var sequence: UInt32 = 0
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    sequence &+= 1
                    fixture.advance(to: sequence)
                    let length = try fixture.packet.withUnsafeBytes { source in
                        try fixture.protected.withUnsafeMutableBytes { try outbound.protectRTP(source, into: $0) }
                    }
                    blackHole(length)
                }
            }

            Benchmark("SRTP unprotect 1200 B \(name)\(suffix)") { benchmark in
                // The packets are protected before the measurement starts, by a sender of their own, and
                // unprotected by a fresh receiver, so every packet is new to its replay window.
                let packets = try protectedPackets(profile, implementation, count: benchmark.scaledIterations.count)
                let (_, inbound) = try sessionPair(profile, implementation)
                var destination = [UInt8](repeating: 0, count: 1300)
                benchmark.startMeasurement()
                for index in benchmark.scaledIterations {
                    let length = try packets[index - benchmark.scaledIterations.lowerBound].withUnsafeBytes { packet in
                        try destination.withUnsafeMutableBytes { try inbound.unprotectRTP(packet, into: $0) }
                    }
                    blackHole(length)
                }
            }

            Benchmark("SRTP protect+unprotect 1200 B \(name)\(suffix)") { benchmark in
                let (outbound, inbound) = try sessionPair(profile, implementation)
                var fixture = RTPFixture(payloadLength: 1200)
                var sequence: UInt32 = 0
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    sequence &+= 1
                    fixture.advance(to: sequence)
                    let protectedLength = try fixture.packet.withUnsafeBytes { source in
                        try fixture.protected.withUnsafeMutableBytes { try outbound.protectRTP(source, into: $0) }
                    }
                    let length = try fixture.protected.withUnsafeBytes { protected in
                        try fixture.unprotected.withUnsafeMutableBytes { destination in
                            try inbound.unprotectRTP(
                                UnsafeRawBufferPointer(rebasing: protected[..<protectedLength]), into: destination)
                        }
                    }
                    blackHole(length)
                }
            }
        }
    }

    Benchmark(
        "DTLS 1.2 handshake (both sides, in process)",
        configuration: .init(
            metrics: [.wallClock, .mallocCountTotal], scalingFactor: .one, maxDuration: .seconds(5), maxIterations: 1_000)
    ) { benchmark in
        let clientCertificate = try DTLSCertificate(commonName: "client")
        let serverCertificate = try DTLSCertificate(commonName: "server")
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let client = try DTLSEndpoint(
                role: .client, certificate: clientCertificate, remoteFingerprint: serverCertificate.fingerprint)
            let server = try DTLSEndpoint(
                role: .server, certificate: serverCertificate, remoteFingerprint: clientCertificate.fingerprint)
            var toServer = client.start()
            _ = server.start()
            var rounds = 0
            while client.state == .handshaking || server.state == .handshaking {
                rounds += 1
                precondition(rounds < 16, "handshake did not converge")
                var toClient: [[UInt8]] = []
                for datagram in toServer { toClient += try server.receive(datagram) }
                toServer = []
                for datagram in toClient { toServer += try client.receive(datagram) }
            }
            precondition(client.state == .connected && server.state == .connected)
            blackHole(try client.exportSRTPKeyingMaterial())
        }
    }
}
