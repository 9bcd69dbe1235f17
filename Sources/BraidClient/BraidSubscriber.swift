import BraidCodecs
import BraidRTPStreams
import BraidSDP
import BraidWire
import Foundation
import NIOCore

/// The receiving state of one m-section. A class, so that its buffers (NACK list, frame queue,
/// histograms) are mutated in place per packet rather than copied out of the track list and back.
final class IncomingTrack {
    /// What earlier connections (other nodes, before a failover) counted; the snapshot adds it.
    struct Earlier {
        var packetsReceived: Int64 = 0
        var packetsLost: Int64 = 0
        var packetsRecovered = 0
        var packetsUnrecovered = 0
        var framesComplete = 0
        var framesDecodable = 0
        var keyframes = 0
        var framesLost = 0
    }

    let kind: OfferedTrack.Kind
    var mid: String?
    /// The header extension IDs the answer gave this m-section (transport-wide sequence number, MID,
    /// abs-capture-time). Kept on the track, which every packet reads anyway, rather than in arrays of
    /// their own that would each cost a cache miss per packet among hundreds of subscribers.
    var transportSequenceID: UInt8?
    var midID: UInt8?
    var captureTimeID: UInt8?
    var ssrc: UInt32?
    var rtxSSRC: UInt32?
    var payloadType: UInt8?
    var rtxPayloadType: UInt8?
    // Above and here: what every packet reads, kept in the object's first cache lines (light reception
    // of a thousand subscribers reads little else per packet, and each line is a miss).
    var mediaBytes: Int64 = 0
    var latency = LatencyHistogram()
    var statistics: ReceiveStatistics?
    /// Audio: frames by their playout deadline (carried over a failover: timestamps are the publisher's
    /// clock plus each node's offset, so a new node starts a new count).
    var audioFrames: AudioFrameDeadlines
    var nack = IncomingTrack.makeNACKGenerator(repairs: false)
    /// The RED payload type (audio), if the answer kept RED.
    var redPayloadType: UInt8?
    /// Video with Braid's FEC: the repair stream's payload type and SSRC, and its decoder.
    var fecPayloadType: UInt8?
    var fecSSRC: UInt32?
    var fec: SlidingWindowFECDecoder?
    /// Repair rounds asked for and not yet answered.
    var repairRequests = RepairRequests()
    /// Video with Braid's FEC: asks for what a silence of the stream probably hid.
    var silence = SilenceProbe()
    var packetsRecoveredByFEC = 0
    var repairPacketsReceived = 0
    var framesDecodableInTime = 0
    /// FEC rebuilds of packets the NACK generator had not yet seen missing (no later packet had come).
    var packetsRebuiltBeforeDetection = 0
    var retransmissionBytes: Int64 = 0
    var repairBytes: Int64 = 0
    let clockRate: UInt32
    var earlier = Earlier()
    var assembler = VP8FrameAssembler()
    var freezes = FreezeDetector()
    /// Freezes of a player with a fixed playout point: each frame shown 250 ms after its capture, or when it
    /// becomes decodable if that is later.
    var playoutFreezes = FreezeDetector()
    var keyframes: KeyframeRequestThrottle?
    var retransmissionsReceived = 0
    /// Audio only, when decoding is on.
    var audioDecoder: AudioPlayout?
    var earlierAudioFrames = (inTime: 0, late: 0, missing: 0, fromRedundancy: 0)
    var malformedRED = 0
    /// Audio with generic NACK in the answer: a lost packet is asked for again while the answer can still
    /// make its frame's playout point (``SubscriberMedia/askForLostAudio(_:track:latency:now:)``).
    var asksForLostAudio = false
    /// Audio: the newest packet in sequence (its number and timestamp), to place a gap's frames in time.
    var newestAudioPacket: (sequenceNumber: UInt16, timestamp: UInt32)?
    /// Audio: the missing numbers waiting for a NACK and the frame each most likely carried, so that one
    /// whose frame arrives meanwhile (a redundant block) is not asked for.
    var audioGaps: [(sequenceNumber: UInt16, timestamp: UInt32)] = []
    /// Audio: how far back (ticks) the newest RED packet's redundant blocks reach: a lost frame can still
    /// come that long after its own packet.
    var redundancyReach: Int64 = 0

    init(section: RemoteAnswer.Section, audioDeadline: Duration) {
        self.kind = section.kind
        self.mid = section.mid
        self.transportSequenceID = section.extensions.transportSequenceNumber
        self.midID = section.extensions.mid
        self.captureTimeID = section.extensions.absCaptureTime
        self.payloadType = section.payloadType
        self.rtxPayloadType = section.rtxPayloadType
        self.redPayloadType = section.redPayloadType
        self.audioFrames = AudioFrameDeadlines(deadlineMicroseconds: Int64(audioDeadline / .microseconds(1)))
        self.clockRate = section.kind == .audio ? 48_000 : 90_000
        if let ssrc = section.ssrc { self.bind(ssrc: ssrc) }
        self.rtxSSRC = section.rtxSSRC
        self.setRepairStream(section)
    }

    /// A subscriber sends no sender reports, so RTCP gives it no round-trip time: its NACKs learn it.
    /// Retries wait a little past the round trip, so that they do not race the previous NACK's answer.
    ///
    /// With FEC `repairs`, a new gap is asked for only after ``repairGrace``: the node sends a packet's
    /// up-front repairs right behind it, so the packet that shows a gap is often followed within a
    /// millisecond by a repair that fills it, and a repair round asked for at once is wasted (at 50 % loss
    /// most round repairs arrive with nothing left to rebuild; Benchmarks/README.md, "Loss protection").
    static func makeNACKGenerator(repairs: Bool) -> NACKGenerator {
        var generator = NACKGenerator(
            configuration: .init(reorderingDelay: repairs ? Self.repairGrace : .zero, retryMargin: .milliseconds(8)))
        generator.learnsRoundTripTime = true
        return generator
    }

    /// How long a new gap waits for the repairs sent behind the packet that showed it.
    static let repairGrace = TimeAmount.milliseconds(4)

    private func setRepairStream(_ section: RemoteAnswer.Section) {
        self.fecPayloadType = section.fecPayloadType
        self.fecSSRC = section.fecSSRC
        self.fec = section.fecPayloadType == nil ? nil : SlidingWindowFECDecoder()
        self.nack = IncomingTrack.makeNACKGenerator(repairs: self.fec != nil)
        self.silence = SilenceProbe()
        self.asksForLostAudio = section.kind == .audio && section.nack
        self.newestAudioPacket = nil
        self.audioGaps.removeAll()
    }

    /// Whether `packet` belongs to the FEC repair stream.
    func isRepair(_ packet: RTPPacket) -> Bool {
        guard self.fec != nil else { return false }
        return packet.ssrc == self.fecSSRC || (self.fecSSRC == nil && packet.payloadType == self.fecPayloadType)
    }

    func bind(ssrc: UInt32) {
        self.ssrc = ssrc
        self.statistics = ReceiveStatistics(ssrc: ssrc, clockRate: self.clockRate)
        self.keyframes = KeyframeRequestThrottle(mediaSSRC: ssrc)
    }

