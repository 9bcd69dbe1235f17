import BraidRTPStreams
import BraidWire
import NIOCore

/// One inbound RTP stream of a producer: a simulcast layer (or the only stream), with its RTX stream.
///
/// Owned by its ``Producer``. Allocated by this: the NACK generator's missing list (once).
final class InboundLayer {
    /// Position in the track's `rids` (0 without simulcast).
    let index: Int
    /// The RID, nil without simulcast.
    let rid: String?
    /// The media SSRC, once signalled or learnt from the first packets.
    private(set) var ssrc: UInt32?
    /// The RTX SSRC, once known.
    var rtxSSRC: UInt32?
    var statistics: ReceiveStatistics?
    var nack: NACKGenerator
    var throttle: KeyframeRequestThrottle?
    /// A keyframe was wanted before the SSRC was known: ask as soon as it is.
    var keyframeWanted = false
    var meter = RateMeter()
    var width: Int?
    var height: Int?
    var retransmissionsReceived = 0
    /// When the last media (not RTX) packet arrived.
    var lastPacketAt: NIODeadline?
    /// NACK scratch list, reused by every tick.
    var pendingNACKs = ContiguousArray<UInt16>()

    init(index: Int, rid: String?) {
        self.index = index
        self.rid = rid
        self.nack = NACKGenerator()
    }

    func bind(ssrc: UInt32, clockRate: UInt32, keyframeInterval: TimeAmount) {
        self.ssrc = ssrc
        self.statistics = ReceiveStatistics(ssrc: ssrc, clockRate: clockRate)
        self.nack.reset()
        self.throttle = KeyframeRequestThrottle(mediaSSRC: ssrc, interval: keyframeInterval)
    }
}

/// A packet received from a publisher, parsed once and handed to every consumer of its track.
///
/// A value of slices of the received buffer (no copy); valid during the ``Producer/receive`` call only.
struct InboundPacket {
    /// The packet as received (its extensions are read by consumers).
    var rtp: RTPPacket
    /// The media SSRC of the layer (also for a packet that arrived on the RTX SSRC).
    var sourceSSRC: UInt32
    /// The media sequence number (RTX: the original sequence number).
    var sequenceNumber: UInt16
    /// The media payload (RTX: without the OSN); RED still wrapped.
    var payload: ByteBuffer
    /// The primary block when the payload is RED.
    var redPrimary: REDPrimaryBlock?
    /// First packet of a keyframe.
    var isKeyframe: Bool
    /// Whether it carries media a subscriber can decode (not padding, not a FEC-only RED packet).
    var isForwardable: Bool
    /// The layer it belongs to.
    var layer: Int
}

/// A published track: its layers and the consumers (subscriber slots) that forward it.
///
/// Owned by its ``SFUPublisher``; the room lists it for slot assignment. Consumers are held strongly here
/// while attached and detach themselves when their subscriber leaves or the track ends.
final class Producer {
    unowned let publisher: SFUPublisher
    let track: PublishedTrackDescription
    let isVP8: Bool
    let layers: [InboundLayer]
    var consumers: [Consumer] = []
    /// Smoothed RFC 6464 level (−dBov, 127 = silence) and when it was last updated.
    var smoothedAudioLevel: Double?
    var lastAudioLevelAt: NIODeadline?
    var malformedPayloads = 0

    init(publisher: SFUPublisher, track: PublishedTrackDescription) {
        self.publisher = publisher
        self.track = track
        self.isVP8 = track.codecName.lowercased() == "vp8"
        if track.rids.isEmpty {
            self.layers = [InboundLayer(index: 0, rid: nil)]
        } else {
            self.layers = track.rids.enumerated().map { InboundLayer(index: $0.offset, rid: $0.element) }
        }
    }

    var kind: MediaKind { self.track.kind }

    /// Layer indexes from the lowest bitrate to the highest. Layers not yet measured rank by their
    /// signalled position (the first rid counts as the lowest), below every measured layer.
    func qualityOrder() -> [Int] {
        self.layers.indices.sorted { a, b in
            let rateA = self.layers[a].meter.bitsPerSecond
            let rateB = self.layers[b].meter.bitsPerSecond
            if (rateA == 0) != (rateB == 0) { return rateA == 0 }
            return rateA == rateB ? a < b : rateA < rateB
        }
    }

    /// Whether `layer` has a measured bitrate and sent media within the last measurement window.
    func isFlowing(_ index: Int, now: NIODeadline) -> Bool {
        let layer = self.layers[index]
        guard layer.meter.bitsPerSecond > 0, let last = layer.lastPacketAt else { return false }
        return now - last < self.publisher.configuration.bitrateWindow
    }

