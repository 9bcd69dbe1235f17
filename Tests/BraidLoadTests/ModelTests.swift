import ArgumentParser
import BraidClient
import BraidLoad
import Foundation
import Testing

@Suite("Impairment models (pure)")
struct ImpairmentModelTests {
    @Test("SplitMix64 matches the reference outputs for seed 1234567 and is reproducible")
    func splitMix() {
        // Reference values of the SplitMix64 algorithm (Vigna's splitmix64.c) for seed 1234567.
        var generator = SplitMix64(seed: 1_234_567)
        let expected: [UInt64] = [
            6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
            4_593_380_528_125_082_431, 16_408_922_859_458_223_821,
        ]
        #expect((0..<5).map { _ in generator.next() } == expected)
        var a = SplitMix64(seed: SplitMix64.derive(7, 3))
        var b = SplitMix64(seed: SplitMix64.derive(7, 3))
        var c = SplitMix64(seed: SplitMix64.derive(7, 4))
        let first = (0..<8).map { _ in a.next() }
        #expect(first == (0..<8).map { _ in b.next() })
        #expect(first != (0..<8).map { _ in c.next() })
    }

    @Test("Random loss drops the configured fraction, reproducibly for a seed")
    func randomLoss() {
        func run(seed: UInt64) -> [Bool] {
            var link = ImpairedLink(NetworkImpairment(lossRate: 0.1), seed: seed)
            return (0..<100_000).map { link.decide(bytes: 1200, now: Int64($0) * 1_000_000) == .drop }
        }
        let drops = run(seed: 42)
        let rate = Double(drops.filter { $0 }.count) / Double(drops.count)
        #expect(abs(rate - 0.1) < 0.005)
        #expect(drops == run(seed: 42))
        #expect(drops != run(seed: 43))
    }

    @Test("Gilbert–Elliott loss has mean rate p/(p+r) and mean burst length 1/r")
    func gilbertElliott() {
        var chain = GilbertElliottLoss(p: 0.02, r: 0.25)
        var generator = SplitMix64(seed: 9)
        var lost = 0
        var bursts = 0
        var previous = false
        let packets = 400_000
        for _ in 0..<packets {
            let isLost = chain.nextPacketLost(using: &generator)
            if isLost { lost += 1 }
            if isLost && !previous { bursts += 1 }
            previous = isLost
        }
        let rate = Double(lost) / Double(packets)
        #expect(abs(rate - chain.meanLossRate) < 0.01)
        #expect(abs(chain.meanLossRate - 0.02 / 0.27) < 1e-12)
        let meanBurst = Double(lost) / Double(bursts)
        #expect(abs(meanBurst - 4) < 0.3)
    }

    @Test("Token bucket: bursts pass, a backlog waits at the cap rate, a full queue drops")
    func tokenBucket() {
        // 800 kbps = 100 bytes per ms; 1000-byte bucket, 2000-byte queue.
        var bucket = TokenBucket(bitsPerSecond: 800_000, burstBytes: 1000, queueLimitBytes: 2000)
        // Waits are computed in floating point and rounded up: allow 1 ns.
        func near(_ value: Int64?, _ expected: Int64) -> Bool { value.map { abs($0 - expected) <= 1 } ?? false }
        #expect(bucket.admit(bytes: 1000, now: 0) == 0)
        // Empty bucket: the next 1000 bytes wait 10 ms, the next 1000 another 10 ms.
        #expect(near(bucket.admit(bytes: 1000, now: 0), 10_000_000))
        #expect(near(bucket.admit(bytes: 1000, now: 0), 20_000_000))
        #expect(bucket.queuedBytes == 2000)
        // The queue is full: dropped.
        #expect(bucket.admit(bytes: 100, now: 0) == nil)
        // 5 ms later 500 bytes have drained: 500 fit again, leaving at 20 ms.
        #expect(near(bucket.admit(bytes: 500, now: 5_000_000), 20_000_000))
        // After a long idle time the bucket is full again, but no fuller than its depth.
        #expect(bucket.admit(bytes: 1000, now: 1_000_000_000) == 0)
        #expect(near(bucket.admit(bytes: 1, now: 1_000_000_000), 10_000))
    }

    @Test("Shaped throughput converges to the cap; delay and jitter stay in range and never reorder")
    func shapedLink() {
        var link = ImpairedLink(
            NetworkImpairment(delay: .milliseconds(50), jitter: .milliseconds(10), rateBitsPerSecond: 1_000_000),
            seed: 5)
        // Offer 2 Mbps (1250 bytes every 5 ms) for 10 s: about half must be dropped by the queue.
        var delivered = 0
        var lastRelease: Int64 = 0
        var minimumWait: Int64 = .max
        for index in 0..<2000 {
            let now = Int64(index) * 5_000_000
            if case .deliver(let after) = link.decide(bytes: 1250, now: now) {
                delivered += 1
                #expect(now + after >= lastRelease)
                lastRelease = now + after
                minimumWait = min(minimumWait, after)
            }
        }
        let bits = Double(delivered * 1250 * 8)
        #expect(abs(bits / 10 - 1_000_000) < 60_000)
        #expect(minimumWait >= 50_000_000)
        #expect(link.statistics.droppedByQueue > 900)

        var jittery = ImpairedLink(NetworkImpairment(delay: .milliseconds(20), jitter: .milliseconds(10)), seed: 1)
        for index in 0..<1000 {
            guard case .deliver(let after) = jittery.decide(bytes: 100, now: Int64(index) * 20_000_000) else {
                Issue.record("no loss configured")
                return
            }
            #expect(after >= 20_000_000 && after <= 30_000_000)
        }
    }
}