    /// Starts receiving the same track from another node (`section` of its answer): sequence, SSRC and
    /// repair state start over, counters carry over into ``earlier``; freezes and latency go on.
    func restart(section: RemoteAnswer.Section) {
        self.earlier.packetsReceived += self.statistics?.packetsReceived ?? 0
        self.earlier.packetsLost += max(0, self.statistics?.cumulativeLost ?? 0)
        self.earlier.packetsRecovered += self.nack.packetsRecovered + self.packetsRebuiltBeforeDetection
        self.packetsRebuiltBeforeDetection = 0
        self.earlier.packetsUnrecovered += self.nack.packetsGivenUp + self.nack.missingCount
        self.earlier.framesComplete += self.assembler.framesComplete
        self.earlier.framesDecodable += self.assembler.framesDecodable
        self.earlier.keyframes += self.assembler.keyframes
        self.earlier.framesLost += self.assembler.framesLost
        let frames = self.audioFrames.totals
        self.earlierAudioFrames.inTime += frames.inTime
        self.earlierAudioFrames.late += frames.late
        self.earlierAudioFrames.missing += frames.missing
        self.earlierAudioFrames.fromRedundancy += self.audioFrames.framesFromRedundancy
        self.audioFrames = AudioFrameDeadlines(deadlineMicroseconds: self.audioFrames.deadlineMicroseconds)
        self.mid = section.mid
        self.transportSequenceID = section.extensions.transportSequenceNumber
        self.midID = section.extensions.mid
        self.captureTimeID = section.extensions.absCaptureTime
        self.payloadType = section.payloadType
        self.rtxPayloadType = section.rtxPayloadType
        self.redPayloadType = section.redPayloadType
        self.setRepairStream(section)
        self.ssrc = nil
        self.statistics = nil
        self.keyframes = nil
        self.rtxSSRC = section.rtxSSRC
        if let ssrc = section.ssrc { self.bind(ssrc: ssrc) }
        self.assembler = VP8FrameAssembler()
        self.audioDecoder?.restart()
    }
}

/// Decodes an audio track as a player would, in arrival order, frame by frame (a RED packet's redundant
/// blocks, oldest first, then its primary): a frame older than the last one played is too late and
/// skipped (silently when it is a redundant copy or a repeat); a gap is filled by in-band FEC
/// (RFC 6716 §2.1.7, from the next frame's LBRR data) for the frame just before the one that arrived, and
/// by packet loss concealment for the rest (RFC 6716 §4.4). Frames are told apart by RTP timestamp. PCM
/// goes to one preallocated buffer: no allocation per packet.
final class AudioPlayout {
    let decoder: OpusDecoder
    var pcm: [Int16]
    var timestamps = TimestampUnwrapper()
    var lastPlayed: Int64?
    var framesDecoded = 0
    var framesConcealed = 0
    var framesRecoveredByFEC = 0
    var framesTooLate = 0
    var decodeErrors = 0
    /// Every sample played (decoded, rebuilt from in-band FEC or concealed), in playout order, when the
    /// subscriber records its audio (48 kHz mono).
    var recording: [Int16]?
    /// Longest gap concealed frame by frame; longer gaps are counted without running the decoder.
    static let maximumConcealedRun: Int64 = 50

    init() throws(CodecError) {
        self.decoder = try OpusDecoder(sampleRate: .hz48000, channels: .mono)
        self.pcm = Array(repeating: 0, count: self.decoder.maximumSamplesPerChannel)
    }

    /// Another timestamp space follows (the same track from another node).
    func restart() {
        self.timestamps = TimestampUnwrapper()
        self.lastPlayed = nil
    }

    /// Plays the frame with RTP timestamp `timestamp` (48 kHz); `isCopy` for a redundant block or a repeat.
    func play(timestamp: UInt32, payload: ByteBuffer, isCopy: Bool) {
        let position = self.timestamps.unwrap(timestamp)
        let frameSamples = Int64((try? self.decoder.lastPacketDuration()).flatMap { $0 > 0 ? $0 : nil } ?? 960)
        if let last = self.lastPlayed {
            guard position > last else {
                if !isCopy && position < last { self.framesTooLate += 1 }
                return
            }
            let missing = (position - last) / frameSamples - 1
            if missing > 0 {
                let run = min(missing, Self.maximumConcealedRun)
                self.framesConcealed += Int(missing - run)
                for index in 0..<run {
                    let isLast = index == run - 1
                    let recovered: Bool? = self.pcm.withUnsafeMutableBufferPointer { pcm in
                        payload.withUnsafeReadableBytes { packet in
                            if isLast {
                                return try? self.decoder.decodeFEC(
                                    from: packet, frameSamples: Int(frameSamples), into: pcm)
                                    .recoveredFromLBRR
                            }
                            return (try? self.decoder.decodeLost(frameSamples: Int(frameSamples), into: pcm)).map { _ in
                                false
                            }
                        }
                    }
                    if recovered == true { self.framesRecoveredByFEC += 1 } else { self.framesConcealed += 1 }
                    if recovered != nil { self.record(Int(frameSamples)) }
                }
            }
        }
        let decoded = self.pcm.withUnsafeMutableBufferPointer { pcm in
            payload.withUnsafeReadableBytes { packet in try? self.decoder.decode(packet: packet, into: pcm) }
        }
        if let decoded {
            self.framesDecoded += 1
            self.record(decoded)
        } else {
            self.decodeErrors += 1
        }
        self.lastPlayed = position
    }
}

extension AudioPlayout {
    /// Appends the first `samples` of the output buffer to the recording, if one is kept.
    func record(_ samples: Int) {
        guard self.recording != nil else { return }
        self.recording!.append(contentsOf: self.pcm[0..<min(samples, self.pcm.count)])
    }
}

/// The receive-side media processing of a subscriber, without sockets: per-track statistics, NACK and
/// keyframe requests, transport-wide feedback, frame assembly, freezes and latency. ``BraidSubscriber``
/// feeds it decrypted packets and sends the RTCP it writes; tests feed it packets directly.
struct SubscriberMedia {
    let requestedAt: NIODeadline
    let senderSSRC: UInt32
    var tracks: [IncomingTrack]
    /// Which track each known SSRC belongs to, rebuilt whenever a track's SSRCs change.
    var routes = TrackRoutes()
    var feedback = TransportFeedbackRecorder(capacity: 1024, maximumPacketSize: 1000)
    var joinTime: Duration?
    var nacksSent = 0
    var keyframeRequestsSent = 0
    var receiverReportsSent = 0
    var transportFeedbackSent = 0
    var unknownSSRCPackets = 0
    var tick = 0
    /// Light reception (``SubscriberReception/light(authenticateEvery:)``): packets are counted from their
    /// headers, video frames are not assembled.
    var light = false
    /// When new media last arrived (see ``noteProgress(now:)``) and the longest time between two such
    /// arrivals: a player's longest stall, measured where it happens rather than by polling.
    var lastProgress: NIODeadline?
    var longestGap = TimeAmount.zero
    let hasVideo: Bool
    var rtcp = ByteBuffer()
    var missing: ContiguousArray<UInt16> = []
    /// Without abs-capture-time: a video packet's capture time from its VP8 picture ID (see
    /// ``CaptureTimeLog``).
    var captureTimeLookup: (@Sendable (UInt16) -> UInt64?)?
    let cname = "braid-subscriber"
    /// The playout deadline audio frames are counted against (capture to arrival).
    public static let defaultAudioDeadline = Duration.milliseconds(200)
    /// A video frame counts as decodable in time when complete within this of its capture.
    static let videoDeadlineMicroseconds: Int64 = 250_000

    init(
        sections: [RemoteAnswer.Section], requestedAt: NIODeadline, senderSSRC: UInt32, decodeAudio: Bool = false,
        recordAudio: Bool = false, audioDeadline: Duration = SubscriberMedia.defaultAudioDeadline
    ) {
        self.requestedAt = requestedAt
        self.senderSSRC = senderSSRC
        let accepted = sections.filter(\.accepted)
        self.tracks = accepted.map { IncomingTrack(section: $0, audioDeadline: audioDeadline) }
        self.hasVideo = accepted.contains { $0.kind == .video }
        if decodeAudio {
            for track in self.tracks where track.kind == .audio { track.audioDecoder = try? AudioPlayout() }
        }
        if recordAudio {
            for track in self.tracks where track.kind == .audio {
                if track.audioDecoder == nil { track.audioDecoder = try? AudioPlayout() }
                track.audioDecoder?.recording = []
            }
        }
        self.routes.rebuild(self.tracks)
        self.rtcp.reserveCapacity(1500)
        self.missing.reserveCapacity(1000)
    }