    /// Handles one packet already bound to `layer`.
    func receive(_ rtp: RTPPacket, layer: InboundLayer, isRTX: Bool, now: NIODeadline) {
        guard let sourceSSRC = layer.ssrc else { return }
        var sequenceNumber = rtp.sequenceNumber
        var payload = rtp.payload
        if isRTX {
            // RFC 4588 §4: OSN then the original payload. Chromium sends empty RTX packets as probes.
            guard payload.readableBytes >= 2, let osn = payload.readInteger(as: UInt16.self) else {
                self.publisher.counters.paddingPackets += 1
                return
            }
            sequenceNumber = osn
            layer.retransmissionsReceived += 1
        } else {
            layer.meter.add(bytes: rtp.length, now: now, window: self.publisher.configuration.bitrateWindow)
            layer.lastPacketAt = now
        }
        _ = layer.statistics?.packetReceived(
            sequenceNumber: sequenceNumber, timestamp: rtp.timestamp, now: now, isRetransmission: isRTX)
        if self.track.feedback.nack {
            let outcome = layer.nack.packetReceived(sequenceNumber: sequenceNumber, isRetransmission: isRTX, now: now)
            if outcome == .keyframeNeeded { self.requestKeyframe(layer: layer.index, now: now) }
        }

        var redPrimary: REDPrimaryBlock?
        var isForwardable = payload.readableBytes > 0
        var media = payload
        if isForwardable, let red = self.track.redPayloadType, rtp.payloadType == red {
            guard let block = REDPrimaryBlock(payload) else {
                self.malformedPayloads += 1
                return
            }
            redPrimary = block
            isForwardable = block.payloadType == self.track.payloadType && block.length > 0
            media = payload.getSlice(at: payload.readerIndex + block.offset, length: block.length) ?? ByteBuffer()
        }

        var isKeyframe = false
        if self.track.kind == .video, isForwardable, self.isVP8 {
            guard let vp8 = try? VP8Payload(media) else {
                self.malformedPayloads += 1
                return
            }
            if vp8.isKeyFrame {
                // A repaired old keyframe must not start a layer switch behind the live stream.
                isKeyframe = !isRTX
                if let size = vp8KeyframeDimensions(vp8.data) {
                    layer.width = size.width
                    layer.height = size.height
                }
                if !isRTX {
                    layer.throttle?.keyframeReceived()
                    layer.nack.forgetMissing(before: sequenceNumber)
                }
            }
        } else if self.track.kind == .video, isForwardable {
            isKeyframe = !isRTX  // other codecs: no keyframe detection, switch on any packet.
        }

        if self.track.kind == .audio, let id = self.publisher.extensionMap.audioLevel,
            let level = try? rtp.headerExtension(AudioLevel.self, id: id)
        {
            let sample = Double(level.level)
            let weight = self.publisher.configuration.speakerSmoothing
            self.smoothedAudioLevel = self.smoothedAudioLevel.map { $0 + weight * (sample - $0) } ?? sample
            self.lastAudioLevelAt = now
        }

        let packet = InboundPacket(
            rtp: rtp, sourceSSRC: sourceSSRC, sequenceNumber: sequenceNumber, payload: payload,
            redPrimary: redPrimary, isKeyframe: isKeyframe, isForwardable: isForwardable, layer: layer.index)
        for consumer in self.consumers {
            consumer.forward(packet, now: now)
        }
    }

    /// Asks the publisher for a keyframe on `layer`, through the layer's throttle.
    func requestKeyframe(layer index: Int, now: NIODeadline) {
        guard self.track.kind == .video, self.layers.indices.contains(index) else { return }
        let layer = self.layers[index]
        guard layer.throttle != nil else {
            layer.keyframeWanted = true
            return
        }
        if let request = layer.throttle?.keyframeRequested(now: now) {
            self.publisher.sendKeyframeRequest(layer: layer, request: request)
        }
    }

    /// Keyframe request retries (from the router's tick).
    func retryKeyframeRequests(now: NIODeadline) {
        guard self.track.kind == .video else { return }
        for layer in self.layers {
            if let request = layer.throttle?.retryDue(now: now) {
                self.publisher.sendKeyframeRequest(layer: layer, request: request)
            }
        }
    }

    /// Detaches every consumer (the track ends).
    func detachAll(now: NIODeadline) {
        let consumers = self.consumers
        self.consumers.removeAll()
        for consumer in consumers { consumer.detach() }
    }
}
