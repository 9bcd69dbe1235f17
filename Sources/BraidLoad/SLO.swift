/// One service-level objective: a measured figure and the most it may be.
///
/// Written on the command line as `name=limit`, comma-separated:
/// `p95-latency=200ms,residual-loss=1%,freezes=0,join-p95=500ms,failures=0`.
public struct SLO: Hashable, Sendable {
    /// What is measured.
    public enum Metric: String, CaseIterable, Sendable {
        /// Capture-to-receive latency percentiles over every media packet (ms).
        case p50Latency = "p50-latency"
        case p95Latency = "p95-latency"
        case p99Latency = "p99-latency"
        /// Video packets never repaired / expected; for a run without video, audio frames concealed /
        /// expected (after RED).
        case residualLoss = "residual-loss"
        /// Audio packets lost / expected (before RED).
        case audioLoss = "audio-loss"
        /// Audio frames a player with a 200 ms playout deadline conceals (never received, or late) /
        /// frames expected.
        case audioConcealed = "audio-concealed"
        /// Video freezes (W3C freezeCount) summed over every track.
        case freezes
        /// Subscriber join time percentiles (ms).
        case joinP50 = "join-p50"
        case joinP95 = "join-p95"
        /// Peers that failed to join.
        case failures

        var unit: Unit {
            switch self {
            case .p50Latency, .p95Latency, .p99Latency, .joinP50, .joinP95: .milliseconds
            case .residualLoss, .audioLoss, .audioConcealed: .fraction
            case .freezes, .failures: .count
            }
        }

        enum Unit { case milliseconds, fraction, count }
    }

    /// The metric.
    public var metric: Metric
    /// The largest acceptable value (ms, fraction or count).
    public var limit: Double

    /// An objective: `metric` must be at most `limit`.
    public init(metric: Metric, limit: Double) {
        self.metric = metric
        self.limit = limit
    }

    /// Parses a comma-separated list of `name=limit`.
    public static func parseList(_ text: String) throws(LoadArgumentError) -> [SLO] {
        var result: [SLO] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw LoadArgumentError("SLO '\(item)' is not name=limit") }
            let name = String(parts[0]).trimmingSpaces
            let value = String(parts[1])
            guard let metric = Metric(rawValue: name) else {
                let known = Metric.allCases.map(\.rawValue).joined(separator: ", ")
                throw LoadArgumentError("unknown SLO '\(name)' (known: \(known))")
            }
            let limit: Double
            switch metric.unit {
            case .milliseconds:
                let duration = try Quantities.duration(value)
                limit = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
            case .fraction:
                limit = try Quantities.fraction(value)
            case .count:
                guard let count = Int(value.trimmingSpaces), count >= 0 else {
                    throw LoadArgumentError("SLO '\(name)': '\(value)' is not a count")
                }
                limit = Double(count)
            }
            result.removeAll { $0.metric == metric }
            result.append(SLO(metric: metric, limit: limit))
        }
        guard !result.isEmpty else { throw LoadArgumentError("empty SLO list") }
        return result
    }

    /// The report's figure for this metric; nil when nothing was measured.
    public func measured(in report: LoadReport) -> Double? {
        switch self.metric {
        case .p50Latency: report.latency.p50Ms
        case .p95Latency: report.latency.p95Ms
        case .p99Latency: report.latency.p99Ms
        case .residualLoss:
            report.video.packetsExpected > 0 ? report.video.residualLoss : Self.audioConcealed(report)
        case .audioLoss: report.audio.packetsExpected > 0 ? report.audio.loss : nil
        case .audioConcealed: Self.audioConcealed(report)
        case .freezes: Double(report.video.freezeCount)
        case .joinP50: report.subscriberJoin.p50Ms
        case .joinP95: report.subscriberJoin.p95Ms
        case .failures: Double(report.peersFailed)
        }
    }

    private static func audioConcealed(_ report: LoadReport) -> Double? {
        report.audio.framesExpected > 0 ? 1 - report.audio.inTimeRatio : nil
    }

    /// Checks this objective: a figure that could not be measured (no samples) fails it.
    public func evaluate(_ report: LoadReport) -> SLOVerdict {
        let value = self.measured(in: report)
        return SLOVerdict(
            name: self.metric.rawValue, limit: self.limit, measured: value, passed: value.map { $0 <= self.limit } ?? false)
    }
}

/// The outcome of one objective.
public struct SLOVerdict: Codable, Hashable, Sendable {
    /// The metric's command-line name.
    public var name: String
    /// The limit (ms, fraction or count).
    public var limit: Double
    /// The measured value; nil when nothing was measured, which fails the objective.
    public var measured: Double?
    /// `measured <= limit`.
    public var passed: Bool

    /// A verdict.
    public init(name: String, limit: Double, measured: Double?, passed: Bool) {
        self.name = name
        self.limit = limit
        self.measured = measured
        self.passed = passed
    }
}