    /// Whether another node's answer accepted the same tracks, kind by kind, as the first one.
    func accepts(_ sections: [RemoteAnswer.Section]) -> Bool {
        sections.filter(\.accepted).map(\.kind) == self.tracks.map(\.kind)
    }

    /// Receives the same tracks from another node (see ``accepts(_:)``): per-track state starts over,
    /// counters go on.
    mutating func restart(sections: [RemoteAnswer.Section]) {
        let accepted = sections.filter(\.accepted)
        for (track, section) in zip(self.tracks, accepted) { track.restart(section: section) }
        self.routes.rebuild(self.tracks)
        self.feedback = Self.makeFeedbackRecorder(light: self.light)
    }

    /// The transport-wide feedback recorder: room for 1024 packets between two feedback packets, or 256
    /// under light reception (a tenth of a second of a few Mbit/s), which saves 18 KB per subscriber.
    static func makeFeedbackRecorder(light: Bool) -> TransportFeedbackRecorder {
        TransportFeedbackRecorder(capacity: light ? 256 : 1024, maximumPacketSize: 1000)
    }

    /// Packets asked for before a video stream's first one when that is not a keyframe's first packet
    /// (at 50 % loss, losing the first 8 of a keyframe happens once in 256 joins).
    static let packetsAskedBeforeFirst = 8

    mutating func received(
        rtp packet: RTPPacket, now: NIODeadline, wallClock: UInt64, send: (ByteBuffer) -> Void
    ) {
        if self.joinTime == nil { self.joinTime = .nanoseconds((now - self.requestedAt).nanoseconds) }
        guard let index = self.trackIndex(for: packet) else {
            self.unknownSSRCPackets += 1
            return
        }
        if self.light {
            self.receivedLightRetransmission(packet, index: index, now: now, wallClock: wallClock, send: send)
            return
        }
        let track = self.tracks[index]
        if let id = track.transportSequenceID,
            let value = try? packet.headerExtension(TransportSequenceNumber.self, id: id)
        {
            self.feedback.record(value.value, arrival: now)
        }
        if track.isRepair(packet) {
            track.repairPacketsReceived += 1
            track.repairBytes += Int64(packet.length)
            // The repair names the newest packet sent: anything up to it not yet here is missing now.
            let header = try? FECRepairHeader(packet.payload)
            // The first answer of a round times the round trip of the NACK it answers.
            if let header, header.answersNACK,
                let roundTrip = track.repairRequests.answerArrived(covering: header.firstSequenceNumber, now: now),
                track.nack.learnsRoundTripTime
            {
                track.nack.roundTripSample(roundTrip)
            }
            if let header, header.sourceCount > 0 {
                let last = header.firstSequenceNumber &+ UInt16(truncatingIfNeeded: header.sourceCount - 1)
                track.nack.sentThrough(sequenceNumber: last, now: now)
            }
            track.silence.arrived(newest: track.nack.newestSequence, now: now)
            for bytes in track.fec?.repairReceived(packet.payload) ?? [] {
                guard let recovered = try? RTPPacket(bytes) else { continue }
                track.packetsRecoveredByFEC += 1
                self.receivedMedia(recovered, index: index, now: now, wallClock: wallClock, recovered: true, send: send)
            }
            self.sendNACKs(track, now: now, send: send)
            return
        }
        self.receivedMedia(packet, index: index, now: now, wallClock: wallClock, recovered: false, send: send)
    }

    /// A media or RTX packet of track `index`, as received or as rebuilt from FEC (`recovered`: it never
    /// arrived, so the RTP statistics, which the receiver reports feed on, do not count it).
    mutating func receivedMedia(
        _ packet: RTPPacket, index: Int, now: NIODeadline, wallClock: UInt64, recovered: Bool,
        send: (ByteBuffer) -> Void
    ) {
        var latency = self.recordLatency(packet, index: index, wallClock: wallClock)
        let track = self.tracks[index]
        let isRTX =
            packet.ssrc == track.rtxSSRC || (packet.payloadType == track.rtxPayloadType && track.rtxPayloadType != nil)
        var sequenceNumber = packet.sequenceNumber
        var payload = packet.payload
        if isRTX {
            // RFC 4588 §4: the first two payload bytes are the original sequence number. Empty RTX
            // packets (padding probes) carry nothing to repair.
            guard let original = payload.readInteger(as: UInt16.self), payload.readableBytes > 0 else { return }
            sequenceNumber = original
            track.retransmissionsReceived += 1
            track.retransmissionBytes += Int64(packet.length)
        } else if !recovered {
            track.statistics?.packetReceived(packet, now: now)
            track.mediaBytes += Int64(packet.length)
            // A retransmission is rebuilt by the sender (fresh extensions): only originals are FEC sources.
            track.fec?.sourceReceived(packet.bytes, sequenceNumber: sequenceNumber)
        }
        switch track.kind {
        case .audio:
            if !self.hasVideo { self.noteProgress(now: now) }
            self.receivedAudio(packet, payload: payload, track: track, latency: latency, isRetransmission: isRTX)
            if track.asksForLostAudio, !isRTX, !recovered {
                self.askForLostAudio(packet, track: track, latency: latency, now: now, send: send)
            }
        case .video:
            // A rebuild times no round trip: which NACK, if any, its repair answered is ``RepairRequests``'s to
            // say (see `received(rtp:)`).
            let outcome = track.nack.packetReceived(sequenceNumber: sequenceNumber, isRetransmission: isRTX, now: now)
            if !recovered { track.silence.arrived(newest: track.nack.newestSequence, now: now) }
            // Rebuilt before a later packet showed it missing: lost on the wire, repaired all the same.
            if recovered, case .advanced = outcome { track.packetsRebuiltBeforeDetection += 1 }
            // The first loss starts the FEC record (if no repair did): the repairs answering its NACK cover
            // it and everything after it, this packet included.
            if !isRTX, !recovered, case .advanced(let newlyMissing) = outcome, newlyMissing > 0,
                track.fec?.isActive == false
            {
                track.fec!.startRecording(from: sequenceNumber &- UInt16(truncatingIfNeeded: newlyMissing))
                track.fec!.sourceReceived(packet.bytes, sequenceNumber: sequenceNumber)
            }
            // A retransmission that fills a hole answers a request as a repair round's packet does; the
            // FEC equations over it cannot use it (its extensions are fresh).
            if isRTX, case .recovered = outcome {
                track.repairRequests.answerArrived(covering: sequenceNumber, now: now)
                track.fec?.sourceRecoveredElsewhere(sequenceNumber: sequenceNumber)
            }
            if case .keyframeNeeded = outcome { self.requestKeyframe(track, now: now, send: send) }
            // NACKs go out when due, not only on the tick: at once for a new gap, a retry one round trip
            // after the last (the 20 ms tick alone would add 10 ms to every round). A packet rebuilt from
            // FEC waits for the repair packet's other rebuilds.
            if !recovered { self.sendNACKs(track, now: now, send: send) }
            guard let vp8 = try? VP8Payload(payload) else { return }
            // The first packet is not a keyframe's first: the ones before it were lost (the node starts a
            // subscriber's video at a keyframe), and a later packet will never show them missing.
            if case .first = outcome, !vp8.isKeyFrame, track.nack.expectEarlier(Self.packetsAskedBeforeFirst, now: now) > 0 {
                track.fec?.startRecording(from: sequenceNumber &- UInt16(Self.packetsAskedBeforeFirst))
                track.fec?.sourceReceived(packet.bytes, sequenceNumber: sequenceNumber)
                self.sendNACKs(track, now: now, send: send)
            }
            if latency == nil, let lookup = self.captureTimeLookup, let pictureID = vp8.descriptor.pictureID,
                let capture = lookup(pictureID.value)
            {
                let microseconds = WallClock.microseconds(fromNTP: capture, to: wallClock)
                track.latency.record(microseconds: microseconds)
                latency = microseconds
            }
            var rendered = 0
            var inTime = 0
            var keyframe = false
            track.assembler.insert(
                sequenceNumber: sequenceNumber, timestamp: packet.timestamp, marker: packet.marker, payload: vp8,
                now: now
            ) { event in
                if case .frame(let frame) = event {
                    if frame.isDecodable {
                        rendered += 1
                        // A frame becomes decodable now; its capture time is this packet's, moved back by the
                        // RTP time between them (the publisher's media clock runs with its capture clock).
                        let behind = Int64(Int32(bitPattern: packet.timestamp &- frame.timestamp)) * 1_000_000 / 90_000
                        let deadline = Self.videoDeadlineMicroseconds
                        let age = latency.map { $0 + behind }
                        if let age, age <= deadline { inTime += 1 }
                        // Shown at its playout point, or now if late (or of unknown capture time).
                        track.playoutFreezes.frameRendered(at: now + .microseconds(max(0, deadline - (age ?? deadline))))
                    }
                    if frame.isKeyframe { keyframe = true }
                }
            }
            for _ in 0..<rendered { track.freezes.frameRendered(at: now) }
            if rendered > 0 { self.noteProgress(now: now) }
            track.framesDecodableInTime += inTime
            if keyframe {
                track.keyframes?.keyframeReceived()
                // Older holes no longer matter to the decoder.
                track.nack.forgetMissing(before: sequenceNumber)
                track.fec?.forgetEquations(before: sequenceNumber)
            }
            let needKeyframe = track.assembler.needsKeyframe && track.assembler.framesComplete > 0
            if needKeyframe { self.requestKeyframe(track, now: now, send: send) }
        }
    }

