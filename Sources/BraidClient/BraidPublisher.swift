import BraidCodecs
import BraidRTPStreams
import BraidSDP
import BraidWire
import Foundation
import NIOCore

/// Where a publisher's audio comes from.
public enum AudioSource: Sendable {
    /// A sine tone, Opus-encoded live every 20 ms.
    case sineTone(frequency: Double = 440, bitrate: Int = 32_000)
    /// Packets encoded once, replayed in a loop.
    case preEncoded(PreEncodedMedia)
    /// The program sends packets with ``BraidPublisher/sendAudio(_:captureTime:)``.
    case external
}

/// Where a publisher's video comes from.
public enum VideoSource: Sendable {
    /// The moving test pattern (each frame carries its index), VP8-encoded live.
    case testPattern(width: Int = 320, height: Int = 180, framesPerSecond: Int = 30, bitrate: Int = 300_000)
    /// A group of pictures encoded once, replayed in a loop at its frame rate.
    case preEncoded(PreEncodedMedia)
    /// The program sends frames with ``BraidPublisher/sendVideo(_:captureTime:)``.
    case external
}

/// What a publisher has sent and answered.
public struct PublisherStatistics: Hashable, Sendable {
    /// Opus packets sent (first transmissions).
    public var audioPacketsSent = 0
    /// VP8 RTP packets sent (first transmissions).
    public var videoPacketsSent = 0
    /// VP8 frames sent.
    public var videoFramesSent = 0
    /// Keyframes sent.
    public var keyframesSent = 0
    /// Generic NACKs received.
    public var nacksReceived = 0
    /// Packets retransmitted in answer (RTX for video, verbatim for audio).
    public var retransmissionsSent = 0
    /// Uplink FEC repair packets sent (Braid's FEC, sized from the node's reports of the uplink's loss).
    public var repairPacketsSent = 0
    /// NACKs from the node answered with a round of fresh uplink FEC repairs (counted in
    /// ``repairPacketsSent`` too) rather than retransmissions.
    public var repairRounds = 0
    /// Audio: bytes of RED blocks sent on the uplink (earlier frames carried again, sized from the node's
    /// reports of the uplink's loss), and the distance in use (earlier frames per packet).
    public var audioRedundantBytesSent = 0
    public var audioRedundancyDistance = 0
    /// Audio packets sent again as identical copies when RED alone cannot reach the node in time (from
    /// about 50 % uplink loss), and the times each packet is sent now.
    public var audioRepeatsSent = 0
    public var audioSendsPerFrame = 1
    /// PLIs and FIRs received.
    public var keyframeRequestsReceived = 0
    /// RTCP sender reports sent.
    public var senderReportsSent = 0
    /// From the WHIP request to SRTP keys (ICE and DTLS done).
    public var connectTime: Duration?
    /// Why a live source could not start (encoder creation failed), if it did not.
    public var sourceError: String?
    /// Transport counters (summed over every transport when the publisher moved between nodes).
    public var transport = TransportStatistics()
    /// Times the publisher moved to another node after losing its own (see ``FailoverOptions``).
    public var reconnects = 0
    /// When the last move completed (SRTP keyed at the new node).
    public var lastReconnect: Date?
    /// The last move's gap: from the last datagram of the lost node to SRTP keyed at the new one (media
    /// goes out again from then on, starting with a keyframe).
    public var lastOutage: Duration?
    /// Why the last node was lost: silence, consent or DTLS failure, or the node ending the session (RTCP
    /// BYE, DTLS close_notify: a draining node); nil before the first move.
    public var lastLossReason: String?
    /// Attempts at another node that failed (HTTP, answer, ICE or DTLS), over all moves.
    public var failedReconnectAttempts = 0
    /// Whether the node is lost and no other one is connected yet (media is not sent meanwhile).
    public var reconnecting = false
    /// The WHIP endpoint in use.
    public var endpoint: String?
}

