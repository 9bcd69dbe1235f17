import BraidICE
import BraidWire
import Foundation
import HTTPTypes
import HummingbirdCore
import NIOCore
import NIOEmbedded
import Testing

@testable import BraidNode

/// The media-side limits without sockets: the per-source token bucket, each session's outbound queue
/// budget, the session accounting per address and room, the transceiver limit, and how refusals answer.
@Suite("Media limits (socket-free)")
struct MediaLimitsTests {
    static let second: UInt64 = 1_000_000_000

    static func source(_ last: UInt8, port: UInt16 = 5000) -> STUNAddress {
        STUNAddress(ipv4: 192, 0, 2, last, port: port)
    }

    @Test("A new source gets one second's burst, then the configured rate; sources are independent")
    func tokenBucket() {
        let limiter = LimiterBox(SourceRateLimiter(rate: 200, capacity: 16))
        let a = Self.source(1)
        let b = Self.source(2)
        let start: UInt64 = 10 * Self.second
        // The burst: 200 at once, the 201st refused.
        #expect((0..<200).allSatisfy { _ in limiter.admit(a, now: start) })
        #expect(!limiter.admit(a, now: start))
        #expect(limiter.refused == 1)
        // Another source (same IP, another port: another source) is not affected.
        #expect(limiter.admit(Self.source(1, port: 5001), now: start))
        #expect(limiter.admit(b, now: start))
        // One more every 5 ms (1 s / 200).
        #expect(!limiter.admit(a, now: start + 4_000_000))
        #expect(limiter.admit(a, now: start + 5_000_000))
        #expect(!limiter.admit(a, now: start + 5_000_000))
        // A flood of 100,000 in one second: 200 a second get through, whatever is tried.
        var admitted = 0
        for index in 0..<100_000 {
            if limiter.admit(a, now: start + Self.second + UInt64(index) * 10_000) { admitted += 1 }
        }
        // The bucket refilled during the quiet second before (up to its burst of 200), then 200 a second for
        // the flood's one second: at most burst + rate, whatever the flood's size.
        #expect(admitted >= 390 && admitted <= 400, "admitted \(admitted)")
        #expect(limiter.refused >= UInt64(100_000 - 400))
        // After a quiet second the burst is back.
        let later = start + 4 * Self.second
        #expect((0..<200).allSatisfy { _ in limiter.admit(a, now: later) })
        #expect(!limiter.admit(a, now: later))
    }

