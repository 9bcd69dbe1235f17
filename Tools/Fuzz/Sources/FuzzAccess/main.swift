// libFuzzer entry point for what untrusted HTTP clients send besides SDP (FuzzSDP covers offers and trickle
// fragments): bearer tokens (JWT parsing and HS256 verification in JWTKit, then Braid's claim checks) and the
// JSON request bodies of the HTTP API.
// Build: swiftc -sanitize=fuzzer,address -parse-as-library (wired up in Tools/Fuzz/Package.swift).
import BraidAccess
import Foundation

private let key = "fuzz token key 0123456789abcdef0123456789"
/// A fixed clock, so a run is repeatable.
private let authority = TokenAuthority(key: key, now: { Date(timeIntervalSince1970: 1_800_000_000) })

/// Runs `body` to completion from libFuzzer's synchronous callback.
private func blocking(_ body: @escaping @Sendable () async -> Void) {
    let done = DispatchSemaphore(value: 0)
    Task {
        await body()
        done.signal()
    }
    done.wait()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    let text = String(decoding: bytes, as: UTF8.self)
    blocking {
        // Any text as a token: refused with a reason, or (if it ever verified) with consistent claims.
        if let claims = try? await authority.claims(of: text) {
            guard claims.expiration.value > Date(timeIntervalSince1970: 1_800_000_000) else {
                fatalError("an expired token was accepted")
            }
        }
        for action in [AccessAction.publish, .subscribe, .operate] {
            _ = try? await authority.authorize(token: text, room: "lobby", action: action)
        }
    }
    if let cap = try? BitrateCapRequest.parse(bytes) {
        guard cap.bps > 0, cap.bps <= BitrateCapRequest.maximum else { fatalError("an out-of-range cap passed") }
    }
    return 0
}
