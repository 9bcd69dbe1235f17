// libFuzzer target for the STUN parser (RFC 8489): parse, walk and decode every attribute, check
// integrity and fingerprint, and when the input parses, rebuild it with STUNMessageBuilder and check that
// the rebuilt message parses to the same attributes. Any trap, sanitizer report or mismatch is a finding.
import BraidWire
import NIOCore

/// A fixed key: inputs that carry a matching MESSAGE-INTEGRITY exercise the success path too
/// (the RFC 5769 seeds use this password).
private let key = STUNIntegrityKey(shortTermPassword: "VOkJxbRl1RmTxUk/WvJxBt")

/// What a typed decoder made of one attribute; compared between the input and its rebuild.
private enum Decoded: Equatable {
    case failed(WireError.Code)
    case text([UInt8])
    case address(STUNAddress)
    case integer(UInt64)
    case empty
    case error(Int, [UInt8])
    case unknown([UInt16])
    case raw([UInt8])
}

private func decode(_ attribute: STUNAttribute, _ message: STUNMessage) -> Decoded {
    do throws(WireError) {
        switch attribute.type {
        case .username:
            return .text(Array(try attribute.text(maxByteCount: STUNMessage.maxUsernameBytes).bytes.readableBytesView))
        case .software, .realm, .nonce:
            return .text(Array(try attribute.text(maxByteCount: STUNMessage.maxTextBytes).bytes.readableBytesView))
        case .xorMappedAddress:
            return .address(try attribute.address(xorWith: message.transactionID))
        case .mappedAddress, .alternateServer:
            return .address(try attribute.address(xorWith: nil))
        case .priority:
            return .integer(UInt64(try attribute.uInt32()))
        case .iceControlled, .iceControlling:
            return .integer(try attribute.uInt64())
        case .useCandidate:
            try attribute.requireEmpty()
            return .empty
        case .errorCode:
            let value = try attribute.errorCode()
            return .error(value.code.value, Array(value.reason.bytes.readableBytesView))
        case .unknownAttributes:
            return .unknown(try attribute.unknownAttributes().map(\.rawValue))
        default:
            return .raw(Array(attribute.value.readableBytesView))
        }
    } catch {
        return .failed(error.code)
    }
}

/// Re-encodes one attribute with the typed builder call when it decoded, raw bytes otherwise.
private func append(
    _ attribute: STUNAttribute,
    _ decoded: Decoded,
    _ builder: inout STUNMessageBuilder,
    _ out: inout ByteBuffer
) throws(WireError) {
    switch (attribute.type, decoded) {
    case (.username, .text(let bytes)):
        try builder.appendUsername(String(decoding: bytes, as: UTF8.self), to: &out)
    case (.software, .text(let bytes)):
        try builder.appendSoftware(String(decoding: bytes, as: UTF8.self), to: &out)
    case (.xorMappedAddress, .address(let address)):
        try builder.appendXORMappedAddress(address, to: &out)
    case (.mappedAddress, .address(let address)):
        try builder.appendMappedAddress(address, to: &out)
    case (.priority, .integer(let value)):
        try builder.appendPriority(UInt32(truncatingIfNeeded: value), to: &out)
    case (.iceControlled, .integer(let value)):
        try builder.appendICEControlled(tieBreaker: value, to: &out)
    case (.iceControlling, .integer(let value)):
        try builder.appendICEControlling(tieBreaker: value, to: &out)
    case (.useCandidate, .empty):
        try builder.appendUseCandidate(to: &out)
    case (.errorCode, .error(let code, let reason)):
        guard let code = STUNErrorCode(code) else { fatalError("decoded error code \(code) out of range") }
        try builder.appendErrorCode(code, reason: String(decoding: reason, as: UTF8.self), to: &out)
    default:
        try builder.appendAttribute(attribute.type, value: attribute.value, to: &out)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let input = ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: count))
    guard let message = try? STUNMessage(parsing: input) else { return 0 }

    var original: [(STUNAttributeType, Decoded)] = []
    for attribute in message.attributes {
        original.append((attribute.type, decode(attribute, message)))
    }
    _ = try? message.username()
    _ = try? message.xorMappedAddress()
    _ = try? message.priority()
    _ = try? message.useCandidate()
    _ = try? message.errorCode()
    let integrityValid = (try? message.validateIntegrity(key: key)) != nil
    let fingerprintValid = (try? message.validateFingerprint()) != nil

    // Rebuild: same header, every attribute that counts except MESSAGE-INTEGRITY and FINGERPRINT (which
    // the builder recomputes), zero padding.
    var out = ByteBuffer()
    var builder = STUNMessageBuilder(type: message.type, transactionID: message.transactionID, into: &out)
    for (attribute, (_, decoded)) in zip(message.attributes, original)
    where attribute.type != .messageIntegrity && attribute.type != .fingerprint
        && attribute.type != .messageIntegritySHA256
    {
        do {
            try append(attribute, decoded, &builder, &out)
        } catch {
            fatalError("rebuilding \(attribute.type) failed: \(error)")
        }
    }
    do {
        if message.hasMessageIntegrity { try builder.appendMessageIntegrity(key: key, to: &out) }
        if message.hasFingerprint { try builder.appendFingerprint(to: &out) }
    } catch {
        fatalError("sealing the rebuilt message failed: \(error)")
    }

    let rebuilt: STUNMessage
    do {
        rebuilt = try STUNMessage(parsing: out)
    } catch {
        fatalError("rebuilt message does not parse: \(error)")
    }
    guard rebuilt.type == message.type, rebuilt.transactionID == message.transactionID else {
        fatalError("rebuilt header differs")
    }
    var again: [(STUNAttributeType, Decoded)] = []
    for attribute in rebuilt.attributes where attribute.type != .messageIntegritySHA256 {
        again.append((attribute.type, decode(attribute, rebuilt)))
    }
    let expected = original.filter { $0.0 != .messageIntegritySHA256 }
    guard again.count == expected.count else {
        fatalError("rebuilt message has \(again.count) attributes, original \(expected.count)")
    }
    for (lhs, rhs) in zip(expected, again) {
        guard lhs.0 == rhs.0 else { fatalError("attribute type \(lhs.0) became \(rhs.0)") }
        // MESSAGE-INTEGRITY and FINGERPRINT values are recomputed; everything else must survive.
        if lhs.0 == .messageIntegrity || lhs.0 == .fingerprint { continue }
        guard lhs.1 == rhs.1 else { fatalError("\(lhs.0) decoded as \(lhs.1), rebuilt as \(rhs.1)") }
    }
    if rebuilt.hasMessageIntegrity, (try? rebuilt.validateIntegrity(key: key)) == nil {
        fatalError("rebuilt MESSAGE-INTEGRITY does not verify")
    }
    if rebuilt.hasFingerprint, (try? rebuilt.validateFingerprint()) == nil {
        fatalError("rebuilt FINGERPRINT does not verify")
    }
    _ = (integrityValid, fingerprintValid)
    return 0
}
