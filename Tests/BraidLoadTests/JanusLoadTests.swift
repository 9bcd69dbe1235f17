import BraidClient
import BraidLoad
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

@Suite("braid-load --janus: bad Janus input ends the run promptly with counted failures")
struct JanusLoadFailureTests {
    @Test("Nothing listens at the Janus URL: connection-refused for every peer, exit code 3")
    func unreachable() async throws {
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(probe.localAddress?.port)
        try await probe.close()
        let started = ContinuousClock.now
        let (code, report) = try await runCommand(
            .webinar(subscribers: 2),
            ["--janus", "http://127.0.0.1:\(port)/janus", "--duration", "0s", "--timeout", "2s"])
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(code == LoadExitCode.nothingJoined)
        let result = try #require(report)
        #expect(result.failures == ["connection-refused": 3])
        #expect(result.failureMessages["connection-refused"]?.first?.contains("\(port)") == true)
    }

    @Test("A server that is not Janus (HTTP 200, not JSON): janus-error for every peer, exit code 3")
    func notJanus() async throws {
        let server = try await FixedHTTPServer.start(reply: .init(status: .ok, body: "<html>hello</html>"))
        defer { Task { try? await server.close() } }
        let port = try #require(server.localAddress?.port)
        let (code, report) = try await runCommand(
            .webinar(subscribers: 2),
            ["--janus", "http://127.0.0.1:\(port)/janus", "--duration", "0s", "--timeout", "2s"])
        #expect(code == LoadExitCode.nothingJoined)
        let result = try #require(report)
        #expect(result.failures == ["janus-error": 3])
        #expect(result.failureMessages["janus-error"]?.first?.contains("malformed") == true)
    }

    @Test("A Janus that accepts connections but never answers: timeout for every peer, exit code 3, no hang")
    func notAnswering() async throws {
        // Accepts TCP connections and reads nothing: every request runs into the peer timeout.
        let silent = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { Task { try? await silent.close() } }
        let port = try #require(silent.localAddress?.port)
        let started = ContinuousClock.now
        let (code, report) = try await runCommand(
            .webinar(subscribers: 2),
            ["--janus", "http://127.0.0.1:\(port)/janus", "--duration", "0s", "--timeout", "1s"])
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(code == LoadExitCode.nothingJoined)
        let result = try #require(report)
        #expect(result.failures == ["timeout": 3])
    }

    @Test("--janus runs the webinar only")
    func conferenceRejected() async throws {
        let (code, report) = try await runCommand(
            .conference(rooms: 1, participants: 2), ["--janus", "http://127.0.0.1:1/janus"])
        #expect(code == 64)
        #expect(report == nil)
    }
}