/// Publishes Opus audio and VP8 video to a WHIP endpoint ([RFC 9725](https://www.rfc-editor.org/rfc/rfc9725)).
///
/// ```swift
/// let media = try PreEncodedMedia.synthetic()
/// let publisher = try await BraidPublisher.publish(
///     to: "http://127.0.0.1:8080/whip/lobby",
///     audio: .preEncoded(media), video: .preEncoded(media),
///     group: MultiThreadedEventLoopGroup.singleton)
/// try await Task.sleep(for: .seconds(10))
/// print(await publisher.statistics())
/// try await publisher.close()
/// ```
///
/// Every packet carries the MID, a transport-wide sequence number, abs-send-time and abs-capture-time
/// (the host's wall clock at capture, NTP), audio also the audio level. NACKs are answered from a
/// retransmission history (RTX for video); PLI and FIR with a keyframe: the live encoder is asked for one,
/// a replay restarts at its keyframe. A sender report goes out for each stream every second.
///
/// With ``ConnectionOptions/failover`` set, a lost node is noticed within the loss timeout (consent
/// checks, RTCP and consent responses heard) and the publisher re-runs WHIP for the same room and the
/// same kinds of tracks at the next node of the list, swaps the transport underneath and sends on from
/// the same source: the encoder or replay continues (with a keyframe first), the RTP streams are new
/// (SSRCs, sequence numbers and timestamps start over, payload types and extension IDs follow the new
/// answer). The tracks published at the lost node vanish with it; subscribers get the new ones through
/// their nodes. ``statistics()`` keeps counting and reports the moves.
///
/// All state lives on one event loop of `group` (`@unchecked Sendable` for that reason); the public
/// methods may be called from anywhere.
public final class BraidPublisher: PeerMediaHandler, FailingOverPeer, @unchecked Sendable {
    /// The loop all of this publisher's state lives on; every transport it uses runs there.
    let eventLoop: any EventLoop
    /// The transport in use: replaced when the publisher moves to another node.
    var transport: PeerTransport
    /// The session resource in use; replaced (under ``sessionLock``) when the publisher moves.
    private var resource: HTTPEndpoint?
    /// Guards ``resource`` for ``resourceEndpoint`` and ``resourceID``, which are read from anywhere.
    private let sessionLock = NSLock()
    let options: ConnectionOptions
    let group: any EventLoopGroup
    let audioSource: AudioSource?
    let videoSource: VideoSource?
    var audio: OutgoingStream?
    var video: OutgoingStream?
    var transportSequence: UInt16 = 0
    /// Times the packet of each recent transport-wide sequence number (modulo the count) was sent: the
    /// node's feedback on an audio packet sent in several copies says whether any copy arrived.
    var sendsBySequence = [UInt8](repeating: 1, count: 1024)
    /// The uplink's loss before repair, from the node's transport-wide feedback.
    var uplinkLoss = LossAverage()
    var stats = PublisherStatistics()
    var tasks: [RepeatedTask] = []
    let requestedAt: NIODeadline
    var startedAt: NIODeadline?
    let cname: String
    /// NTP time for abs-send-time, abs-capture-time and sender reports: the event loop's clock mapped to
    /// the wall clock read once at creation, as the node maps it.
    let wallClock: WallClock

    // Media generation state, touched on the event loop only.
    var audioIndex = 0
    var videoIndex = 0
    var keyframeRequested = false
    var packetizer = VP8Packetizer(initialPictureID: UInt16.random(in: 0...0x7FFF))
    var payloadScratch = ByteBuffer()
    var rtcpScratch = ByteBuffer()
    var opusEncoder: OpusEncoder?
    var tone: SineTone?
    var pcm: [Int16] = []
    var opusOutput: [UInt8] = []
    var vp8Encoder: VP8Encoder?
    var pattern: TestPattern?
    var picture: I420Buffer?

    // Failover state, touched on the event loop only.
    /// Nodes to move to, and what moving did.
    var candidates: FailoverCandidates
    var failover = FailoverRecord()
    /// Counters of the transports used before the current one.
    var earlierTransports = TransportStatistics()
    /// Whether the sources were started (the first transport was keyed).
    var sourcesStarted = false
    /// Told each video frame's VP8 picture ID and NTP capture time as it goes out (on the event loop), for
    /// servers that forward no abs-capture-time (see ``CaptureTimeLog``).
    var videoFrameSent: ((UInt16, UInt64) -> Void)?