@Suite("Command-line quantities and SLOs")
struct ParsingTests {
    @Test("Fractions, durations, bit rates and burst parameters")
    func quantities() throws {
        #expect(try Quantities.fraction("10%") == 0.1)
        #expect(try Quantities.fraction("0.25") == 0.25)
        #expect(throws: LoadArgumentError.self) { try Quantities.fraction("150%") }
        #expect(throws: LoadArgumentError.self) { try Quantities.fraction("nan") }
        #expect(try Quantities.duration("50ms") == .milliseconds(50))
        #expect(try Quantities.duration("2s") == .seconds(2))
        #expect(try Quantities.duration("1.5s") == .milliseconds(1500))
        #expect(try Quantities.duration("250us") == .microseconds(250))
        #expect(try Quantities.duration("30") == .milliseconds(30))
        #expect(throws: LoadArgumentError.self) { try Quantities.duration("-5ms") }
        #expect(throws: LoadArgumentError.self) { try Quantities.duration("soon") }
        #expect(throws: LoadArgumentError.self) { try Quantities.duration("1e300s") }
        #expect(try Quantities.bitRate("500kbps") == 500_000)
        #expect(try Quantities.bitRate("2Mbps") == 2_000_000)
        #expect(try Quantities.bitRate("64000") == 64_000)
        #expect(throws: LoadArgumentError.self) { try Quantities.bitRate("0kbps") }
        #expect(throws: LoadArgumentError.self) { try Quantities.bitRate("1e30") }
        let burst = try Quantities.burst("5%,0.5")
        #expect(burst.p == 0.05 && burst.r == 0.5)
        #expect(throws: LoadArgumentError.self) { try Quantities.burst("0.1") }
        #expect(throws: LoadArgumentError.self) { try Quantities.burst("0.1,0") }
    }

    @Test("The SLO list parses into metrics and limits; bad lists are rejected")
    func sloParsing() throws {
        let list = try SLO.parseList("p95-latency=200ms,residual-loss=1%,freezes=0,join-p95=500ms,failures=0")
        #expect(
            list == [
                SLO(metric: .p95Latency, limit: 200), SLO(metric: .residualLoss, limit: 0.01),
                SLO(metric: .freezes, limit: 0), SLO(metric: .joinP95, limit: 500), SLO(metric: .failures, limit: 0),
            ])
        #expect(try SLO.parseList("p99-latency=1s") == [SLO(metric: .p99Latency, limit: 1000)])
        #expect(throws: LoadArgumentError.self) { try SLO.parseList("latency=5ms") }
        #expect(throws: LoadArgumentError.self) { try SLO.parseList("freezes=-1") }
        #expect(throws: LoadArgumentError.self) { try SLO.parseList("freezes") }
        #expect(throws: LoadArgumentError.self) { try SLO.parseList("") }
    }

    @Test("Impairment options map to both directions")
    func impairmentOptions() throws {
        let options = try CommonLoadOptions.parse([
            "--downlink-loss", "10%", "--downlink-burst", "0.05,0.5", "--uplink-delay", "50ms", "--jitter", "10ms",
            "--downlink-rate", "500kbps", "--slo", "failures=1", "--node", "http://127.0.0.1:9",
        ])
        let configuration = try options.configuration(.webinar(subscribers: 1))
        #expect(configuration.downlink.lossRate == 0.1)
        #expect(configuration.downlink.burstLoss == GilbertElliottLoss(p: 0.05, r: 0.5))
        #expect(configuration.downlink.rateBitsPerSecond == 500_000)
        #expect(configuration.uplink.delay == .milliseconds(50))
        #expect(configuration.uplink.jitter == .milliseconds(10) && configuration.downlink.jitter == .milliseconds(10))
        #expect(configuration.uplink.lossRate == 0)
        #expect(configuration.slo == [SLO(metric: .failures, limit: 1)])
        #expect(throws: LoadArgumentError.self) {
            try CommonLoadOptions.parse(["--downlink-loss", "x"]).configuration(.webinar(subscribers: 1))
        }
    }

    @Test("--audio-pcm reads raw 16-bit samples and refuses a missing, odd or too short file")
    func audioSourceOption() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("braid-audio-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let samples = (0..<1920).map { Int16(truncatingIfNeeded: $0 &* 37) }
        let good = directory.appendingPathComponent("good.pcm")
        try samples.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: good)
        let configuration = try CommonLoadOptions.parse(["--audio-pcm", good.path, "--record-audio", "/tmp/x"])
            .configuration(.audioRoom(publishers: 1, subscribers: 1))
        #expect(configuration.audioSource == samples)
        #expect(configuration.audioRecordingDirectory == "/tmp/x")
        let odd = directory.appendingPathComponent("odd.pcm")
        try Data(repeating: 1, count: 1921 * 2 + 1).write(to: odd)
        let short = directory.appendingPathComponent("short.pcm")
        try Data(repeating: 1, count: 100).write(to: short)
        for path in [odd.path, short.path, directory.appendingPathComponent("missing.pcm").path] {
            #expect(throws: LoadArgumentError.self) {
                try CommonLoadOptions.parse(["--audio-pcm", path]).configuration(.audioRoom(publishers: 1, subscribers: 1))
            }
        }
    }
}