    /// Audio NACK, deadline-aware (RFC 4585 generic NACK; the node resends from its audio store). Called
    /// after the packet's frames (its RED blocks included) are counted:
    /// - a gap in the packet numbers is asked for unless every frame between the packets on either side of
    ///   it has arrived (as redundant blocks of the packet that showed it, or because the missing numbers
    ///   were repeats of frames in hand);
    /// - each missing number gets the playout deadline of the frame it most likely carried, its timestamp
    ///   placed between its neighbours' by its number, and is asked for only while an answer sent now can
    ///   arrive by then (``NACKGenerator/setDeadline(_:askNotBefore:for:)``): a frame that would come after
    ///   its playout point is concealed anyway; the first NACK waits while a later packet's redundant blocks
    ///   may still bring the frame.
    mutating func askForLostAudio(
        _ packet: RTPPacket, track: IncomingTrack, latency: Int64?, now: NIODeadline, send: (ByteBuffer) -> Void
    ) {
        let sequenceNumber = packet.sequenceNumber
        // A plain resend fills its hole like a retransmission: it times the round trip.
        let outcome = track.nack.packetReceived(sequenceNumber: sequenceNumber, isRetransmission: true, now: now)
        switch outcome {
        case .first:
            track.newestAudioPacket = (sequenceNumber, packet.timestamp)
        case .advanced(let newlyMissing):
            // A plain packet in sequence: the sender stopped RED, so nothing lost can come later but by NACK.
            if packet.payloadType != track.redPayloadType { track.redundancyReach = 0 }
            let previous = track.newestAudioPacket
            track.newestAudioPacket = (sequenceNumber, packet.timestamp)
            guard newlyMissing > 0, let previous else { break }
            self.placeAudioGap(
                after: previous, before: (sequenceNumber, packet.timestamp), missing: newlyMissing, track: track,
                latency: latency ?? 0, now: now)
        default:
            break
        }
        self.forgetArrivedAudio(track)
        // Until its own NACKs are answered, the audio track takes the round trip video has measured.
        if !track.nack.hasRoundTripSample,
            let video = self.tracks.first(where: { $0.kind == .video && $0.nack.hasRoundTripSample })
        {
            track.nack.roundTripTime = video.nack.roundTripTime
        }
        self.sendNACKs(track, now: now, send: send)
    }

    /// The `missing` numbers between audio packets `previous` and `next` (which arrived now, `latency`
    /// after its capture): each is placed on the frame it most likely carried, by its number between the two
    /// packets' timestamps; forgotten when that frame has arrived (a redundant block, or the number was a
    /// repeat of a frame in hand), else given that frame's playout deadline.
    private func placeAudioGap(
        after previous: (sequenceNumber: UInt16, timestamp: UInt32), before next: (sequenceNumber: UInt16, timestamp: UInt32),
        missing: Int, track: IncomingTrack, latency: Int64, now: NIODeadline
    ) {
        let span = Int64(Int32(bitPattern: next.timestamp &- previous.timestamp))
        let frameTicks = track.audioFrames.frameTicks
        // Timestamps that place an implausible number of frames between the two say nothing.
        let placeable = span >= 0 && span <= frameTicks * Int64(NACKGenerator.maximumAnnouncedGap)
        for index in 0..<missing {
            let number = previous.sequenceNumber &+ UInt16(truncatingIfNeeded: index + 1)
            let ticksBefore = placeable ? span * Int64(missing - index) / Int64(missing + 1) : 0
            // The frame it most likely carried, on the frame grid.
            var frame: UInt32?
            if placeable {
                let framesBefore = (ticksBefore + frameTicks / 2) / frameTicks
                let timestamp = next.timestamp &- UInt32(truncatingIfNeeded: framesBefore * frameTicks)
                if track.audioFrames.hasFrame(timestamp: timestamp) {
                    track.nack.forget(number)
                    continue
                }
                frame = timestamp
            }
            // Unplaceable: at least as urgent as the packet that showed the gap.
            let age = latency + ticksBefore * 1_000_000 / Int64(track.clockRate)
            let deadline = now + .microseconds(track.audioFrames.deadlineMicroseconds - age)
            // A later packet's redundant blocks may still bring the frame: wait for the last of them, but ask
            // no later than an answer can make the deadline.
            let stillComing = max(0, track.redundancyReach - ticksBefore) * 1_000_000 / Int64(track.clockRate)
            let lastAsk = deadline - track.nack.answerTime
            let askAt = min(now + .microseconds(stillComing) + Self.redundancyMargin, lastAsk)
            track.nack.setDeadline(deadline, askNotBefore: askAt, for: number)
            if let frame, track.audioGaps.count < NACKGenerator.maximumAnnouncedGap {
                track.audioGaps.append((number, frame))
            }
        }
    }

    /// How much later than its packet's neighbours the last redundant copy of a frame is waited for.
    static let redundancyMargin = TimeAmount.milliseconds(5)

    /// Forgets the missing audio numbers whose frame has arrived since (as a redundant block) and drops the
    /// ones no longer missing from ``IncomingTrack/audioGaps``.
    func forgetArrivedAudio(_ track: IncomingTrack) {
        guard !track.audioGaps.isEmpty else { return }
        track.audioGaps.removeAll { gap in
            guard track.nack.isMissing(gap.sequenceNumber) else { return true }
            guard track.audioFrames.hasFrame(timestamp: gap.timestamp) else { return false }
            track.nack.forget(gap.sequenceNumber)
            return true
        }
    }

    /// New media arrived for the player: a decodable video frame, or an audio packet when there is no
    /// video; under light reception, any media packet.
    mutating func noteProgress(now: NIODeadline) {
        if let last = self.lastProgress, now - last > self.longestGap { self.longestGap = now - last }
        self.lastProgress = now
    }

    /// Capture to arrival from the packet's abs-capture-time, recorded in the track's histogram.
    mutating func recordLatency(_ packet: RTPPacket, index: Int, wallClock: UInt64) -> Int64? {
        let track = self.tracks[index]
        guard let id = track.captureTimeID, let element = packet.extension(id: id),
            let capture = try? AbsCaptureTime(extensionValue: element.value)
        else { return nil }
        let offset = capture.estimatedCaptureClockOffset ?? 0
        let microseconds = WallClock.microseconds(
            fromNTP: capture.captureTimestamp &+ UInt64(bitPattern: offset), to: wallClock)
        track.latency.record(microseconds: microseconds)
        return microseconds
    }

