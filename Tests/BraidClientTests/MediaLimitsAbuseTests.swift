import BraidICE
import BraidSDP
import BraidSecurity
import BraidWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

@testable import BraidClient
@testable import BraidNode

/// Runs a node on ephemeral loopback ports with the given `limits.*` values for the duration of `body`.
func withLimitedNode<Value: Sendable>(
    _ limits: [ConfigurationKey: Int],
    _ body: @escaping @Sendable (NodeServer, Int) async throws -> Value
) async throws -> Value {
    try await withLoopbackNode(limits: limits, body)
}

/// An honest two-party call (a BraidClient publisher and a subscriber of its room on the same node) that runs
/// beside an abuse test: it must keep playing with no frame lost.
struct HonestCall: Sendable {
    let publisher: BraidPublisher
    let subscriber: BraidSubscriber

    static func start(port: Int, room: String) async throws -> HonestCall {
        let media = try forwardingMedia()
        let group = MultiThreadedEventLoopGroup.singleton
        let publisher = try await BraidPublisher.publish(
            to: "http://127.0.0.1:\(port)/whip/\(room)", audio: .preEncoded(media), video: .preEncoded(media),
            options: forwardingOptions, group: group)
        let subscriber = try await BraidSubscriber.subscribe(
            to: "http://127.0.0.1:\(port)/whep/\(room)", audioTracks: 1, videoTracks: 1, options: forwardingOptions,
            group: group)
        let call = HonestCall(publisher: publisher, subscriber: subscriber)
        // Playing before the abuse starts: frames decoded.
        let playing = try await eventually(within: 10) { (try await call.video().framesDecodable) >= 15 }
        #expect(playing, "the honest call did not start playing")
        return call
    }

    func video() async throws -> VideoTrackStatistics {
        try #require(await self.subscriber.statistics()?.video.first)
    }

    /// Samples the video packets received every 250 ms while `abuse` runs (and at least `minimumSeconds`),
    /// then checks the call played throughout with no frame lost and no freeze.
    func keepsPlaying(minimumSeconds: Double = 2, during abuse: @escaping @Sendable () async throws -> Void)
        async throws
    {
        let before = try await self.video()
        let started = ContinuousClock.now
        let sampler = Task {
            var counts: [Int64] = []
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(250))
                // A cancelled sleep returns at once: that sample would repeat the previous one.
                if Task.isCancelled { break }
                counts.append(Int64(await self.subscriber.statistics()?.video.first?.packetsReceived ?? -1))
            }
            return counts
        }
        try await abuse()
        let elapsed = ContinuousClock.now - started
        if elapsed < .milliseconds(Int(minimumSeconds * 1000)) {
            try await Task.sleep(for: .milliseconds(Int(minimumSeconds * 1000)) - elapsed)
        }
        try await Task.sleep(for: .milliseconds(300))
        sampler.cancel()
        let counts = await sampler.value
        let after = try await self.video()
        let seconds = Double((ContinuousClock.now - started).components.seconds)
        // Packets arrived between every two samples, no frame was lost, no freeze, and frames kept coming
        // (30 fps sent; at least a third of them counted, for a loaded machine).
        #expect(counts.count >= 4)
        #expect(zip(counts, counts.dropFirst()).allSatisfy { $0 < $1 }, "video packets sampled: \(counts)")
        #expect(after.framesLost == before.framesLost, "frames lost: \(before.framesLost) -> \(after.framesLost)")
        #expect(after.freezeCount == before.freezeCount)
        #expect(after.framesDecodable >= before.framesDecodable + Int(seconds * 10))
        #expect(after.framesDecodable == after.framesComplete)
    }

    func close() async throws {
        try await self.subscriber.close()
        try await self.publisher.close()
    }
}

