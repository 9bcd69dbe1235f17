import BraidICE
import BraidRTPStreams
import BraidSDP
import BraidSecurity
import BraidWire
import NIOCore
import NIOHTTP1
import NIOPosix

@testable import BraidClient

/// A minimal WHEP server for the subscriber's socket tests, until the node serves WHEP: `POST /whep/{room}`
/// answers with BraidSDP's answer builder in the send role (a=ssrc, FID, msid), then the node's own
/// ICE-lite agent, a DTLS server endpoint and SRTP carry replayed Opus and VP8 from ``PreEncodedMedia``
/// to the subscriber. It answers NACKs with RTX, counts PLIs, transport-wide feedback and receiver
/// reports, and can withhold chosen video packets once so that the subscriber has to repair them.
///
/// One session, one event loop; no DTLS retransmission timer (loopback does not lose the handshake).
final class TestWHEPServer: @unchecked Sendable {
    struct Counters: Sendable {
        var nacks = 0
        var retransmissions = 0
        var keyframeRequests = 0
        var transportFeedback = 0
        var receiverReports = 0
        var rtcpFailures = 0
        var videoPacketsSent = 0
        var deletes = 0
    }

    let eventLoop: any EventLoop
    let certificate: DTLSCertificate
    let media: PreEncodedMedia
    /// Indexes (in send order) of video packets to withhold the first time.
    let withheld: Set<Int>
    var http: (any Channel)?
    var udp: (any Channel)?
    var counters = Counters()
    let clock = ContinuousClock()

    // The one session.
    var agent: ICELiteAgent?
    var dtls: DTLSEndpoint?
    var srtp: SRTPSession?
    var peer: SocketAddress?
    var audio: OutgoingStream?
    var video: OutgoingStream?
    var packetizer = VP8Packetizer()
    var payload = ByteBuffer()
    var transportSequence: UInt16 = 0
    var videoIndex = 0
    var keyframeWanted = false
    var tasks: [RepeatedTask] = []
    var startedAt: NIODeadline?

    init(media: PreEncodedMedia, withheld: Set<Int> = []) throws {
        self.eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        self.certificate = try DTLSCertificate(commonName: "test-whep")
        self.media = media
        self.withheld = withheld
    }

