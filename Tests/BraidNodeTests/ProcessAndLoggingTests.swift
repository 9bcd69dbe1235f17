@testable import BraidNode
import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing

@Suite("Process statistics")
struct ProcessStatsTests {
    @Test("utime and stime are found after the last ')' even when comm contains spaces and parentheses")
    func statParsing() throws {
        let stat = "4242 (braid (node) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 731 95 0 0 20 0 3 0 12345 "
            + "123456789 2000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 1 0 0 0 0 0\n"
        #expect(try ProcessStatsSampler.parseCPUTicks(stat: stat) == [731, 95])
    }

    @Test(
        "malformed stat text is an error, not a trap",
        arguments: ["", "1 (x", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 a b"]
    )
    func statMalformed(_ text: String) {
        #expect(throws: ProcessStatsError.self) { try ProcessStatsSampler.parseCPUTicks(stat: text) }
    }

    @Test("VmRSS is read in kB and converted to bytes")
    func statusParsing() throws {
        let status = "Name:\tbraid-node\nVmPeak:\t  200000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n"
        #expect(try ProcessStatsSampler.parseResidentBytes(status: status) == 12345 * 1024)
    }

    @Test("a missing, malformed or overflowing VmRSS is an error", arguments: [
        "Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tlots kB\n", "VmRSS:\t18446744073709551615 kB\n",
    ])
    func statusMalformed(_ text: String) {
        #expect(throws: ProcessStatsError.self) { try ProcessStatsSampler.parseResidentBytes(status: text) }
    }

    @Test("sampling this process gives plausible figures, and CPU % covers the interval since the last sample")
    func liveSample() throws {
        let sampler = ProcessStatsSampler()
        let first = try sampler.sample()
        #expect(first.cpuPercent == 0)  // no previous sample
        #expect(first.residentMemoryBytes > 1_000_000)
        // Burn a little CPU so the second sample has something to measure.
        var x: UInt64 = 1
        let end = ContinuousClock.now + .milliseconds(50)
        while ContinuousClock.now < end { x = x &* 6364136223846793005 &+ 1442695040888963407 }
        #expect(x != 0)
        let second = try sampler.sample()
        #expect(second.cpuSecondsTotal >= first.cpuSecondsTotal)
        #expect(second.cpuPercent > 0)
    }
}

@Suite("Logging")
struct LoggingTests {
    @Test("the JSON handler writes one parseable object per line with level, message and metadata")
    func jsonLines() throws {
        let lines = NIOLockedValueBox<[String]>([])
        var handler = JSONLogHandler(label: "braid.test") { line in lines.withLockedValue { $0.append(line) } }
        handler.logLevel = .info
        handler[metadataKey: "node_id"] = "n1"
        let logger = Logger(label: "braid.test") { _ in handler }
        logger.debug("not written")
        logger.info("media socket listening", metadata: ["port": "40000", "list": ["a", "b"]])

        let written = lines.withLockedValue { $0 }
        try #require(written.count == 1)
        #expect(written[0].hasSuffix("\n") && written[0].dropLast().contains("\n") == false)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(written[0].utf8)) as? [String: Any]
        )
        #expect(object["level"] as? String == "info")
        #expect(object["label"] as? String == "braid.test")
        #expect(object["message"] as? String == "media socket listening")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["node_id"] as? String == "n1")
        #expect(metadata["port"] as? String == "40000")
        #expect(metadata["list"] as? [String] == ["a", "b"])
        let timestamp = try #require(object["timestamp"] as? String)
        #expect(timestamp.hasSuffix("Z"))
    }
}
