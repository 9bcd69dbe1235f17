import BraidSecurity
import Foundation
import Testing

// The seed corpus of the FuzzDTLS libFuzzer target (Tools/Fuzz/Sources/FuzzDTLS): real DTLS datagrams from
// endpoints handshaking in memory. The test checks what each seed does to the endpoint the target feeds it
// to; with BRAID_FUZZ_DTLS_SEEDS=<folder> in the environment it also writes them there:
//
//   BRAID_FUZZ_DTLS_SEEDS=$PWD/Tools/Fuzz/Corpus/DTLS swift test --skip-build --filter DTLSFuzzSeedTests

/// One FuzzDTLS record: selector (0: a fresh server, 1: a compact client), 16-bit length, bytes.
private func record(compactClient: Bool, _ bytes: [UInt8]) -> [UInt8] {
    [compactClient ? 1 : 0, UInt8(bytes.count >> 8), UInt8(bytes.count & 0xff)] + bytes
}

@Suite("FuzzDTLS seed corpus")
struct DTLSFuzzSeedTests {
    @Test("a ClientHello gets a server's answer; a compact client counts data and closes on an alert")
    func seeds() async throws {
        let hello = try endpoints().client.start()
        #expect(hello.count == 1)
        let (client, server) = try endpoints()
        _ = try await pump(client, server)
        let data = try server.sendApplicationData([UInt8](repeating: 5, count: 40))
        let goodbye = server.close()
        let seeds: [(String, [UInt8])] = [
            ("server-client-hello", record(compactClient: false, hello[0])),
            ("compact-application-data", record(compactClient: true, data[0])),
            ("compact-close-notify", record(compactClient: true, goodbye[0])),
            ("both", record(compactClient: false, hello[0]) + record(compactClient: true, data[0] + goodbye[0])),
        ]

        let fresh = try endpoints().server
        #expect(try !fresh.receive(hello[0]).isEmpty)
        let (other, otherServer) = try endpoints()
        _ = try await pump(other, otherServer)
        #expect(other.compact())
        #expect(try other.receive(data[0]).isEmpty && other.state == .connected && other.rejectedRecords == 1)
        #expect(try other.receive(goodbye[0]).isEmpty && other.state == .closed)

        if let folder = ProcessInfo.processInfo.environment["BRAID_FUZZ_DTLS_SEEDS"] {
            for (name, bytes) in seeds {
                try Data(bytes).write(to: URL(fileURLWithPath: folder).appendingPathComponent("\(name).bin"))
            }
        }
    }
}
