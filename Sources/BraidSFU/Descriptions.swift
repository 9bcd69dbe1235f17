import BraidWire
public import NIOCore

/// Where a WebRTC peer's packets leave the core: its session (SRTP protect and send).
///
/// Called on the event loop that owns the ``SFURouter``. `packet` is plain RTP/RTCP and valid only
/// during the call: the router reuses the buffer's storage for the next packet, so the transport copies
/// or protects it and never retains it.
public protocol MediaTransport: AnyObject {
    /// Sends one plain RTP packet (the transport protects it).
    func sendRTP(_ packet: ByteBuffer)
    /// Sends one plain RTCP compound packet (the transport protects it).
    func sendRTCP(_ packet: ByteBuffer)
    /// Whether the transport takes packets now; when false, consumers drop and count (back-pressure).
    var isWritable: Bool { get }
    /// Prefetches what the next ``sendRTP(_:)`` touches, one pointer level further per `stage` (0: the
    /// objects the transport points to), for the producer's fan-out (``CachePrefetch``).
    func prefetch(stage: Int)
}

extension MediaTransport {
    /// Transports without a queue of their own are always writable.
    public var isWritable: Bool { true }
    /// Transports whose state is small or shared prefetch nothing.
    public func prefetch(stage: Int) {}
}

/// The media kind of an m-section.
public enum MediaKind: String, Sendable, Hashable, Codable {
    case audio
    case video
}

/// RFC 8285 extension IDs negotiated with one peer (`a=extmap`); nil means not negotiated.
public struct RTPExtensionIDs: Sendable, Hashable {
    /// `urn:ietf:params:rtp-hdrext:sdes:mid` (RFC 9143).
    public var mid: UInt8?
    /// `urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id` (RFC 8852).
    public var rid: UInt8?
    /// `urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id` (RFC 8852).
    public var repairedRID: UInt8?
    /// `http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time`.
    public var absSendTime: UInt8?
    /// `http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01`.
    public var transportWideSequence: UInt8?
    /// `urn:ietf:params:rtp-hdrext:ssrc-audio-level` (RFC 6464).
    public var audioLevel: UInt8?
    /// `http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time`.
    public var absCaptureTime: UInt8?

    /// IDs as negotiated; omitted ones are not negotiated.
    public init(
        mid: UInt8? = nil, rid: UInt8? = nil, repairedRID: UInt8? = nil, absSendTime: UInt8? = nil,
        transportWideSequence: UInt8? = nil, audioLevel: UInt8? = nil, absCaptureTime: UInt8? = nil
    ) {
        self.mid = mid
        self.rid = rid
        self.repairedRID = repairedRID
        self.absSendTime = absSendTime
        self.transportWideSequence = transportWideSequence
        self.audioLevel = audioLevel
        self.absCaptureTime = absCaptureTime
    }
}

/// RTCP feedback negotiated for one m-section (`a=rtcp-fb`).
public struct RTCPFeedbackSupport: Sendable, Hashable, Codable {
    /// `nack` (RFC 4585 §6.2.1 generic NACK).
    public var nack: Bool
    /// `nack pli` (RFC 4585 §6.3.1).
    public var pli: Bool
    /// `ccm fir` (RFC 5104 §4.3.1).
    public var fir: Bool
    /// `transport-cc` (draft-holmer-rmcat-transport-wide-cc-extensions-01).
    public var transportCC: Bool
    /// `goog-remb` (draft-alvestrand-rmcat-remb).
    public var remb: Bool

    /// Feedback as negotiated; everything off by default.
    public init(nack: Bool = false, pli: Bool = false, fir: Bool = false, transportCC: Bool = false, remb: Bool = false)
    {
        self.nack = nack
        self.pli = pli
        self.fir = fir
        self.transportCC = transportCC
        self.remb = remb
    }
}

