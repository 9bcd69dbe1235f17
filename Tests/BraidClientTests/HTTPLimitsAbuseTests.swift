import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import BraidClient
@testable import BraidNode

/// The HTTP listeners under connection abuse: idle connections and slowloris, beside an honest call.
@Suite("HTTP limits under abuse", .serialized)
struct HTTPLimitsAbuseTests {
    @Test("300 idle TCP connections and 50 slowloris ones are closed by the idle and read timeouts; the call plays on")
    func idleAndSlowloris() async throws {
        try await withLimitedNode([.limitsHTTPIdleTimeoutSeconds: 4, .limitsHTTPReadTimeoutSeconds: 2]) { node, port in
            let call = try await HonestCall.start(port: port, room: "call")
            let dashboard = NodeDashboard(port: node.operatorAddress?.port ?? port)
            let before = try await dashboard.status()
            let target = try SocketAddress(ipAddress: "127.0.0.1", port: port)
            let group = MultiThreadedEventLoopGroup.singleton
            let opened = ContinuousClock.now
            try await call.keepsPlaying(minimumSeconds: 5) {
                var idle: [any Channel] = []
                for _ in 0..<300 {
                    idle.append(try await ClientBootstrap(group: group).connect(to: target).get())
                }
                var slow: [any Channel] = []
                for index in 0..<50 {
                    let channel = try await ClientBootstrap(group: group).connect(to: target).get()
                    try await channel.writeAndFlush(
                        channel.allocator.buffer(string: "POST /whip/slow\(index) HTTP/1.1\r\nHost: braid\r\n"))
                    slow.append(channel)
                }
                // While they are open, an honest request is answered at once.
                let healthStarted = ContinuousClock.now
                let health = try await NodeDashboard(port: port).get("/healthz")
                #expect(health.status == 200)
                #expect(ContinuousClock.now - healthStarted < .seconds(1))
                // Slowloris: one header byte every 400 ms, never finishing the head, for up to 6 s.
                let sendingUntil = ContinuousClock.now + .seconds(6)
                while ContinuousClock.now < sendingUntil, slow.contains(where: \.isActive) {
                    for channel in slow where channel.isActive {
                        try? await channel.writeAndFlush(channel.allocator.buffer(string: "X"))
                    }
                    try await Task.sleep(for: .milliseconds(400))
                }
                // Both kinds are closed by the node: the slow ones within the read deadline plus slack, the
                // idle ones within the idle timeout plus slack.
                for channel in slow + idle {
                    try await withTimeout(6, "a connection the node should have closed") {
                        try await channel.closeFuture.get()
                    }
                }
            }
            let closedAfter = ContinuousClock.now - opened
            let after = try await dashboard.status()
            #expect(after.limits.http.readTimeouts - before.limits.http.readTimeouts >= 50)
            #expect(after.limits.http.connectionsAccepted - before.limits.http.connectionsAccepted >= 350)
            // Only the dashboard's own connections remain (none of the 350).
            #expect(after.limits.http.connectionsOpen < 10, "\(after.limits.http.connectionsOpen) open")
            try await call.close()
            print(
                "http limits: 350 abusive connections closed within \(closedAfter); "
                    + "read timeouts \(after.limits.http.readTimeouts - before.limits.http.readTimeouts)")
        }
    }
}

/// Runs `operation`, failing after `seconds`.
private func withTimeout<Value: Sendable>(
    _ seconds: Double, _ what: String, _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    try await withThrowingTaskGroup(of: Value.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            throw HTTPLimitsTimeout(what: what)
        }
        let value = try await group.next()!
        group.cancelAll()
        return value
    }
}

private struct HTTPLimitsTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out: \(self.what)" }
}
