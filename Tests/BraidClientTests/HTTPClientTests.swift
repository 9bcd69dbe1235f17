import NIOCore
import NIOPosix
import Testing

@testable import BraidClient

@Suite("HTTP client failure paths")
struct HTTPClientTests {
    @Test("A server that accepts but never answers gives a timeout, not a hang")
    func timeout() async throws {
        // A loop of its own: the timer under test must not wait behind other suites' work on shared loops.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Accepts connections and reads nothing back: the request is never answered.
        let server = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(server.localAddress?.port)
        let started = ContinuousClock.now
        do {
            _ = try await WHTTPClient(group: group).request(
                .post, HTTPEndpoint(host: "127.0.0.1", port: port, path: "/whip/x"), body: "v=0",
                timeout: .milliseconds(300))
            Issue.record("the request succeeded")
        } catch {
            guard case .timeout = error else {
                Issue.record("expected timeout, got \(error)")
                try await server.close()
                try await group.shutdownGracefully()
                return
            }
        }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed >= .milliseconds(300) && elapsed < .seconds(3))
        try await server.close()
        try await group.shutdownGracefully()
    }

    @Test("A refused connection is connectionFailed")
    func refused() async throws {
        // Bind then close, so the port is (almost certainly) closed.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(probe.localAddress?.port)
        try await probe.close()
        do {
            _ = try await WHTTPClient(group: MultiThreadedEventLoopGroup.singleton).request(
                .delete, HTTPEndpoint(host: "127.0.0.1", port: port, path: "/"), timeout: .seconds(2))
            Issue.record("the request succeeded")
        } catch {
            guard case .connectionFailed = error else {
                Issue.record("expected connectionFailed, got \(error)")
                return
            }
        }
    }
}
