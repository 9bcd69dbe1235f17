// libFuzzer entry point for what untrusted HTTP clients send besides SDP (FuzzSDP covers offers and trickle
// fragments): bearer tokens (JWS parsing, HS256 verification and the claim checks) and the
// JSON request bodies of the HTTP API.
// Build: swiftc -sanitize=fuzzer,address -parse-as-library (wired up in Tools/Fuzz/Package.swift).
import BraidAccess
import Foundation

private let key = "fuzz token key 0123456789abcdef0123456789"
/// A fixed clock, so a run is repeatable.
private let authority = TokenAuthority(key: key, now: { Date(timeIntervalSince1970: 1_800_000_000) })

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    let text = String(decoding: bytes, as: UTF8.self)
    // Any text as a token: refused with a reason, or (if it ever verified) with consistent claims.
    if let claims = try? authority.claims(of: text) {
        guard claims.expires > Date(timeIntervalSince1970: 1_800_000_000) else {
            fatalError("an expired token was accepted")
        }
    }
    for action in [AccessAction.publish, .subscribe, .operate] {
        _ = try? authority.authorize(token: text, room: "lobby", action: action)
    }
    if let cap = try? BitrateCapRequest.parse(bytes) {
        guard cap.bps > 0, cap.bps <= BitrateCapRequest.maximum else { fatalError("an out-of-range cap passed") }
    }
    return 0
}
