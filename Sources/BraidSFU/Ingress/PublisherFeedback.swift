import BraidRTPStreams
import BraidWire
public import NIOCore

// The publisher's RTCP: what it sends us (sender reports) and what this hop sends it back — NACKs for
// losses, keyframe requests, receiver reports (1 s) and transport-wide feedback (100 ms).

extension SFUPublisher {
    /// Handles one plain RTCP compound packet from the publisher (sender reports; the rest is ignored).
    public func receiveRTCP(_ compound: ByteBuffer, now: NIODeadline) {
        guard let packets = try? RTCPCompoundPacket(compound) else {
            self.counters.malformedRTCP += 1
            return
        }
        for packet in packets {
            switch packet {
            case .senderReport(let report):
                if let stream = self.mediaStream(ssrc: report.senderSSRC) {
                    stream.statistics?.senderReportReceived(ntpTimestamp: report.ntpTimestamp, now: now)
                }
            case .malformed:
                self.counters.malformedRTCP += 1
            default:
                break
            }
        }
    }

    /// The media (not RTX) stream with `ssrc`.
    private func mediaStream(ssrc: UInt32) -> InboundStream? {
        for streams in self.streams {
            for stream in streams where stream.ssrc == ssrc { return stream }
        }
        return nil
    }

    /// Sends a PLI (when negotiated) or else a FIR for `stream`.
    func sendKeyframeRequest(
        producer: TrackProducer, stream: InboundStream, request: KeyframeRequestThrottle.Request
    ) {
        guard let throttle = stream.throttle else { return }
        self.rtcpScratch.clear()
        do {
            if producer.track.feedback.pli {
                try throttle.writePLI(senderSSRC: self.rtcpSSRC, into: &self.rtcpScratch)
            } else if producer.track.feedback.fir {
                try throttle.writeFIR(request, senderSSRC: self.rtcpSSRC, into: &self.rtcpScratch)
            } else {
                return
            }
        } catch {
            return
        }
        self.counters.keyframeRequestsSent += 1
        self.transport.sendRTCP(self.rtcpScratch)
    }

    /// Asks a publisher whose lossy uplink fell silent for what the silence probably hid (``SilenceProbe``,
    /// as BraidClient subscribers ask the node): a NACK for the numbers after the newest packet seen, which
    /// the publisher answers with a repair round over those it has sent. Only while the stream's uplink FEC
    /// is active: on a clean uplink a silence is a pause.
    private func probeSilence(_ stream: InboundStream, ssrc: UInt32, now: NIODeadline) {
        guard stream.fec?.isActive == true, let newest = stream.nack.newestSequence,
            stream.silence.probe(after: newest, now: now, answerTime: stream.nack.answerTime, into: &stream.pendingNACKs),
            self.sendNACK(stream, ssrc: ssrc)
        else { return }
        self.counters.silenceProbesSent += 1
        stream.repairRequests.asked(stream.pendingNACKs, at: now)
    }

    /// Sends a generic NACK (RFC 4585 §6.2.1) for `stream`'s ``InboundStream/pendingNACKs``; false if it
    /// could not be written.
    private func sendNACK(_ stream: InboundStream, ssrc: UInt32) -> Bool {
        self.rtcpScratch.clear()
        guard (try? NACKGenerator.writeNACK(
            senderSSRC: self.rtcpSSRC, mediaSSRC: ssrc, sequenceNumbers: stream.pendingNACKs, into: &self.rtcpScratch))
            != nil
        else { return false }
        self.counters.nacksSent += 1
        self.transport.sendRTCP(self.rtcpScratch)
        return true
    }

    /// Periodic work: keyframe retries, NACKs, receiver reports, transport-wide feedback.
    func tick(now: NIODeadline) {
        self.inbound.roll(now: now, window: self.configuration.bitrateWindow)
        for (index, producer) in self.producers.enumerated() {
            for stream in self.streams[index] {
                if producer.kind == .video, let request = stream.throttle?.retryDue(now: now) {
                    self.sendKeyframeRequest(producer: producer, stream: stream, request: request)
                }
                guard producer.track.feedback.nack, let ssrc = stream.ssrc else { continue }
                self.probeSilence(stream, ssrc: ssrc, now: now)
                // With uplink FEC, only the deficit: the missing packets the repair equations in hand cannot
                // rebuild, less what an earlier round is still bringing. The publisher answers with a round
                // of repairs over the span from the oldest packet named (BraidClient's UplinkFEC).
                let fecActive = stream.fec?.isActive == true
                let deficit =
                    fecActive ? stream.nack.deficit(equations: stream.fec!, requests: &stream.repairRequests, now: now) : .max
                stream.nack.pending(now: now, limit: deficit, into: &stream.pendingNACKs)
                guard !stream.pendingNACKs.isEmpty, self.sendNACK(stream, ssrc: ssrc) else { continue }
                if fecActive { stream.repairRequests.asked(stream.pendingNACKs, at: now) }
            }
        }
        if self.lastReceiverReportAt.map({ now - $0 >= self.configuration.receiverReportInterval }) ?? true {
            self.lastReceiverReportAt = now
            self.sendReceiverReports(now: now)
        }
        if self.wantsTransportFeedback,
            self.lastTransportFeedbackAt.map({ now - $0 >= self.configuration.transportFeedbackInterval }) ?? true
        {
            self.lastTransportFeedbackAt = now
            self.sendTransportFeedback()
        }
    }

    /// RR with one block per media SSRC received (RFC 3550 §6.4.2), 31 blocks per packet at most.
    private func sendReceiverReports(now: NIODeadline) {
        self.reportBlocks.removeAll(keepingCapacity: true)
        for streams in self.streams {
            for stream in streams {
                guard var statistics = stream.statistics, statistics.packetsReceived > 0 else { continue }
                self.reportBlocks.append(statistics.makeReportBlock(now: now))
                stream.statistics = statistics
                if self.reportBlocks.count == 31 { self.flushReceiverReport() }
            }
        }
        if !self.reportBlocks.isEmpty { self.flushReceiverReport() }
    }

    private func flushReceiverReport() {
        self.rtcpScratch.clear()
        do {
            try RTCPReceiverReport.write(
                senderSSRC: self.rtcpSSRC, reportBlocks: self.reportBlocks, into: &self.rtcpScratch)
            try RTCPSourceDescription.writeCNAME(ssrc: self.rtcpSSRC, cname: SFURouter.cname, into: &self.rtcpScratch)
            self.counters.receiverReportsSent += 1
            self.transport.sendRTCP(self.rtcpScratch)
        } catch {
            // Cannot happen with 31 blocks in a 1500-byte buffer; nothing is sent if it does.
        }
        self.reportBlocks.removeAll(keepingCapacity: true)
    }

    /// Transport-wide feedback for every packet recorded since the last one
    /// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1).
    private func sendTransportFeedback() {
        let mediaSSRC = self.streams.lazy.flatMap { $0 }.compactMap(\.ssrc).first ?? 0
        self.transportFeedback.flush(
            senderSSRC: self.rtcpSSRC, mediaSSRC: mediaSSRC, scratch: &self.rtcpScratch
        ) { packet in
            self.counters.transportFeedbackSent += 1
            self.transport.sendRTCP(packet)
        }
    }
}