    // MARK: Light reception

    /// A packet still encrypted (light reception): everything a receiver learns from RTP headers —
    /// statistics for the receiver reports, loss and NACKs, transport-wide feedback, capture-to-arrival
    /// latency, audio frames against their playout deadline — and nothing that needs the payload (video
    /// frames, RED blocks, decoding). Returns true for a retransmission, whose original sequence number
    /// is in its payload: the transport then decrypts it for ``received(rtp:now:wallClock:send:)``.
    mutating func receivedSealed(
        rtp packet: RTPPacket, now: NIODeadline, wallClock: UInt64, send: (ByteBuffer) -> Void
    ) -> Bool {
        if self.joinTime == nil { self.joinTime = .nanoseconds((now - self.requestedAt).nanoseconds) }
        guard let index = self.trackIndex(for: packet) else {
            self.unknownSSRCPackets += 1
            return false
        }
        let track = self.tracks[index]
        if let id = track.transportSequenceID,
            let value = try? packet.headerExtension(TransportSequenceNumber.self, id: id)
        {
            self.feedback.record(value.value, arrival: now)
        }
        if packet.ssrc == track.rtxSSRC || (packet.payloadType == track.rtxPayloadType && track.rtxPayloadType != nil) {
            return true
        }
        let latency = self.recordLatency(packet, index: index, wallClock: wallClock)
        track.statistics?.packetReceived(packet, now: now)
        track.mediaBytes += Int64(packet.length)
        self.noteProgress(now: now)
        switch track.kind {
        case .audio:
            track.audioFrames.received(
                timestamp: packet.timestamp, durationTicks: nil, latencyMicroseconds: latency, redundant: false)
        case .video:
            let outcome = track.nack.packetReceived(sequenceNumber: packet.sequenceNumber, isRetransmission: false, now: now)
            if case .keyframeNeeded = outcome { self.requestKeyframe(track, now: now, send: send) }
            self.sendNACKs(track, now: now, send: send)
        }
        return false
    }

    /// A retransmission under light reception, decrypted: the repair is counted by its original sequence
    /// number (RFC 4588 §4).
    mutating func receivedLightRetransmission(
        _ packet: RTPPacket, index: Int, now: NIODeadline, wallClock: UInt64, send: (ByteBuffer) -> Void
    ) {
        let track = self.tracks[index]
        var payload = packet.payload
        guard packet.ssrc == track.rtxSSRC || (packet.payloadType == track.rtxPayloadType && track.rtxPayloadType != nil),
            let original = payload.readInteger(as: UInt16.self), payload.readableBytes > 0
        else { return }
        track.retransmissionsReceived += 1
        track.retransmissionBytes += Int64(packet.length)
        let latency = self.recordLatency(packet, index: index, wallClock: wallClock)
        switch track.kind {
        case .audio:
            track.audioFrames.received(
                timestamp: packet.timestamp, durationTicks: nil, latencyMicroseconds: latency, redundant: false)
        case .video:
            _ = track.nack.packetReceived(sequenceNumber: original, isRetransmission: true, now: now)
        }
    }

    /// An audio packet: each frame it carries (RED: the redundant blocks, oldest first, then the primary)
    /// is counted against its playout deadline and played if it is not past it. A block's capture time is
    /// the packet's minus its timestamp offset.
    func receivedAudio(_ packet: RTPPacket, payload: ByteBuffer, track: IncomingTrack, latency: Int64?, isRetransmission: Bool) {
        func frame(_ data: ByteBuffer, offset: UInt32, isCopy: Bool) {
            let timestamp = packet.timestamp &- offset
            let duration = (try? OpusPacketInfo(data))?.durationSamples
            let blockLatency = latency.map { $0 + Int64(offset) * 1_000_000 / Int64(track.clockRate) }
            track.audioFrames.received(
                timestamp: timestamp, durationTicks: duration, latencyMicroseconds: blockLatency, redundant: offset > 0)
            // A player with a playout point has concealed a frame that comes after it.
            if let blockLatency, blockLatency > track.audioFrames.deadlineMicroseconds { return }
            track.audioDecoder?.play(timestamp: timestamp, payload: data, isCopy: isCopy)
        }
        guard let red = track.redPayloadType, packet.payloadType == red else {
            frame(payload, offset: 0, isCopy: isRetransmission)
            return
        }
        guard let parsed = try? REDPayload(payload) else {
            track.malformedRED += 1
            return
        }
        track.redundancyReach = parsed.redundant.reduce(0) { max($0, Int64($1.timestampOffset)) }
        for block in parsed.redundant where block.payloadType == track.payloadType {
            frame(block.data, offset: UInt32(block.timestampOffset), isCopy: true)
        }
        if parsed.primary.payloadType == track.payloadType, parsed.primary.data.readableBytes > 0 {
            frame(parsed.primary.data, offset: 0, isCopy: isRetransmission)
        }
    }

    mutating func received(rtcp compound: RTCPCompoundPacket, now: NIODeadline) {
        for packet in compound {
            guard case .senderReport(let report) = packet else { continue }
            for index in self.tracks.indices where self.tracks[index].ssrc == report.senderSSRC {
                self.tracks[index].statistics?.senderReportReceived(ntpTimestamp: report.ntpTimestamp, now: now)
            }
        }
    }

    /// Finds the track of a packet: by SSRC (signalled or bound earlier), else by MID, else by a payload
    /// type only one unbound track uses; binds the SSRC it found.
    mutating func trackIndex(for packet: RTPPacket) -> Int? {
        if let index = self.routes.index(of: packet.ssrc) { return index }
        guard let index = self.bindTrack(for: packet) else { return nil }
        self.routes.rebuild(self.tracks)
        return index
    }

    /// A packet of an SSRC no track has yet: the track it belongs to by its MID extension, or by its
    /// payload type when exactly one unbound track has that type, which then takes the SSRC.
    private mutating func bindTrack(for packet: RTPPacket) -> Int? {
        let ssrc = packet.ssrc
        for index in self.tracks.indices
        where self.tracks[index].ssrc == ssrc || self.tracks[index].rtxSSRC == ssrc || self.tracks[index].fecSSRC == ssrc {
            return index
        }
        let isRTX: (IncomingTrack) -> Bool = { $0.rtxPayloadType == packet.payloadType }
        for index in self.tracks.indices {
            guard let id = self.tracks[index].midID, let mid = self.tracks[index].mid,
                let element = packet.extension(id: id),
                let value = try? RTPStreamIdentifier(extensionValue: element.value), value.matches(mid)
            else { continue }
            if isRTX(self.tracks[index]) {
                self.tracks[index].rtxSSRC = ssrc
            } else {
                self.tracks[index].bind(ssrc: ssrc)
            }
            return index
        }
        let candidates = self.tracks.indices.filter {
            self.tracks[$0].ssrc == nil && self.tracks[$0].payloadType == packet.payloadType
        }
        if candidates.count == 1 {
            self.tracks[candidates[0]].bind(ssrc: ssrc)
            return candidates[0]
        }
        return nil
    }

    mutating func requestKeyframe(_ track: IncomingTrack, now: NIODeadline, send: (ByteBuffer) -> Void) {
        guard var throttle = track.keyframes, throttle.keyframeRequested(now: now) != nil else {
            return
        }
        track.keyframes = throttle
        self.rtcp.clear()
        do {
            try throttle.writePLI(senderSSRC: self.senderSSRC, into: &self.rtcp)
        } catch {
            return
        }
        send(self.rtcp)
        self.keyframeRequestsSent += 1
    }

