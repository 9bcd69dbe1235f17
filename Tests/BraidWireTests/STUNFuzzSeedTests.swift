import BraidWire
import Foundation
import NIOCore
import Testing

/// The fuzzer's STUN seeds (Tools/Fuzz/Corpus/STUN) were written with an independent HMAC-SHA1 and CRC-32
/// (Python's hmac and zlib): checking them here cross-checks our integrity and fingerprint code, and keeps
/// the seeds valid so that the fuzzer starts from messages that reach the deep paths.
@Suite struct STUNFuzzSeedTests {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Tools/Fuzz/Corpus/STUN")

    static func seed(_ name: String) throws -> STUNMessage {
        try STUNMessage(parsing: ByteBuffer(bytes: try Data(contentsOf: Self.corpus.appendingPathComponent(name))))
    }

    @Test func seedsParseAndVerify() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).filter { !$0.hasPrefix(".") }
        #expect(names.count >= 8)
        let key = STUNIntegrityKey(shortTermPassword: RFC5769.password)
        for name in names.sorted() {
            let data = try Data(contentsOf: Self.corpus.appendingPathComponent(name))
            let message = try STUNMessage(parsing: ByteBuffer(bytes: data))
            #expect(exerciseEverything(Array(data)), "\(name)")
            if message.hasMessageIntegrity { try message.validateIntegrity(key: key) }
            if message.hasFingerprint { try message.validateFingerprint() }
            if name.hasPrefix("rfc5769") {
                #expect(message.hasMessageIntegrity && message.hasFingerprint, "\(name)")
            }
        }
        let request = try Self.seed("binding-request-use-candidate")
        #expect(try request.useCandidate())
        #expect(try request.iceControlling() == 0x0123_4567_89AB_CDEF)
        #expect(try request.username()?.string == "ab12:cd34")
        let roleConflict = try Self.seed("error-487-role-conflict")
        #expect(try roleConflict.errorCode()?.code == .roleConflict)
        try roleConflict.validateIntegrity(key: key)
    }
}