    /// The session resource (from `Location`), if the server gave one; after a move to another node, the
    /// session there.
    public var resourceEndpoint: HTTPEndpoint? { self.currentResource }

    private var currentResource: HTTPEndpoint? {
        self.sessionLock.lock()
        defer { self.sessionLock.unlock() }
        return self.resource
    }

    private func setResource(_ resource: HTTPEndpoint?) {
        self.sessionLock.lock()
        self.resource = resource
        self.sessionLock.unlock()
    }

    /// The WHIP resource id: the last path component of `Location` (query excluded), nil without one.
    ///
    /// A subscriber of the same client passes it to
    /// ``BraidSubscriber/subscribe(to:audioTracks:videoTracks:decodeAudio:participant:options:group:)`` as
    /// `participant`, so that a Braid node never sends it this publisher's own tracks. The id is the
    /// session's capability (it can end the session): keep it as private as the `Location` URL. After a
    /// move to another node (see ``FailoverOptions``) it is the id of the session there.
    public var resourceID: String? {
        guard let path = self.currentResource?.path.split(separator: "?", maxSplits: 1).first,
            let last = path.split(separator: "/").last
        else { return nil }
        return String(last)
    }

    /// Publishes to the WHIP endpoint at `url`, waits until media can flow, and starts sending.
    ///
    /// With ``ConnectionOptions/failover`` set (fallback nodes, or discovery from the node's
    /// `/api/v1/mesh`), a lost node is noticed within its loss timeout and the publisher moves by itself to
    /// another node of the list (see the type's notes).
    ///
    /// - Parameters:
    ///   - audio: the audio source, or nil for no audio section.
    ///   - video: the video source, or nil for no video section.
    ///   - videoPacketSize: the largest VP8 RTP payload (``videoPacketSizes``); a frame is split into packets
    ///     of at most this size.
    /// - Throws: ``BraidClientError`` from the HTTP exchange, the answer, ICE or DTLS;
    ///   ``BraidClientError/badArgument(_:)`` for no source or a bad fallback URL.
    public static func publish(
        to url: String,
        audio: AudioSource?,
        video: VideoSource?,
        videoPacketSize: Int = 1200,
        options: ConnectionOptions = ConnectionOptions(),
        group: any EventLoopGroup
    ) async throws(BraidClientError) -> BraidPublisher {
        let endpoint = try HTTPEndpoint(url: url)
        guard audio != nil || video != nil else { throw .badArgument("publish needs audio, video or both") }
        guard (Self.videoPacketSizes).contains(videoPacketSize) else {
            throw .badArgument("video packet size \(Self.videoPacketSizes), got \(videoPacketSize)")
        }
        let candidates = try FailoverCandidates(
            origin: endpoint, roomPath: endpoint.path, fallbacks: options.failover.fallbacks)
        let tracks = Self.offeredTracks(audio: audio != nil, video: video != nil)
        let join = try await PeerJoin.join(
            endpoint: endpoint, tracks: tracks, direction: .sendonly, options: options, group: group)
        let publisher: BraidPublisher
        do {
            publisher = try BraidPublisher(
                join: join, tracks: tracks, candidates: candidates, audio: audio, video: video, options: options,
                group: group)
            publisher.packetizer.maximumPayloadSize = videoPacketSize
        } catch {
            try? await PeerJoin.leave(
                transport: join.transport, resource: join.resource, options: options, group: group)
            throw error
        }
        join.transport.handler = publisher
        do {
            try await PeerJoin.connect(join.transport, timeout: options.timeout)
        } catch {
            try? await PeerJoin.leave(
                transport: join.transport, resource: join.resource, options: options, group: group)
            throw error
        }
        if options.failover.discoverNodes { await publisher.discoverNodes(from: endpoint) }
        return publisher
    }