    /// The 20 ms tick (100 ms under light reception): gives up stale frames, sends NACKs and keyframe
    /// requests, and every 100 ms transport-wide feedback, every second a receiver report.
    mutating func onTick(now: NIODeadline, send: (ByteBuffer) -> Void) {
        self.tick += 1
        for index in self.tracks.indices where self.tracks[index].kind == .video {
            let track = self.tracks[index]
            track.assembler.poll(now: now) { _ in }
            if track.ssrc != nil {
                self.sendNACKs(track, now: now, send: send)
                self.probeSilence(track, now: now, send: send)
                if track.assembler.needsKeyframe && track.assembler.framesComplete > 0 {
                    self.requestKeyframe(track, now: now, send: send)
                } else if var throttle = track.keyframes, throttle.retryDue(now: now) != nil {
                    track.keyframes = throttle
                    self.rtcp.clear()
                    if (try? throttle.writePLI(senderSSRC: self.senderSSRC, into: &self.rtcp)) != nil {
                        send(self.rtcp)
                        self.keyframeRequestsSent += 1
                    }
                }
            }
        }
        for index in self.tracks.indices where self.tracks[index].asksForLostAudio {
            self.forgetArrivedAudio(self.tracks[index])
            self.sendNACKs(self.tracks[index], now: now, send: send)
        }
        // Every 100 ms and every second (the light tick is 100 ms).
        if self.light || self.tick % 5 == 0 { self.sendTransportFeedback(send: send) }
        if self.tick % (self.light ? 10 : 50) == 0 { self.sendReceiverReport(now: now, send: send) }
    }

    /// Sends a NACK for the track's missing packets that are due: at once when a gap shows (libwebrtc's
    /// receiver does the same), again on the tick once a round trip has passed.
    ///
    /// With FEC repairs coming, the NACK asks only for the deficit: the missing packets the repair
    /// equations in hand cannot rebuild. The node answers it with a round of fresh repairs over the span
    /// from the oldest packet named through its newest (see the node's `VideoFECPolicy`), so naming the
    /// oldest due packets, as many as the deficit, asks for exactly what is needed.
    mutating func sendNACKs(_ track: IncomingTrack, now: NIODeadline, send: (ByteBuffer) -> Void) {
        guard let ssrc = track.ssrc else { return }
        // What was asked for within the last round trip is on its way: not asked for twice.
        let fecActive = track.fec?.isActive == true
        let deficit =
            fecActive ? track.nack.deficit(equations: track.fec!, requests: &track.repairRequests, now: now) : .max
        track.nack.pending(now: now, limit: deficit, into: &self.missing)
        guard !self.missing.isEmpty, self.sendNACK(mediaSSRC: ssrc, send: send) else { return }
        if fecActive { track.repairRequests.asked(self.missing, at: now) }
    }

    /// Sends a generic NACK (RFC 4585 §6.2.1) for the numbers in ``missing``; false if it could not be written.
    private mutating func sendNACK(mediaSSRC: UInt32, send: (ByteBuffer) -> Void) -> Bool {
        self.rtcp.clear()
        guard (try? NACKGenerator.writeNACK(
            senderSSRC: self.senderSSRC, mediaSSRC: mediaSSRC, sequenceNumbers: self.missing, into: &self.rtcp)) != nil
        else { return false }
        send(self.rtcp)
        self.nacksSent += 1
        return true
    }

    /// Asks for what a silence of a lossy video stream probably hid (``SilenceProbe``): the numbers after the
    /// newest packet seen, as a NACK the node answers with a repair round over those it has sent. Only while
    /// the track's FEC is active: on a clean link a silence is a pause, not a loss.
    mutating func probeSilence(_ track: IncomingTrack, now: NIODeadline, send: (ByteBuffer) -> Void) {
        guard let ssrc = track.ssrc, track.fec?.isActive == true, let newest = track.nack.newestSequence,
            track.silence.probe(after: newest, now: now, answerTime: track.nack.answerTime, into: &self.missing),
            self.sendNACK(mediaSSRC: ssrc, send: send)
        else { return }
        track.repairRequests.asked(self.missing, at: now)
    }

    mutating func sendTransportFeedback(send: (ByteBuffer) -> Void) {
        let mediaSSRC = self.tracks.first(where: { $0.kind == .video })?.ssrc ?? self.tracks.first?.ssrc ?? 0
        self.rtcp.clear()
        var builder = RTCPCompoundBuilder(buffer: self.rtcp)
        let written = self.feedback.write(senderSSRC: self.senderSSRC, mediaSSRC: mediaSSRC, into: &builder)
        self.rtcp = builder.finish()
        guard written > 0 else { return }
        send(self.rtcp)
        self.transportFeedbackSent += written
    }

    mutating func sendReceiverReport(now: NIODeadline, send: (ByteBuffer) -> Void) {
        self.rtcp.clear()
        var builder = RTCPCompoundBuilder(buffer: self.rtcp)
        var blocks: [RTCPReportBlock] = []
        blocks.reserveCapacity(self.tracks.count)
        for index in self.tracks.indices {
            if let block = self.tracks[index].statistics?.makeReportBlock(now: now) { blocks.append(block) }
        }
        // RFC 3550 §6.4.2: at most 31 blocks per RR.
        try? builder.appendReceiverReport(senderSSRC: self.senderSSRC, reportBlocks: blocks.prefix(31))
        try? builder.appendCNAME(ssrc: self.senderSSRC, cname: self.cname)
        self.rtcp = builder.finish()
        send(self.rtcp)
        self.receiverReportsSent += 1
    }

    func snapshot(connectTime: Duration?, transport: TransportStatistics, now: NIODeadline = .now()) -> SubscriberStatistics {
        var audio: [AudioTrackStatistics] = []
        var video: [VideoTrackStatistics] = []
        for track in self.tracks {
            let earlier = track.earlier
            let received = (track.statistics?.packetsReceived ?? 0) + earlier.packetsReceived
            let lost = (track.statistics?.cumulativeLost ?? 0) + earlier.packetsLost
            switch track.kind {
            case .audio:
                let frames = track.audioFrames.totals
                let earlierFrames = track.earlierAudioFrames
                let inTime = frames.inTime + earlierFrames.inTime
                let late = frames.late + earlierFrames.late
                let missing = frames.missing + earlierFrames.missing
                audio.append(
                    AudioTrackStatistics(
                        mid: track.mid, ssrc: track.ssrc, packetsReceived: received, packetsLost: lost,
                        jitter: track.statistics?.jitter ?? 0, framesReceived: Int64(inTime + late),
                        framesConcealed: Int64(late + missing), framesInTime: Int64(inTime), framesLate: Int64(late),
                        framesFromRedundancy: Int64(
                            track.audioFrames.framesFromRedundancy + earlierFrames.fromRedundancy),
                        malformedREDPackets: track.malformedRED,
                        packetsRecoveredByNACK: track.nack.packetsRecovered, packetsPastDeadline: track.nack.packetsExpired,
                        framesDecoded: track.audioDecoder?.framesDecoded,
                        framesConcealedByDecoder: track.audioDecoder?.framesConcealed,
                        framesRecoveredByFEC: track.audioDecoder?.framesRecoveredByFEC,
                        latency: LatencySummary(track.latency), latencyHistogram: track.latency))
            case .video:
                video.append(
                    VideoTrackStatistics(
                        mid: track.mid, ssrc: track.ssrc, packetsReceived: received, packetsLost: lost,
                        retransmissionsReceived: track.retransmissionsReceived,
                        packetsRecovered: track.nack.packetsRecovered + track.packetsRebuiltBeforeDetection
                            + earlier.packetsRecovered,
                        packetsUnrecovered: track.nack.packetsGivenUp + earlier.packetsUnrecovered,
                        packetsRecoveredByFEC: track.packetsRecoveredByFEC,
                        repairPacketsReceived: track.repairPacketsReceived,
                        repairPacketsDiscarded: track.fec?.repairsDiscarded ?? 0,
                        silenceProbesSent: track.silence.probesSent,
                        mediaBytesReceived: track.mediaBytes, retransmissionBytesReceived: track.retransmissionBytes,
                        repairBytesReceived: track.repairBytes,
                        framesDecodableInTime: track.framesDecodableInTime,
                        packetsAwaitingRepair: track.nack.missingCount,
                        jitter: track.statistics?.jitter ?? 0,
                        framesComplete: track.assembler.framesComplete + earlier.framesComplete,
                        framesDecodable: track.assembler.framesDecodable + earlier.framesDecodable,
                        keyframes: track.assembler.keyframes + earlier.keyframes,
                        framesLost: track.assembler.framesLost + earlier.framesLost, freezeCount: track.freezes.freezeCount,
                        totalFreezesDuration: .nanoseconds(track.freezes.totalFreezesDuration.nanoseconds),
                        playoutFreezeCount: track.playoutFreezes.freezeCount,
                        totalPlayoutFreezesDuration: .nanoseconds(track.playoutFreezes.totalFreezesDuration.nanoseconds),
                        latency: LatencySummary(track.latency), latencyHistogram: track.latency))
            }
        }
        var statistics = SubscriberStatistics(
            joinTime: self.joinTime, connectTime: connectTime, audio: audio, video: video,
            nacksSent: self.nacksSent, keyframeRequestsSent: self.keyframeRequestsSent,
            receiverReportsSent: self.receiverReportsSent, transportFeedbackSent: self.transportFeedbackSent,
            unknownSSRCPackets: self.unknownSSRCPackets, transport: transport)
        if let last = self.lastProgress {
            // A stall still going on counts too.
            statistics.longestMediaGap = .nanoseconds(max(self.longestGap, now - last).nanoseconds)
        }
        statistics.isLight = self.light
        return statistics
    }
}

