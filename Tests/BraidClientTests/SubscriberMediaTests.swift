import BraidCodecs
import BraidRTPStreams
import BraidSDP
import BraidWire
import NIOCore
import Testing

@testable import BraidClient

/// Publisher-side streams and the subscriber's media core wired back to back in memory: the packets are
/// the ones ``OutgoingStream`` and ``VP8Packetizer`` really build, with real header extensions.
struct MediaLoop {
    static let audioSSRC: UInt32 = 0xA0A0
    static let videoSSRC: UInt32 = 0xB0B0
    static let rtxSSRC: UInt32 = 0xC0C0
    static let fecSSRC: UInt32 = 0xD0D0

    static var extensions: RTPHeaderExtensionMap {
        var map = RTPHeaderExtensionMap()
        _ = map.register(id: 1, uri: RTPHeaderExtensionMap.midURI)
        _ = map.register(id: 3, uri: RTPHeaderExtensionMap.transportSequenceNumberURI)
        _ = map.register(id: 4, uri: RTPHeaderExtensionMap.audioLevelURI)
        _ = map.register(id: 5, uri: RTPHeaderExtensionMap.absCaptureTimeURI)
        return map
    }

    var audio = OutgoingStream(
        ssrc: audioSSRC, payloadType: 111, clockRate: 48_000, isAudio: true, extensionIDs: extensions, mid: "0",
        rtx: nil)
    /// The same audio stream as RED (PT 63) packets.
    var audioRED = OutgoingStream(
        ssrc: audioSSRC, payloadType: 63, clockRate: 48_000, isAudio: true, extensionIDs: extensions, mid: "0",
        rtx: nil)
    var video = OutgoingStream(
        ssrc: videoSSRC, payloadType: 96, clockRate: 90_000, isAudio: false, extensionIDs: extensions, mid: "1",
        rtx: RetransmissionBuffer.RTX(ssrc: rtxSSRC, payloadType: 97))
    var packetizer = VP8Packetizer()
    var scratch = ByteBuffer()
    var transportSequence: UInt16 = 0
    var media: SubscriberMedia
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    /// The shared wall clock, NTP.
    var wallClock = NTPTime.timestamp(unixSeconds: 1_800_000_000, nanoseconds: 0)
    var rtcp: [ByteBuffer] = []

    init(
        signalSSRCs: Bool = true, decodeAudio: Bool = false, recordAudio: Bool = false, red: UInt8? = nil,
        fec: Bool = false, audioNACK: Bool = false
    ) {
        func section(
            _ kind: OfferedTrack.Kind, mid: String, pt: UInt8, rtx: UInt8?, ssrc: UInt32?, rtxSSRC: UInt32?
        )
            -> RemoteAnswer.Section
        {
            RemoteAnswer.Section(
                mid: mid, kind: kind, accepted: true, direction: .sendonly, payloadType: pt, rtxPayloadType: rtx,
                redPayloadType: kind == .audio ? red : nil, extensions: Self.extensions, ssrc: ssrc, rtxSSRC: rtxSSRC)
        }
        var video = section(
            .video, mid: "1", pt: 96, rtx: 97, ssrc: signalSSRCs ? Self.videoSSRC : nil,
            rtxSSRC: signalSSRCs ? Self.rtxSSRC : nil)
        if fec {
            video.fecPayloadType = 98
            video.fecSSRC = Self.fecSSRC
        }
        var audio = section(.audio, mid: "0", pt: 111, rtx: nil, ssrc: signalSSRCs ? Self.audioSSRC : nil, rtxSSRC: nil)
        audio.nack = audioNACK
        self.media = SubscriberMedia(
            sections: [audio, video],
            requestedAt: .uptimeNanoseconds(900_000_000), senderSSRC: 77, decodeAudio: decodeAudio,
            recordAudio: recordAudio)
    }

    mutating func advance(_ amount: TimeAmount) {
        self.now = self.now + amount
        self.wallClock &+= UInt64(amount.nanoseconds) * (1 << 32) / 1_000_000_000
    }

    mutating func deliver(_ packet: ByteBuffer) {
        var sink: [ByteBuffer] = []
        self.media.received(rtp: try! RTPPacket(packet), now: self.now, wallClock: self.wallClock) { sink.append($0) }
        self.rtcp += sink
    }

    /// Sends one audio packet captured 20 ms ago; returns it (delivered unless `deliver` is false).
    @discardableResult
    mutating func sendAudio(
        _ payload: ByteBuffer = ByteBuffer(bytes: [0x78, 1, 2, 3]), deliver: Bool = true
    )
        -> ByteBuffer
    {
        let capture = self.wallClock &- (UInt64(20) << 32) / 1000
        self.audio.build(
            timestamp: self.audio.packetsSent &* 960, marker: false, payload: payload,
            transportSequence: self.nextTransportSequence(), captureTime: capture, now: self.now,
            nowNTP: self.wallClock)
        let packet = self.audio.packet
        if deliver { self.deliver(packet) }
        return packet
    }