    @Test("The table is bounded: a new source evicts the one that came first, which starts again with a full bucket")
    func boundedTable() {
        let limiter = LimiterBox(SourceRateLimiter(rate: 10, capacity: 4))
        let now: UInt64 = Self.second
        for index in 0..<10 { _ = limiter.admit(Self.source(1), now: now + UInt64(index)) }
        #expect(!limiter.admit(Self.source(1), now: now))
        for last in 2...4 { #expect(limiter.admit(Self.source(UInt8(last)), now: now)) }
        #expect(limiter.count == 4)
        // A fifth source takes the first one's slot.
        #expect(limiter.admit(Self.source(5), now: now))
        #expect(limiter.count == 4)
        // The first is forgotten: a full bucket again.
        #expect(limiter.admit(Self.source(1), now: now))
        // 10,000 distinct sources later, the table still holds 4.
        for port in 0..<10_000 { _ = limiter.admit(Self.source(9, port: UInt16(port)), now: now) }
        #expect(limiter.count == 4)
    }

    @Test("A session's outbound budget: the limit per unwritable period, drops counted, a new period starts over")
    func outboundBudget() {
        let budget = BudgetBox()
        #expect((0..<16).allSatisfy { _ in budget.take(period: 1, limit: 16) })
        #expect(!budget.take(period: 1, limit: 16))
        #expect(!budget.take(period: 1, limit: 16))
        #expect(budget.value.dropped == 2)
        #expect(budget.value.peak == 16)
        #expect(budget.take(period: 2, limit: 16))
        #expect(budget.value.queued == 1)
        #expect(budget.value.dropped == 2)
    }

    @Test("The output batch admits everything while the socket is writable and bounds each session while it is not")
    func outputBatchWritability() throws {
        let channel = EmbeddedChannel()
        let batch = WebRTCOutputBatch(channel: channel, queueLimit: 32)
        let first = BudgetBox()
        let second = BudgetBox()
        // Writable: no limit, no count.
        #expect((0..<1000).allSatisfy { _ in first.admit(batch) })
        #expect(first.value.queued == 0 && batch.queueDrops == 0)
        // The socket is full: each session may queue 32 more, then its packets are dropped and counted.
        channel.isWritable = false
        let firstAdmitted = (0..<10_000).filter { _ in first.admit(batch) }.count
        let secondAdmitted = (0..<100).filter { _ in second.admit(batch) }.count
        #expect(firstAdmitted == 32)
        #expect(secondAdmitted == 32)
        #expect(batch.queueDrops == UInt64(10_000 - 32 + 100 - 32))
        #expect(first.value.dropped == UInt64(10_000 - 32))
        // Writable again (the queue drained), then full again: a new period, 32 more each.
        channel.isWritable = true
        #expect(first.admit(batch))
        channel.isWritable = false
        #expect((0..<100).filter { _ in first.admit(batch) }.count == 32)
        #expect(first.value.peak == 32)
        _ = try channel.finish(acceptAlreadyClosed: true)
    }

    @Test("Sessions are counted per address and per room; limits refuse and count, ended sessions free their place")
    func accounting() {
        let directory = WebRTCShardDirectory(shards: 2)
        let limits = (sessions: 5, perAddress: 2, perRoom: 3)
        func place(_ id: String, room: String, address: String?) -> WebRTCShardDirectory.Refusal? {
            directory.place(
                id: id, room: room, direction: .publish, ufrag: nil, shard: 0, address: address, limits: limits)
        }
        #expect(place("a1", room: "r", address: "10.0.0.1") == nil)
        #expect(place("a2", room: "r", address: "10.0.0.1") == nil)
        #expect(place("a3", room: "r", address: "10.0.0.1") == .sessionsPerAddress)
        #expect(directory.refusal(room: "r", address: "10.0.0.1", limits: limits) == .sessionsPerAddress)
        #expect(place("b1", room: "r", address: "10.0.0.2") == nil)
        #expect(place("b2", room: "r", address: "10.0.0.2") == .sessionsPerRoom)
        #expect(place("b2", room: "other", address: "10.0.0.2") == nil)
        #expect(place("c1", room: "other", address: nil) == nil)
        #expect(directory.count == 5)
        #expect(place("c2", room: "third", address: nil) == .sessions)
        #expect(directory.sessions(address: "10.0.0.1") == 2)
        #expect(directory.sessions(room: "r") == 3)
        // A session that ends frees its address's and its room's place.
        directory.remove(id: "a1")
        #expect(directory.sessions(address: "10.0.0.1") == 1)
        #expect(directory.sessions(room: "r") == 2)
        #expect(place("a3", room: "r", address: "10.0.0.1") == nil)
        directory.remove(id: "a2")
        directory.remove(id: "a3")
        #expect(directory.sessions(address: "10.0.0.1") == 0)
        // 0 lifts the per-address limit.
        let open = (sessions: 100, perAddress: 0, perRoom: 100)
        for index in 0..<20 {
            #expect(
                directory.place(
                    id: "n\(index)", room: "n", direction: .subscribe, ufrag: nil, shard: 1, address: "10.0.0.9",
                    limits: open) == nil)
        }
        let refusals = directory.refusals
        #expect(refusals.refusedPerAddress == 2)
        #expect(refusals.refusedPerRoom == 1)
        #expect(refusals.refusedSessions == 1)
        #expect(refusals.refusedTransceivers == 0)
    }

