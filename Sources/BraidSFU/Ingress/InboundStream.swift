import BraidRTPStreams
import NIOCore

/// The receive side of one RTP stream of a WebRTC publisher (a simulcast layer, or the only stream) on
/// this hop: its SSRCs, reception statistics for receiver reports, the NACK generator and the keyframe
/// request throttle. What the track itself knows (rate, size, stored packets) is in ``ProducerLayer``.
///
/// Owned by its ``SFUPublisher``. Allocated by this: the NACK generator's missing list (once).
final class InboundStream {
    /// Position in the track's layers.
    let index: Int
    /// The RID, nil without simulcast.
    let rid: String?
    /// The media SSRC, once signalled or learnt from the first packets.
    private(set) var ssrc: UInt32?
    /// The RTX SSRC, once known.
    var rtxSSRC: UInt32?
    /// The uplink's FEC decoder, when the publisher sends Braid's sliding-window repairs for this stream.
    var fec: SlidingWindowFECDecoder?
    /// Packets rebuilt from those repairs.
    var packetsRecoveredByFEC = 0
    /// Repair rounds asked of the publisher and not yet answered (its NACKs then ask only for the deficit).
    var repairRequests = RepairRequests()
    /// With uplink FEC: asks for what a silence of the stream probably hid.
    var silence = SilenceProbe()
    /// Rebuilds lost audio packets from the publisher's RED blocks (an audio track that negotiated RED).
    var redRecovery: REDRecovery?
    var statistics: ReceiveStatistics?
    var nack: NACKGenerator
    var throttle: KeyframeRequestThrottle?
    /// A keyframe was wanted before the SSRC was known: ask as soon as it is.
    var keyframeWanted = false
    /// NACK scratch list, reused by every tick.
    var pendingNACKs = ContiguousArray<UInt16>()

    init(index: Int, rid: String?) {
        self.index = index
        self.rid = rid
        // A publisher's RTCP gives this hop no round-trip time (it sends sender reports, not receiver
        // reports): the NACKs learn it from the retransmissions that answer them, and a retry waits a
        // little past it instead of a fixed 100 ms.
        var nack = NACKGenerator(configuration: .init(retryMargin: .milliseconds(8)))
        nack.learnsRoundTripTime = true
        self.nack = nack
    }

    func bind(ssrc: UInt32, clockRate: UInt32, keyframeInterval: TimeAmount) {
        self.ssrc = ssrc
        self.statistics = ReceiveStatistics(ssrc: ssrc, clockRate: clockRate)
        self.nack.reset()
        self.silence = SilenceProbe()
        self.throttle = KeyframeRequestThrottle(mediaSSRC: ssrc, interval: keyframeInterval)
    }
}