    /// Sends frame `index` of `frames` as a RED packet with the `distance` frames before it (captured `age`
    /// ago); delivered unless `deliver` is false.
    @discardableResult
    mutating func sendAudioRED(
        _ frames: [ByteBuffer], index: Int, distance: Int, deliver: Bool = true, age: TimeAmount = .milliseconds(20)
    ) -> ByteBuffer {
        let earlier = (max(0, index - distance)..<index).map {
            REDPayload.Block(payloadType: 111, timestampOffset: UInt16((index - $0) * 960), data: frames[$0])
        }
        var payload = ByteBuffer()
        REDPayload.write(primaryPayloadType: 111, primary: frames[index], redundant: earlier, into: &payload)
        let capture = self.wallClock &- UInt64(age.nanoseconds) * (1 << 32) / 1_000_000_000
        self.audioRED.build(
            timestamp: UInt32(index * 960), marker: false, payload: payload,
            transportSequence: self.nextTransportSequence(), captureTime: capture, now: self.now,
            nowNTP: self.wallClock)
        if deliver { self.deliver(self.audioRED.packet) }
        return self.audioRED.packet
    }

    /// Sends one video frame captured 20 ms ago; `drop` picks packet indexes not to deliver.
    /// - Returns: the sequence numbers of the frame's packets.
    @discardableResult
    mutating func sendVideo(index: Int, key: Bool, size: Int = 2600, drop: Set<Int> = []) -> [UInt16] {
        let capture = self.wallClock &- (UInt64(20) << 32) / 1000
        let timestamp = UInt32(index) &* 3000
        var built: [ByteBuffer] = []
        var sequences: [UInt16] = []
        let stream = self.video
        var sequence = self.transportSequence
        _ = self.packetizer.packetize(
            frame: ByteBuffer(bytes: frame(size: size, key: key, seed: UInt8(index & 0xFF))), scratch: &self.scratch
        ) {
            payload, last in
            sequences.append(stream.sequenceNumber)
            stream.build(
                timestamp: timestamp, marker: last, payload: payload, transportSequence: sequence,
                captureTime: capture, now: self.now, nowNTP: self.wallClock)
            sequence &+= 1
            built.append(stream.packet)
        }
        self.video = stream
        self.transportSequence = sequence
        for (position, packet) in built.enumerated() where !drop.contains(position) { self.deliver(packet) }
        return sequences
    }

    mutating func nextTransportSequence() -> UInt16 {
        defer { self.transportSequence &+= 1 }
        return self.transportSequence
    }

    mutating func tick() {
        var sink: [ByteBuffer] = []
        self.media.onTick(now: self.now) { sink.append($0) }
        self.rtcp += sink
    }

    /// Every RTCP packet written so far, parsed.
    func feedback() -> [RTCPPacket] {
        self.rtcp.flatMap { buffer in (try? RTCPCompoundPacket(buffer)).map(Array.init) ?? [] }
    }

    var statistics: SubscriberStatistics { self.media.snapshot(connectTime: nil, transport: TransportStatistics()) }
}

@Suite("Subscriber media path: statistics, NACK/RTX repair, keyframe requests, feedback")
struct SubscriberMediaTests {
    @Test("A clean stream: every frame decodable, no freeze, 20 ms latency, feedback and reports flow")
    func cleanStream() throws {
        var loop = MediaLoop()
        for index in 0..<60 {
            if index % 3 != 2 { loop.sendAudio() }
            loop.sendVideo(index: index, key: index == 0)
            loop.advance(.milliseconds(33))
            loop.tick()
        }
        let stats = loop.statistics
        let video = try #require(stats.video.first)
        let audio = try #require(stats.audio.first)
        #expect(stats.joinTime == .milliseconds(100))
        #expect(video.framesComplete == 60 && video.framesDecodable == 60 && video.keyframes == 1)
        #expect(video.framesLost == 0 && video.freezeCount == 0)
        #expect(video.packetsReceived == 180 && video.packetsLost == 0)
        #expect(video.latency.count == 180 && video.latency.p50 == .milliseconds(20))
        #expect(video.latency.maximum == .milliseconds(20))
        #expect(audio.packetsReceived == 40 && audio.framesConcealed == 0)
        #expect(audio.latency.count == 40)
        #expect(stats.nacksSent == 0 && stats.keyframeRequestsSent == 0)
        #expect(stats.receiverReportsSent == 1)
        #expect(stats.transportFeedbackSent >= 10)
        // Transport-wide feedback covers every transport sequence number exactly once, all received.
        var reported: [UInt16] = []
        var reportBlocks: [RTCPReportBlock] = []
        for packet in loop.feedback() {
            switch packet {
            case .transportWideFeedback(let twcc):
                for status in twcc.packets {
                    reported.append(status.sequenceNumber)
                    #expect(status.arrivalOffset != nil)
                }
            case .receiverReport(let report):
                reportBlocks += Array(report.reportBlocks)
            default:
                break
            }
        }
        #expect(reported == (0..<UInt16(reported.count)).map { $0 })
        #expect(reported.count >= 200)
        #expect(Set(reportBlocks.map(\.ssrc)) == [MediaLoop.audioSSRC, MediaLoop.videoSSRC])
    }

