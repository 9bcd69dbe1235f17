import BraidNode
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

/// A configuration on loopback with ephemeral ports, for tests.
func testConfiguration(
    batch: Int = 8,
    offload: Bool = true,
    threads: Int = 1
) throws -> NodeConfiguration {
    try NodeConfiguration.resolve(
        flags: NodeConfigurationLayer(
            nodeID: "test-node",
            httpPort: 0,
            mediaPort: 0,
            mediaReceiveBatchSize: batch,
            mediaOffload: offload,
            eventLoopThreads: threads,
            adminPort: 0,
            // Shutdown drains; a test that ends with peers still connected waits this long at most.
            drainTimeoutSeconds: 2
        ),
        environment: [:]
    )
}

struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out: \(self.what)" }
}

/// Runs `operation`, failing with ``TestTimeout`` after `seconds`.
func withTimeout<Value: Sendable>(
    _ seconds: Double,
    _ what: String,
    _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    try await withThrowingTaskGroup(of: Value.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            throw TestTimeout(what: what)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// A node running in-process, with its bound ports.
struct RunningNode: Sendable {
    let node: NodeServer
    let httpPort: Int
    let mediaAddress: SocketAddress

    /// Real HTTP GET over a new TCP connection.
    func get(_ path: String) async throws -> TestClient.Response {
        try await TestClient.withClient(host: "127.0.0.1", port: self.httpPort) { client in
            try await client.get(path)
        }
    }

    /// `GET /api/v1/node`, decoded.
    func status() async throws -> NodeStatus {
        let response = try await self.get("/api/v1/node")
        #expect(response.status == .ok)
        let body = try #require(response.body)
        return try JSONDecoder().decode(NodeStatus.self, from: Data(body.readableBytesView))
    }
}

/// Starts a node on ephemeral loopback ports, runs `body`, then shuts the node down gracefully and waits
/// for its service group to end.
func withRunningNode<Value: Sendable>(
    _ configuration: NodeConfiguration,
    _ body: @escaping @Sendable (RunningNode) async throws -> Value
) async throws -> Value {
    var logger = Logger(label: "braid.node.test")
    logger.logLevel = .warning
    let node = try NodeServer(configuration: configuration, logger: logger)
    let group = node.makeServiceGroup(gracefulShutdownSignals: [])
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        do {
            let running = try await withTimeout(10, "node start") {
                let media = try await node.media.waitUntilBound()
                while node.httpAddress == nil { try await Task.sleep(for: .milliseconds(10)) }
                return RunningNode(node: node, httpPort: node.httpAddress?.port ?? 0, mediaAddress: media)
            }
            let value = try await body(running)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            try await node.shutdownEventLoops()
            return value
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            try? await node.shutdownEventLoops()
            throw error
        }
    }
}

/// A UDP socket on loopback for sending test datagrams.
final class UDPSender: Sendable {
    let channel: any Channel

    init() async throws {
        self.channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func send(_ bytes: [UInt8], to address: SocketAddress) async throws {
        let envelope = AddressedEnvelope(remoteAddress: address, data: ByteBuffer(bytes: bytes))
        try await self.channel.writeAndFlush(envelope).get()
    }

    /// One GSO write: the kernel splits `bytes` into datagrams of `segmentSize` (the last may be shorter).
    func sendSegmented(_ bytes: [UInt8], segmentSize: Int, to address: SocketAddress) async throws {
        let envelope = AddressedEnvelope(
            remoteAddress: address,
            data: ByteBuffer(bytes: bytes),
            metadata: .init(ecnState: .transportNotCapable, packetInfo: nil, segmentSize: segmentSize)
        )
        try await self.channel.writeAndFlush(envelope).get()
    }

    func close() async throws {
        try await self.channel.close()
    }
}

/// Test datagrams that look like each protocol on the media port.
enum Datagrams {
    /// An RFC 8489 §5 Binding request header: type 0x0001, length 0, magic cookie, transaction id.
    static let stunBindingRequest: [UInt8] =
        [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 0x5A, count: 12)

    /// A DTLS 1.2 record header (handshake, version 0xfefd, epoch 0, sequence 0, length 12) and the start
    /// of a ClientHello handshake header.
    static let dtlsClientHello: [UInt8] =
        [0x16, 0xFE, 0xFD, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C]
        + [0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]

    /// An RTP header (V=2, PT 96, seq 1, timestamp 0x1000, SSRC 0xCAFEBABE) and `payload` bytes.
    static func rtp(payload: Int = 100, sequence: UInt16 = 1) -> [UInt8] {
        [0x80, 0x60, UInt8(sequence >> 8), UInt8(sequence & 0xFF), 0x00, 0x00, 0x10, 0x00, 0xCA, 0xFE, 0xBA, 0xBE]
            + [UInt8](repeating: 0xAB, count: payload)
    }

    /// An RTCP sender report (V=2, PT 200, length 6 words) with zeroed fields.
    static let rtcpSenderReport: [UInt8] = [0x80, 0xC8, 0x00, 0x06] + [UInt8](repeating: 0, count: 24)

    static let garbage: [UInt8] = [0xFF, 0x00, 0x11, 0x22]
    static let zrtp: [UInt8] = [0x10, 0x00, 0x00, 0x00] + [UInt8](repeating: 1, count: 8)
    static let turnChannelData: [UInt8] = [0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]
}
