import BraidSecurity
import Foundation
import Testing

@testable import BraidNode

@Suite("DTLS certificate in the state directory", .serialized)
struct CertificatePersistenceTests {
    static func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("braid-state-\(UUID().uuidString)").path
    }

    @Test("created once with mode 0600 in a new 0700 directory, then loaded: the same fingerprint")
    func createThenLoad() throws {
        let directory = Self.temporaryDirectory() + "/nested"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try NodeCertificateStore.loadOrCreate(in: directory)
        #expect(first.created)
        let path = NodeCertificateStore.path(in: directory)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let directoryAttributes = try FileManager.default.attributesOfItem(atPath: directory)
        #expect((directoryAttributes[.posixPermissions] as? NSNumber)?.intValue == 0o700)
        let second = try NodeCertificateStore.loadOrCreate(in: directory)
        #expect(!second.created)
        #expect(second.certificate.fingerprint == first.certificate.fingerprint)
        // Nothing but the certificate file is left behind (no temporary file).
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == [NodeCertificateStore.fileName])
    }

    @Test("two starts of a node with the same state directory answer with the same fingerprint")
    func fingerprintSurvivesRestart() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = try testConfiguration()
        configuration.stateDirectory = directory
        let first = try await withRunningNode(configuration) { node in
            try #require(node.node.media.sessions.certificateFingerprint)
        }
        let second = try await withRunningNode(configuration) { node in
            try #require(node.node.media.sessions.certificateFingerprint)
        }
        #expect(first == second)
        // Without a state directory every start has its own.
        configuration.stateDirectory = nil
        let fresh = try await withRunningNode(configuration) { node in
            try #require(node.node.media.sessions.certificateFingerprint)
        }
        #expect(fresh != first)
    }

    @Test(
        "a corrupt or mismatched certificate file stops the node with an error naming the file",
        arguments: ["not a certificate\n", "corrupt-key", "truncated"])
    func corruptFile(_ kind: String) throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = NodeCertificateStore.path(in: directory)
        let good = try DTLSCertificate().pemEncoded()
        let text: String
        switch kind {
        case "corrupt-key":
            // The certificate of one key with the private key of another.
            let other = try DTLSCertificate().pemEncoded()
            let certificate = good.components(separatedBy: "-----BEGIN PRIVATE KEY-----")[0]
            let key = "-----BEGIN PRIVATE KEY-----" + other.components(separatedBy: "-----BEGIN PRIVATE KEY-----")[1]
            text = certificate + key
        case "truncated":
            text = String(good.prefix(good.count / 2))
        default:
            text = kind
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        var configuration = try testConfiguration()
        configuration.stateDirectory = directory
        do {
            _ = try NodeServer(configuration: configuration)
            Issue.record("the node started with a corrupt certificate file")
        } catch {
            #expect(error.keyPath == "state_directory")
            #expect(error.message.contains(path), "\(error)")
            #expect(error.message.contains("not a usable DTLS certificate"), "\(error)")
        }
        // The file was not replaced.
        #expect(try String(contentsOfFile: path, encoding: .utf8) == text)
    }
}