    @Test("A lost packet is NACKed and the RTX repair completes its frame")
    func nackAndRepair() throws {
        var loop = MediaLoop()
        var lost: UInt16 = 0
        for index in 0..<20 {
            let sequences = loop.sendVideo(index: index, key: index == 0, drop: index == 5 ? [1] : [])
            if index == 5 { lost = sequences[1] }
            loop.advance(.milliseconds(33))
            loop.tick()
            if index == 6 {
                // The NACK went out on the tick after the gap was seen (reordering delay elapsed).
                let nacks = loop.feedback().compactMap { packet -> RTCPGenericNACK? in
                    if case .genericNACK(let nack) = packet { return nack }
                    return nil
                }
                let nack = try #require(nacks.first)
                #expect(nack.mediaSSRC == MediaLoop.videoSSRC && nack.senderSSRC == 77)
                #expect(Array(nack.lostSequenceNumbers) == [lost])
                // The publisher answers from its history with RTX (RFC 4588) and a fresh transport-wide
                // sequence number.
                let fresh = loop.transportSequence
                var repairs: [ByteBuffer] = []
                let sent = loop.video.answer(nack, now: loop.now, nowNTP: loop.wallClock, transportSequence: { loop.nextTransportSequence() }) {
                    repairs.append($0)
                }
                #expect(sent.resent == 1 && sent.repairs == 0 && repairs.count == 1)
                #expect(loop.transportSequence == fresh &+ 1)
                let repair = try #require(repairs.first)
                let rtx = try RTPPacket(repair)
                #expect(rtx.ssrc == MediaLoop.rtxSSRC && rtx.payloadType == 97)
                #expect(try rtx.headerExtension(TransportSequenceNumber.self, id: 3)?.value == fresh)
                #expect(rtx.payload.getInteger(at: rtx.payload.readerIndex, as: UInt16.self) == lost)
                // A second NACK right away is throttled (the repair is still in flight).
                #expect(
                    loop.video.answer(nack, now: loop.now, nowNTP: loop.wallClock, transportSequence: { loop.nextTransportSequence() }) { _ in }.resent == 0)
                loop.deliver(repair)
            }
        }
        let video = try #require(loop.statistics.video.first)
        #expect(video.framesComplete == 20 && video.framesDecodable == 20 && video.framesLost == 0)
        #expect(video.retransmissionsReceived == 1 && video.packetsRecovered == 1)
        #expect(video.freezeCount == 0)
        #expect(loop.statistics.nacksSent >= 1 && loop.statistics.keyframeRequestsSent == 0)
    }

    @Test("A repair that lands before the 250 ms playout point freezes a render-at-once player only")
    func repairWithinThePlayoutPoint() throws {
        var loop = MediaLoop()
        var held: [ByteBuffer] = []
        for index in 0..<40 {
            loop.sendVideo(index: index, key: index == 0, drop: index == 10 ? [1] : [])
            if index == 10 {
                let nack = try #require(
                    loop.feedback().compactMap { packet -> RTCPGenericNACK? in
                        if case .genericNACK(let nack) = packet { return nack }
                        return nil
                    }.first)
                _ = loop.video.answer(nack, now: loop.now, nowNTP: loop.wallClock, transportSequence: { loop.nextTransportSequence() }) { held.append($0) }
            }
            // The repair arrives six frames (198 ms) later: frame 10 is 218 ms old when it becomes decodable.
            if index == 16 { for repair in held { loop.deliver(repair) } }
            loop.advance(.milliseconds(33))
            loop.tick()
        }
        let video = try #require(loop.statistics.video.first)
        #expect(video.framesDecodable == 40 && video.framesLost == 0)
        #expect(video.freezeCount == 1)
        #expect(video.playoutFreezeCount == 0)
    }

    @Test("An unrepaired loss breaks the chain: a PLI goes out, a freeze is counted, the keyframe recovers")
    func unrepairedLossFreezes() throws {
        var loop = MediaLoop()
        for index in 0..<60 {
            loop.sendVideo(index: index, key: index == 0 || index == 30, drop: index == 10 ? [0, 1, 2] : [])
            loop.advance(.milliseconds(33))
            loop.tick()
        }
        let stats = loop.statistics
        let video = try #require(stats.video.first)
        #expect(video.framesLost == 1)
        #expect(video.framesComplete == 59)
        #expect(video.framesDecodable == 40)  // 0-9 and 30-59
        #expect(video.keyframes == 2)
        #expect(video.freezeCount == 1)
        #expect(video.totalFreezesDuration >= .milliseconds(600))
        // A player with a playout point sees the same freeze: the frames never became decodable.
        #expect(video.playoutFreezeCount == 1)
        let plis = loop.feedback().filter { if case .pictureLossIndication = $0 { true } else { false } }
        #expect(!plis.isEmpty)
        #expect(stats.keyframeRequestsSent == plis.count)
        // Its packets were NACKed (nobody answered).
        #expect(stats.nacksSent >= 1)
    }

    @Test("Unsignalled SSRCs are bound by MID; unknown streams are counted and dropped")
    func bindsByMID() throws {
        var loop = MediaLoop(signalSSRCs: false)
        for index in 0..<5 {
            loop.sendAudio()
            loop.sendVideo(index: index, key: index == 0)
            loop.advance(.milliseconds(33))
        }
        var stranger = ByteBuffer()
        try stranger.writeRTPPacket(
            RTPHeader(payloadType: 100, sequenceNumber: 1, timestamp: 1, ssrc: 0xDEAD), payload: ByteBuffer(bytes: [1]))
        loop.deliver(stranger)
        let stats = loop.statistics
        #expect(stats.audio.first?.ssrc == MediaLoop.audioSSRC)
        #expect(stats.video.first?.ssrc == MediaLoop.videoSSRC)
        #expect(stats.video.first?.framesDecodable == 5)
        #expect(stats.unknownSSRCPackets == 1)
        // The SSRCs learnt are routed without reading the tracks; the stranger's is not.
        #expect(loop.media.routes.index(of: MediaLoop.audioSSRC) == 0)
        #expect(loop.media.routes.index(of: MediaLoop.videoSSRC) == 1)
        #expect(loop.media.routes.index(of: 0xDEAD) == nil)
    }

    @Test func signalledSSRCsAreRoutedFromTheStart() {
        let loop = MediaLoop(fec: true)
        #expect(loop.media.routes.count == 4)
        #expect(loop.media.routes.index(of: MediaLoop.audioSSRC) == 0)
        for ssrc in [MediaLoop.videoSSRC, MediaLoop.rtxSSRC, MediaLoop.fecSSRC] {
            #expect(loop.media.routes.index(of: ssrc) == 1)
        }
    }

    @Test("Hostile packets (random headers, extensions, VP8 descriptors, RTX) never trap and are accounted for")
    func hostileInput() throws {
        var loop = MediaLoop()
        var random = SplitMix64(seed: 2026)
        var parsed = 0
        for _ in 0..<20_000 {
            var bytes = [UInt8](repeating: 0, count: Int(random.next() % 80) + 12)
            for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: random.next()) }
            // Mostly plausible: version 2, one of the negotiated SSRCs and payload types.
            bytes[0] = 0x80 | (bytes[0] & 0x1F)
            let ssrcs = [MediaLoop.audioSSRC, MediaLoop.videoSSRC, MediaLoop.rtxSSRC, 0xDEAD]
            let ssrc = ssrcs[Int(random.next() % 4)]
            bytes[8] = UInt8(ssrc >> 24)
            bytes[9] = UInt8((ssrc >> 16) & 0xFF)
            bytes[10] = UInt8((ssrc >> 8) & 0xFF)
            bytes[11] = UInt8(ssrc & 0xFF)
            bytes[1] = (bytes[1] & 0x80) | [111, 96, 97, 100][Int(random.next() % 4)]
            guard let packet = try? RTPPacket(ByteBuffer(bytes: bytes)) else { continue }
            parsed += 1
            loop.media.received(rtp: packet, now: loop.now, wallClock: loop.wallClock) { _ in }
            loop.advance(.milliseconds(Int64(random.next() % 5)))
            if random.next() % 10 == 0 { loop.tick() }
        }
        #expect(parsed > 1000)
        let stats = loop.statistics
        let received = (stats.audio.first?.packetsReceived ?? 0) + (stats.video.first?.packetsReceived ?? 0)
        #expect(received > 0)
        #expect(stats.unknownSSRCPackets > 0)
    }

    @Test("Audio decoding: gaps are filled by FEC and PLC, late packets are skipped")
    func audioPlayout() throws {
        let media = try PreEncodedMedia.synthetic(audioSeconds: 1, videoFrames: 0)
        var loop = MediaLoop(decodeAudio: true)
        let dropped: Set<Int> = [10, 20, 21, 22]
        var held: ByteBuffer?
        for (index, payload) in media.audioPackets.enumerated() {
            let packet = loop.sendAudio(payload, deliver: !dropped.contains(index) && index != 5)
            if index == 5 { held = packet }
            if index == 7, let late = held { loop.deliver(late) }  // two packets too late to play
            loop.advance(.milliseconds(20))
        }
        let audio = try #require(loop.statistics.audio.first)
        #expect(audio.packetsReceived == 50 - 4)
        #expect(audio.framesDecoded == 50 - 4 - 1)
        // Packet 5 was played as a gap before it came: concealed or FEC-recovered, as were the four lost.
        let filled = (audio.framesConcealedByDecoder ?? 0) + (audio.framesRecoveredByFEC ?? 0)
        #expect(filled == 5)
        // The encoder runs with in-band FEC: the frame right before each arriving packet comes back from
        // its LBRR data (before packets 6, 11 and 23); 20 and 21 are concealed.
        #expect(audio.framesRecoveredByFEC == 3 && audio.framesConcealedByDecoder == 2)
        #expect(audio.framesConcealed == 4)
        #expect(MediaLoop().statistics.audio.first?.framesDecoded == nil)
    }

    @Test("Recording: every frame interval is played once, in order; a frame past the playout point is concealed")
    func recordedPlayout() throws {
        // A 1 kHz tone encoded from PCM, as braid-load's --audio-pcm does.
        var tone = SineTone(frequency: 1000, amplitude: 0.3)
        let pcm = tone.next(samplesPerChannel: 960 * 30)
        let media = try PreEncodedMedia.synthetic(audioPCM: pcm, videoFrames: 0)
        #expect(media.audioPackets.count == 30)
        #expect(throws: BraidClientError.self) { try PreEncodedMedia.synthetic(audioPCM: [1, 2, 3], videoFrames: 0) }

        var loop = MediaLoop(recordAudio: true)
        var held: ByteBuffer?
        for (index, payload) in media.audioPackets.enumerated() {
            // Packets 8-19 are lost; 8 itself arrives when 19 is sent, 240 ms after its capture: past
            // the 200 ms point, so it is not played although nothing newer has been.
            let packet = loop.sendAudio(payload, deliver: !(8...19).contains(index))
            if index == 8 { held = packet }
            if index == 19, let late = held { loop.deliver(late) }
            loop.advance(.milliseconds(20))
        }
        let played = try #require(loop.media.tracks.first { $0.kind == .audio }?.audioDecoder?.recording)
        // 30 frames of 960 samples; 8-19 concealed in place when 20 came.
        #expect(played.count == 30 * 960)
        let audio = try #require(loop.statistics.audio.first)
        #expect(audio.framesDecoded == 18)
        // The tone survives: the last frames are as loud as the source.
        let tail = played.suffix(960).map { abs(Int($0)) }.max() ?? 0
        #expect(tail > 8000)
    }

    @Test("RED: a lost packet's frame is played from a later packet's redundant block, in time")
    func redundantAudio() throws {
        let frames = try PreEncodedMedia.synthetic(audioSeconds: 1, videoFrames: 0).audioPackets
        var loop = MediaLoop(decodeAudio: true, red: 63)
        // Distance 2: packet n carries frames n − 2, n − 1 and n.
        let lost: Set<Int> = [10, 11, 20, 21, 22, 30]
        for index in frames.indices {
            loop.sendAudioRED(frames, index: index, distance: 2, deliver: !lost.contains(index))
            loop.advance(.milliseconds(20))
        }
        // A RED packet whose block header claims more bytes than it carries is counted and dropped.
        let broken = ByteBuffer(bytes: [0x80 | 111, 0x0F, 0x00, 0xFF, 111, 1, 2])
        loop.audioRED.build(
            timestamp: 99 * 960, marker: false, payload: broken, transportSequence: loop.nextTransportSequence(),
            captureTime: loop.wallClock, now: loop.now, nowNTP: loop.wallClock)
        loop.deliver(loop.audioRED.packet)
        let audio = try #require(loop.statistics.audio.first)
        #expect(audio.malformedREDPackets == 1)
        #expect(audio.packetsReceived == 45)
        // 10 and 11 come from packet 12, 21 and 22 from 23, 30 from 31; 20 was in 20, 21 and 22 only.
        #expect(audio.framesFromRedundancy == 5)
        #expect(audio.framesInTime == 49)
        #expect(audio.framesLate == 0)
        #expect(audio.framesConcealed == 1)
        // The player decodes every frame it got, oldest block first, and conceals frame 20.
        #expect(audio.framesDecoded == 49)
        #expect((audio.framesConcealedByDecoder ?? 0) + (audio.framesRecoveredByFEC ?? 0) == 1)
    }

    @Test("Audio NACK: only frames no redundant block brought are asked for, and only while an answer can make the deadline")
    func audioNACK() throws {
        let frames = try PreEncodedMedia.synthetic(audioSeconds: 1, videoFrames: 0).audioPackets
        var loop = MediaLoop(red: 63, audioNACK: true)
        func nacks() -> [[UInt16]] {
            loop.feedback().compactMap { if case .genericNACK(let n) = $0 { Array(n.lostSequenceNumbers) } else { nil } }
        }
        // RED distance 2: packet n carries frames n − 2 and n − 1 (the stream's sequence numbers are 0, 1, …
        // from the first packet on).
        var sent: [Int: ByteBuffer] = [:]
        let first = loop.audioRED.sequenceNumber
        for index in 0..<25 {
            sent[index] = loop.sendAudioRED(frames, index: index, distance: 2, deliver: ![10, 11, 20, 21, 22].contains(index))
            loop.advance(.milliseconds(20))
            loop.tick()
        }
        // 10 and 11 came with packet 12, 21 and 22 with packet 23: only packet 20 is asked for, once so far.
        #expect(nacks() == [[first &+ 20]])
        // The node resends it (a plain copy under its own number): it fills the hole in time.
        loop.deliver(sent[20]!)
        var audio = try #require(loop.statistics.audio.first)
        #expect(audio.packetsRecoveredByNACK == 1)
        #expect(audio.framesInTime == 25)
        #expect(audio.packetsPastDeadline == 0)

        // Packets 30–32 are lost and packet 33 arrives 190 ms after its capture: frame 30, captured 60 ms
        // before it, is already past its 200 ms playout point, so it is never asked for.
        loop.rtcp.removeAll()
        for index in 25..<33 {
            loop.sendAudioRED(frames, index: index, distance: 2, deliver: index < 30)
            loop.advance(.milliseconds(20))
        }
        loop.sendAudioRED(frames, index: 33, distance: 2, age: .milliseconds(190))
        for _ in 0..<10 {
            loop.advance(.milliseconds(20))
            loop.tick()
        }
        #expect(nacks().isEmpty)
        audio = try #require(loop.statistics.audio.first)
        #expect(audio.packetsPastDeadline == 1)

        // Lost again without an answer: asked for about once per round trip, then dropped once an answer
        // could no longer come in time (capture + 200 ms − the 30 ms round trip the first answer measured).
        loop.rtcp.removeAll()
        for index in 34..<44 {
            loop.sendAudioRED(frames, index: index, distance: 2, deliver: ![40, 41, 42].contains(index))
            loop.advance(.milliseconds(20))
        }
        for _ in 0..<15 {
            loop.advance(.milliseconds(10))
            loop.tick()
        }
        let asked = nacks().filter { $0 == [first &+ 40] }.count
        // Frame 40 is 80 ms old when packet 43 shows the gap (RED reaches two frames back, so no later packet
        // can bring it). The round trip measured is 20 ms (packet 20's answer came on the next tick), so
        // retries are 28 ms apart: asked on the ticks at 110, 140 and 170 ms of age; at 200 ms an answer
        // would come after the playout point, and the number is dropped instead.
        #expect(asked == 3)
        audio = try #require(loop.statistics.audio.first)
        #expect(audio.packetsPastDeadline == 2)
    }

    @Test("Audio deadlines: frames are in time, late or missing by their first copy's age")
    func audioFrameDeadlines() {
        var frames = AudioFrameDeadlines(deadlineMicroseconds: 200_000)
        // Frame 0 after 50 ms, frame 1 never, frame 2 only after 250 ms (late), frame 3 after 30 ms.
        frames.received(timestamp: 1000, durationTicks: 960, latencyMicroseconds: 50_000, redundant: false)
        frames.received(timestamp: 1000 + 2 * 960, durationTicks: 960, latencyMicroseconds: 250_000, redundant: true)
        frames.received(timestamp: 1000 + 3 * 960, durationTicks: 960, latencyMicroseconds: 30_000, redundant: false)
        // Copies of frames already counted change nothing.
        frames.received(timestamp: 1000 + 3 * 960, durationTicks: 960, latencyMicroseconds: 50_000, redundant: true)
        frames.received(timestamp: 1000, durationTicks: 960, latencyMicroseconds: 70_000, redundant: false)
        // Before the first frame: not counted.
        frames.received(timestamp: 1000 - 960, durationTicks: 960, latencyMicroseconds: 90_000, redundant: true)
        var totals = frames.totals
        #expect(totals.inTime == 2 && totals.late == 1 && totals.missing == 1)
        #expect(frames.framesFromRedundancy == 1)
        #expect(frames.duplicateCopies == 2)
        // Far past the window: the early frames are settled, the counts carry on; the timestamp wraps.
        var timestamp: UInt32 = 1000 + 4 * 960
        for _ in 0..<600 {
            frames.received(timestamp: timestamp, durationTicks: 960, latencyMicroseconds: 20_000, redundant: false)
            timestamp &+= 960
        }
        totals = frames.totals
        #expect(totals.inTime == 602 && totals.late == 1 && totals.missing == 1)
        frames.received(timestamp: UInt32.max - 100, durationTicks: 960, latencyMicroseconds: 20_000, redundant: false)
        #expect(frames.totals.inTime == 602)
    }

    @Test("With FEC, a NACK asks only for the deficit, and a repair round's answer rebuilds every missing packet")
    func fecDeficit() throws {
        var loop = MediaLoop(fec: true)
        var encoder = SlidingWindowFECEncoder(capacity: 24)
        var repairSequence: UInt16 = 500
        func repair(since: UInt16? = nil) -> ByteBuffer {
            var packet = ByteBuffer(bytes: [0x80, 98, UInt8(repairSequence >> 8), UInt8(repairSequence & 0xFF)])
            packet.writeInteger(UInt32(0))
            packet.writeInteger(MediaLoop.fecSSRC)
            repairSequence &+= 1
            let written =
                if let since { encoder.writeRepair(since: since, into: &packet) } else {
                    encoder.writeRepair(now: loop.now, maximumAge: .seconds(1), maximumSources: 2, into: &packet)
                }
            #expect(written)
            return packet
        }
        /// Sends one single-packet frame, keeps it for the encoder, delivers it unless `lost`.
        func frame(_ index: Int, lost: Bool = false) -> UInt16 {
            let sequences = loop.sendVideo(index: index, key: index == 0, size: 300, drop: lost ? [0] : [])
            encoder.add(loop.video.packet, sequenceNumber: sequences[0], now: loop.now)
            loop.advance(.milliseconds(33))
            return sequences[0]
        }
        func nacks() -> [[UInt16]] { loop.feedback().compactMap { if case .genericNACK(let n) = $0 { Array(n.lostSequenceNumbers) } else { nil } } }

        _ = frame(0)
        _ = frame(1)
        let lostA = frame(2, lost: true)
        _ = frame(3, lost: true)
        // A repair over the last two packets: one equation for two unknowns (it also shows both missing).
        loop.deliver(repair())
        // A new gap waits for the repairs the node sends right behind the packet that showed it.
        #expect(nacks().isEmpty)
        loop.advance(IncomingTrack.repairGrace)
        loop.tick()
        #expect(nacks() == [[lostA]])  // deficit 2 − 1 equation: only the oldest is asked for
        loop.rtcp.removeAll()
        _ = frame(4)
        #expect(nacks().isEmpty)  // asked for within the round trip: not asked again
        // The node's round: repairs over the span from the packet asked for; one is enough.
        loop.deliver(repair(since: lostA))
        let track = try #require(loop.statistics.video.first)
        #expect(track.packetsRecoveredByFEC == 2)
        #expect(track.framesDecodable == 5)
    }

    @Test("With FEC, a silence of the video is probed: a NACK names the numbers after the newest, and the round rebuilds them")
    func silenceProbe() throws {
        var loop = MediaLoop(fec: true)
        var encoder = SlidingWindowFECEncoder(capacity: 24)
        func repair(since: UInt16) -> ByteBuffer {
            var packet = ByteBuffer(bytes: [0x80, 98, 0, 1, 0, 0, 0, 0])
            packet.writeInteger(MediaLoop.fecSSRC)
            #expect(encoder.writeRepair(since: since, into: &packet))
            return packet
        }
        func frame(_ index: Int, lost: Bool = false) -> UInt16 {
            let sequences = loop.sendVideo(index: index, key: index == 0, size: 300, drop: lost ? [0] : [])
            encoder.add(loop.video.packet, sequenceNumber: sequences[0], now: loop.now)
            loop.advance(.milliseconds(33))
            loop.tick()
            return sequences[0]
        }
        func nacks() -> [[UInt16]] { loop.feedback().compactMap { if case .genericNACK(let n) = $0 { Array(n.lostSequenceNumbers) } else { nil } } }

        // A loss makes the link lossy (the FEC decoder starts its record); the rest arrive 33 ms apart.
        _ = frame(0)
        let first = frame(1, lost: true)
        loop.deliver(repair(since: first))
        var newest: UInt16 = first
        for index in 2..<8 { newest = frame(index) }
        loop.rtcp.removeAll()
        // Two frames lost with everything sent behind them: after 2.5 packet intervals of silence, a probe.
        let hidden = [frame(8, lost: true), frame(9, lost: true)]
        #expect(nacks() == [[newest &+ 1, newest &+ 2, newest &+ 3]])
        #expect(hidden == [newest &+ 1, newest &+ 2])
        // The node's round over what it has sent of those (the third was not sent yet) rebuilds both.
        loop.deliver(repair(since: hidden[0]))
        loop.deliver(repair(since: hidden[0]))
        let track = try #require(loop.statistics.video.first)
        #expect(track.packetsRecoveredByFEC == 3)
        #expect(track.silenceProbesSent == 1)
        #expect(track.framesDecodable == 10)
        // The stream goes on: no further probe.
        loop.rtcp.removeAll()
        _ = frame(10)
        #expect(nacks().isEmpty)
    }
}

