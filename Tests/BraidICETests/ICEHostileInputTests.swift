import BraidICE
import BraidWire
import NIOCore
import Testing

/// Hostile datagrams through the session table: every one must end in a typed outcome, never a trap, and
/// none may be answered with success unless it is a real check.
@Suite struct ICEHostileInputTests {
    func makeTable() throws -> ICESessionTable<Int> {
        var table = ICESessionTable<Int>(capacity: 2)
        _ = try table.insert(try ICELiteAgent(local: nodeCredentials, remote: browserCredentials, now: t0), context: 1)
        return table
    }

    @Test func randomDatagramsNeverCrashOrSucceed() throws {
        var table = try self.makeTable()
        var generator = SeededGenerator(seed: 0xB4A1D)
        var response = ByteBuffer()
        var successes = 0
        for round in 0..<20_000 {
            let length = Int(generator.next(upperBound: UInt32(200)))
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // Half the time make it look like STUN so that the parser lets more through.
            if round % 2 == 0, bytes.count >= 20 {
                bytes[0] &= 0x01
                bytes[1] = 0x01
                bytes.replaceSubrange(2..<4, with: [UInt8((bytes.count - 20) >> 8), UInt8((bytes.count - 20) & 0xFC)])
                bytes.replaceSubrange(4..<8, with: [0x21, 0x12, 0xA4, 0x42])
            }
            response.clear()
            let (_, outcome) = table.handleSTUNDatagram(
                ByteBuffer(bytes: bytes),
                from: address(round),
                now: t0 + .milliseconds(round),
                responseInto: &response
            )
            if case .respond(.success) = outcome { successes += 1 }
            if case .drop = outcome { #expect(response.readableBytes == 0) }
        }
        #expect(successes == 0)
    }

    @Test func mutatedChecksNeverCrashAndFailAuthentication() throws {
        var generator = SeededGenerator(seed: 99)
        var nominate = CheckOptions()
        nominate.useCandidate = true
        let valid = try makeCheck(node: nodeCredentials, browser: browserCredentials, nominate).bytes
        let original = Array(valid.readableBytesView)
        var response = ByteBuffer()

        for round in 0..<5_000 {
            var table = try self.makeTable()
            var bytes = original
            // Flip 1–4 random bits, or truncate.
            if round % 5 == 4 {
                bytes.removeLast(Int(generator.next(upperBound: UInt32(bytes.count))) + 1)
            } else {
                for _ in 0...(round % 4) {
                    let index = Int(generator.next(upperBound: UInt32(bytes.count)))
                    bytes[index] ^= 1 << UInt8(generator.next(upperBound: UInt32(8)))
                }
            }
            response.clear()
            let (_, outcome) = table.handleSTUNDatagram(
                ByteBuffer(bytes: bytes),
                from: addressA,
                now: t0,
                responseInto: &response
            )
            if case .respond(.success) = outcome {
                // Only a flip that leaves the authenticated bytes and fingerprint intact can pass: the
                // bytes must be the original (a flip in ignored padding changes the CRC, so is dropped).
                #expect(bytes == original)
            }
        }
    }

    @Test func everyTruncationOfAValidCheckIsHandled() throws {
        let valid = Array(try makeCheck(node: nodeCredentials, browser: browserCredentials).bytes.readableBytesView)
        var response = ByteBuffer()
        var table = try self.makeTable()
        for length in 0..<valid.count {
            response.clear()
            let (_, outcome) = table.handleSTUNDatagram(
                ByteBuffer(bytes: valid[..<length]),
                from: addressA,
                now: t0,
                responseInto: &response
            )
            #expect(outcome == .drop(.malformed))
        }
        response.clear()
        #expect(successCheck(table.handleSTUNDatagram(ByteBuffer(bytes: valid), from: addressA, now: t0,
            responseInto: &response).outcome) != nil)
    }
}
