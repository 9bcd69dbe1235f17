// libFuzzer target for DTLS datagrams as a peer sends them (BraidSecurity's DTLSEndpoint over OpenSSL).
//
// The input is a script of datagrams, each fed to one of two endpoints:
//
//   +----------+----------------+---------------------+
//   | selector | length (16 BE) | bytes (length, or   |   repeated to the end of the input
//   +----------+----------------+  what is left)      |
//                                +---------------------+
//   selector bit 0: 0 = a server endpoint made fresh for the input, still handshaking (a node answering a
//                       client it has never heard from);
//                   1 = a client whose handshake completed and which was then compacted
//                       (DTLSEndpoint.compact(), as braid-load's light subscribers do): it decrypts nothing
//                       and closes on an alert record. Made by a real handshake and shared between inputs
//                       until one closes it (the handshake is the slow part).
//
// Checks: a datagram that is not whole DTLS records is refused with malformedDatagram and changes nothing;
// the server's answers are whole datagrams of at most the MTU; the compact client answers nothing and
// stays connected unless the datagram held an alert record, and then it is closed. Anything else (a trap,
// a sanitizer report, a fatalError) is a finding. Tests/BraidSecurityTests/DTLSFuzzSeedTests.swift writes
// the seeds in Corpus/DTLS/.
import BraidSecurity
import FuzzSupport

let clientCertificate = try! DTLSCertificate(commonName: "fuzz-client")
let serverCertificate = try! DTLSCertificate(commonName: "fuzz-server")

/// A client and a server of the real certificates, handshaken in memory; the client is then compacted.
func makeCompactClient() -> DTLSEndpoint {
    let client = try! DTLSEndpoint(role: .client, certificate: clientCertificate,
                                   remoteFingerprint: serverCertificate.fingerprint)
    let server = try! DTLSEndpoint(role: .server, certificate: serverCertificate,
                                   remoteFingerprint: clientCertificate.fingerprint)
    var toServer = client.start()
    var rounds = 0
    while client.state == .handshaking, rounds < 10 {
        var toClient: [[UInt8]] = []
        for datagram in toServer { toClient += try! server.receive(datagram) }
        toServer = []
        for datagram in toClient { toServer += try! client.receive(datagram) }
        rounds += 1
    }
    guard client.state == .connected, client.compact() else { fatalError("in-memory handshake failed") }
    return client
}

nonisolated(unsafe) var compactClient = makeCompactClient()

/// Whether `bytes` are whole DTLS 1.0/1.2 records (RFC 6347 §4.1), and whether one of them is an alert.
func records(_ bytes: UnsafeRawBufferPointer) -> (wellFormed: Bool, alert: Bool) {
    var offset = 0
    var alert = false
    guard !bytes.isEmpty else { return (false, false) }
    while offset < bytes.count {
        guard bytes.count - offset >= 13 else { return (false, alert) }
        let type = bytes[offset]
        let length = Int(bytes[offset + 11]) << 8 | Int(bytes[offset + 12])
        guard (20...23).contains(type), bytes[offset + 1] == 0xFE, bytes[offset + 2] == 0xFF || bytes[offset + 2] == 0xFD,
            length <= 16_384 + 2_048, length <= bytes.count - offset - 13
        else { return (false, alert) }
        if type == 21 { alert = true }
        offset += 13 + length
    }
    return (true, alert)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let input = FuzzScript.input(start, count) else { return 0 }
    var server: DTLSEndpoint?
    for entry in FuzzScript.tailed(input) {
        let selector = entry.op
        let datagram = entry.bytes
        let (wellFormed, alert) = records(datagram)

        if selector & 1 == 0 {
            let endpoint = server ?? (try! DTLSEndpoint(role: .server, certificate: serverCertificate,
                                                        remoteFingerprint: clientCertificate.fingerprint))
            server = endpoint
            let before = endpoint.state
            do {
                let answers = try endpoint.receive(datagram)
                guard wellFormed else { fatalError("accepted a datagram that is not whole records") }
                for answer in answers where answer.isEmpty || answer.count > endpoint.configuration.mtu {
                    fatalError("answered with a datagram of \(answer.count) bytes")
                }
            } catch {
                if error.code == .malformedDatagram {
                    guard !wellFormed else { fatalError("refused whole records as malformed") }
                    guard endpoint.state == before else { fatalError("a malformed datagram changed the state") }
                }
            }
        } else {
            let client = compactClient
            let rejectedBefore = client.rejectedRecords
            do {
                let answers = try client.receive(datagram)
                guard wellFormed else { fatalError("a compact client accepted a datagram that is not whole records") }
                guard answers.isEmpty else { fatalError("a compact client answered") }
                switch client.state {
                case .closed: guard alert else { fatalError("closed without an alert record") }
                case .connected: guard !alert, client.rejectedRecords > rejectedBefore else {
                    fatalError("an alert did not close it, or other records were not counted")
                }
                case .handshaking, .failed: fatalError("a compact client became \(client.state)")
                }
            } catch {
                guard error.code == .malformedDatagram, !wellFormed, client.state == .connected else {
                    fatalError("compact client: \(error) for a datagram that is \(wellFormed ? "" : "not ")well formed")
                }
            }
            if client.state == .closed { compactClient = makeCompactClient() }
        }
    }
    return 0
}