@Suite("Subscriber media path under light reception (headers only)")
struct LightSubscriberMediaTests {
    /// Hands a packet to the light path as the transport would: sealed first, decrypted only when asked.
    static func deliverSealed(_ packet: ByteBuffer, to loop: inout MediaLoop) -> Bool {
        var sink: [ByteBuffer] = []
        let parsed = try! RTPPacket(packet)
        let needsPayload = loop.media.receivedSealed(rtp: parsed, now: loop.now, wallClock: loop.wallClock) {
            sink.append($0)
        }
        if needsPayload {
            loop.media.received(rtp: parsed, now: loop.now, wallClock: loop.wallClock) { sink.append($0) }
        }
        loop.rtcp += sink
        return needsPayload
    }

    @Test("Headers give loss, NACKs, latency, audio deadlines and feedback; a retransmission is the one payload read")
    func lightReception() throws {
        var loop = MediaLoop()
        loop.media.light = true
        var lost: UInt16?
        var withheld: ByteBuffer?
        for index in 0..<30 {
            if index % 3 != 2 {
                let audio = loop.sendAudio(deliver: false)
                #expect(!Self.deliverSealed(audio, to: &loop))
            }
            // Build the frame's packets without delivering, then deliver all but one of frame 10.
            var packets: [ByteBuffer] = []
            let stream = loop.video
            var sequence = loop.transportSequence
            let capture = loop.wallClock &- (UInt64(20) << 32) / 1000
            _ = loop.packetizer.packetize(
                frame: ByteBuffer(bytes: [UInt8](repeating: index == 0 ? 0x10 : 0x11, count: 2600)), scratch: &loop.scratch
            ) { payload, last in
                stream.build(
                    timestamp: UInt32(index) &* 3000, marker: last, payload: payload, transportSequence: sequence,
                    captureTime: capture, now: loop.now, nowNTP: loop.wallClock)
                sequence &+= 1
                packets.append(stream.packet)
            }
            loop.video = stream
            loop.transportSequence = sequence
            for (position, packet) in packets.enumerated() {
                if index == 10, position == 1 {
                    lost = try RTPPacket(packet).sequenceNumber
                    withheld = packet
                    continue
                }
                #expect(!Self.deliverSealed(packet, to: &loop))
            }
            loop.advance(.milliseconds(33))
            if index % 3 == 0 { loop.tick() }
        }
        let nacks = loop.feedback().compactMap { packet -> RTCPGenericNACK? in
            if case .genericNACK(let nack) = packet { return nack }
            return nil
        }
        let nack = try #require(nacks.first)
        #expect(Array(nack.lostSequenceNumbers) == [try #require(lost)])
        // The publisher's retransmission is the one packet whose payload the light path asks for.
        _ = try #require(withheld)
        var repairs: [ByteBuffer] = []
        _ = loop.video.answer(nack, now: loop.now, nowNTP: loop.wallClock, transportSequence: { loop.nextTransportSequence() }) { repairs.append($0) }
        let repair = try #require(repairs.first)
        #expect(Self.deliverSealed(repair, to: &loop))

        let stats = loop.statistics
        let video = try #require(stats.video.first)
        let audio = try #require(stats.audio.first)
        #expect(video.packetsReceived == 89 && video.packetsLost == 1)
        #expect(video.retransmissionsReceived == 1 && video.packetsRecovered == 1 && video.packetsUnrecovered == 0)
        #expect(video.framesComplete == 0, "no frames are assembled from headers")
        // 20 ms from capture (the histogram's 1 ms bucket); the late retransmission is the one outlier.
        let p50 = try #require(video.latency.p50)
        #expect(video.latency.count == 90 && p50 >= .milliseconds(20) && p50 <= .milliseconds(21), "\(video.latency)")
        #expect(audio.packetsReceived == 20 && audio.framesInTime == 20 && audio.framesConcealed == 0)
        #expect(stats.transportFeedbackSent >= 5 && stats.receiverReportsSent >= 1)
        #expect(stats.nacksSent >= 1)
    }
}