    /// The tracks of one WHIP offer, each with fresh random SSRCs (a new session at another node gets new
    /// ones, so that they cannot collide with what the lost node may still hold in the cluster).
    static func offeredTracks(audio: Bool, video: Bool) -> [OfferedTrack] {
        var tracks: [OfferedTrack] = []
        var random = SystemRandomNumberGenerator()
        if audio {
            tracks.append(OfferedTrack(kind: .audio, ssrc: random.next(), trackID: "audio0"))
        }
        if video {
            let ssrc: UInt32 = random.next()
            var rtxSSRC: UInt32 = random.next()
            while rtxSSRC == ssrc { rtxSSRC = random.next() }
            var fecSSRC: UInt32 = random.next()
            while fecSSRC == ssrc || fecSSRC == rtxSSRC { fecSSRC = random.next() }
            tracks.append(OfferedTrack(kind: .video, ssrc: ssrc, rtxSSRC: rtxSSRC, fecSSRC: fecSSRC, trackID: "video0"))
        }
        return tracks
    }

    /// The RTP streams an answer to `tracks` accepted.
    static func streams(
        answer: RemoteAnswer, tracks: [OfferedTrack]
    ) throws(BraidClientError) -> (audio: OutgoingStream?, video: OutgoingStream?) {
        var audio: OutgoingStream?
        var video: OutgoingStream?
        for (index, track) in tracks.enumerated() where index < answer.sections.count {
            let section = answer.sections[index]
            guard section.accepted, let payloadType = section.payloadType, let ssrc = track.ssrc else { continue }
            switch track.kind {
            case .audio:
                audio = OutgoingStream(
                    ssrc: ssrc, payloadType: payloadType, clockRate: 48_000, isAudio: true,
                    extensionIDs: section.extensions, mid: section.mid, rtx: nil)
                if let red = section.redPayloadType { audio?.red = UplinkRED(payloadType: red) }
            case .video:
                var rtx: RetransmissionBuffer.RTX?
                if let rtxSSRC = track.rtxSSRC, let rtxPayloadType = section.rtxPayloadType {
                    rtx = RetransmissionBuffer.RTX(ssrc: rtxSSRC, payloadType: rtxPayloadType)
                }
                video = OutgoingStream(
                    ssrc: ssrc, payloadType: payloadType, clockRate: 90_000, isAudio: false,
                    extensionIDs: section.extensions, mid: section.mid, rtx: rtx)
                if let fecSSRC = track.fecSSRC, let fecPayloadType = section.fecPayloadType {
                    video?.fec = UplinkFEC(ssrc: fecSSRC, payloadType: fecPayloadType)
                }
            }
        }
        guard audio != nil || video != nil else {
            throw .malformedAnswer("the answer accepted none of the offered tracks")
        }
        return (audio, video)
    }

    /// The VP8 payload sizes a publisher can packetise to (the RTP payload, descriptor included; SRTP adds
    /// the header, extensions and a 16-byte tag).
    public static let videoPacketSizes = 100...1400

    init(
        join: PeerJoin, tracks: [OfferedTrack], candidates: FailoverCandidates, audio: AudioSource?,
        video: VideoSource?, options: ConnectionOptions, group: any EventLoopGroup
    ) throws(BraidClientError) {
        self.eventLoop = join.transport.eventLoop
        self.transport = join.transport
        self.resource = join.resource
        self.candidates = candidates
        self.options = options
        self.group = group
        self.audioSource = audio
        self.videoSource = video
        self.requestedAt = join.requestedAt
        self.cname = "braid-publisher"
        self.wallClock = WallClock.system(now: .now())
        (self.audio, self.video) = try Self.streams(answer: join.answer, tracks: tracks)
        self.payloadScratch.reserveCapacity(1500)
        self.rtcpScratch.reserveCapacity(1500)
    }

    // MARK: PeerMediaHandler

