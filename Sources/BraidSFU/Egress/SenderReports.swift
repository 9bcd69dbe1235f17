import BraidRTPStreams
import BraidWire
import NIOCore

extension SFUSubscriber {
    /// One SR per consumer SSRC that sent media, every 1 s (video) / 2 s (audio)
    /// ([RFC 3550 §6.4.1](https://www.rfc-editor.org/rfc/rfc3550#section-6.4.1)): NTP time now, the RTP
    /// timestamp extrapolated from the last packet sent to now (as mediasoup does), packet and octet counts.
    func sendSenderReports(now: NIODeadline) {
        for slot in self.slots where slot.packetsSent > 0 {
            let interval =
                slot.kind == .video
                ? self.configuration.videoSenderReportInterval : self.configuration.audioSenderReportInterval
            if let last = slot.lastSenderReportAt, now - last < interval { continue }
            guard let lastTimestamp = slot.rewriter.lastSentTimestamp,
                let lastTime = slot.rewriter.lastSentTime
            else { continue }
            slot.lastSenderReportAt = now
            let elapsed = max(0, (now - lastTime).nanoseconds)
            let ticks = elapsed / 1_000_000 * Int64(slot.slot.clockRate) / 1000
            let rtpTimestamp = lastTimestamp &+ UInt32(truncatingIfNeeded: ticks)
            // SR + SDES CNAME: the compound RFC 3550 §6.1 requires, written straight into the scratch buffer.
            self.scratch.rtcp.clear()
            do {
                try RTCPSenderReport.write(
                    senderSSRC: slot.slot.ssrc, ntpTimestamp: self.wallClock.ntpTimestamp(at: now),
                    rtpTimestamp: rtpTimestamp, packetCount: UInt32(truncatingIfNeeded: slot.packetsSent),
                    octetCount: UInt32(truncatingIfNeeded: slot.payloadOctetsSent),
                    reportBlocks: EmptyCollection(), into: &self.scratch.rtcp)
                try RTCPSourceDescription.writeCNAME(
                    ssrc: slot.slot.ssrc, cname: SFURouter.cname, into: &self.scratch.rtcp)
            } catch {
                continue
            }
            self.transport.sendRTCP(self.scratch.rtcp)
        }
    }

}
