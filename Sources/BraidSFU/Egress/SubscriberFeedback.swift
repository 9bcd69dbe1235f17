import BraidRTPStreams
import BraidCongestion
import BraidWire
public import NIOCore

// The RTCP a subscriber sends: NACKs (answered from the producers' stores), PLI/FIR (forwarded
// upstream, throttled there), receiver reports (loss, RTT), transport-wide feedback and REMB (the
// bandwidth estimate).

extension SFUSubscriber {
    // MARK: - RTCP from the subscriber

    /// Handles one plain RTCP compound packet from the subscriber: NACK, PLI, FIR, RR, transport-wide
    /// feedback and REMB. Malformed packets are counted and dropped.
    public func receiveRTCP(_ compound: ByteBuffer, now: NIODeadline) {
        self.lastActivity = now
        guard let packets = try? RTCPCompoundPacket(compound) else {
            self.counters.malformedRTCP += 1
            return
        }
        for packet in packets {
            switch packet {
            case .genericNACK(let nack):
                guard let slot = self.slotsBySSRC[nack.mediaSSRC], slot.slot.ssrc == nack.mediaSSRC
                else { continue }
                self.counters.nacksReceived += 1
                self.answerWithRepairRound(nack.lostSequenceNumbers, slot: slot, now: now) { sequenceNumber in
                    if self.retransmit(sequenceNumber, slot: slot, now: now) { self.counters.retransmissions += 1 }
                }
            case .pictureLossIndication(let pli):
                guard let slot = self.slotsBySSRC[pli.mediaSSRC] else { continue }
                self.counters.keyframeRequestsReceived += 1
                slot.keyframeRequested(now: now)
            case .fullIntraRequest(let fir):
                for entry in fir.entries {
                    guard let slot = self.slotsBySSRC[entry.ssrc] else { continue }
                    self.counters.keyframeRequestsReceived += 1
                    slot.keyframeRequested(now: now)
                }
            case .receiverReport(let report):
                self.reportBlocksReceived(report.reportBlocks, now: now)
            case .senderReport(let report):
                self.reportBlocksReceived(report.reportBlocks, now: now)
            case .transportWideFeedback(let feedback):
                self.transportFeedbackReceived(feedback, now: now)
            case .receiverEstimatedMaximumBitrate(let remb):
                let bitrate = Int(clamping: remb.bitrate)
                self.rembBitrate = bitrate
                self.estimator.onREMB(bitrate: bitrate)
            case .malformed:
                self.counters.malformedRTCP += 1
            default:
                break
            }
        }
    }

    /// RTT from LSR/DLSR ([RFC 3550 §6.4.1](https://www.rfc-editor.org/rfc/rfc3550#section-6.4.1)):
    /// RTT = A − LSR − DLSR in 1/65536 s, where A is the middle 32 bits of the NTP time now.
    private func reportBlocksReceived(_ blocks: RTCPReportBlocks, now: NIODeadline) {
        for block in blocks {
            guard let slot = self.slotsBySSRC[block.ssrc], slot.slot.ssrc == block.ssrc else { continue }
            slot.fractionLost = block.fractionLost
            slot.hasReceiverReport = true
            slot.cumulativeLost = block.cumulativeLost
            guard block.lastSenderReport != 0 else { continue }
            let arrival = UInt32(truncatingIfNeeded: self.wallClock.ntpTimestamp(at: now) >> 16)
            let rtt = arrival &- block.lastSenderReport &- block.delaySinceLastSenderReport
            // A "negative" RTT (clock rounding, or a bogus report) wraps to a huge value: ignore it.
            guard rtt < 65_536 * 10 else { continue }
            let nanoseconds = Int64(rtt) * 1_000_000_000 / 65_536
            self.roundTripTime = .nanoseconds(nanoseconds)
            self.estimator.onRTT(nanoseconds / 1000)
            // A NACK repeated one (jittery) round trip later is a packet lost again, not a duplicate
            // request: three quarters of the RTT tells them apart.
            for slot in self.slots {
                slot.minimumResendInterval = .nanoseconds(max(nanoseconds * 3 / 4, 10_000_000))
            }
        }
    }

    /// Turns transport-wide feedback into packet results for the bandwidth estimator.
    private func transportFeedbackReceived(_ feedback: RTCPTransportWideFeedback, now: NIODeadline) {
        self.counters.transportFeedbackReceived += 1
        let scratch = self.scratch
        self.sequencer.results(for: feedback, into: &scratch.feedbackResults)
        self.lastFeedbackResultCount = scratch.feedbackResults.count
        guard !scratch.feedbackResults.isEmpty else { return }
        var lost = 0
        for result in scratch.feedbackResults {
            let missing = result.arrivalTimeUs == nil
            if missing { lost += 1 }
            self.transportBursts.add(sequence: result.sequenceNumber, lost: missing)
        }
        self.transportLoss.add(lost: lost, of: scratch.feedbackResults.count)
        self.transportPacketsMeasured += scratch.feedbackResults.count
        self.estimator.onFeedback(results: scratch.feedbackResults, now: now.microseconds)
    }

}

