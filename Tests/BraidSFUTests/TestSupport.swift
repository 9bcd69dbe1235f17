@testable import BraidSFU
import BraidWire
import NIOCore

/// A point on the injected clock, in milliseconds from an arbitrary origin.
func at(_ milliseconds: Int64) -> NIODeadline {
    .uptimeNanoseconds(UInt64(1_000_000_000 + milliseconds * 1_000_000))
}

/// 2023-11-14T22:13:20Z at `at(0)`.
let testWallClock = WallClock(referenceDeadline: at(0), referenceUnixNanoseconds: 1_700_000_000_000_000_000)

/// A transport that keeps a copy of everything sent (the router reuses its buffers).
final class RecordingTransport: MediaTransport {
    var rtp: [ByteBuffer] = []
    var rtcp: [ByteBuffer] = []

    func sendRTP(_ packet: ByteBuffer) { self.rtp.append(ByteBuffer(bytes: Array(packet.readableBytesView))) }
    func sendRTCP(_ packet: ByteBuffer) { self.rtcp.append(ByteBuffer(bytes: Array(packet.readableBytesView))) }

    var rtpPackets: [RTPPacket] { self.rtp.map { try! RTPPacket($0) } }
    var rtcpPackets: [RTCPPacket] { self.rtcp.flatMap { Array(try! RTCPCompoundPacket($0)) } }

    var plis: [RTCPPictureLossIndication] {
        self.rtcpPackets.compactMap { if case .pictureLossIndication(let p) = $0 { p } else { nil } }
    }
    var firs: [RTCPFullIntraRequest] {
        self.rtcpPackets.compactMap { if case .fullIntraRequest(let p) = $0 { p } else { nil } }
    }
    var nacks: [RTCPGenericNACK] {
        self.rtcpPackets.compactMap { if case .genericNACK(let p) = $0 { p } else { nil } }
    }
    var senderReports: [RTCPSenderReport] {
        self.rtcpPackets.compactMap { if case .senderReport(let p) = $0 { p } else { nil } }
    }
    var receiverReports: [RTCPReceiverReport] {
        self.rtcpPackets.compactMap { if case .receiverReport(let p) = $0 { p } else { nil } }
    }
    var transportFeedback: [RTCPTransportWideFeedback] {
        self.rtcpPackets.compactMap { if case .transportWideFeedback(let p) = $0 { p } else { nil } }
    }

    func reset() {
        self.rtp.removeAll()
        self.rtcp.removeAll()
    }
}

/// Publisher-side extension IDs (as a browser might pick them).
let publisherIDs = RTPExtensionIDs(
    mid: 1, rid: 2, repairedRID: 3, absSendTime: 4, transportWideSequence: 5, audioLevel: 6, absCaptureTime: 7)
/// Subscriber-side extension IDs: all different, so a forgotten rewrite shows.
let subscriberIDs = RTPExtensionIDs(
    mid: 9, rid: 8, repairedRID: 14, absSendTime: 10, transportWideSequence: 11, audioLevel: 12, absCaptureTime: 13)

let allFeedback = RTCPFeedbackSupport(nack: true, pli: true, fir: true, transportCC: true, remb: true)

func videoTrack(
    mid: String = "0", trackID: String = "cam", rids: [String] = ["l", "m", "h"]
) -> PublishedTrackDescription {
    PublishedTrackDescription(
        mid: mid, kind: .video, trackID: trackID, streamID: "s", codecName: "VP8", payloadType: 96,
        clockRate: 90000, rtxPayloadType: 97, redPayloadType: nil, rids: rids, feedback: allFeedback)
}

func audioTrack(mid: String = "1", trackID: String = "mic", red: UInt8? = nil) -> PublishedTrackDescription {
    PublishedTrackDescription(
        mid: mid, kind: .audio, trackID: trackID, streamID: "s", codecName: "opus", payloadType: 111,
        clockRate: 48000, redPayloadType: red, feedback: RTCPFeedbackSupport(transportCC: true))
}

func videoSlot(
    mid: String = "v0", ssrc: UInt32 = 0xAAAA_0001, rtxSSRC: UInt32? = 0xAAAA_0002
) -> SubscriberSlotDescription {
    SubscriberSlotDescription(
        mid: mid, kind: .video, payloadType: 100, clockRate: 90000, rtxPayloadType: rtxSSRC == nil ? nil : 101,
        ssrc: ssrc, rtxSSRC: rtxSSRC, feedback: allFeedback)
}

func audioSlot(mid: String = "a0", ssrc: UInt32 = 0xBBBB_0001, red: UInt8? = nil) -> SubscriberSlotDescription {
    SubscriberSlotDescription(
        mid: mid, kind: .audio, payloadType: 109, clockRate: 48000, redPayloadType: red, ssrc: ssrc,
        feedback: RTCPFeedbackSupport(transportCC: true))
}