    /// Binds the HTTP and UDP ports; returns the HTTP port.
    func start() async throws -> Int {
        let udp = try await DatagramBootstrap(group: self.eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(MediaHandler(server: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.udp = udp
        let http = try await ServerBootstrap(group: self.eventLoop)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(server: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.http = http
        return http.localAddress?.port ?? 0
    }

    func stop() async {
        try? await self.eventLoop.submit {
            for task in self.tasks { task.cancel() }
        }.get()
        try? await self.http?.close()
        try? await self.udp?.close()
    }

    func snapshot() async throws -> Counters {
        try await self.eventLoop.submit { self.counters }.get()
    }

    // MARK: Signalling

    static let audioSSRC: UInt32 = 0x1111_0000
    static let videoSSRC: UInt32 = 0x2222_0000
    static let rtxSSRC: UInt32 = 0x3333_0000

    func answer(offer text: String) throws -> String {
        let offer = try SessionDescription(parsing: text)
        let credentials = ICECredentials.random()
        let port = UInt16(self.udp?.localAddress?.port ?? 0)
        let local = SDPLocalParameters(
            iceUfrag: credentials.ufrag, icePwd: credentials.password,
            fingerprint: SDPFingerprint(algorithm: "sha-256", bytes: self.certificate.fingerprint.bytes),
            candidates: [SDPCandidate(foundation: "1", priority: 2_130_706_431, address: "127.0.0.1", port: port)],
            role: .send, audioRED: false,
            senders: [
                "0": SDPLocalSender(trackID: "audio", ssrc: Self.audioSSRC),
                "1": SDPLocalSender(trackID: "video", ssrc: Self.videoSSRC, rtxSSRC: Self.rtxSSRC),
            ])
        let answer = try SDPAnswerBuilder(local: local).answer(to: offer)
        self.agent = try ICELiteAgent(
            local: credentials,
            remote: ICECredentials(ufrag: answer.remote.iceUfrag, password: answer.remote.icePwd), now: self.clock.now)
        self.dtls = try DTLSEndpoint(
            role: .server, certificate: self.certificate,
            remoteFingerprint: DTLSFingerprint(algorithm: .sha256, bytes: answer.remote.fingerprint.bytes))
        for section in answer.sections where section.accepted {
            guard let codec = section.codec else { continue }
            let extensions = RTPHeaderExtensionMap(section.extensions.map { (id: Int($0.id), uri: $0.uri) })
            if section.kind == .audio {
                self.audio = OutgoingStream(
                    ssrc: Self.audioSSRC, payloadType: codec.payloadType, clockRate: 48_000, isAudio: true,
                    extensionIDs: extensions, mid: section.mid, rtx: nil)
            } else {
                let rtx = section.rtxPayloadType.map { RetransmissionBuffer.RTX(ssrc: Self.rtxSSRC, payloadType: $0) }
                self.video = OutgoingStream(
                    ssrc: Self.videoSSRC, payloadType: codec.payloadType, clockRate: 90_000, isAudio: false,
                    extensionIDs: extensions, mid: section.mid, rtx: rtx)
            }
        }
        return answer.text
    }

    // MARK: Media

    func received(_ datagram: ByteBuffer, from source: SocketAddress) {
        guard let first = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self) else { return }
        let second = datagram.getInteger(at: datagram.readerIndex + 1, as: UInt8.self)
        switch DatagramKind(firstByte: first, secondByte: second) {
        case .stun:
            guard let agent = self.agent, let message = try? STUNMessage(parsing: datagram) else { return }
            var response = ByteBuffer()
            if case .respond(.success) = agent.handleBindingRequest(
                message: message, from: source, now: self.clock.now, responseInto: &response)
            {
                self.peer = source
            }
            if response.readableBytes > 0 { self.send(response, to: source) }
        case .dtls:
            guard let dtls = self.dtls else { return }
            let output = (try? dtls.receive(Array(datagram.readableBytesView))) ?? []
            for record in output { self.send(ByteBuffer(bytes: record), to: source) }
            if case .connected = dtls.state, self.srtp == nil {
                self.srtp = try? dtls.makeSRTPSession()
                self.startMedia()
            }
        case .rtcp:
            guard let srtp = self.srtp else { return }
            var plain = ByteBuffer()
            plain.reserveCapacity(datagram.readableBytes)
            let length = datagram.withUnsafeReadableBytes { source in
                plain.withUnsafeMutableWritableBytes { destination in
                    try? Result { () throws(SRTPError) in try srtp.unprotectRTCP(source, into: destination) }.get()
                }
            }
            guard let length else {
                self.counters.rtcpFailures += 1
                return
            }
            plain.moveWriterIndex(forwardBy: length)
            guard let compound = try? RTCPCompoundPacket(plain) else {
                self.counters.rtcpFailures += 1
                return
            }
            for packet in compound { self.handle(packet) }
        default:
            break
        }
    }

    func handle(_ packet: RTCPPacket) {
        switch packet {
        case .genericNACK(let nack):
            self.counters.nacks += 1
            for stream in [self.video, self.audio].compactMap({ $0 }) where stream.ssrc == nack.mediaSSRC {
                self.counters.retransmissions += stream.answer(
                    nack, now: .now(), nowNTP: 0, transportSequence: { self.nextTransportSequence() }
                ) { self.protectAndSend($0) }.resent
            }
        case .pictureLossIndication:
            self.counters.keyframeRequests += 1
            self.keyframeWanted = true
        case .transportWideFeedback:
            self.counters.transportFeedback += 1
        case .receiverReport:
            self.counters.receiverReports += 1
        default:
            break
        }
    }

    func startMedia() {
        self.startedAt = .now()
        self.tasks.append(
            self.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(20)) { _ in self.sendAudio() }
        )
        self.tasks.append(
            self.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(33)) { _ in self.sendVideo() }
        )
    }

    func sendAudio() {
        guard let stream = self.audio, !self.media.audioPackets.isEmpty else { return }
        let packet = self.media.audioPackets[Int(stream.packetsSent) % self.media.audioPackets.count]
        let ntp = NTPTime.now()
        stream.build(
            timestamp: stream.timestampBase &+ stream.packetsSent &* 960, marker: false, payload: packet,
            transportSequence: self.nextTransportSequence(), captureTime: ntp, now: .now(), nowNTP: ntp)
        self.protectAndSend(stream.packet)
    }

    func sendVideo() {
        guard let stream = self.video, let startedAt = self.startedAt, !self.media.videoFrames.isEmpty else { return }
        if self.keyframeWanted {
            self.keyframeWanted = false
            self.videoIndex = 0
        }
        let frame = self.media.videoFrames[self.videoIndex]
        self.videoIndex = (self.videoIndex + 1) % self.media.videoFrames.count
        let now = NIODeadline.now()
        let ntp = NTPTime.now()
        let timestamp =
            stream.timestampBase &+ UInt32(truncatingIfNeeded: (now - startedAt).nanoseconds / 1000 * 9 / 100)
        _ = self.packetizer.packetize(frame: frame.data, scratch: &self.payload) { payload, last in
            stream.build(
                timestamp: timestamp, marker: last, payload: payload, transportSequence: self.nextTransportSequence(),
                captureTime: ntp, now: now, nowNTP: ntp)
            let index = self.counters.videoPacketsSent
            self.counters.videoPacketsSent += 1
            // Withheld packets stay in the history, so a NACK can still recover them.
            if !self.withheld.contains(index) { self.protectAndSend(stream.packet) }
        }
    }

    func nextTransportSequence() -> UInt16 {
        defer { self.transportSequence &+= 1 }
        return self.transportSequence
    }

    func protectAndSend(_ packet: ByteBuffer) {
        guard let srtp = self.srtp, let peer = self.peer else { return }
        var out = ByteBuffer()
        out.reserveCapacity(packet.readableBytes + srtp.profile.rtpTrailerLength)
        let length = packet.withUnsafeReadableBytes { source in
            out.withUnsafeMutableWritableBytes { destination in
                try? Result { () throws(SRTPError) in try srtp.protectRTP(source, into: destination) }.get()
            }
        }
        guard let length else { return }
        out.moveWriterIndex(forwardBy: length)
        self.send(out, to: peer)
    }

    func send(_ buffer: ByteBuffer, to address: SocketAddress) {
        self.udp?.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: buffer), promise: nil)
    }

    // MARK: Handlers

    final class MediaHandler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let server: TestWHEPServer
        init(server: TestWHEPServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = self.unwrapInboundIn(data)
            self.server.received(envelope.data, from: envelope.remoteAddress)
        }
    }

    final class HTTPHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: TestWHEPServer
        var head: HTTPRequestHead?
        var body = ByteBuffer()
        init(server: TestWHEPServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch self.unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                self.body.clear()
            case .body(var part):
                self.body.writeBuffer(&part)
            case .end:
                guard let head = self.head else { return }
                var status = HTTPResponseStatus.notFound
                var headers = HTTPHeaders()
                var text = "not found"
                if head.method == .POST, head.uri.hasPrefix("/whep/") {
                    do {
                        text = try self.server.answer(offer: String(buffer: self.body))
                        status = .created
                        headers.add(name: "Content-Type", value: "application/sdp")
                        headers.add(name: "Location", value: head.uri + "/session1")
                    } catch {
                        status = .badRequest
                        text = "\(error)"
                    }
                } else if head.method == .DELETE, head.uri.hasSuffix("/session1") {
                    self.server.counters.deletes += 1
                    status = .ok
                    text = "ended"
                }
                let bodyBuffer = ByteBuffer(string: text)
                headers.add(name: "Content-Length", value: "\(bodyBuffer.readableBytes)")
                headers.add(name: "Connection", value: "close")
                context.write(
                    self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
                    promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(bodyBuffer))), promise: nil)
                let channel = context.channel
                context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }
}