/// A raw HTTP/1.1 request over a TCP connection from a chosen local address (another loopback address than
/// the honest call's 127.0.0.1), read until the server closes.
func rawHTTP(
    from localAddress: String, port: Int, method: String, path: String, contentType: String, body: String
) async throws -> (status: Int, headers: [String: String], body: String) {
    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        var received = ByteBuffer()
        let promise: EventLoopPromise<String>
        init(promise: EventLoopPromise<String>) { self.promise = promise }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = Self.unwrapInboundIn(data)
            self.received.writeBuffer(&buffer)
        }
        func channelInactive(context: ChannelHandlerContext) {
            self.promise.succeed(String(buffer: self.received))
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            self.promise.fail(error)
            context.close(promise: nil)
        }
    }
    let group = MultiThreadedEventLoopGroup.singleton
    let promise = group.next().makePromise(of: String.self)
    let channel = try await ClientBootstrap(group: group)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(Collector(promise: promise))
            }
        }
        .bind(to: try SocketAddress(ipAddress: localAddress, port: 0))
        .connect(host: "127.0.0.1", port: port).get()
    let request =
        "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: \(contentType)\r\n"
        + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
    try await channel.writeAndFlush(ByteBuffer(string: request)).get()
    let text = try await promise.futureResult.get()
    let head = text.components(separatedBy: "\r\n\r\n").first ?? ""
    let lines = head.components(separatedBy: "\r\n")
    let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return (status, headers, String(text.dropFirst(head.count + 4)))
}

/// A complete WHIP offer as BraidClient makes it, with the given ICE credentials.
func limitsOffer(credentials: ICECredentials) -> String {
    let fingerprint = forwardingOptions.certificate?.fingerprint
        ?? (try? DTLSFingerprint(algorithm: .sha256, bytes: [UInt8](repeating: 1, count: 32)))
    guard let fingerprint else { return "" }
    return ClientOffer.make(
        tracks: [
            OfferedTrack(kind: .audio, ssrc: 1111, trackID: "a"),
            OfferedTrack(kind: .video, ssrc: 2222, rtxSSRC: 3333, trackID: "v"),
        ],
        direction: .sendonly, credentials: credentials, fingerprint: fingerprint,
        cname: "limits", streamID: "limits", sessionID: 42
    ).text
}

/// The value of the first `a=name:` line of an SDP text.
func sdpAttribute(_ name: String, in sdp: String) -> String? {
    for line in sdp.components(separatedBy: "\r\n") where line.hasPrefix("a=\(name):") {
        return String(line.dropFirst(name.count + 3))
    }
    return nil
}

/// A STUN Binding request as a controlling ICE agent sends it (RFC 8445 §7.2.2): USERNAME, PRIORITY,
/// ICE-CONTROLLING, USE-CANDIDATE, MESSAGE-INTEGRITY under the node's password, FINGERPRINT.
func bindingRequest(username: String, password: String) throws -> ByteBuffer {
    var buffer = ByteBuffer()
    var builder = STUNMessageBuilder(
        type: .bindingRequest, transactionID: STUNTransactionID(high: .random(in: 0...UInt32.max), low: .random(in: 0...UInt64.max)),
        into: &buffer)
    try builder.appendUsername(username, to: &buffer)
    try builder.appendPriority(0x6E00_01FF, to: &buffer)
    try builder.appendICEControlling(tieBreaker: .random(in: 0...UInt64.max), to: &buffer)
    try builder.appendUseCandidate(to: &buffer)
    try builder.appendMessageIntegrity(key: STUNIntegrityKey(shortTermPassword: password), to: &buffer)
    try builder.appendFingerprint(to: &buffer)
    return buffer
}