/// A VP8 payload: descriptor with a 15-bit PictureID and TL0PICIDX, then a key frame header (with the
/// given size) or an interframe byte.
func vp8Payload(pictureID: UInt16, tl0: UInt8, keyframe: Bool, startOfFrame: Bool = true) -> [UInt8] {
    let descriptor = VP8PayloadDescriptor(
        isStartOfPartition: startOfFrame, pictureID: .long(pictureID), tl0PicIndex: tl0)
    var buffer = ByteBuffer()
    _ = try! descriptor.write(into: &buffer)
    if keyframe && startOfFrame {
        // Frame tag (P = 0), start code, 640x360.
        buffer.writeBytes([0x50, 0x42, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0x68, 0x01])
    } else {
        buffer.writeBytes([0x31, 0x22, 0x00, 0x11])
    }
    buffer.writeBytes(Array(repeating: UInt8(0x5A), count: 100))
    return Array(buffer.readableBytesView)
}

/// Builds one RTP packet with one-byte-form extensions.
func rtpPacket(
    payloadType: UInt8, sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32, marker: Bool = true,
    extensions: [(UInt8, [UInt8])] = [], payload: [UInt8], paddingLength: Int = 0
) -> ByteBuffer {
    var builder = RTPHeaderExtensionBuilder()
    for (id, value) in extensions { try! builder.append(id: id, bytes: value) }
    var buffer = ByteBuffer()
    try! buffer.writeRTPPacket(
        RTPHeader(
            marker: marker, payloadType: payloadType, sequenceNumber: sequenceNumber, timestamp: timestamp, ssrc: ssrc),
        extensions: builder.isEmpty ? nil : builder, payload: ByteBuffer(bytes: payload), paddingLength: paddingLength)
    return buffer
}

func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A receiver report from a subscriber (sender SSRC 5) with one report block about `ssrc`.
func receiverReport(
    about ssrc: UInt32, fractionLost: UInt8, cumulativeLost: Int32 = 0, lastSenderReport: UInt32 = 0,
    delaySinceLastSenderReport: UInt32 = 0
) throws -> ByteBuffer {
    var rr = ByteBufferAllocator().buffer(capacity: 64)
    try RTCPReceiverReport.write(
        senderSSRC: 5,
        reportBlocks: [
            RTCPReportBlock(
                ssrc: ssrc, fractionLost: fractionLost, cumulativeLost: cumulativeLost, extendedHighestSequenceNumber: 1,
                jitter: 0, lastSenderReport: lastSenderReport, delaySinceLastSenderReport: delaySinceLastSenderReport)
        ], into: &rr)
    return rr
}

func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

/// Drives a simulcast VP8 publisher: three layers (ssrc 1000 + layer) with per-layer counters.
struct SimulcastSource {
    var sequence: [UInt16] = [100, 2000, 30000]
    var timestamp: [UInt32] = [1000, 50000, 900_000]
    var pictureID: [UInt16] = [10, 200, 3000]
    var tl0: [UInt8] = [1, 50, 200]
    var transportSequence: UInt16 = 0
    let rids = ["l", "m", "h"]
    /// Payload bytes per layer, so measured bitrates rank l < m < h.
    var padding = [0, 400, 1000]

    static func ssrc(_ layer: Int) -> UInt32 { 1000 + UInt32(layer) }

    /// One single-packet frame on `layer`.
    mutating func frame(layer: Int, keyframe: Bool, withRID: Bool = true, audioLevel: UInt8? = nil) -> ByteBuffer {
        var extensions: [(UInt8, [UInt8])] = [(1, ascii("0"))]
        if withRID { extensions.append((2, ascii(self.rids[layer]))) }
        extensions.append((4, [0x01, 0x02, 0x03]))
        extensions.append((5, [UInt8(self.transportSequence >> 8), UInt8(self.transportSequence & 0xFF)]))
        self.transportSequence &+= 1
        var payload = vp8Payload(pictureID: self.pictureID[layer], tl0: self.tl0[layer], keyframe: keyframe)
        payload += Array(repeating: 0x33, count: self.padding[layer])
        let packet = rtpPacket(
            payloadType: 96, sequenceNumber: self.sequence[layer], timestamp: self.timestamp[layer],
            ssrc: Self.ssrc(layer), extensions: extensions, payload: payload)
        self.sequence[layer] &+= 1
        self.timestamp[layer] &+= 3000
        self.pictureID[layer] = (self.pictureID[layer] + 1) & 0x7FFF
        self.tl0[layer] &+= 1
        return packet
    }
}