    func transportConnected(now: NIODeadline) {
        guard !self.failover.closing else { return }
        if self.sourcesStarted {
            // Keyed at another node after a move: the sources run on; the new streams start with a keyframe.
            if let lastHeard = self.failover.outageStartedAt {
                self.failover.outageStartedAt = nil
                self.failover.lastOutage = .nanoseconds((now - lastHeard).nanoseconds)
            }
            self.keyframeRequested = true
            self.vp8Encoder?.requestKeyframe()
            return
        }
        self.sourcesStarted = true
        self.startedAt = now
        self.stats.connectTime = .nanoseconds((now - self.requestedAt).nanoseconds)
        let eventLoop = self.eventLoop
        do {
            try self.prepareSources()
        } catch {
            self.stats.sourceError = "\(error)"
            return
        }
        if self.audio != nil, let source = self.audioSource, !Self.isExternal(source) {
            self.tasks.append(
                eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(20)) { _ in
                    self.sendNextAudio()
                })
        }
        if self.video != nil, let source = self.videoSource, !Self.isExternal(source) {
            let fps = Self.framesPerSecond(source)
            self.tasks.append(
                eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .nanoseconds(1_000_000_000 / Int64(fps))) {
                    _ in
                    self.sendNextVideo()
                })
        }
        self.tasks.append(
            eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(500), delay: .seconds(1)) { _ in
                self.sendSenderReports()
            })
    }

    func received(rtp packet: RTPPacket, now: NIODeadline) {
        // A sendonly publisher expects no media.
    }

    func received(rtcp compound: RTCPCompoundPacket, now: NIODeadline) {
        for packet in compound {
            switch packet {
            case .genericNACK(let nack):
                self.stats.nacksReceived += 1
                self.answer(nack, now: now)
            case .pictureLossIndication(let pli):
                if pli.mediaSSRC == self.video?.ssrc { self.requestKeyframe() }
            case .fullIntraRequest(let fir):
                if fir.entries.contains(where: { $0.ssrc == self.video?.ssrc }) { self.requestKeyframe() }
            case .transportWideFeedback(let feedback):
                self.transportFeedbackReceived(feedback)
            default:
                break
            }
        }
    }

    /// The node's transport-wide feedback sizes the uplink's protection (video FEC, audio RED): the packets
    /// it reports missing, before any repair. A packet sent in `c` copies is lost only when all of them
    /// are (`p^c`), so it counts only when nothing was sent once in the report, and then as `(lost share)^(1/c)`.
    private func transportFeedbackReceived(_ feedback: RTCPTransportWideFeedback) {
        guard self.video?.fec != nil || self.audio?.red != nil else { return }
        var total = 0
        var lost = 0
        var repeatedTotal = 0
        var repeatedLost = 0
        var copies = 1
        for packet in feedback.packets {
            let sends = Int(self.sendsBySequence[Int(packet.sequenceNumber) % self.sendsBySequence.count])
            let missing = packet.status == .notReceived
            if sends <= 1 {
                total += 1
                if missing { lost += 1 }
            } else {
                repeatedTotal += 1
                if missing { repeatedLost += 1 }
                copies = max(copies, sends)
            }
        }
        if total > 0 {
            self.uplinkLoss.add(lost: lost, of: total)
        } else if repeatedTotal > 0 {
            let raw = pow(Double(repeatedLost) / Double(repeatedTotal), 1 / Double(copies))
            self.uplinkLoss.add(lost: Int((raw * Double(repeatedTotal)).rounded()), of: repeatedTotal)
        }
        if let video = self.video, video.fec != nil { video.fec!.update(loss: self.uplinkLoss.fraction) }
        if let audio = self.audio, audio.red != nil {
            audio.red!.update(loss: self.uplinkLoss.fraction)
            self.stats.audioRedundancyDistance = audio.red!.distance
            self.stats.audioSendsPerFrame = audio.red!.sendsPerFrame
        }
    }

    func transportLost(reason: String, lastHeard: NIODeadline, now: NIODeadline) {
        self.nodeLost(lastHeard: lastHeard, reason: reason)
    }

    // MARK: Failover (FailingOverPeer)

    var failoverResource: HTTPEndpoint? { self.currentResource }

    /// The same kinds of tracks; WHIP with new SSRCs.
    var failoverOffer: (tracks: [OfferedTrack], direction: SDPDirection) {
        (Self.offeredTracks(audio: self.audioSource != nil, video: self.videoSource != nil), .sendonly)
    }

    /// The new transport and RTP streams replace the old ones: from here the sources send on the new
    /// streams, once the new transport is keyed. An answer without the same audio/video set does not fit.
    func swapIn(_ join: PeerJoin, index: Int) -> Bool {
        guard let streams = try? Self.streams(answer: join.answer, tracks: self.failoverOffer.tracks),
            (streams.audio != nil) == (self.audio != nil), (streams.video != nil) == (self.video != nil)
        else { return false }
        self.earlierTransports = self.transport.statistics.adding(self.earlierTransports)
        self.transport = join.transport
        self.setResource(join.resource)
        self.candidates.current = index
        self.audio = streams.audio
        self.video = streams.video
        join.transport.handler = self
        return true
    }

    // MARK: Sources

    static func isExternal(_ source: AudioSource) -> Bool {
        if case .external = source { return true }
        return false
    }

    static func isExternal(_ source: VideoSource) -> Bool {
        if case .external = source { return true }
        return false
    }

    static func framesPerSecond(_ source: VideoSource) -> Int {
        switch source {
        case .testPattern(_, _, let fps, _): max(1, min(fps, 120))
        case .preEncoded(let media): media.framesPerSecond
        case .external: 30
        }
    }

    private func prepareSources() throws {
        if case .sineTone(let frequency, let bitrate) = self.audioSource {
            let encoder = try OpusEncoder(OpusEncoder.Configuration(bitrate: bitrate))
            self.opusEncoder = encoder
            self.tone = SineTone(frequency: frequency)
            self.pcm = Array(repeating: 0, count: encoder.samplesPerFrame)
            self.opusOutput = Array(repeating: 0, count: OpusEncoder.maximumPacketSize)
        }
        if case .testPattern(let width, let height, let fps, let bitrate) = self.videoSource {
            self.vp8Encoder = try VP8Encoder(
                VP8Encoder.Configuration(width: width, height: height, framesPerSecond: fps, bitrate: bitrate))
            self.pattern = try TestPattern(width: width, height: height)
            self.picture = try I420Buffer(width: width, height: height)
        }
    }

    private func sendNextAudio() {
        switch self.audioSource {
        case .preEncoded(let media):
            guard !media.audioPackets.isEmpty else { return }
            let packet = media.audioPackets[self.audioIndex % media.audioPackets.count]
            self.audioIndex += 1
            self.sendAudioOnLoop(packet, captureTime: nil)
        case .sineTone:
            guard let encoder = self.opusEncoder, var tone = self.tone else { return }
            let length: Int? = self.pcm.withUnsafeMutableBufferPointer { pcm in
                tone.fill(pcm)
                return self.opusOutput.withUnsafeMutableBytes { output in
                    try? encoder.encode(pcm: UnsafeBufferPointer(pcm), into: output)
                }
            }
            self.tone = tone
            guard let length else { return }
            self.payloadScratch.clear()
            self.payloadScratch.writeBytes(self.opusOutput[0..<length])
            self.sendAudioOnLoop(self.payloadScratch, captureTime: nil)
        case .external, nil:
            break
        }
    }

    private func sendNextVideo() {
        switch self.videoSource {
        case .preEncoded(let media):
            guard !media.videoFrames.isEmpty else { return }
            if self.keyframeRequested {
                self.keyframeRequested = false
                self.videoIndex = 0
            }
            let frame = media.videoFrames[self.videoIndex % media.videoFrames.count]
            self.videoIndex = (self.videoIndex + 1) % media.videoFrames.count
            self.sendVideoOnLoop(frame, captureTime: nil)
        case .testPattern:
            guard let encoder = self.vp8Encoder, let pattern = self.pattern, let picture = self.picture else { return }
            let force = self.keyframeRequested || self.videoIndex == 0
            self.keyframeRequested = false
            try? pattern.render(frameIndex: self.videoIndex, into: picture)
            self.videoIndex += 1
            var encoded: EncodedVideoFrame?
            _ = try? picture.withImage { (image: I420Image) throws(CodecError) in
                try encoder.encode(image, forceKeyframe: force) { frame in
                    encoded = EncodedVideoFrame(data: ByteBuffer(bytes: frame.data), isKeyframe: frame.isKeyframe)
                }
            }
            if let encoded { self.sendVideoOnLoop(encoded, captureTime: nil) }
        case .external, nil:
            break
        }
    }

    private func requestKeyframe() {
        self.stats.keyframeRequestsReceived += 1
        self.keyframeRequested = true
        self.vp8Encoder?.requestKeyframe()
    }

    // MARK: Sending

    /// Sends one Opus packet (20 ms) supplied by the program; for ``AudioSource/external``.
    /// - Parameter captureTime: NTP capture time for abs-capture-time; now when nil.
    public func sendAudio(_ packet: ByteBuffer, captureTime: UInt64? = nil) {
        self.eventLoop.execute { self.sendAudioOnLoop(packet, captureTime: captureTime) }
    }

    /// Sends one VP8 frame supplied by the program; for ``VideoSource/external``.
    /// - Parameter captureTime: NTP capture time for abs-capture-time; now when nil.
    public func sendVideo(_ frame: EncodedVideoFrame, captureTime: UInt64? = nil) {
        self.eventLoop.execute { self.sendVideoOnLoop(frame, captureTime: captureTime) }
    }

    private func nextTransportSequence(sends: Int = 1) -> UInt16 {
        defer { self.transportSequence &+= 1 }
        self.sendsBySequence[Int(self.transportSequence) % self.sendsBySequence.count] = UInt8(clamping: sends)
        return self.transportSequence
    }

    private func mediaTimestamp(base: UInt32, clockRate: UInt32, now: NIODeadline) -> UInt32 {
        guard let startedAt = self.startedAt else { return base }
        let elapsed = max(0, (now - startedAt).nanoseconds) / 1000
        return base &+ UInt32(truncatingIfNeeded: elapsed * Int64(clockRate) / 1_000_000)
    }

    private func sendAudioOnLoop(_ payload: ByteBuffer, captureTime: UInt64?) {
        guard let stream = self.audio, self.transport.isKeyed else { return }
        let now = NIODeadline.now()
        let nowNTP = self.wallClock.ntpTimestamp(at: now)
        // 20 ms per packet on the 48 kHz clock, whatever the scheduling jitter.
        let timestamp = stream.timestampBase &+ UInt32(truncatingIfNeeded: stream.packetsSent) &* 960
        var redPayload: ByteBuffer?
        var sends = 1
        if stream.red != nil {
            let before = stream.red!.redundantBytesSent
            redPayload = stream.red!.wrap(payload, timestamp: timestamp, opusPayloadType: stream.payloadType)
            self.stats.audioRedundantBytesSent += stream.red!.redundantBytesSent - before
            if redPayload != nil { sends = stream.red!.sendsPerFrame }
        }
        stream.build(
            timestamp: timestamp, marker: stream.packetsSent == 0, payload: redPayload ?? payload,
            transportSequence: self.nextTransportSequence(sends: sends), captureTime: captureTime ?? nowNTP, now: now,
            nowNTP: nowNTP, payloadType: redPayload == nil ? nil : stream.red!.payloadType)
        // Copies spread over the frame's 20 ms, as the node repeats toward its subscribers.
        self.transport.sendRTP(stream.packet, copies: sends, spacing: .nanoseconds(UplinkRED.frameDuration.nanoseconds / Int64(sends)))
        self.stats.audioPacketsSent += 1
        self.stats.audioRepeatsSent += sends - 1
    }

    private func sendVideoOnLoop(_ frame: EncodedVideoFrame, captureTime: UInt64?) {
        guard let stream = self.video, self.transport.isKeyed else { return }
        let now = NIODeadline.now()
        let nowNTP = self.wallClock.ntpTimestamp(at: now)
        let capture = captureTime ?? nowNTP
        let timestamp = self.mediaTimestamp(base: stream.timestampBase, clockRate: 90_000, now: now)
        var packets = 0
        self.videoFrameSent?(self.packetizer.pictureID, capture)
        _ = self.packetizer.packetize(
            frame: frame.data, temporalLayer: frame.temporalLayer, layerSync: frame.layerSync,
            scratch: &self.payloadScratch
        ) { payload, last in
            stream.build(
                timestamp: timestamp, marker: last, payload: payload, transportSequence: self.nextTransportSequence(),
                captureTime: capture, now: now, nowNTP: nowNTP)
            self.transport.sendRTP(stream.packet)
            packets += 1
            self.stats.repairPacketsSent += stream.sendRepairs(
                timestamp: timestamp, now: now, nowNTP: nowNTP, transportSequence: { self.nextTransportSequence() }
            ) { self.transport.sendRTP($0) }
        }
        self.stats.videoPacketsSent += packets
        self.stats.videoFramesSent += 1
        if frame.isKeyframe { self.stats.keyframesSent += 1 }
    }

    private func answer(_ nack: RTCPGenericNACK, now: NIODeadline) {
        for stream in [self.video, self.audio].compactMap({ $0 }) where stream.ssrc == nack.mediaSSRC {
            let nowNTP = self.wallClock.ntpTimestamp(at: now)
            let answered = stream.answer(
                nack, now: now, nowNTP: nowNTP, transportSequence: { self.nextTransportSequence() }
            ) { self.transport.sendRTP($0) }
            self.stats.retransmissionsSent += answered.resent
            self.stats.repairPacketsSent += answered.repairs
            if answered.repairs > 0 { self.stats.repairRounds += 1 }
        }
    }

    private func sendSenderReports() {
        guard self.transport.isKeyed else { return }
        let now = NIODeadline.now()
        let ntp = self.wallClock.ntpTimestamp(at: now)
        self.rtcpScratch.clear()
        var builder = RTCPCompoundBuilder(buffer: self.rtcpScratch)
        var first: UInt32?
        for stream in [self.audio, self.video].compactMap({ $0 }) where stream.packetsSent > 0 {
            try? builder.appendSenderReport(
                senderSSRC: stream.ssrc, ntpTimestamp: ntp, rtpTimestamp: stream.senderReportTimestamp(now: now),
                packetCount: stream.packetsSent, octetCount: stream.octetsSent,
                reportBlocks: EmptyCollection<RTCPReportBlock>())
            first = first ?? stream.ssrc
        }
        guard let first else { return }
        // RFC 3550 §6.1: every compound packet carries an SDES CNAME.
        try? builder.appendCNAME(ssrc: first, cname: self.cname)
        self.rtcpScratch = builder.finish()
        self.transport.sendRTCP(self.rtcpScratch)
        self.stats.senderReportsSent += 1
    }

    // MARK: Public state

    /// A snapshot of the counters.
    public func statistics() async -> PublisherStatistics {
        (try? await self.eventLoop.submit {
            var stats = self.stats
            stats.transport = self.transport.statistics.adding(self.earlierTransports)
            stats.reconnects = self.failover.reconnects
            stats.lastReconnect = self.failover.lastReconnect
            stats.lastOutage = self.failover.lastOutage
            stats.lastLossReason = self.failover.lastLossReason
            stats.failedReconnectAttempts = self.failover.failedAttempts
            stats.reconnecting = self.failover.reconnecting
            stats.endpoint = self.candidates.endpoints[self.candidates.current].description
            return stats
        }.get()) ?? PublisherStatistics()
    }

    /// The nodes this publisher may move to, the one in use first (the fallbacks and discovered nodes).
    public func failoverEndpoints() async -> [String] {
        (try? await self.eventLoop.submit {
            let order = [self.candidates.current] + self.candidates.attemptOrder.dropLast()
            return order.map { self.candidates.endpoints[$0].description }
        }.get()) ?? []
    }

    /// Stops sending and failover, ends the WHIP session (`DELETE`) and closes the socket.
    public func close() async throws(BraidClientError) {
        let current = try? await self.eventLoop.submit { () -> (PeerTransport, HTTPEndpoint?) in
            self.failover.closing = true
            for task in self.tasks { task.cancel() }
            self.tasks.removeAll()
            // While a move is under way, the attempt in flight ends its own session.
            return (self.transport, self.failover.reconnecting ? nil : self.currentResource)
        }.get()
        guard let (transport, resource) = current else { return }
        try await PeerJoin.leave(transport: transport, resource: resource, options: self.options, group: self.group)
    }
}