/// Receives audio and video from a WHEP endpoint
/// ([draft-ietf-wish-whep](https://datatracker.ietf.org/doc/draft-ietf-wish-whep/)) and measures them.
///
/// ```swift
/// let subscriber = try await BraidSubscriber.subscribe(
///     to: "http://127.0.0.1:8080/whep/lobby", audioTracks: 1, videoTracks: 1,
///     group: MultiThreadedEventLoopGroup.singleton)
/// try await Task.sleep(for: .seconds(10))
/// let stats = await subscriber.statistics()
/// print(stats.joinTime, stats.video.first?.freezeCount, stats.video.first?.latency.p95)
/// try await subscriber.close()
/// ```
///
/// Per packet: SRTP unprotect in place, per-SSRC ``ReceiveStatistics`` (RFC 3550 A.1/A.3/A.8), a
/// ``NACKGenerator`` for video, the transport-wide arrival log, capture-to-receive latency from
/// abs-capture-time (receive wall time − capture NTP time: meaningful when sender and receiver share a
/// host clock or are NTP-synchronised), and VP8 frame assembly with decodability and freeze tracking.
/// RTX (RFC 4588) is unwrapped to the original sequence number. NACKs go out as soon as they are due (a gap
/// seen, or a round trip since the last NACK, checked on every packet and every 20 ms); every 20 ms
/// keyframe requests (PLI, throttled to one a second), every 100 ms transport-wide feedback, every second a
/// receiver report with SDES CNAME. An FEC repair packet's window tells which packets were sent, so a loss
/// is NACKed without waiting for the next media packet.
///
/// Opus frames are counted from the sequence space ("concealed" = never received). With `decodeAudio`
/// each audio track is also decoded as a player would (in-band FEC, then PLC for gaps; a sample of peers
/// is enough, as decoding costs CPU per packet).
///
/// State lives on one event loop of `group` (`@unchecked Sendable` for that reason).
/// How a subscriber treats what it receives.
public enum SubscriberReception: Sendable, Hashable {
    /// Every packet is authenticated and decrypted; video frames are assembled (freezes, frames decodable
    /// in time), audio can be decoded and played.
    case full
    /// For load tests with thousands of subscribers: packets are counted from their RTP headers, which
    /// SRTP leaves unencrypted (sequence numbers, timestamps, abs-capture-time, transport-wide sequence
    /// numbers). One packet in `authenticateEvery` is authenticated and decrypted — a failure is counted and
    /// the packet dropped —, and so is every retransmission (its original sequence number is in the payload)
    /// and every RTCP packet. Loss, repair by retransmission, NACKs, receiver reports, transport-wide
    /// feedback, latency, jitter and audio frames against the playout deadline are measured; video frames
    /// and freezes are not, audio is not decoded, and RED and FEC are not offered (they need payloads).
    case light(authenticateEvery: Int)
}

public final class BraidSubscriber: PeerMediaHandler, FailingOverPeer, @unchecked Sendable {
    // What every received packet reads comes first: the wall clock, then the media state.
    /// NTP receive time for capture-to-receive latency: the event loop's clock mapped to the wall clock
    /// read once at creation (a publisher maps its capture times the same way).
    let wallClock = WallClock.system(now: .now())
    var media: SubscriberMedia
    /// The transport in use: replaced when the subscriber moves to another node.
    var transport: PeerTransport
    /// The loop all of this subscriber's state lives on; every transport it uses runs there.
    let eventLoop: any EventLoop
    var resource: HTTPEndpoint?
    let options: ConnectionOptions
    let group: any EventLoopGroup
    let requestedAt: NIODeadline
    let reception: SubscriberReception
    var tasks: [RepeatedTask] = []
    /// Ticked by the event loop's ``LoopTicker`` (light reception).
    var ticking = false
    var connectTime: Duration?
    /// The offered tracks, offered again to another node.
    let offeredTracks: [OfferedTrack]
    /// Nodes to move to, and what moving did.
    var candidates: FailoverCandidates
    var failover = FailoverRecord()
    /// Counters of the transports used before the current one.
    var earlierTransports = TransportStatistics()

    /// Subscribes with a receive-only offer of `audioTracks` Opus and `videoTracks` VP8 sections and waits
    /// until media can flow. `decodeAudio` decodes the audio tracks too (see the type's notes);
    /// `recordAudio` decodes them and keeps every sample played, for ``recordedAudio()`` (48 kHz mono, about
    /// 6 MB a minute per track: for quality measurements, not for every peer of a load test).
    ///
    /// With ``ConnectionOptions/failover`` set (fallback nodes, or discovery from the node's
    /// `/api/v1/mesh`), a lost node is noticed within its loss timeout and the subscriber moves by itself
    /// to another node of the list for the same room and tracks; ``statistics()`` keeps counting and reports
    /// the moves. The `participant` filter is sent to the first node only (the WHIP resource id is a session
    /// of that node).
    ///
    /// - Parameter participant: the WHIP resource id of this client's own publisher
    ///   (``BraidPublisher/resourceID``), sent as the `participant` query parameter: a Braid node then never
    ///   fills this subscriber's slots with that publisher's tracks. Publish first; the node rejects an id
    ///   that is not a live WHIP session of the same room (`400`). Nil subscribes to every track.
    /// - Throws: ``BraidClientError/badArgument(_:)`` for a track count out of range, an empty
    ///   `participant` or a bad fallback URL, and what the HTTP exchange, ICE or DTLS throw.
    public static func subscribe(
        to url: String,
        audioTracks: Int = 1,
        videoTracks: Int = 1,
        decodeAudio: Bool = false,
        recordAudio: Bool = false,
        participant: String? = nil,
        reception: SubscriberReception = .full,
        options: ConnectionOptions = ConnectionOptions(),
        group: any EventLoopGroup
    ) async throws(BraidClientError) -> BraidSubscriber {
        guard audioTracks >= 0, videoTracks >= 0, audioTracks + videoTracks > 0, audioTracks + videoTracks <= 64 else {
            throw .badArgument("between 1 and 64 tracks, got \(audioTracks) audio and \(videoTracks) video")
        }
        var options = options
        if case .light(let every) = reception {
            guard every >= 1 else { throw .badArgument("light reception authenticates one packet in N >= 1, got \(every)") }
            guard !decodeAudio, !recordAudio else { throw .badArgument("light reception does not decode audio") }
            options.offersLossProtection = false
        }
        let room = try HTTPEndpoint(url: url)
        var endpoint = room
        if let participant {
            guard !participant.isEmpty else { throw .badArgument("participant is empty") }
            endpoint = endpoint.appendingQuery(name: "participant", value: participant)
        }
        let candidates = try FailoverCandidates(
            origin: endpoint, roomPath: room.path, fallbacks: options.failover.fallbacks)
        let tracks =
            (0..<audioTracks).map { OfferedTrack(kind: .audio, trackID: "audio\($0)") }
            + (0..<videoTracks).map { OfferedTrack(kind: .video, trackID: "video\($0)") }
        let join = try await PeerJoin.join(
            endpoint: endpoint, tracks: tracks, direction: .recvonly, options: options, group: group)
        let subscriber = BraidSubscriber(
            join: join, tracks: tracks, candidates: candidates, decodeAudio: decodeAudio, recordAudio: recordAudio,
            reception: reception, options: options, group: group)
        subscriber.adopt(join.transport)
        do {
            try await PeerJoin.connect(join.transport, timeout: options.timeout)
        } catch {
            try? await PeerJoin.leave(
                transport: join.transport, resource: join.resource, options: options, group: group)
            throw error
        }
        if options.failover.discoverNodes { await subscriber.discoverNodes(from: endpoint) }
        return subscriber
    }

