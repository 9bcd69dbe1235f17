import BraidICE
import BraidWire
import NIOCore
import Testing

/// SplitMix64: a deterministic generator so that tests repeat exactly.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The options of a connectivity check, defaulting to what a browser (the controlling full agent) sends.
struct CheckOptions {
    /// nil: the right one; "": none.
    var username: String?
    var password: String?
    var priority: UInt32? = 0x6E7F_1EFF  // a peer-reflexive priority as Chromium computes it
    var controlling: Bool = true
    var controlled: Bool = false
    var useCandidate: Bool = false
    var integrity: Bool = true
    var fingerprint: Bool = true
    var extraAttribute: STUNAttributeType?
    var type: STUNMessageType = .bindingRequest
}

/// Builds the bytes of a check as a browser would: USERNAME `<node ufrag>:<browser ufrag>`, PRIORITY,
/// ICE-CONTROLLING, optional USE-CANDIDATE, MESSAGE-INTEGRITY under the node's password, FINGERPRINT.
func makeCheck(
    node: ICECredentials,
    browser: ICECredentials,
    transactionID: STUNTransactionID = .random(),
    _ options: CheckOptions = CheckOptions()
) throws -> STUNMessage {
    var out = ByteBuffer()
    var builder = STUNMessageBuilder(type: options.type, transactionID: transactionID, into: &out)
    let username = options.username ?? "\(node.ufrag):\(browser.ufrag)"
    if !username.isEmpty {
        try builder.appendUsername(username, to: &out)
    }
    if let extra = options.extraAttribute {
        try builder.appendAttribute(extra, value: [0, 0, 0, 0], to: &out)
    }
    if let priority = options.priority { try builder.appendPriority(priority, to: &out) }
    if options.controlling { try builder.appendICEControlling(tieBreaker: 0x0102_0304_0506_0708, to: &out) }
    if options.controlled { try builder.appendICEControlled(tieBreaker: 0x0807_0605_0403_0201, to: &out) }
    if options.useCandidate { try builder.appendUseCandidate(to: &out) }
    if options.integrity {
        let key = STUNIntegrityKey(shortTermPassword: options.password ?? node.password)
        try builder.appendMessageIntegrity(key: key, to: &out)
    }
    if options.fingerprint { try builder.appendFingerprint(to: &out) }
    return try STUNMessage(parsing: out)
}

let nodeCredentials = try! ICECredentials(ufrag: "NodeUfrag0000001", password: "NodePassword+/abcdefghijklmnopqr")
let browserCredentials = try! ICECredentials(ufrag: "brws", password: "BrowserPassword0123456789")

let addressA = try! SocketAddress(ipAddress: "192.0.2.10", port: 50_000)
let addressB = try! SocketAddress(ipAddress: "198.51.100.7", port: 61_000)
let addressV6 = try! SocketAddress(ipAddress: "2001:db8::7", port: 40_000)

/// An instant to count from: tests move time by adding durations, never by sleeping.
let t0 = ContinuousClock.Instant.now

func address(_ index: Int) -> SocketAddress {
    try! SocketAddress(ipAddress: "203.0.113.\(index % 250 + 1)", port: 40_000 + index)
}

func stun(_ address: SocketAddress) -> STUNAddress { STUNAddress(transport: address)! }

/// The response an outcome wrote, parsed.
func parseResponse(_ buffer: ByteBuffer) throws -> STUNMessage { try STUNMessage(parsing: buffer) }

/// The check of a success outcome, or nil.
func successCheck(_ outcome: ICELiteAgent.Outcome) -> ICELiteAgent.Check? {
    if case .respond(.success(let check)) = outcome { return check }
    return nil
}
