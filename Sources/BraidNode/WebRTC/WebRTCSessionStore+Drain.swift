import BraidSDP
import BraidSFU
import BraidTransport
import BraidWire
import NIOCore

extension WebRTCSessionStore {
    /// The reason carried in the drain's RTCP BYE.
    static let drainGoodbyeReason = "node draining"

    /// Tells every peer of this loop that the node is leaving: an SRTCP compound of an empty receiver
    /// report and a BYE (RFC 3550 §6.6) for every SSRC the node uses toward the peer (its RTCP sender SSRC
    /// and, for a WHEP session, the media and RTX SSRCs of its slots), then a DTLS close_notify alert
    /// (RFC 5246 §7.2.1). Sessions stay in the table — media keeps flowing while the peer moves — until the
    /// peer ends them (`DELETE`), consent expires, or the node stops.
    ///
    /// - Returns: how many peers were told (sessions whose DTLS had connected).
    @discardableResult
    func sayGoodbye() -> Int {
        var told = 0
        for session in self.allSessions {
            guard session.secure.isKeyed else { continue }
            if let compound = self.goodbyeCompound(for: session) {
                self.output.send(compound, isRTCP: true, with: session.secure)
            }
            session.secure.closeDTLS { datagram, address in self.output.write(datagram, to: address) }
            told += 1
        }
        self.output.flush()
        return told
    }

    /// Sessions whose DTLS connected (told or to be told goodbye): the ones a drain waits for. A session
    /// that never completed its handshake carries no call; it goes when the node stops.
    var connectedSessionCount: Int { self.allSessions.count(where: { $0.secure.isKeyed }) }

    /// RR (no report blocks) + BYE for the node's SSRCs toward `session`, with a reason.
    private func goodbyeCompound(for session: WebRTCSession) -> ByteBuffer? {
        var ssrcs: [UInt32] = []
        let sender = session.publisher?.rtcpSSRC ?? session.subscriber?.rtcpSSRC
        if let sender { ssrcs.append(sender) }
        for section in session.negotiated.sections {
            guard let local = section.localSender else { continue }
            ssrcs.append(local.ssrc)
            if let rtx = local.rtxSSRC { ssrcs.append(rtx) }
        }
        guard !ssrcs.isEmpty else { return nil }
        let chunks = stride(from: 0, to: ssrcs.count, by: 31).map { Array(ssrcs[$0..<min($0 + 31, ssrcs.count)]) }
        let capacity = 8 + chunks.count * (4 + 31 * 4 + 4 + 256)
        var builder = RTCPCompoundBuilder(buffer: self.channel.allocator.buffer(capacity: capacity))
        do {
            try builder.appendReceiverReport(senderSSRC: sender ?? ssrcs[0], reportBlocks: [RTCPReportBlock]())
            for chunk in chunks {
                try builder.append { (buffer: inout ByteBuffer) throws(WireError) in
                    try RTCPGoodbye.write(ssrcs: chunk, reason: Array(Self.drainGoodbyeReason.utf8), into: &buffer)
                }
            }
        } catch {
            return nil
        }
        return builder.finish()
    }
}