    @Test("An offer with more media sections than transceivers_per_offer is refused with a reason and counted")
    func transceiverLimit() async throws {
        var limits = NodeConfiguration.Limits.defaults
        limits.transceiversPerOffer = 4
        let sessions = WebRTCSessions(advertisedAddresses: ["127.0.0.1"], limits: limits)
        func offer(sections: Int) -> String {
            var lines = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]
            for index in 0..<sections {
                lines += ["m=video 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=mid:\(index)", "a=recvonly"]
            }
            return lines.joined(separator: "\r\n") + "\r\n"
        }
        for count in [5, 64, 300] {
            do {
                _ = try await sessions.createSession(direction: .subscribe, room: "r", offer: offer(sections: count))
                Issue.record("an offer with \(count) sections was not refused")
            } catch {
                #expect(error.kind == .badOffer)
                #expect(error.reason.contains("more than 4 media sections"), "\(error.reason)")
                #expect(error.reason.contains("limits.transceivers_per_offer"))
            }
        }
        // Four sections pass the limit (and then fail for want of a media socket, not for the limit).
        do {
            _ = try await sessions.createSession(direction: .subscribe, room: "r", offer: offer(sections: 4))
        } catch {
            #expect(!error.reason.contains("transceivers_per_offer"), "\(error.reason)")
        }
        #expect(await sessions.limitCounters().refusedTransceivers == 3)
    }

    @Test("Refusals by a limit answer 503 or 429 with Retry-After and the reason")
    func refusalResponses() {
        let full = WebRTCRoutes.response(for: WebRTCSessionError(.full, "room r holds its maximum of 3 sessions"))
        #expect(full.status == .serviceUnavailable)
        #expect(full.headers[.retryAfter] == "\(WebRTCRoutes.retryAfterSeconds)")
        let address = WebRTCRoutes.response(for: WebRTCSessionError(.tooManyFromAddress, "your address ..."))
        #expect(address.status == .tooManyRequests)
        #expect(address.headers[.retryAfter] == "\(WebRTCRoutes.retryAfterSeconds)")
        let down = WebRTCRoutes.response(for: WebRTCSessionError(.unavailable, "the media socket is not running"))
        #expect(down.status == .serviceUnavailable)
        #expect(down.headers[.retryAfter] == nil)
    }

    @Test("The dashboard's limits section: configured values and counters under stable JSON keys, and a text block")
    func limitsSection() throws {
        var counters = WebRTCLimitCounters()
        counters.refusedPerAddress = 7
        counters.handshakeTimeouts = 3
        counters.unverifiedPacketsDropped = 99_800
        let section = NodeStatus.LimitsSection(configured: .defaults, counters: counters)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(section)) as? [String: Any]
        let configured = try #require(json?["configured"] as? [String: Any])
        let values = try #require(json?["counters"] as? [String: Any])
        for key in [
            "sessions", "sessions_per_address", "sessions_per_room", "transceivers_per_offer",
            "handshake_timeout_seconds", "unverified_packets_per_second", "outbound_queue_packets",
        ] {
            #expect(configured[key] != nil, "configured.\(key)")
        }
        #expect(configured["sessions"] as? Int == 4096)
        #expect(
            Set(values.keys) == [
                "refused_sessions", "refused_sessions_per_address", "refused_sessions_per_room",
                "refused_transceivers_per_offer", "handshake_timeouts", "unverified_packets_dropped",
                "outbound_queue_dropped", "handshaking",
            ])
        #expect(values["refused_sessions_per_address"] as? Int == 7)
        #expect(try JSONDecoder().decode(NodeStatus.LimitsSection.self, from: JSONEncoder().encode(section)) == section)
        #expect(MediaDropReason.allCases.contains(.unverifiedRateLimit))
        #expect(MediaDropReason.unverifiedRateLimit.rawValue == "unverified_rate_limit")
    }
}

/// Mutable test subjects behind a reference, so `#expect` can call their mutating methods.
final class LimiterBox {
    var value: SourceRateLimiter
    init(_ value: SourceRateLimiter) { self.value = value }
    func admit(_ source: STUNAddress, now: UInt64) -> Bool { self.value.admit(source, now: now) }
    var refused: UInt64 { self.value.refused }
    var count: Int { self.value.count }
}

final class BudgetBox {
    var value = OutboundQueueBudget()
    func take(period: UInt64, limit: Int) -> Bool { self.value.take(period: period, limit: limit) }
    func admit(_ batch: WebRTCOutputBatch) -> Bool { batch.admit(&self.value) }
}
