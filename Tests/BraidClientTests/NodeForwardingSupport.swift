import BraidNode
import BraidSFU
import BraidSecurity
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import BraidClient

/// HTTP reads of an in-process node's dashboard, over real TCP connections.
struct NodeDashboard: Sendable {
    let port: Int
    let client = WHTTPClient(group: MultiThreadedEventLoopGroup.singleton)

    func get(_ path: String) async throws -> HTTPResponseSummary {
        try await self.client.request(.get, HTTPEndpoint(host: "127.0.0.1", port: self.port, path: path))
    }

    func post(_ path: String, contentType: String, body: String) async throws -> HTTPResponseSummary {
        try await self.client.request(
            .post, HTTPEndpoint(host: "127.0.0.1", port: self.port, path: path),
            headers: [("Content-Type", contentType)], body: body)
    }

    func delete(_ path: String) async throws -> HTTPResponseSummary {
        try await self.client.request(.delete, HTTPEndpoint(host: "127.0.0.1", port: self.port, path: path))
    }

    /// `GET /api/v1/node`, decoded.
    func status() async throws -> NodeStatus {
        let response = try await self.get("/api/v1/node")
        #expect(response.status == 200)
        return try JSONDecoder().decode(NodeStatus.self, from: Data(response.body.utf8))
    }

    /// The value of an unlabelled or labelled sample of `/metrics`, e.g. `braid_rooms` or
    /// `braid_forwarded_packets_total{kind="rtp"}`.
    func metric(_ sample: String) async throws -> Double? {
        let response = try await self.get("/metrics")
        for line in response.body.split(separator: "\n") where line.hasPrefix(sample + " ") {
            return Double(line.dropFirst(sample.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}

/// Media small enough for a loaded two-core machine: 160x96 VP8 at 30 fps, 20 ms Opus.
func forwardingMedia(videoFrames: Int = 30) throws -> PreEncodedMedia {
    try PreEncodedMedia.synthetic(audioSeconds: 1, videoFrames: videoFrames, width: 160, height: 96)
}

/// One shared certificate for every peer of these tests: key generation per peer is slow on a busy machine.
/// (Without one, each peer generates its own: slower, still correct.)
let forwardingOptions = ConnectionOptions(localHost: "127.0.0.1", certificate: try? DTLSCertificate())

/// Polls `condition` every 20 ms until it holds or `seconds` pass; returns whether it held.
func eventually(
    within seconds: Double,
    _ condition: @Sendable () async throws -> Bool
) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