/// One published m-section (a WHIP offer; the receive side of the node).
public struct PublishedTrackDescription: Sendable, Hashable, Codable {
    /// The m-section's `a=mid`.
    public var mid: String
    /// Audio or video.
    public var kind: MediaKind
    /// Track id from `a=msid`, for display and active-speaker reports.
    public var trackID: String
    /// Stream id from `a=msid`, for display.
    public var streamID: String
    /// `"opus"` or `"VP8"` (compared case-insensitively).
    public var codecName: String
    /// The publisher's media payload type.
    public var payloadType: UInt8
    /// RTP clock rate (48000 for Opus, 90000 for VP8).
    public var clockRate: UInt32
    /// The publisher's RTX payload type (RFC 4588), if negotiated.
    public var rtxPayloadType: UInt8?
    /// The publisher's RED payload type (RFC 2198), if negotiated.
    public var redPayloadType: UInt8?
    /// Simulcast layers in `a=simulcast` order, lowest quality last as browsers list them or any order:
    /// layers are ranked by measured bitrate, not by position. Empty: one stream.
    public var rids: [String]
    /// Signalled media SSRCs (`a=ssrc`), in `rids` order; may be empty, then streams are learnt from the
    /// mid/rid header extensions of their first packets.
    public var ssrcs: [UInt32]
    /// FID groups: RTX SSRC -> media SSRC.
    public var rtxSSRCs: [UInt32: UInt32]
    /// Braid's sliding-window FEC on the uplink (`x-braid-fec`, a BraidClient publisher): the repair
    /// stream's SSRC (`a=ssrc-group:FEC-FR <media> <repair>`) and payload type. One stream only (no simulcast).
    public var fecSSRC: UInt32?
    public var fecPayloadType: UInt8?
    /// Feedback the publisher accepts.
    public var feedback: RTCPFeedbackSupport

    /// A track description.
    public init(
        mid: String, kind: MediaKind, trackID: String, streamID: String, codecName: String, payloadType: UInt8,
        clockRate: UInt32, rtxPayloadType: UInt8? = nil, redPayloadType: UInt8? = nil, rids: [String] = [],
        ssrcs: [UInt32] = [], rtxSSRCs: [UInt32: UInt32] = [:], fecSSRC: UInt32? = nil, fecPayloadType: UInt8? = nil,
        feedback: RTCPFeedbackSupport = .init()
    ) {
        self.fecSSRC = fecSSRC
        self.fecPayloadType = fecPayloadType
        self.mid = mid
        self.kind = kind
        self.trackID = trackID
        self.streamID = streamID
        self.codecName = codecName
        self.payloadType = payloadType
        self.clockRate = clockRate
        self.rtxPayloadType = rtxPayloadType
        self.redPayloadType = redPayloadType
        self.rids = rids
        self.ssrcs = ssrcs
        self.rtxSSRCs = rtxSSRCs
        self.feedback = feedback
    }
}

/// A publishing peer: its extension IDs and its tracks.
public struct PublisherDescription: Sendable, Hashable {
    /// Extension IDs of the publisher's session (BUNDLE: one set for every m-section).
    public var extensions: RTPExtensionIDs
    /// The published m-sections.
    public var tracks: [PublishedTrackDescription]

    /// A publisher description.
    public init(extensions: RTPExtensionIDs, tracks: [PublishedTrackDescription]) {
        self.extensions = extensions
        self.tracks = tracks
    }
}