@Suite("Uplink repair rounds: a publisher answers the node's NACK with fresh FEC repairs over the missing span")
struct UplinkRepairRoundTests {
    @Test("Two packets asked for: a round sized for the deficit and the loss, which rebuilds both byte for byte")
    func roundRebuildsTheDeficit() throws {
        let stream = OutgoingStream(
            ssrc: 0xB0B0, payloadType: 96, clockRate: 90_000, isAudio: false, extensionIDs: MediaLoop.extensions,
            mid: "1", rtx: RetransmissionBuffer.RTX(ssrc: 0xC0C0, payloadType: 97))
        stream.fec = UplinkFEC(ssrc: 0xD0D0, payloadType: 98)
        stream.fec!.update(loss: 0.5)
        var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var transport: UInt16 = 0
        var sent: [(sequenceNumber: UInt16, bytes: ByteBuffer)] = []
        var upFront = 0
        for index in 0..<30 {
            let payload = ByteBuffer(bytes: [0x10, 0, 0] + [UInt8](repeating: UInt8(index), count: 100 + index * 7))
            stream.build(
                timestamp: UInt32(index * 3000), marker: true, payload: payload, transportSequence: transport,
                captureTime: 0, now: now, nowNTP: 0)
            transport &+= 1
            sent.append((stream.sequenceNumber &- 1, stream.packet))
            upFront += stream.sendRepairs(timestamp: UInt32(index * 3000), now: now, nowNTP: 0, transportSequence: {
                defer { transport &+= 1 }
                return transport
            }) { _ in }
            // The encoder keeps what was sent in the last 400 ms: 16 slots here (the 17th packet finds the
            // oldest 528 ms old), so packets 14-29.
            now = now + .milliseconds(33)
        }
        #expect(upFront > 0)
        let lost = [sent[26].sequenceNumber, sent[28].sequenceNumber]
        var nack = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPGenericNACK.write(senderSSRC: 1, mediaSSRC: 0xB0B0, lostSequenceNumbers: lost, into: &nack)
        let request = try #require(try Self.nack(in: nack))
        var round: [ByteBuffer] = []
        let answered = stream.answer(request, now: now, nowNTP: 0, transportSequence: { 0 }) { round.append($0) }
        #expect(answered.resent == 0)
        #expect(answered.repairs == VideoFECPolicy().repairs(deficit: 2, loss: 0.5, round: 0))
        #expect(round.count == answered.repairs)
        // Each repair: the repair stream, flagged as an answer, over packet 26 through the newest.
        var decoder = SlidingWindowFECDecoder()
        decoder.startRecording(from: sent[20].sequenceNumber)
        for packet in sent where !lost.contains(packet.sequenceNumber) {
            decoder.sourceReceived(packet.bytes, sequenceNumber: packet.sequenceNumber)
        }
        var rebuilt: [ByteBuffer] = []
        for repair in round.prefix(2) {
            let rtp = try RTPPacket(repair)
            #expect(rtp.ssrc == 0xD0D0 && rtp.payloadType == 98)
            let header = try FECRepairHeader(rtp.payload)
            #expect(header.answersNACK)
            #expect(header.firstSequenceNumber == lost[0] && header.sourceCount == 4)
            rebuilt += decoder.repairReceived(rtp.payload)
        }
        // Any two of the round rebuild both packets, as sent.
        #expect(Set(rebuilt.map { Array($0.readableBytesView) })
            == Set([sent[26].bytes, sent[28].bytes].map { Array($0.readableBytesView) }))
        #expect(stream.fec!.repairRounds == 1)

