import BraidWire
import NIOCore
import Testing

/// Random and mutated inputs never trap; valid messages survive a rebuild. Seeds are fixed so a failure
/// replays; the libFuzzer target (Tools/Fuzz) explores far more.
@Suite struct STUNPropertyTests {
    @Test func randomBytesNeverCrash() {
        var rng = SplitMix64(state: 0x5354_554E)
        var parsed = 0
        for _ in 0..<20_000 {
            let count = Int.random(in: 0...160, using: &rng)
            var input = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Half the inputs get a plausible header so the attribute walk is reached.
            if count >= 20, Bool.random(using: &rng) {
                input[0] &= 0x01
                input[2] = 0
                input[3] = UInt8((count - 20) & ~3)
                input.replaceSubrange(4..<8, with: [0x21, 0x12, 0xA4, 0x42])
                input.removeLast((count - 20) % 4)
            }
            if exerciseEverything(input) { parsed += 1 }
        }
        // The header trick must actually reach the attribute parser for a share of inputs.
        #expect(parsed > 100)
    }

    @Test func mutatedVectorsNeverCrash() {
        var rng = SplitMix64(state: 5769)
        for vector in RFC5769.all {
            for _ in 0..<3_000 {
                var input = vector.bytes
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    // Keep the header framing most of the time so that attribute parsing is exercised.
                    let index = Int.random(in: 20..<input.count, using: &rng)
                    input[index] = UInt8.random(in: 0...255, using: &rng)
                }
                exerciseEverything(input)
            }
        }
    }

    @Test func everyPrefixAndSuffixIsHandled() {
        for vector in RFC5769.all {
            for cut in 0...vector.bytes.count {
                exerciseEverything(Array(vector.bytes[..<cut]))
                exerciseEverything(Array(vector.bytes[cut...]))
            }
        }
    }

    /// Random well-formed messages: whatever the builder writes parses back to the same attributes.
    @Test func builtMessagesParseBack() throws {
        var rng = SplitMix64(state: 42)
        let key = STUNIntegrityKey(bytes: (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) })
        for _ in 0..<500 {
            let id = STUNTransactionID.random(using: &rng)
            let method = STUNMethod(rawValue: UInt16.random(in: 0...0x0FFF, using: &rng))!
            let type = STUNMessageType(method: method, messageClass: STUNClass.allCases.randomElement(using: &rng)!)
            var out = ByteBuffer()
            var builder = STUNMessageBuilder(type: type, transactionID: id, into: &out)
            var expected: [(STUNAttributeType, [UInt8])] = []
            for _ in 0..<Int.random(in: 0...6, using: &rng) {
                let attributeType = STUNAttributeType(rawValue: UInt16.random(in: 0x8030...0xFFFF, using: &rng))
                let count = Int.random(in: 0...40, using: &rng)
                let value = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
                try builder.appendAttribute(attributeType, value: value, to: &out)
                expected.append((attributeType, value))
            }
            let withIntegrity = Bool.random(using: &rng)
            let withFingerprint = Bool.random(using: &rng)
            if withIntegrity { try builder.appendMessageIntegrity(key: key, to: &out) }
            if withFingerprint { try builder.appendFingerprint(to: &out) }

            let message = try STUNMessage(parsing: out)
            #expect(message.type == type)
            #expect(message.transactionID == id)
            let plain = message.attributes.filter { $0.type != .messageIntegrity && $0.type != .fingerprint }
            #expect(plain.map(\.type) == expected.map(\.0))
            #expect(plain.map { Array($0.value.readableBytesView) } == expected.map(\.1))
            #expect(message.hasMessageIntegrity == withIntegrity)
            #expect(message.hasFingerprint == withFingerprint)
            if withIntegrity { try message.validateIntegrity(key: key) }
            if withFingerprint { try message.validateFingerprint() }
        }
    }
}