    init(
        join: PeerJoin, tracks: [OfferedTrack], candidates: FailoverCandidates, decodeAudio: Bool,
        recordAudio: Bool = false, reception: SubscriberReception = .full, options: ConnectionOptions,
        group: any EventLoopGroup
    ) {
        self.reception = reception
        self.eventLoop = join.transport.eventLoop
        self.transport = join.transport
        self.resource = join.resource
        self.options = options
        self.group = group
        self.requestedAt = join.requestedAt
        self.offeredTracks = tracks
        self.candidates = candidates
        self.media = SubscriberMedia(
            sections: join.answer.sections, requestedAt: join.requestedAt,
            senderSSRC: UInt32.random(in: 1...UInt32.max),
            decodeAudio: decodeAudio, recordAudio: recordAudio)
        if case .light = reception {
            self.media.light = true
            self.media.feedback = SubscriberMedia.makeFeedbackRecorder(light: true)
        }
    }

    /// Makes `transport` deliver to this subscriber, as its reception asks.
    private func adopt(_ transport: PeerTransport) {
        if case .light(let every) = self.reception { transport.lightAuthenticationInterval = every }
        transport.handler = self
    }

    // MARK: PeerMediaHandler

    func transportConnected(now: NIODeadline) {
        if self.connectTime == nil {
            self.connectTime = .nanoseconds((now - self.requestedAt).nanoseconds)
        }
        guard self.tasks.isEmpty, !self.ticking, !self.failover.closing else { return }
        if self.media.light {
            // Light reception has no frames to give up: a 100 ms tick, from the loop's shared ticker.
            self.ticking = true
            LoopTicker.on(self.eventLoop).add(self) { [weak self] now in
                guard let self else { return false }
                if self.transport.isKeyed { self.media.onTick(now: now) { self.transport.sendRTCP($0) } }
                return true
            }
            return
        }
        self.tasks.append(
            self.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(20), delay: .milliseconds(20)) {
                _ in
                guard self.transport.isKeyed else { return }
                self.media.onTick(now: .now()) { self.transport.sendRTCP($0) }
            })
    }

    func received(rtp packet: RTPPacket, now: NIODeadline) {
        if let lastHeard = self.failover.outageStartedAt, !self.failover.reconnecting {
            self.failover.outageStartedAt = nil
            self.failover.lastOutage = .nanoseconds((now - lastHeard).nanoseconds)
        }
        let received = self.wallClock.ntpTimestamp(at: now)
        self.media.received(rtp: packet, now: now, wallClock: received) { self.transport.sendRTCP($0) }
    }

    func received(rtcp compound: RTCPCompoundPacket, now: NIODeadline) {
        self.media.received(rtcp: compound, now: now)
    }

    func receivedSealed(rtp packet: RTPPacket, now: NIODeadline) -> Bool {
        let received = self.wallClock.ntpTimestamp(at: now)
        return self.media.receivedSealed(rtp: packet, now: now, wallClock: received) { self.transport.sendRTCP($0) }
    }

    func transportLost(reason: String, lastHeard: NIODeadline, now: NIODeadline) {
        self.nodeLost(lastHeard: lastHeard, reason: reason)
    }

    // MARK: Failover (FailingOverPeer)

    var failoverResource: HTTPEndpoint? { self.resource }

    var failoverOffer: (tracks: [OfferedTrack], direction: SDPDirection) { (self.offeredTracks, .recvonly) }

    /// The new session's transport replaces the old one; its packets reach the restarted media state.
    func swapIn(_ join: PeerJoin, index: Int) -> Bool {
        guard self.media.accepts(join.answer.sections) else { return false }
        self.earlierTransports = self.transport.statistics.adding(self.earlierTransports)
        self.transport = join.transport
        self.resource = join.resource
        self.candidates.current = index
        self.media.restart(sections: join.answer.sections)
        self.adopt(join.transport)
        return true
    }

    // MARK: Public state

    /// What each audio track played so far (decoded, rebuilt from in-band FEC or concealed; 48 kHz mono
    /// 16-bit samples in playout order), in offer order; empty arrays unless subscribed with `recordAudio`.
    public func recordedAudio() async -> [[Int16]] {
        (try? await self.eventLoop.submit {
            self.media.tracks.filter { $0.kind == .audio }.map { $0.audioDecoder?.recording ?? [] }
        }.get()) ?? []
    }

    /// A snapshot of everything measured so far.
    public func statistics() async -> SubscriberStatistics? {
        try? await self.eventLoop.submit {
            var statistics = self.media.snapshot(
                connectTime: self.connectTime, transport: self.transport.statistics.adding(self.earlierTransports))
            statistics.reconnects = self.failover.reconnects
            statistics.lastReconnect = self.failover.lastReconnect
            statistics.lastOutage = self.failover.lastOutage
            statistics.lastLossReason = self.failover.lastLossReason
            statistics.failedReconnectAttempts = self.failover.failedAttempts
            statistics.reconnecting = self.failover.reconnecting
            statistics.endpoint = self.candidates.endpoints[self.candidates.current].description
            return statistics
        }.get()
    }

    /// SRTP packets received so far (this transport and earlier ones), without building a full snapshot:
    /// cheap enough to sum over thousands of subscribers.
    public func packetsReceived() async -> Int {
        (try? await self.eventLoop.submit {
            self.transport.statistics.rtpPacketsReceived + self.earlierTransports.rtpPacketsReceived
        }.get()) ?? 0
    }

    /// The nodes this subscriber may move to, the one in use first (the fallbacks and discovered nodes).
    public func failoverEndpoints() async -> [String] {
        (try? await self.eventLoop.submit {
            let order = [self.candidates.current] + self.candidates.attemptOrder.dropLast()
            return order.map { self.candidates.endpoints[$0].description }
        }.get()) ?? []
    }

    /// Stops feedback and failover, ends the WHEP session (`DELETE`) and closes the socket.
    public func close() async throws(BraidClientError) {
        let current = try? await self.eventLoop.submit { () -> (PeerTransport, HTTPEndpoint?) in
            self.failover.closing = true
            for task in self.tasks { task.cancel() }
            self.tasks.removeAll()
            if self.ticking {
                LoopTicker.on(self.eventLoop).remove(self)
                self.ticking = false
            }
            return (self.transport, self.failover.reconnecting ? nil : self.resource)
        }.get()
        guard let (transport, resource) = current else { return }
        try await PeerJoin.leave(transport: transport, resource: resource, options: self.options, group: self.group)
    }
}