        // The same NACK at once (a duplicate, within the resend interval): nothing.
        #expect(stream.answer(request, now: now, nowNTP: 0, transportSequence: { 0 }) { _ in } == (0, 0))
        // Asked for again later: the second round is surer, so larger.
        let again = stream.answer(request, now: now + .milliseconds(60), nowNTP: 0, transportSequence: { 0 }) { _ in }
        #expect(again.repairs == VideoFECPolicy().repairs(deficit: 2, loss: 0.5, round: 1))
        #expect(again.repairs > answered.repairs)

        // A packet the encoder no longer keeps (and the RTX buffer still does) goes out as RTX.
        var old = ByteBufferAllocator().buffer(capacity: 64)
        try RTCPGenericNACK.write(senderSSRC: 1, mediaSSRC: 0xB0B0, lostSequenceNumbers: [sent[10].sequenceNumber], into: &old)
        var out: [ByteBuffer] = []
        let result = stream.answer(try #require(try Self.nack(in: old)), now: now, nowNTP: 0, transportSequence: { 0 }) {
            out.append($0)
        }
        #expect(result == (1, 0))
        #expect(try RTPPacket(try #require(out.first)).ssrc == 0xC0C0)
    }

    static func nack(in buffer: ByteBuffer) throws -> RTCPGenericNACK? {
        for packet in try RTCPCompoundPacket(buffer) {
            if case .genericNACK(let nack) = packet { return nack }
        }
        return nil
    }
}