/// One m-section of a subscriber (WHEP; the send side of the node): a pre-allocated "slot" that the router
/// fills with a track of the same kind.
public struct SubscriberSlotDescription: Sendable, Hashable {
    /// The slot's `a=mid`, written into every packet sent on it.
    public var mid: String
    /// Audio or video.
    public var kind: MediaKind
    /// The subscriber's media payload type (may differ from the publisher's).
    public var payloadType: UInt8
    /// RTP clock rate.
    public var clockRate: UInt32
    /// The subscriber's RTX payload type; nil: retransmissions are resent on the media SSRC.
    public var rtxPayloadType: UInt8?
    /// The subscriber's RED payload type; nil: RED from the publisher is reduced to its primary block. On a
    /// video slot: the RED that carries ULPFEC (``VideoRepairScheme/ulpfec``); the publisher's video RED is
    /// always reduced to its primary block.
    public var redPayloadType: UInt8?
    /// The media SSRC the node chose and signalled in the answer.
    public var ssrc: UInt32
    /// The RTX SSRC the node chose, if RTX was negotiated.
    public var rtxSSRC: UInt32?
    /// The repair payload type of video FEC, if negotiated.
    public var fecPayloadType: UInt8?
    /// Which FEC that payload type carries.
    public var fecScheme: VideoRepairScheme
    /// The repair SSRC the node chose (`a=ssrc-group:FEC-FR`), if FEC other than ULPFEC was negotiated.
    public var fecSSRC: UInt32?
    /// Feedback the subscriber sends and accepts.
    public var feedback: RTCPFeedbackSupport

    /// A slot description.
    public init(
        mid: String, kind: MediaKind, payloadType: UInt8, clockRate: UInt32, rtxPayloadType: UInt8? = nil,
        redPayloadType: UInt8? = nil, ssrc: UInt32, rtxSSRC: UInt32? = nil, fecPayloadType: UInt8? = nil,
        fecSSRC: UInt32? = nil, fecScheme: VideoRepairScheme = .slidingWindow, feedback: RTCPFeedbackSupport = .init()
    ) {
        self.fecPayloadType = fecPayloadType
        self.fecScheme = fecScheme
        self.fecSSRC = fecSSRC
        self.mid = mid
        self.kind = kind
        self.payloadType = payloadType
        self.clockRate = clockRate
        self.rtxPayloadType = rtxPayloadType
        self.redPayloadType = redPayloadType
        self.ssrc = ssrc
        self.rtxSSRC = rtxSSRC
        self.feedback = feedback
    }
}

/// A subscribing peer: its extension IDs and its slots.
public struct SubscriberDescription: Sendable, Hashable {
    /// Extension IDs of the subscriber's session.
    public var extensions: RTPExtensionIDs
    /// The m-sections offered to the subscriber, in SDP order.
    public var slots: [SubscriberSlotDescription]
    /// The only tracks its slots take (WHEP `?track=`); empty: any track of the room.
    public var tracks: Set<TrackID>

    /// A subscriber description.
    public init(extensions: RTPExtensionIDs, slots: [SubscriberSlotDescription], tracks: Set<TrackID> = []) {
        self.extensions = extensions
        self.slots = slots
        self.tracks = tracks
    }
}

extension RTPHeaderExtensionMap {
    /// The map of a peer's negotiated extension ids.
    init(ids: RTPExtensionIDs) {
        self.init()
        self.mid = ids.mid
        self.rid = ids.rid
        self.repairedRID = ids.repairedRID
        self.absSendTime = ids.absSendTime
        self.transportSequenceNumber = ids.transportWideSequence
        self.audioLevel = ids.audioLevel
        self.absCaptureTime = ids.absCaptureTime
    }
}

/// The video FEC a subscriber negotiated.
public enum VideoRepairScheme: Sendable, Hashable {
    /// Braid's sliding-window Cauchy code (`x-braid-fec`), with repair rounds: receivers built on BraidClient.
    case slidingWindow
    /// FlexFEC draft-03 XOR repairs (`flexfec-03`): browsers that offer it (Chromium).
    case flexFEC
    /// ULPFEC XOR repairs inside RED (`ulpfec` in `red`, RFC 5109 and RFC 2198) on the media SSRC: browsers
    /// that offer no FlexFEC. While repairs are sent every media packet goes out RED-wrapped.
    case ulpfec

    /// The encoding name the dashboard shows.
    public var encodingName: String {
        switch self {
        case .slidingWindow: "x-braid-fec"
        case .flexFEC: "flexfec-03"
        case .ulpfec: "ulpfec"
        }
    }
}
