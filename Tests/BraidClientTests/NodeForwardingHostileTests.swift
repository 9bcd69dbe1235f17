import BraidICE
import BraidNode
import BraidSDP
import BraidSecurity
import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import BraidClient

/// A reproducible random source (SplitMix64), so a failing spray can be replayed.
struct SprayRandom: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` random bytes whose first byte lies in `first` (the RFC 7983 §7 class).
    mutating func datagram(first: ClosedRange<UInt8>, count: Int) -> [UInt8] {
        var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
        if count > 0 { bytes[0] = UInt8.random(in: first, using: &self) }
        return bytes
    }
}

/// Garbage of every class of the RFC 7983 §7 demultiplexing rule, keyed by the node's drop reason it must land
/// in when it comes from an address no session knows.
enum Garbage {
    /// STUN-looking: first byte 0–3; half of them with a correct header (magic cookie, length) and a
    /// random body, the others random.
    static func stun(_ random: inout SprayRandom) -> [UInt8] {
        let length = Int.random(in: 0...30, using: &random) * 4
        guard Bool.random(using: &random) else { return random.datagram(first: 0...3, count: 20 + length) }
        var bytes: [UInt8] = [0x00, 0x01, UInt8(length >> 8), UInt8(length & 0xFF), 0x21, 0x12, 0xA4, 0x42]
        bytes += (0..<(12 + length)).map { _ in UInt8.random(in: 0...255, using: &random) }
        return bytes
    }

    /// DTLS-looking: first byte 20–63, a record header with version 0xfefd and a random length.
    static func dtls(_ random: inout SprayRandom) -> [UInt8] {
        var bytes = random.datagram(first: 20...63, count: Int.random(in: 1...300, using: &random))
        if bytes.count >= 3 {
            bytes[1] = 0xFE
            bytes[2] = 0xFD
        }
        return bytes
    }

    /// One whole DTLS 1.2 record (RFC 6347 §4.1) with a random body: content type 20–23, epoch 0 or 1, a random
    /// sequence number and a length that matches, so it passes the framing check and reaches OpenSSL.
    ///
    ///     | type | version fefd | epoch (2) | sequence number (6) | length (2) | body ... |
    static func dtlsRecord(_ random: inout SprayRandom) -> [UInt8] {
        let length = Int.random(in: 1...200, using: &random)
        var bytes: [UInt8] = [UInt8.random(in: 20...23, using: &random), 0xFE, 0xFD, 0x00]
        bytes.append(UInt8.random(in: 0...1, using: &random))
        bytes += (0..<6).map { _ in UInt8.random(in: 0...255, using: &random) }
        bytes += [UInt8(length >> 8), UInt8(length & 0xFF)]
        bytes += (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
        return bytes
    }

    /// RTP- or RTCP-looking: first byte 128–191 (version 2), random rest; RTCP when the second byte is
    /// 192–223 (RFC 5761 §4).
    static func rtp(_ random: inout SprayRandom, rtcp: Bool) -> [UInt8] {
        var bytes = random.datagram(first: 128...191, count: Int.random(in: 12...1400, using: &random))
        bytes[1] = rtcp ? UInt8.random(in: 192...223, using: &random) : UInt8.random(in: 0...127, using: &random)
        return bytes
    }

    /// Larger than any MTU: 9000 to 60000 bytes of RTP-looking garbage.
    static func oversize(_ random: inout SprayRandom) -> [UInt8] {
        random.datagram(first: 128...191, count: Int.random(in: 9000...60000, using: &random))
    }
}

/// Sends datagrams in bursts of 20, waiting for each burst to be written, so the spray is fast but paced
/// enough that the kernel's receive buffer of the node's socket does not overflow.
func spray(_ datagrams: [[UInt8]], from channel: any Channel, to node: SocketAddress) async throws {
    for (index, bytes) in datagrams.enumerated() {
        let envelope = AddressedEnvelope(remoteAddress: node, data: channel.allocator.buffer(bytes: bytes))
        if index % 20 == 19 || index == datagrams.count - 1 {
            try await channel.writeAndFlush(envelope).get()
            try await Task.sleep(for: .milliseconds(2))
        } else {
            channel.write(envelope, promise: nil)
        }
    }
}

@Suite("Hostile input sprayed at a node while a call runs", .serialized)
struct NodeForwardingHostileTests {
    @Test("Garbage of every RFC 7983 class and malformed offers leave the call intact and are counted as drops")
    func hostileInputDuringCall() async throws {
        let media = try forwardingMedia()
        try await withLoopbackNode { node, port in
            let group = MultiThreadedEventLoopGroup.singleton
            let dashboard = NodeDashboard(port: port)
            let nodeMedia = try #require(node.media.localAddress)
            let publisher = try await BraidPublisher.publish(
                to: "http://127.0.0.1:\(port)/whip/call", audio: .preEncoded(media), video: .preEncoded(media),
                options: forwardingOptions, group: group)
            let subscriber = try await BraidSubscriber.subscribe(
                to: "http://127.0.0.1:\(port)/whep/call", audioTracks: 1, videoTracks: 1,
                options: forwardingOptions, group: group)
            let publisherID = try #require(sessionID(publisher.resourceEndpoint))
            let subscriberID = try #require(sessionID(subscriber.resource))
            try await Task.sleep(for: .seconds(1))
            let before = try #require(await subscriber.statistics())
            let statusBefore = try await dashboard.status()
            let subscriberBefore = try #require(statusBefore.sessions.list.first { $0.id == subscriberID })
            let publisherBefore = try #require(statusBefore.sessions.list.first { $0.id == publisherID })

            // 1. From an address no session knows: every class, including empty and oversize datagrams.
            var random = SprayRandom(state: 0x4252_4149_4400_0001)
            var stranger: [[UInt8]] = []
            var expectedNoSession = 0
            var expected: [String: Int] = ["empty": 0, "unknown_protocol": 0, "zrtp_unsupported": 0]
            expected["turn_channel_unsupported"] = 0
            for round in 0..<120 {
                stranger.append(round % 2 == 0 ? Garbage.dtlsRecord(&random) : Garbage.stun(&random))
                stranger.append(Garbage.dtls(&random))
                stranger.append(Garbage.rtp(&random, rtcp: false))
                stranger.append(Garbage.rtp(&random, rtcp: true))
                expectedNoSession += 4
                stranger.append(random.datagram(first: 16...19, count: 40))  // ZRTP (RFC 6189)
                stranger.append(random.datagram(first: 64...79, count: 40))  // TURN ChannelData (RFC 8656)
                stranger.append(random.datagram(first: 4...15, count: 40))  // nothing uses 4–15
                stranger.append(random.datagram(first: 192...255, count: 40))  // nor 192–255
                expected["zrtp_unsupported", default: 0] += 1
                expected["turn_channel_unsupported", default: 0] += 1
                expected["unknown_protocol", default: 0] += 2
                if round % 10 == 0 {
                    stranger.append(Garbage.oversize(&random))
                    stranger.append([])
                    expectedNoSession += 1
                    expected["empty", default: 0] += 1
                }
            }
            let outsider = try await DatagramBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()

            // 2. From the subscriber's and the publisher's own addresses (their sockets): what a spoofer on the
            // path could send. SRTP/SRTCP that fails authentication is counted on the session; garbage STUN is
            // answered with nothing; garbage DTLS goes to the connected DTLS endpoint.
            var fromPeer: [[UInt8]] = []
            for _ in 0..<100 {
                fromPeer.append(Garbage.rtp(&random, rtcp: false))
                fromPeer.append(Garbage.rtp(&random, rtcp: true))
            }
            var peerControl: [[UInt8]] = []
            for _ in 0..<30 {
                peerControl.append(Garbage.stun(&random))
                peerControl.append(Garbage.dtls(&random))
                peerControl.append(Garbage.dtlsRecord(&random))
            }

            // Sample the subscriber while the spray runs: what it receives must keep rising.
            let samples = Task {
                var counts: [Int64] = []
                for _ in 0..<8 {
                    try await Task.sleep(for: .milliseconds(200))
                    counts.append(await subscriber.statistics()?.video.first?.packetsReceived ?? -1)
                }
                return counts
            }
            try await spray(stranger, from: outsider, to: nodeMedia)
            try await spray(fromPeer, from: #require(subscriber.transport.socket.ownChannel), to: nodeMedia)
            try await spray(fromPeer, from: #require(publisher.transport.socket.ownChannel), to: nodeMedia)
            try await spray(peerControl, from: #require(subscriber.transport.socket.ownChannel), to: nodeMedia)
            try await spray(peerControl, from: #require(publisher.transport.socket.ownChannel), to: nodeMedia)

            // 3. Malformed and oversized offers at the signalling endpoints during the call.
            let offer = Self.realOffer()
            let sdp = "application/sdp"
            let noise = (0..<4000).map { _ in UInt8.random(in: 0...255, using: &random) }
            let binary = String(decoding: noise, as: UTF8.self)
            let longLine = "\r\na=x:" + String(repeating: "9", count: 500) + "\r\n"
            var offers: [(String, String, String)] = [
                (sdp, "not an SDP offer at all", "garbage text"),
                (sdp, String(repeating: "v=0\r\n", count: 3), "repeated v= lines"),
                (sdp, String(repeating: "a", count: 100 * 1024), "100 KiB body"),
                (sdp, String(repeating: "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n", count: 1900), "1900 m= lines"),
                (sdp, "v=0\r\nm=audio 99999999999999999999 UDP/TLS/RTP/SAVPF 111\r\n", "huge port"),
                ("text/plain", offer, "a real offer with the wrong content type"),
                (sdp, binary, "binary"),
                (sdp, offer.replacingOccurrences(of: "sha-256 ", with: "sha-256 ZZ:"), "bad fingerprint"),
                (sdp, offer.replacingOccurrences(of: "a=ice-pwd:", with: "a=ice-pwd:x"), "odd ice-pwd"),
                (sdp, offer.replacingOccurrences(of: "\r\n", with: longLine), "a long attribute after every line"),
            ]
            for cut in stride(from: 40, to: offer.utf8.count - 40, by: max(1, offer.utf8.count / 12)) {
                offers.append((sdp, String(offer.utf8.prefix(cut)) ?? "", "offer cut at \(cut)"))
            }
            var statuses: [Int] = []
            for (contentType, body, what) in offers {
                for path in ["/whip/call", "/whep/call"] {
                    let response = try await dashboard.post(path, contentType: contentType, body: body)
                    statuses.append(response.status)
                    #expect((400..<500).contains(response.status) || response.status == 201, "\(what) at \(path)")
                    if response.status == 201, let location = response.header("Location") {
                        // A truncated offer can still be complete; end what it created.
                        _ = try await dashboard.delete(location)
                    }
                }
            }
            // Names that are no room at all.
            for path in ["/whip/..%2F..", "/whep/" + String(repeating: "x", count: 300), "/whip/a%00b"] {
                let response = try await dashboard.post(path, contentType: "application/sdp", body: offer)
                #expect((400..<500).contains(response.status), "POST \(path)")
            }

            let counts = try await samples.value
            try await Task.sleep(for: .milliseconds(500))
            let after = try #require(await subscriber.statistics())
            let sentAfterCall = await publisher.statistics()
            let statusAfter = try await dashboard.status()
            let sentLater = await publisher.statistics()
            try await subscriber.close()
            try await publisher.close()
            try await outsider.close()

            // The call went on: packets kept arriving between every two samples, no frame was lost, no freeze.
            #expect(zip(counts, counts.dropFirst()).allSatisfy { $0 < $1 }, "video packets sampled: \(counts)")
            let videoBefore = try #require(before.video.first)
            let videoAfter = try #require(after.video.first)
            #expect(videoAfter.framesLost == videoBefore.framesLost)
            #expect(videoAfter.freezeCount == videoBefore.freezeCount)
            #expect(videoAfter.framesDecodable == videoAfter.framesComplete)
            #expect(videoAfter.framesDecodable >= videoBefore.framesDecodable + 30)
            #expect(after.transport.unprotectFailures == 0 && after.unknownSSRCPackets == 0)
            #expect(statuses.contains(413) && statuses.contains(415) && statuses.contains(400))

            // The sessions: nothing the spray sent counted as media; what failed SRTP(C) authentication is
            // counted on the session whose address it came from, exactly.
            #expect(statusAfter.sessions.count == 2)
            let subscriberAfter = try #require(statusAfter.sessions.list.first { $0.id == subscriberID })
            let publisherAfter = try #require(statusAfter.sessions.list.first { $0.id == publisherID })
            #expect(
                subscriberAfter.counters.unprotectFailures &- subscriberBefore.counters.unprotectFailures
                    == UInt64(fromPeer.count))
            #expect(
                publisherAfter.counters.unprotectFailures &- publisherBefore.counters.unprotectFailures
                    == UInt64(fromPeer.count))
            for session in [subscriberAfter, publisherAfter] {
                #expect(session.iceState == "connected" && session.srtpProfile != nil)
                // RFC 6347 §4.1.2.7: invalid records are silently discarded, preserving the association, even
                // whole records with a random body from the peer's (spoofed) address.
                #expect(session.dtlsState == "connected")
            }
            // Every RTP packet the publisher sent before the node's snapshot, and none it did not send (totals
            // since the session began: the node and the client count the same packets).
            let received = publisherAfter.counters.rtpReceived.packets
            #expect(received <= UInt64(sentLater.transport.rtpPacketsSent))
            #expect(received + 20 >= UInt64(sentAfterCall.transport.rtpPacketsSent))
            #expect(subscriberAfter.counters.rtpReceived.packets == 0)  // a subscriber sends no media

            // The node's drop counters rose by what the stranger sent, reason by reason.
            func delta(_ reason: String) -> UInt64 {
                (statusAfter.media.drops[reason] ?? 0) &- (statusBefore.media.drops[reason] ?? 0)
            }
            for (reason, count) in expected {
                #expect(delta(reason) == UInt64(count), "drops \(reason)")
            }
            // Beyond limits.unverified_packets_per_second, the stranger's datagrams count as unverified_rate_limit.
            #expect(delta("no_session") + delta("unverified_rate_limit") >= UInt64(expectedNoSession))
            print(
                "hostile: drops \(statusAfter.media.drops), video packets sampled \(counts), "
                    + "subscriber session \(subscriberAfter.counters) \(subscriberAfter.dtlsState), "
                    + "publisher session \(publisherAfter.counters) \(publisherAfter.dtlsState)")
        }
    }

    /// A complete WHIP offer as BraidClient makes it.
    static func realOffer() -> String {
        let certificate = try? DTLSCertificate()
        let placeholder = try? DTLSFingerprint(algorithm: .sha256, bytes: [UInt8](repeating: 1, count: 32))
        guard let fingerprint = certificate?.fingerprint ?? placeholder else { return "" }
        return ClientOffer.make(
            tracks: [
                OfferedTrack(kind: .audio, ssrc: 1111, trackID: "a"),
                OfferedTrack(kind: .video, ssrc: 2222, rtxSSRC: 3333, trackID: "v"),
            ],
            direction: .sendonly, credentials: ICECredentials.random(), fingerprint: fingerprint,
            cname: "hostile", streamID: "hostile", sessionID: 42
        ).text
    }
}
