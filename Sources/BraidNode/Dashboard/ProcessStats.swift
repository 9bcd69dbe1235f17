#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import NIOConcurrencyHelpers

/// CPU and memory of this process, read from procfs (Linux).
public struct ProcessUsage: Sendable, Equatable {
    /// User plus system CPU time since the process started, in seconds.
    public var cpuSecondsTotal: Double
    /// CPU use since the previous sample, in percent of one core (200 means two cores busy).
    public var cpuPercent: Double
    /// Resident set size (`VmRSS`), in bytes.
    public var residentMemoryBytes: UInt64

    public init(cpuSecondsTotal: Double, cpuPercent: Double, residentMemoryBytes: UInt64) {
        self.cpuSecondsTotal = cpuSecondsTotal
        self.cpuPercent = cpuPercent
        self.residentMemoryBytes = residentMemoryBytes
    }
}

/// Why a procfs file could not be read or understood.
public struct ProcessStatsError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Samples ``ProcessUsage``; the CPU percentage covers the interval since the previous sample.
public final class ProcessStatsSampler: Sendable {
    private struct Sample {
        var monotonicNanoseconds: UInt64
        var cpuSeconds: Double
    }

    private let previous: NIOLockedValueBox<Sample?> = NIOLockedValueBox(nil)

    public init() {}

    /// Reads `/proc/self/stat` and `/proc/self/status`.
    public func sample() throws(ProcessStatsError) -> ProcessUsage {
        let stat = try Self.read("/proc/self/stat")
        let status = try Self.read("/proc/self/status")
        let ticksPerSecond = Double(max(sysconf(Int32(_SC_CLK_TCK)), 1))
        let cpuSeconds = try Self.parseCPUTicks(stat: stat).map { Double($0) / ticksPerSecond }
            .reduce(0, +)
        let rss = try Self.parseResidentBytes(status: status)
        let now = Self.monotonicNanoseconds()
        let percent: Double = self.previous.withLockedValue { previous in
            defer { previous = Sample(monotonicNanoseconds: now, cpuSeconds: cpuSeconds) }
            guard let last = previous, now > last.monotonicNanoseconds else { return 0 }
            let wall = Double(now - last.monotonicNanoseconds) / 1e9
            return max(0, (cpuSeconds - last.cpuSeconds) / wall * 100)
        }
        return ProcessUsage(cpuSecondsTotal: cpuSeconds, cpuPercent: percent, residentMemoryBytes: rss)
    }

    /// `utime` and `stime` (fields 14 and 15, in clock ticks) from the text of `/proc/<pid>/stat`.
    ///
    /// Field 2 (`comm`) is in parentheses and may itself contain spaces and parentheses, so fields are
    /// counted from the last `)` (proc(5)).
    static func parseCPUTicks(stat: String) throws(ProcessStatsError) -> [UInt64] {
        guard let close = stat.lastIndex(of: ")") else { throw ProcessStatsError("/proc/self/stat: no ')'") }
        let fields = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // After ")": field 3 (state) is fields[0], so field 14 (utime) is fields[11].
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else {
            throw ProcessStatsError("/proc/self/stat: utime/stime missing or not numbers")
        }
        return [user, system]
    }

    /// `VmRSS` in bytes from the text of `/proc/<pid>/status` (`VmRSS:   12345 kB`).
    static func parseResidentBytes(status: String) throws(ProcessStatsError) -> UInt64 {
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let parts = line.dropFirst("VmRSS:".count).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count == 2, parts[1] == "kB", let kibibytes = UInt64(parts[0]) else { break }
            let (bytes, overflow) = kibibytes.multipliedReportingOverflow(by: 1024)
            guard !overflow else { break }
            return bytes
        }
        throw ProcessStatsError("/proc/self/status: no valid VmRSS line")
    }

    /// Reads a procfs file completely (procfs reports size 0, so read until end of file).
    private static func read(_ path: String) throws(ProcessStatsError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ProcessStatsError("\(path): open failed (errno \(errno))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        // procfs files are small; the cap only guards against a file that never ends.
        while bytes.count < 1 << 20 {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ProcessStatsError("\(path): read failed (errno \(errno))")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func monotonicNanoseconds() -> UInt64 {
        // CLOCK_MONOTONIC on Linux.
        DispatchTime.now().uptimeNanoseconds
    }
}
