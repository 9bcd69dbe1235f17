import Foundation

extension LoadReport {
    /// The human-readable summary printed at the end of a run.
    public func table() -> String {
        func ms(_ value: Double?) -> String { value.map { String(format: "%.0f ms", $0) } ?? "-" }
        func percent(_ value: Double) -> String { String(format: "%.2f %%", value * 100) }
        var lines: [String] = []
        func row(_ name: String, _ value: String) {
            lines.append(name.padding(toLength: 34, withPad: " ", startingAt: 0) + value)
        }
        lines.append("braid-load \(self.scenario): \(String(format: "%.1f", self.wallSeconds)) s")
        row("peers joined / planned", "\(self.peersJoined) / \(self.peersPlanned)")
        for (cause, count) in self.failures.sorted(by: { $0.key < $1.key }) {
            row("  failed: \(cause)", "\(count)  (\(self.failureMessages[cause]?.first ?? ""))")
        }
        let remoteTracks = self.peers.filter { $0.participant != nil }.compactMap(\.remoteTracks)
        if let fewest = remoteTracks.min(), let most = remoteTracks.max() {
            row("remote tracks per participant", "\(fewest) to \(most)")
        }
        if let video = self.parameters["video"] {
            let encoded = self.parameters["videoEncodedKbps"].map { " (encoded: \($0) kbit/s)" } ?? ""
            row("publisher video", video + encoded)
        }
        row("join p50 / p95 (subscribers)", "\(ms(self.subscriberJoin.p50Ms)) / \(ms(self.subscriberJoin.p95Ms))")
        row("latency p50 / p95 / p99", "\(ms(self.latency.p50Ms)) / \(ms(self.latency.p95Ms)) / \(ms(self.latency.p99Ms))")
        if self.video.packetsExpected > 0 {
            row("video latency p50 / p95", "\(ms(self.video.latency.p50Ms)) / \(ms(self.video.latency.p95Ms))")
            row("video loss before / after repair",
                "\(percent(self.video.lossBeforeRecovery)) / \(percent(self.video.residualLoss))")
            row("NACKs sent / retransmissions recv", "\(self.nacksSent) / \(self.video.retransmissionsReceived)")
            if self.video.silenceProbesSent > 0 {
                row("  of the NACKs: silence probes", "\(self.video.silenceProbesSent)")
            }
            if self.publisherRepairsSent > 0 {
                row("uplink: NACKs / RTX / FEC (rounds)",
                    "\(self.publisherNacksReceived) / \(self.publisherRetransmissionsSent) / \(self.publisherRepairsSent) (\(self.publisherRepairRounds))")
            }
            if self.video.repairPacketsReceived > 0 {
                row("FEC repairs recv / packets rebuilt",
                    "\(self.video.repairPacketsReceived) / \(self.video.packetsRecoveredByFEC)")
            }
            row("video bytes recv / media bytes", String(format: "%.2fx", self.video.bitrateOverhead))
            if self.lightSubscribers < self.peers.filter({ $0.role == "subscriber" && $0.failure == nil }).count {
                row("video frames complete / lost", "\(self.video.framesComplete) / \(self.video.framesLost)")
                row("frames decodable within 250 ms", percent(self.video.framesInTimeRatio))
                row("freezes (count, total)",
                    "\(self.video.freezeCount), \(String(format: "%.2f s", self.video.totalFreezesSeconds))")
                row("freezes at 250 ms playout",
                    "\(self.video.playoutFreezeCount), \(String(format: "%.2f s", self.video.totalPlayoutFreezesSeconds))")
            } else {
                row("video frames, freezes", "not measured (light subscribers)")
            }
        }

        if self.audio.packetsExpected > 0 {
            row("audio latency p50 / p95", "\(ms(self.audio.latency.p50Ms)) / \(ms(self.audio.latency.p95Ms))")
            row("audio packet loss (concealed)", "\(percent(self.audio.loss)) (\(self.audio.framesConcealed))")
            row("audio in time 200ms / late / RED",
                "\(percent(self.audio.inTimeRatio)) / \(self.audio.framesLate) / \(self.audio.framesFromRedundancy)")
            if self.audio.packetsRecoveredByNACK + self.audio.packetsPastDeadline > 0 {
                row("audio NACK resent / too late",
                    "\(self.audio.packetsRecoveredByNACK) / \(self.audio.packetsPastDeadline)")
            }
        }
        if self.lightSubscribers > 0 {
            row("light subscribers", "\(self.lightSubscribers)")
            row("  packets authenticated / failed", "\(self.lightPacketsAuthenticated) / \(self.lightAuthenticationFailures)")
        }
        if self.sharedSockets > 0 {
            row("shared sockets / unrouted", "\(self.sharedSockets) / \(self.unroutedDatagrams)")
        }
        if let gap = self.longestGapMs { row("longest media gap (subscriber)", String(format: "%.2f s", gap / 1000)) }
        if let publisherNode = self.parameters["publisherNode"] { row("publisher node", publisherNode) }
        if self.perNode.count > 1 || self.parameters["publisherNode"] != nil {
            for node in self.perNode {
                let gap = node.longestGapMs.map { String(format: ", gap %.2f s", $0 / 1000) } ?? ""
                row("  \(node.node)",
                    "p50 / p95 \(ms(node.latency.p50Ms)) / \(ms(node.latency.p95Ms)), "
                        + "\(node.subscribersJoined)/\(node.subscribersPlanned) subscribers\(gap)")
            }
        }
        if let function = self.function {
            row("\(function.kind) delay p50 / p95", "\(ms(function.delayP50Ms)) / \(ms(function.delayP95Ms))")
            row("\(function.kind) out, CPU, drops",
                String(format: "%.1f/s, %.1f %% of a core, %d", function.framesOutPerSecond, function.cpuPercent, function.drops))
        }
        row("packets sent / received", "\(self.packetsSent) / \(self.packetsReceived)")
        if self.downlinkDroppedByLoss + self.downlinkDroppedByQueue + self.uplinkDroppedByLoss
            + self.uplinkDroppedByQueue > 0
        {
            row("simulated drops up / down",
                "\(self.uplinkDroppedByLoss + self.uplinkDroppedByQueue) / "
                    + "\(self.downlinkDroppedByLoss + self.downlinkDroppedByQueue)")
        }
        let perPeer = self.peersJoined > 0 ? self.processCPUSeconds / Double(self.peersJoined) : 0
        row("generator CPU (total, per peer)",
            String(format: "%.1f s, %.3f s", self.processCPUSeconds, perPeer))
        row("generator peak RSS", String(format: "%.0f MiB", self.processMaxResidentMB))
        if let perPacket = self.cpuMicrosecondsPerPacketReceived, let rate = self.windowPacketsReceivedPerSecond,
            let cpu = self.windowCPUPercent
        {
            row("generator in the window", String(format: "%.0f pkt/s in, %.0f %% of a core, %.2f µs per packet", rate, cpu, perPacket))
        }
        if let perPeer = self.residentKBPerPeer { row("generator memory per peer", String(format: "%.0f KiB", perPeer)) }
        for verdict in self.slo {
            let measured = verdict.measured.map { String(format: "%.4g", $0) } ?? "not measured"
            row("SLO \(verdict.name) <= \(String(format: "%.4g", verdict.limit))",
                "\(measured)  \(verdict.passed ? "ok" : "VIOLATED")")
        }
        return lines.joined(separator: "\n")
    }
}

extension LoadProgress {
    /// One status line: peers up, packets per second in and out, loss, p95 latency.
    public var line: String {
        String(
            format: "peers %d up %d failed | in %.0f pkt/s out %.0f pkt/s | loss %.2f %% | p95 ",
            self.peersUp, self.peersFailed, self.packetsInPerSecond, self.packetsOutPerSecond,
            self.lossBeforeRecovery * 100) + (self.latencyP95Ms.map { String(format: "%.0f ms", $0) } ?? "-")
    }
}
