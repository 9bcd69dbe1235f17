import BraidWire
import NIOCore
import Testing

/// RFC 5769 test vectors (§2.1–2.3), as printed in the RFC.
enum RFC5769 {
    static let password = "VOkJxbRl1RmTxUk/WvJxBt"
    static let transactionID = STUNTransactionID(bytes: hex("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae"))!

    /// §2.1 Sample Request: SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY, FINGERPRINT.
    static let request = hex(
        """
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff
        80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf
        """
    )

    /// §2.2 Sample IPv4 Response: SOFTWARE, XOR-MAPPED-ADDRESS 192.0.2.1:32853, MESSAGE-INTEGRITY, FINGERPRINT.
    static let ipv4Response = hex(
        """
        01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 08 00 01 a1 47 e1 12 a6 43
        00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
        80 28 00 04 c0 7d 4c 96
        """
    )

    /// §2.3 Sample IPv6 Response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
    static let ipv6Response = hex(
        """
        01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
        00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
        80 28 00 04 c8 fb 0b 4c
        """
    )

    static let all: [(name: String, bytes: [UInt8])] = [
        ("request", request), ("ipv4Response", ipv4Response), ("ipv6Response", ipv6Response),
    ]
}

/// Bytes from hex digits; whitespace is ignored.
func hex(_ text: String) -> [UInt8] {
    let digits = text.filter(\.isHexDigit).map { UInt8(String($0), radix: 16)! }
    return stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
}

func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

/// Parses `bytes` and runs every decoder on every attribute, as a receiver might. Returns whether it
/// parsed. Used by the property tests: any trap here is a bug.
@discardableResult
func exerciseEverything(_ bytes: [UInt8]) -> Bool {
    guard let message = try? STUNMessage(parsing: buffer(bytes)) else { return false }
    for attribute in message.attributes {
        _ = attribute.value
        _ = try? attribute.uInt32()
        _ = try? attribute.uInt64()
        _ = try? attribute.requireEmpty()
        _ = try? attribute.text(maxByteCount: 763)
        _ = try? attribute.address(xorWith: message.transactionID)
        _ = try? attribute.address(xorWith: nil)
        _ = try? attribute.errorCode()
        if let list = try? attribute.unknownAttributes() { _ = Array(list) }
    }
    _ = try? message.username()
    _ = try? message.xorMappedAddress()
    _ = try? message.errorCode()
    _ = try? message.validateIntegrity(key: STUNIntegrityKey(shortTermPassword: RFC5769.password))
    _ = try? message.validateFingerprint()
    return true
}

/// Expects `body` to throw a ``WireError`` with `code`.
func expectWireError(
    _ code: WireError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    let error = #expect(throws: WireError.self, sourceLocation: sourceLocation) { try body() }
    #expect(error?.code == code, "got \(String(describing: error))", sourceLocation: sourceLocation)
}
