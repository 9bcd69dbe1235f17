public import BraidWire
public import NIOCore

/// One RTP packet of a track inside the node, parsed once at ingress and handed to every consumer.
///
/// It keeps the origin's identity: the layer's source SSRC, the origin sequence number and timestamp, as
/// the publisher sent them. Only a consumer's own chain rewrites them (a WebRTC subscriber's), and only
/// in its own copy; a mesh relay or an edge function reads them as they are.
///
/// A value of slices of the received buffer (no copy): valid during the ``TrackSink/deliver(_:from:now:)``
/// call only. A sink that keeps anything copies it.
public struct MediaPacket {
    /// The track it belongs to.
    public var track: TrackID
    /// The simulcast layer (index into the track's layers; 0 without simulcast).
    public var layer: Int
    /// The packet as received on the hop that delivered it. For a packet that arrived as an RTX
    /// retransmission its header is the RTX stream's: use ``sourceSSRC`` and ``sequenceNumber``.
    public var rtp: RTPPacket
    /// Which ids the header extensions of ``rtp`` use (the ingress hop's negotiation).
    public var extensions: RTPHeaderExtensionMap
    /// The media SSRC of the layer at the origin (also for a packet that arrived on an RTX SSRC).
    public var sourceSSRC: UInt32
    /// The origin media sequence number (RTX: the original sequence number).
    public var sequenceNumber: UInt16
    /// The origin payload type (the media or RED type, also for a packet that arrived as RTX).
    public var payloadType: UInt8
    /// The media payload (RTX: without the OSN); RED (RFC 2198) still wrapped.
    public var payload: ByteBuffer
    /// The primary block when the payload is RED.
    public var redPrimary: REDPrimaryBlock?
    /// The first packet of a keyframe. On a retransmission only when it is the layer's live keyframe,
    /// repaired (a repaired old keyframe must not start a layer switch behind the live stream): a consumer
    /// that starts on it needs the rest of the stream replayed (``TrackConsumer/replay(after:layer:now:_:)``).
    public var isKeyframe: Bool
    /// Whether it carries media a receiver can decode (not padding, not a FEC-only RED packet).
    public var isForwardable: Bool
    /// A repair of an earlier packet (RTX from upstream, or a resend from the producer's store).
    public var isRetransmission: Bool

    /// The packet as the origin sent it (see ``OriginForm``).
    var originForm: OriginForm {
        OriginForm(
            rtp: self.rtp, sequenceNumber: self.sequenceNumber, ssrc: self.sourceSSRC, payloadType: self.payloadType,
            payload: self.payload)
    }

    /// The origin RTP timestamp.
    public var timestamp: UInt32 { self.rtp.timestamp }
    /// The RTP marker bit (last packet of a video frame).
    public var marker: Bool { self.rtp.marker }
    /// The payload a receiver decodes: the RED primary block, or the whole payload.
    public var mediaPayload: ByteBuffer {
        guard let block = self.redPrimary else { return self.payload }
        return self.payload.getSlice(at: self.payload.readerIndex + block.offset, length: block.length)
            ?? ByteBuffer()
    }

    /// A packet; sources other than the producer's own parser (tests, relays) fill every field.
    public init(
        track: TrackID, layer: Int, rtp: RTPPacket, extensions: RTPHeaderExtensionMap, sourceSSRC: UInt32,
        sequenceNumber: UInt16, payloadType: UInt8, payload: ByteBuffer, redPrimary: REDPrimaryBlock?,
        isKeyframe: Bool, isForwardable: Bool, isRetransmission: Bool
    ) {
        self.payloadType = payloadType
        self.track = track
        self.layer = layer
        self.rtp = rtp
        self.extensions = extensions
        self.sourceSSRC = sourceSSRC
        self.sequenceNumber = sequenceNumber
        self.payload = payload
        self.redPrimary = redPrimary
        self.isKeyframe = isKeyframe
        self.isForwardable = isForwardable
        self.isRetransmission = isRetransmission
    }
}

/// What an ingress hands its producer for one received RTP packet: the hop-level work is done (SSRC
/// bound to a layer, RTX unwrapped, statistics and NACK state updated); the producer parses the payload
/// (RED, VP8), stores the packet once and fans it out. See ``TrackProducer/ingest(_:now:)``.
public struct IngressPacket {
    /// The packet as received.
    public var rtp: RTPPacket
    /// Which ids its header extensions use.
    public var extensions: RTPHeaderExtensionMap
    /// The layer it was bound to.
    public var layer: Int
    /// The media sequence number (RTX: the OSN).
    public var sequenceNumber: UInt16
    /// The media payload (RTX: after the OSN).
    public var payload: ByteBuffer
    /// It arrived as a retransmission.
    public var isRetransmission: Bool

    /// An ingress packet.
    public init(
        rtp: RTPPacket, extensions: RTPHeaderExtensionMap, layer: Int, sequenceNumber: UInt16, payload: ByteBuffer,
        isRetransmission: Bool
    ) {
        self.rtp = rtp
        self.extensions = extensions
        self.layer = layer
        self.sequenceNumber = sequenceNumber
        self.payload = payload
        self.isRetransmission = isRetransmission
    }
}

/// A set of simulcast layers (indexes 0–31), as a bit mask: what a consumer receives (`[]`: paused).
public struct LayerSet: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// Every layer the track has or will have.
    public static let all = LayerSet(rawValue: .max)
    /// Just `layer`.
    public static func layer(_ layer: Int) -> LayerSet {
        guard (0..<32).contains(layer) else { return [] }
        return LayerSet(rawValue: 1 << UInt32(layer))
    }

    /// Whether `layer` is in the set.
    @inlinable public func contains(layer: Int) -> Bool {
        (0..<32).contains(layer) && self.rawValue & (1 << UInt32(layer)) != 0
    }
}