@Suite("Media limits under abuse, beside an honest call (loopback)", .serialized)
struct MediaLimitsAbuseTests {
    @Test("(a) 200 WHIP POSTs a second from one address for 2 s: the per-address limit refuses the excess with 429")
    func postFlood() async throws {
        let perAddress = 20
        // A long handshake timeout: the abuser's 20 sessions (never connected) stay for the whole test.
        try await withLimitedNode([.limitsSessionsPerAddress: perAddress, .limitsHandshakeTimeoutSeconds: 60]) {
            node, port in
            let call = try await HonestCall.start(port: port, room: "call")
            let dashboard = NodeDashboard(port: node.operatorAddress?.port ?? port)
            let offer = limitsOffer(credentials: ICECredentials.random())
            let results = ResultsBox()
            let started = ContinuousClock.now
            try await call.keepsPlaying {
                // 400 POSTs paced at 200 a second, 8 at a time, from 127.0.0.2.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for worker in 0..<8 {
                        group.addTask {
                            for index in stride(from: worker, to: 400, by: 8) {
                                let due = started + .milliseconds(index * 5)
                                if ContinuousClock.now < due { try await Task.sleep(until: due) }
                                let response = try await rawHTTP(
                                    from: "127.0.0.2", port: port, method: "POST", path: "/whip/abuse",
                                    contentType: "application/sdp", body: offer)
                                results.append(response.status, retryAfter: response.headers["retry-after"], body: response.body)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            let elapsed = ContinuousClock.now - started
            let (statuses, retryAfters, bodies) = results.value
            let created = statuses.filter { $0 == 201 }.count
            let refused = statuses.filter { $0 == 429 }.count
            #expect(statuses.count == 400)
            #expect(created == perAddress, "statuses \(Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count))")
            #expect(refused == 400 - perAddress)
            #expect(retryAfters.allSatisfy { $0 == "\(WebRTCRoutes.retryAfterSeconds)" })
            #expect(bodies.contains { $0.contains("limits.sessions_per_address") })

            // The honest client's address is not the abuser's: it can still start a session.
            let late = try await BraidSubscriber.subscribe(
                to: "http://127.0.0.1:\(port)/whep/call", audioTracks: 1, videoTracks: 1, options: forwardingOptions,
                group: MultiThreadedEventLoopGroup.singleton)
            try await late.close()

            let status = try await dashboard.status()
            #expect(status.limits.counters.refusedPerAddress == UInt64(refused))
            #expect(status.limits.configured.sessionsPerAddress == perAddress)
            #expect(
                try await dashboard.metric("braid_limit_refusals_total{limit=\"sessions_per_address\"}")
                    == Double(refused))
            #expect(try await dashboard.get("/").body.contains("per address \(refused)"))
            try await call.close()
            print("limits (a): \(statuses.count) POSTs in \(elapsed), \(created) created, \(refused) refused 429")
        }
    }

    @Test("(b) Sessions that only answer STUN and never start DTLS are removed after the handshake timeout")
    func stunOnlySessions() async throws {
        try await withLimitedNode([.limitsHandshakeTimeoutSeconds: 2]) { node, port in
            let call = try await HonestCall.start(port: port, room: "call")
            let dashboard = NodeDashboard(port: node.operatorAddress?.port ?? port)
            let group = MultiThreadedEventLoopGroup.singleton
            let nodeMedia = try #require(node.media.localAddress)
            // Five WHIP sessions whose client keeps ICE consent alive (a check every 250 ms) and never DTLS.
            var checks: [(channel: any Channel, username: String, password: String)] = []
            for _ in 0..<5 {
                let credentials = ICECredentials.random()
                let offer = limitsOffer(credentials: credentials)
                let response = try await NodeDashboard(port: port).post(
                    "/whip/idle", contentType: "application/sdp", body: offer)
                #expect(response.status == 201)
                let ufrag = try #require(sdpAttribute("ice-ufrag", in: response.body))
                let password = try #require(sdpAttribute("ice-pwd", in: response.body))
                let channel = try await DatagramBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
                checks.append((channel, "\(ufrag):\(credentials.ufrag)", password))
            }
            let clients = checks
            let stunning = Task {
                while !Task.isCancelled {
                    for check in clients {
                        let request = try bindingRequest(username: check.username, password: check.password)
                        try await check.channel.writeAndFlush(AddressedEnvelope(remoteAddress: nodeMedia, data: request))
                    }
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
            let connected = try await eventually(within: 3) {
                let sessions = await node.media.sessions.statuses()
                return sessions.filter { $0.room == "idle" && $0.iceState == "connected" }.count == 5
            }
            #expect(connected, "the STUN-only sessions did not pass their checks")
            let removedAt = Locked<ContinuousClock.Instant?>(nil)
            let created = ContinuousClock.now
            try await call.keepsPlaying(minimumSeconds: 3) {
                let gone = try await eventually(within: 8) {
                    let sessions = await node.media.sessions.statuses()
                    return !sessions.contains { $0.room == "idle" }
                }
                removedAt.set(ContinuousClock.now)
                #expect(gone, "STUN-only sessions still there")
            }
            stunning.cancel()
            _ = await stunning.result
            for check in checks { try await check.channel.close() }
            let status = try await dashboard.status()
            #expect(status.limits.counters.handshakeTimeouts == 5)
            #expect(status.limits.counters.handshaking == 0)
            #expect(status.sessions.count == 2)  // the honest call
            #expect(try await dashboard.metric("braid_handshake_timeouts_total") == 5)
            let after = removedAt.get().map { $0 - created }
            // Timed out at 2 s (the sweep runs every second): removed within 2 to about 4 s of their checks.
            #expect(after.map { $0 < .seconds(6) } ?? false, "removed after \(String(describing: after))")
            try await call.close()
            print("limits (b): 5 STUN-only sessions removed \(String(describing: after)) after they connected")
        }
    }

    @Test("(c) A flood of 100,000 datagrams from one source is dropped and counted; the call is unaffected")
    func udpFlood() async throws {
        let rate = 200
        try await withLimitedNode([.limitsUnverifiedPacketsPerSecond: rate]) { node, port in
            let call = try await HonestCall.start(port: port, room: "call")
            let dashboard = NodeDashboard(port: node.operatorAddress?.port ?? port)
            let nodeMedia = try #require(node.media.localAddress)
            let before = try await dashboard.status()
            let flooder = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: 0).get()
            // DTLS-looking records (first byte 23: application data), so the node's DTLS counters are the
            // flood's alone: the honest call's handshakes are over.
            let record: [UInt8] = [23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 1, 0, 200] + [UInt8](repeating: 0xA5, count: 200)
            let total = 100_000
            let started = ContinuousClock.now
            try await call.keepsPlaying {
                var sent = 0
                while sent < total {
                    for _ in 0..<99 {
                        flooder.write(
                            AddressedEnvelope(remoteAddress: nodeMedia, data: flooder.allocator.buffer(bytes: record)),
                            promise: nil)
                    }
                    try await flooder.writeAndFlush(
                        AddressedEnvelope(remoteAddress: nodeMedia, data: flooder.allocator.buffer(bytes: record)))
                    sent += 100
                    // Paced (about 50,000 a second) so the kernel's queue of the node's socket keeps up.
                    if sent % 1000 == 0 { try await Task.sleep(for: .milliseconds(20)) }
                }
            }
            let floodTime = ContinuousClock.now - started
            try await flooder.close()
            // Everything that reached the node is counted: let it drain.
            try await Task.sleep(for: .milliseconds(300))
            let after = try await dashboard.status()
            let received = (after.media.received["dtls"]?.packets ?? 0) - (before.media.received["dtls"]?.packets ?? 0)
            func delta(_ reason: String) -> UInt64 { (after.media.drops[reason] ?? 0) - (before.media.drops[reason] ?? 0) }
            let limited = delta("unverified_rate_limit")
            let passed = delta("no_session")
            let seconds = Double(floodTime.components.seconds) + 1
            // Most of the flood arrived (the kernel may drop some), and all of it was dropped: what passed the
            // limit is at most one burst plus the rate over the flood's time.
            #expect(received >= UInt64(total / 2), "received \(received) of \(total)")
            #expect(limited + passed == received)
            #expect(passed <= UInt64(Double(rate) * (1 + seconds)), "passed \(passed) in \(seconds) s")
            #expect(after.limits.counters.unverifiedPacketsDropped - before.limits.counters.unverifiedPacketsDropped == limited)
            #expect(
                try await dashboard.metric("braid_media_drops_total{reason=\"unverified_rate_limit\"}")
                    == Double(after.media.drops["unverified_rate_limit"] ?? 0))
            // The honest sessions' SRTP never met the limit.
            for session in after.sessions.list {
                #expect(session.counters.unprotectFailures == 0)
            }
            try await call.close()
            print("limits (c): \(total) datagrams sent in \(floodTime), \(received) received, \(limited) limited, \(passed) passed")
        }
    }

    @Test("(d) A subscriber that stops reading: the node's queue stays bounded and the others keep playing")
    func stalledSubscriber() async throws {
        let queue = 64
        try await withLimitedNode([.limitsOutboundQueuePackets: queue]) { node, port in
            let call = try await HonestCall.start(port: port, room: "call")
            let dashboard = NodeDashboard(port: node.operatorAddress?.port ?? port)
            // A second subscriber of the same room that stops reading its socket once playing.
            let stalled = try await BraidSubscriber.subscribe(
                to: "http://127.0.0.1:\(port)/whep/call", audioTracks: 1, videoTracks: 1, options: forwardingOptions,
                group: MultiThreadedEventLoopGroup.singleton)
            let stalledID = try #require(sessionID(stalled.resource))
            #expect(try await eventually(within: 5) { (await stalled.statistics()?.video.first?.framesDecodable ?? 0) >= 10 })
            try await #require(stalled.transport.socket.ownChannel).setOption(.autoRead, value: false).get()
            let before = try await dashboard.status()
            let sentBefore = before.sessions.list.first { $0.id == stalledID }?.sent?.rtpSent.packets ?? 0
            try await call.keepsPlaying(minimumSeconds: 3) {}
            let after = try await dashboard.status()
            let stalledAfter = try #require(after.sessions.list.first { $0.id == stalledID })
            // The node kept sending to it (nothing blocked), its memory did not grow with what it could not
            // deliver, and no session ever had more than the limit queued.
            #expect((stalledAfter.sent?.rtpSent.packets ?? 0) > sentBefore)
            let growth = Int64(after.process.residentMemoryBytes) - Int64(before.process.residentMemoryBytes)
            #expect(growth < 64 << 20, "resident memory grew by \(growth) bytes")
            #expect(after.limits.configured.outboundQueuePackets == queue)
            let peak = await node.media.sessions.outboundQueuePeaks().values.max() ?? 0
            #expect(peak <= queue)
            try await #require(stalled.transport.socket.ownChannel).setOption(.autoRead, value: true).get()
            try await stalled.close()
            try await call.close()
            print(
                "limits (d): stalled subscriber sent \(sentBefore) -> \(stalledAfter.sent?.rtpSent.packets ?? 0) packets, "
                    + "rss growth \(growth) B, queue peak \(peak), queue drops \(after.limits.counters.outboundQueueDropped)")
        }
    }
}

/// Results gathered by concurrent tasks.
final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var statuses: [Int] = []
    private var retryAfters: [String] = []
    private var bodies: [String] = []

    func append(_ status: Int, retryAfter: String?, body: String) {
        self.lock.withLock {
            self.statuses.append(status)
            if status == 429 || status == 503 { self.retryAfters.append(retryAfter ?? "none") }
            if status != 201 { self.bodies.append(body) }
        }
    }

    var value: ([Int], [String], [String]) { self.lock.withLock { (self.statuses, self.retryAfters, self.bodies) } }
}

/// A value shared between tasks.
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { self.lock.withLock { self.value } }
    func set(_ value: Value) { self.lock.withLock { self.value = value } }
}
