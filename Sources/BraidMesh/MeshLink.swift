public import BraidRTPStreams
public import BraidSFU
public import BraidSecurity
public import NIOCore

/// One node's end of a relay link to another node: the ``RouterLink`` messages between their routers,
/// packed into encrypted UDP datagrams, with hop-by-hop retransmission, probes and link measurements.
///
/// Each datagram is one SRTP packet (AEAD_AES_128_GCM, [RFC 7714](https://www.rfc-editor.org/rfc/rfc7714))
/// whose payload is a run of ``MeshFrame``s, after a clear prefix naming the sender:
///
/// ```
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    sender node id (64 bits)                   |
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    sender epoch (64 bits)                     |
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|0|0|   0   |0|   PT=127    |   hop sequence number (low 16) |  SRTP: the RTP header is
/// |                    send time (ms, low 32 bits)                 |  the AEAD's associated data
/// |                    low 32 bits of the sender node id           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    frames (encrypted) ...                     |
/// |                    GCM tag (128 bits)                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// - **Keys.** Each direction has its own SRTP master key and salt, derived with HKDF-SHA256 from the
///   cluster secret, the two node ids and the sender's epoch (its start time). A node without the
///   secret cannot make a datagram that authenticates: it is dropped and counted (``Counters/rejected``).
///   A restarted node has a new, later epoch and so new keys; a datagram of an older epoch is refused,
///   so nothing from a previous run can be replayed.
/// - **Hop sequence.** SRTP's packet index (sequence number plus rollover counter) numbers the
///   datagrams; its replay window drops duplicates. A gap is NACKed at once and again after an RTT,
///   until the repair could no longer be useful (``Configuration/repairDeadline``); the sender keeps
///   the sealed datagrams of the last moments and sends the same bytes again.
/// - **FEC.** When the peer reports loss, repair datagrams follow the data: Braid's sliding-window code
///   (``BraidRTPStreams/SlidingWindowFECEncoder``, the one between the node and BraidClient) over the
///   plaintext of the last ``Configuration/repairWindow`` data datagrams, `margin · p / (1 − p)` of them per
///   datagram at loss `p` (``BraidRTPStreams/RepairCredit``), so most losses are rebuilt without waiting a
///   round trip and NACKs ask only for the deficit (missing datagrams minus the repair equations in hand).
///   While repairs flow, a NACK is answered with a *repair round* rather than copies: fresh repairs over
///   the span from the oldest asked-for datagram through the newest, as many as make it likely (90 %, then
///   97 % and 99 % for datagrams asked for again) that the deficit arrives (``Configuration/repairRounds``,
///   as toward BraidClient subscribers); datagrams older than the encoder's window go to retransmission.
///   A repair datagram is sealed under the sender's SSRC with its top bit flipped and numbered on its own,
///   so the data datagrams' hop sequence stays without gaps; its payload is the repair (``FECRepairHeader``
///   and symbol), at most 8 bytes longer than the longest datagram it covers. A rebuilt datagram is handled
///   as if it had arrived; the same datagram arriving later (a retransmission) is dropped as a duplicate.
/// - **Probes** every ``Configuration/probeInterval`` measure RTT and jitter; the reply carries the
///   receiver's counters, which give the loss of this direction before repair. Nothing heard for
///   ``Configuration/deadAfter`` takes the link down; the next datagram that authenticates brings it up.
///
/// Confined to one event loop, clock injected: ``receive(_:now:)``, ``flush(now:)`` and
/// ``tick(now:)`` take the time; `transmit` sends one datagram to the peer.
public final class MeshLink {
    /// Tunables; the defaults suit links of up to a few hundred milliseconds RTT.
    public struct Configuration: Sendable {
        /// Largest datagram (prefix, SRTP header, frames and tag); a single larger record goes alone.
        public var maximumDatagramSize = 1_400
        /// How often a probe goes out.
        public var probeInterval: TimeAmount = .milliseconds(200)
        /// Silence after which the link counts as down.
        public var deadAfter: TimeAmount = .milliseconds(1_000)
        /// Sealed datagrams kept for retransmission.
        public var historyCapacity = 1_024
        /// A missing datagram is asked for again until this long after the gap was seen.
        public var repairDeadline: TimeAmount = .milliseconds(400)
        /// NACKs per missing datagram (the repair deadline usually ends the attempts first).
        public var maximumNACKs = 6
        /// SRTP replay window (datagrams): must cover what can arrive late by retransmission.
        public var replayWindow = 8_192
        /// Copies of a retransmission, from the loss the peer reports and how often it was asked for.
        public var retransmission = RetransmissionPolicy()
        /// Repairs sent per data datagram repair about this share of the losses up front (0: no FEC). More
        /// than a subscriber link's 1.0: a hop is one of several on a path, and what it leaves to NACK costs
        /// every subscriber behind it a round trip. At 33 % loss, 1.5 cut retransmissions from 542 to 236
        /// over 4 s where 1.0 left 326 (MeshLinkTests).
        public var repairMargin = 1.5
        /// Below this loss (as the peer reports it) no repairs are sent.
        public var repairLossThreshold = 0.005
        /// Most repairs per data datagram.
        public var maximumRepairRatio = 2.0
        /// A repair covers at most this many of the latest data datagrams, sent within
        /// ``repairWindowDuration`` (older ones are left to retransmission).
        public var repairWindow = 16
        public var repairWindowDuration: TimeAmount = .milliseconds(100)
        /// How a NACK is answered while repairs flow: the round's size for the deficit and the link's loss
        /// (its `roundSuccess` and `maximumRoundRepairs`; the rest of the policy is the subscribers').
        public var repairRounds = VideoFECPolicy()

        public init() {}
    }

    /// What the link has seen, for the dashboard and tests.
    public struct Counters: Sendable, Hashable {
        public var datagramsSent = 0
        public var bytesSent = 0
        public var datagramsReceived = 0
        public var bytesReceived = 0
        /// Datagrams that did not authenticate (wrong credential, corrupted) or came from an old epoch.
        public var rejected = 0
        /// Duplicates and datagrams older than the replay window.
        public var replayed = 0
        /// Frames that could not be read.
        public var malformedFrames = 0
        public var nacksSent = 0
        public var retransmissionsSent = 0
        /// Retransmissions asked for that were no longer kept.
        public var retransmissionsUnavailable = 0
        /// Missing datagrams that arrived after being NACKed.
        public var repaired = 0
        /// Missing datagrams given up on (deadline or NACK budget spent).
        public var unrepaired = 0
        /// FEC repair datagrams sent and received, and missing datagrams rebuilt from the repairs.
        public var repairsSent = 0
        public var repairsReceived = 0
        public var recoveredByFEC = 0
        /// NACKs answered with a round of fresh repairs, and the repairs those rounds sent (in ``repairsSent``
        /// too).
        public var repairRounds = 0
        public var roundRepairs = 0
        public var probesSent = 0
        public var probeRepliesReceived = 0
        /// Probes and probe replies that came in a datagram filling a gap: not timed, probes not answered.
        public var staleProbes = 0
        /// Times the link went down.
        public var downs = 0
    }

    /// Measurements of the direction local → peer (what the scheduler routes on).
    public struct Measurements: Sendable, Hashable {
        /// Smoothed round-trip time (nil until the first probe reply).
        public var rtt: TimeAmount?
        /// Smoothed RTT variation, RFC 6298 style.
        public var jitter: TimeAmount = .zero
        /// Datagrams lost before repair in the peer's last reported window, 0...1.
        public var loss: Double = 0
        /// What the link sent over the last second, kbit/s.
        public var sendRateKbps: Double = 0
        /// When an authenticated datagram last arrived.
        public var lastHeard: NIODeadline?
    }

    public let local: NodeID
    public let peer: NodeID
    /// This side's epoch (its process start, ms since 1970): newer than any earlier run's.
    public let epoch: UInt64
    public let configuration: Configuration
    /// Whether the peer understands repair datagrams (its cluster record says so): an older node would take
    /// them for data. Without it the link sends none, whatever the loss; it still decodes the peer's.
    public var peerDecodesRepairs = true {
        didSet { self.updateRepairRatio() }
    }
    public private(set) var counters = Counters()
    public private(set) var measurements = Measurements()
    /// Whether the peer has been heard within ``Configuration/deadAfter``.
    public private(set) var isUp = false

    /// Called with every message from the peer's router (media in batches, one per datagram).
    public var onMessage: (RouterLinkMessage) -> Void = { _ in }
    /// Called when the link goes up or down.
    public var onStateChange: (Bool) -> Void = { _ in }

    private let secret: [UInt8]
    private let transmit: (ByteBuffer) -> Void
    private let outbound: SRTPOutboundSession
    private var inbound: SRTPInboundSession?
    private var peerEpoch: UInt64 = 0
    private var lastEpochAttempt: NIODeadline?

    // Sending.
    private var nextIndex: UInt64 = 1
    private var pending: ByteBuffer
    private var sealScratch: ByteBuffer
    private var history: [SentDatagram?]
    private var bytesThisSecond = 0
    private var rateWindowStart: NIODeadline?

    // FEC.
    private var repairCredit = RepairCredit()
    /// Made the first time the peer reports loss.
    private var fecEncoder: SlidingWindowFECEncoder?
    private var nextRepairSequence: UInt16 = 0
    private var repairScratch: ByteBuffer
    private var fecDecoder = SlidingWindowFECDecoder()
    /// The last hop indices rebuilt from repairs, to drop their retransmissions.
    private var rebuilt = [UInt64](repeating: 0, count: 64)
    private var rebuiltHead = 0

    // Receiving.
    private var highestIndex: UInt64 = 0
    private var firstIndex: UInt64 = 0
    private var gapsSeen: UInt64 = 0
    private var missing: [UInt64: MissingDatagram] = [:]
    private var plainScratch: ByteBuffer
    private var mediaBatch: ByteBuffer

    // Probing.
    private var nextProbeID: UInt32 = 1
    private var lastProbeAt: NIODeadline?
    private var lossBaseline: (expected: UInt64, gaps: UInt64)?
    private var lossBaselineAt: NIODeadline?
    private var lastRTTSample: TimeAmount?

    /// How long a missing datagram that pending repair equations may rebuild waits before its first NACK.
    static let fecGrace = TimeAmount.milliseconds(20)

    /// Datagram header lengths: the clear prefix, then the SRTP (RTP) header.
    static let prefixLength = 16
    static let rtpHeaderLength = 12
    static let tagLength = 16
    static let payloadType: UInt8 = 127

    /// A link from `local` to `peer`, keyed from the cluster `secret`.
    ///
    /// - Parameter transmit: sends one datagram to the peer (the bytes are the link's; keep or send them).
    /// - Throws: ``SRTPError`` when OpenSSL cannot make a cipher context.
    public init(
        local: NodeID, peer: NodeID, secret: [UInt8], epoch: UInt64, configuration: Configuration = .init(),
        transmit: @escaping (ByteBuffer) -> Void
    ) throws(SRTPError) {
        self.local = local
        self.peer = peer
        self.secret = secret
        self.epoch = epoch
        self.configuration = configuration
        self.transmit = transmit
        self.outbound = try SRTPOutboundSession(
            profile: .aeadAES128GCM, masterKey: Self.masterKey(secret: secret, from: local, to: peer, epoch: epoch),
            allowRepeatTransmission: false)
        let allocator = ByteBufferAllocator()
        self.pending = allocator.buffer(capacity: configuration.maximumDatagramSize)
        self.sealScratch = allocator.buffer(capacity: configuration.maximumDatagramSize)
        self.plainScratch = allocator.buffer(capacity: configuration.maximumDatagramSize)
        self.repairScratch = allocator.buffer(capacity: configuration.maximumDatagramSize + 16)
        self.mediaBatch = allocator.buffer(capacity: configuration.maximumDatagramSize)
        self.history = Array(repeating: nil, count: max(16, configuration.historyCapacity))
    }

    /// The SRTP master key and salt of the direction `from` → `to` in `epoch` (HKDF-SHA256 over the secret,
    /// info = "braid mesh link v1" | from | to | epoch, 64-bit big-endian each).
    public static func masterKey(secret: [UInt8], from: NodeID, to: NodeID, epoch: UInt64) -> SRTPMasterKey {
        var info = Array("braid mesh link v1".utf8)
        for value in [from.rawValue, to.rawValue, epoch] {
            withUnsafeBytes(of: value.bigEndian) { info.append(contentsOf: $0) }
        }
        let material = HKDF.sha256(secret: secret, info: info, length: 28)
        // The lengths are AEAD_AES_128_GCM's, so this cannot fail.
        return try! SRTPMasterKey(key: Array(material[0..<16]), salt: Array(material[16..<28]), profile: .aeadAES128GCM)
    }

    /// The sender named by a datagram's clear prefix (nil when it is too short to be one), so the
    /// receiving node can find the link before anything is decrypted.
    public static func sender(of datagram: ByteBuffer) -> NodeID? {
        datagram.getInteger(at: datagram.readerIndex, as: UInt64.self).map(NodeID.init(rawValue:))
    }

    // MARK: - Sending

    /// Queues a message from the local router for the peer. Media batches are split into their records,
    /// packed several to a datagram; ``flush(now:)`` sends what is packed.
    public func send(_ message: RouterLinkMessage, now: NIODeadline) {
        switch message {
        case .media(var batch):
            while let record = RouterLink.readRecord(from: &batch) { self.append(.record(record), now: now) }
        default:
            if let frame = MeshFrame(message) { self.append(frame, now: now) }
        }
    }

    /// Seals and sends the datagram being packed, if any.
    public func flush(now: NIODeadline) {
        guard self.pending.readableBytes > 0 else { return }
        self.seal(now: now)
    }

    private func append(_ frame: MeshFrame, now: NIODeadline) {
        let room = self.configuration.maximumDatagramSize - Self.prefixLength - Self.rtpHeaderLength - Self.tagLength
        if self.pending.readableBytes > 0 && self.pending.readableBytes + frame.encodedLength > room {
            self.seal(now: now)
        }
        frame.write(into: &self.pending)
    }

    private func seal(now: NIODeadline) {
        let index = self.nextIndex
        self.nextIndex += 1
        self.sealScratch.clear()
        let milliseconds = UInt32(truncatingIfNeeded: now.uptimeNanoseconds / 1_000_000)
        self.sealScratch.writeMultipleIntegers(
            UInt8(0x80), Self.payloadType, UInt16(truncatingIfNeeded: index), milliseconds,
            UInt32(truncatingIfNeeded: self.local.rawValue))
        self.sealScratch.writeBuffer(&self.pending)
        self.pending.clear()
        var datagram = ByteBufferAllocator().buffer(
            capacity: Self.prefixLength + self.sealScratch.readableBytes + Self.tagLength)
        datagram.writeMultipleIntegers(self.local.rawValue, self.epoch)
        do {
            _ = try self.outbound.protect(self.sealScratch, isRTCP: false, appendingTo: &datagram)
        } catch {
            // Only a broken cipher context gets here; nothing sensible can be sent.
            return
        }
        self.history[Int(index % UInt64(self.history.count))] = SentDatagram(index: index, sentAt: now, bytes: datagram)
        self.emit(datagram, now: now)
        guard self.fecEncoder != nil else { return }
        self.fecEncoder!.add(self.sealScratch, sequenceNumber: UInt16(truncatingIfNeeded: index), now: now)
        for _ in 0..<self.repairCredit.packetSent() { self.sendRepair(now: now) }
    }

    /// The SSRC of this side's repair datagrams: its data SSRC with the top bit flipped.
    public static func repairSSRC(_ node: NodeID) -> UInt32 { UInt32(truncatingIfNeeded: node.rawValue) ^ 0x8000_0000 }

    /// Seals and sends one repair over the latest data datagrams, or in a repair round over `count`
    /// datagrams from `since` (through the newest when nil). Returns false when there was nothing to cover.
    @discardableResult
    private func sendRepair(since: UInt16? = nil, count: Int? = nil, now: NIODeadline) -> Bool {
        self.repairScratch.clear()
        let milliseconds = UInt32(truncatingIfNeeded: now.uptimeNanoseconds / 1_000_000)
        self.repairScratch.writeMultipleIntegers(
            UInt8(0x80), Self.payloadType, self.nextRepairSequence, milliseconds, Self.repairSSRC(self.local))
        let written =
            if let since {
                self.fecEncoder?.writeRepair(since: since, count: count, into: &self.repairScratch) ?? false
            } else {
                self.fecEncoder?.writeRepair(
                    now: now, maximumAge: self.configuration.repairWindowDuration,
                    maximumSources: self.configuration.repairWindow, maximumSymbolGrowth: 2, into: &self.repairScratch)
                    ?? false
            }
        guard written else { return false }
        self.nextRepairSequence &+= 1
        var datagram = ByteBufferAllocator().buffer(
            capacity: Self.prefixLength + self.repairScratch.readableBytes + Self.tagLength)
        datagram.writeMultipleIntegers(self.local.rawValue, self.epoch)
        guard (try? self.outbound.protect(self.repairScratch, isRTCP: false, appendingTo: &datagram)) != nil else {
            return false
        }
        self.counters.repairsSent += 1
        self.emit(datagram, now: now)
        return true
    }

    /// Re-sizes the up-front repairs from the loss the peer reports.
    private func updateRepairRatio() {
        let ratio = RepairCredit.ratio(
            loss: self.measurements.loss, margin: self.configuration.repairMargin,
            threshold: self.configuration.repairLossThreshold, maximum: self.configuration.maximumRepairRatio)
        self.repairCredit.set(ratio: self.configuration.repairMargin > 0 && self.peerDecodesRepairs ? ratio : 0)
        if self.repairCredit.ratio > 0, self.fecEncoder == nil {
            self.fecEncoder = SlidingWindowFECEncoder(
                capacity: self.configuration.repairWindow, maximumPacketSize: self.configuration.maximumDatagramSize)
        }
    }

    private func emit(_ datagram: ByteBuffer, now: NIODeadline) {
        self.counters.datagramsSent += 1
        self.counters.bytesSent += datagram.readableBytes
        self.bytesThisSecond += datagram.readableBytes
        self.transmit(datagram)
    }

    // MARK: - Receiving

    /// Handles one datagram from the peer: authenticates it, notes gaps, answers probes and hands the
    /// router's messages to ``onMessage``. Returns false when it was refused (counted).
    @discardableResult
    public func receive(_ datagram: ByteBuffer, now: NIODeadline) -> Bool {
        var datagram = datagram
        guard let (sender, epoch) = datagram.readMultipleIntegers(as: (UInt64, UInt64).self),
            sender == self.peer.rawValue
        else {
            self.counters.rejected += 1
            return false
        }
        self.plainScratch.clear()
        if epoch == self.peerEpoch, let inbound = self.inbound {
            do {
                _ = try inbound.unprotect(datagram, isRTCP: false, appendingTo: &self.plainScratch)
            } catch let error where error.code == .replayed || error.code == .replayTooOld {
                self.counters.replayed += 1
                return false
            } catch {
                self.counters.rejected += 1
                return false
            }
        } else if epoch > self.peerEpoch {
            // A new run of the peer (or the first datagram): new keys, a fresh sequence. Deriving keys costs
            // three HMACs and a cipher context, so claimed new epochs are tried at most 20 times a second:
            // forged datagrams cannot turn the relay port into a CPU sink.
            if let last = self.lastEpochAttempt, now - last < .milliseconds(50) {
                self.counters.rejected += 1
                return false
            }
            self.lastEpochAttempt = now
            let key = Self.masterKey(secret: self.secret, from: self.peer, to: self.local, epoch: epoch)
            guard
                let inbound = try? SRTPInboundSession(
                    profile: .aeadAES128GCM, masterKey: key, replayWindowSize: self.configuration.replayWindow),
                (try? inbound.unprotect(datagram, isRTCP: false, appendingTo: &self.plainScratch)) != nil
            else {
                self.counters.rejected += 1
                return false
            }
            self.inbound = inbound
            self.peerEpoch = epoch
            self.highestIndex = 0
            self.firstIndex = 0
            self.missing.removeAll()
            self.fecDecoder = SlidingWindowFECDecoder()
        } else {
            self.counters.rejected += 1
            return false
        }
        self.counters.datagramsReceived += 1
        self.counters.bytesReceived += datagram.readableBytes + Self.prefixLength
        self.heard(now: now)
        guard let sequence = self.plainScratch.getInteger(at: self.plainScratch.readerIndex + 2, as: UInt16.self),
            let ssrc = self.plainScratch.getInteger(at: self.plainScratch.readerIndex + 8, as: UInt32.self)
        else { return true }
        if ssrc == Self.repairSSRC(self.peer) {
            self.repairReceived(now: now)
            return true
        }
        self.dataReceived(sequence: sequence, now: now)
        return true
    }

    /// The plaintext of a data datagram (received or rebuilt) is in ``plainScratch``.
    private func dataReceived(sequence: UInt16, now: NIODeadline) {
        let index = self.estimateIndex(sequence)
        if index < self.highestIndex, self.missing[index] == nil, self.rebuilt.contains(index) {
            self.counters.replayed += 1  // rebuilt from repairs already; this is its retransmission
            return
        }
        self.fecDecoder.sourceReceived(self.plainScratch, sequenceNumber: sequence)
        let late = index < self.highestIndex
        self.noteArrival(index, now: now)
        self.plainScratch.moveReaderIndex(forwardBy: Self.rtpHeaderLength)
        self.readFrames(now: now, late: late)
    }

    /// A repair datagram: the data datagrams it lets the decoder rebuild are handled as if they had
    /// arrived, oldest first (a forged or corrupt repair cannot get here: it would not authenticate).
    private func repairReceived(now: NIODeadline) {
        self.counters.repairsReceived += 1
        self.plainScratch.moveReaderIndex(forwardBy: Self.rtpHeaderLength)
        for datagram in self.fecDecoder.repairReceived(self.plainScratch) {
            guard let sequence = datagram.getInteger(at: datagram.readerIndex + 2, as: UInt16.self) else { continue }
            let index = self.estimateIndex(sequence)
            guard index > self.highestIndex || self.missing[index] != nil else { continue }
            self.counters.recoveredByFEC += 1
            self.rebuilt[self.rebuiltHead] = index
            self.rebuiltHead = (self.rebuiltHead + 1) % self.rebuilt.count
            self.plainScratch.clear()
            self.plainScratch.writeImmutableBuffer(datagram)
            let late = index < self.highestIndex
            self.noteArrival(index, now: now, rebuilt: true)
            self.plainScratch.moveReaderIndex(forwardBy: Self.rtpHeaderLength)
            self.readFrames(now: now, late: late)
        }
    }

    private func heard(now: NIODeadline) {
        self.measurements.lastHeard = now
        if !self.isUp {
            self.isUp = true
            self.onStateChange(true)
        }
    }

    /// The 64-bit hop index of a 16-bit sequence number: the one closest to the highest seen.
    private func estimateIndex(_ sequence: UInt16) -> UInt64 {
        guard self.highestIndex > 0 else { return UInt64(sequence) }
        let base = self.highestIndex & ~0xFFFF
        var best = base | UInt64(sequence)
        for candidate in [best &+ 0x10000, best >= 0x10000 ? best - 0x10000 : best] {
            let distance = { (value: UInt64) in value > self.highestIndex ? value - self.highestIndex : self.highestIndex - value }
            if distance(candidate) < distance(best) { best = candidate }
        }
        return best
    }

    private func noteArrival(_ index: UInt64, now: NIODeadline, rebuilt: Bool = false) {
        if self.highestIndex == 0 {
            self.highestIndex = index
            self.firstIndex = index
            return
        }
        if index > self.highestIndex {
            // A datagram rebuilt before a later one showed it missing was lost all the same: the peer's repairs
            // are sized from this count.
            if rebuilt { self.gapsSeen += 1 }
            let gap = index - self.highestIndex - 1
            if gap > 0 {
                self.gapsSeen += gap
                // A long silence (the link was down) is not worth repairing datagram by datagram.
                if gap <= 256 {
                    for missingIndex in (self.highestIndex + 1)..<index {
                        self.missing[missingIndex] = MissingDatagram(seenAt: now)
                    }
                }
            }
            self.highestIndex = index
        } else if self.missing.removeValue(forKey: index) != nil, !rebuilt {
            self.counters.repaired += 1
        }
    }

    /// Hands on the frames of the datagram in ``plainScratch``. `late`: it filled a gap (a retransmission,
    /// a rebuild or a reordering), so its probe or probe reply is as old as the repair took: timing it would
    /// add that delay to the RTT, and with it to every NACK retry (at 50 % loss half the samples were, and
    /// a 40 ms link measured 78 ms).
    private func readFrames(now: NIODeadline, late: Bool) {
        self.mediaBatch.clear()
        while self.plainScratch.readableBytes > 0 {
            let frame: MeshFrame?
            do {
                frame = try MeshFrame.read(from: &self.plainScratch)
            } catch {
                self.counters.malformedFrames += 1
                break
            }
            guard let frame else { continue }
            switch frame {
            case .record(var record):
                self.mediaBatch.writeBuffer(&record)
            case .wantLayers(let id, let layers):
                self.onMessage(.wantLayers(id, layers))
            case .keyframe(let id, let layer):
                self.onMessage(.keyframe(id, layer: layer))
            case .layerRates(let id, let rates):
                self.onMessage(.layerRates(id, rates))
            case .probe(let id, let sentAt):
                guard !late else {
                    self.counters.staleProbes += 1
                    continue
                }
                let expected = self.highestIndex >= self.firstIndex ? self.highestIndex - self.firstIndex + 1 : 0
                self.append(.probeReply(id: id, echoedSentAt: sentAt, expected: expected, gaps: self.gapsSeen), now: now)
                self.flush(now: now)
            case .probeReply(_, let echoed, let expected, let gaps):
                if late { self.counters.staleProbes += 1 }
                self.probeReplied(echoed: echoed, expected: expected, gaps: gaps, timed: !late, now: now)
            case .nack(let indices):
                self.answer(nack: indices, now: now)
            }
        }
        if self.mediaBatch.readableBytes > 0 {
            // The router keeps slices of what it is handed: give it its own copy, not the scratch.
            self.onMessage(.media(ByteBuffer(buffer: self.mediaBatch)))
        }
    }

    /// Answers a NACK: with a repair round while repairs flow (the asked-for datagrams the encoder still
    /// keeps are the receiver's deficit: fresh repairs over the span from the oldest of them through the
    /// newest rebuild them all once that many arrive; a deficit of one gets repairs over that datagram
    /// alone), the others by retransmission.
    private func answer(nack indices: [UInt64], now: NIODeadline) {
        guard self.repairCredit.ratio > 0, self.fecEncoder != nil else {
            self.retransmit(indices, now: now)
            return
        }
        var deficit = 0
        var widest = 0
        var oldest: UInt16 = 0
        var round = 0
        var older: [UInt64] = []
        for index in indices {
            let slot = Int(index % UInt64(self.history.count))
            guard let sent = self.history[slot], sent.index == index,
                let sources = self.fecEncoder?.sourcesSince(UInt16(truncatingIfNeeded: index)),
                sources <= FECRepairHeader.maximumSources
            else {
                older.append(index)
                continue
            }
            deficit += 1
            round = max(round, sent.resends)
            self.history[slot]?.resends += 1
            if sources > widest {
                widest = sources
                oldest = UInt16(truncatingIfNeeded: index)
            }
        }
        if !older.isEmpty { self.retransmit(older, now: now) }
        guard deficit > 0 else { return }
        let repairs = self.configuration.repairRounds.repairs(deficit: deficit, loss: self.measurements.loss, round: round)
        var sent = 0
        while sent < repairs, self.sendRepair(since: oldest, count: deficit == 1 ? 1 : nil, now: now) { sent += 1 }
        self.counters.repairRounds += 1
        self.counters.roundRepairs += sent
    }

    /// Sends the asked-for datagrams again, the same bytes; on a lossy link in several copies, one more
    /// each time the same datagram is asked for again (``BraidSFU/RetransmissionPolicy``, as toward
    /// subscribers): the receiver's replay window drops the copies after the first that arrives.
    private func retransmit(_ indices: [UInt64], now: NIODeadline) {
        for index in indices {
            let slot = Int(index % UInt64(self.history.count))
            guard let sent = self.history[slot], sent.index == index, now - sent.sentAt < .seconds(1) else {
                self.counters.retransmissionsUnavailable += 1
                continue
            }
            let copies = self.configuration.retransmission.copies(
                previousResends: sent.resends, loss: self.measurements.loss)
            self.history[slot]?.resends += 1
            for _ in 0..<copies {
                self.counters.retransmissionsSent += 1
                self.emit(sent.bytes, now: now)
            }
        }
    }

    // MARK: - Probes and measurements

    /// A probe reply: an RTT sample unless it came late (not `timed`), and the peer's loss counters.
    private func probeReplied(echoed: UInt64, expected: UInt64, gaps: UInt64, timed: Bool, now: NIODeadline) {
        self.counters.probeRepliesReceived += 1
        let nowNanoseconds = now.uptimeNanoseconds
        guard echoed <= nowNanoseconds else { return }
        if timed {
            let sample = TimeAmount.nanoseconds(Int64(nowNanoseconds - echoed))
            if let rtt = self.measurements.rtt {
                // RFC 6298 §2.3: RTTVAR ← 3/4 RTTVAR + 1/4 |SRTT − R|; SRTT ← 7/8 SRTT + 1/8 R.
                let deviation = abs(rtt.nanoseconds - sample.nanoseconds)
                self.measurements.jitter = .nanoseconds((3 * self.measurements.jitter.nanoseconds + deviation) / 4)
                self.measurements.rtt = .nanoseconds((7 * rtt.nanoseconds + sample.nanoseconds) / 8)
            } else {
                self.measurements.rtt = sample
                self.measurements.jitter = .nanoseconds(sample.nanoseconds / 2)
            }
        }
        // Loss over about a second of the peer's counters.
        if let baseline = self.lossBaseline, let at = self.lossBaselineAt {
            guard now - at >= .milliseconds(900) else { return }
            if expected >= baseline.expected, gaps >= baseline.gaps {
                let span = expected - baseline.expected
                self.measurements.loss = span > 0 ? min(1, Double(gaps - baseline.gaps) / Double(span)) : 0
                self.updateRepairRatio()
            }
        }
        self.lossBaseline = (expected, gaps)
        self.lossBaselineAt = now
    }

    /// Periodic work (every 10–50 ms): probes, NACKs for missing datagrams, liveness, send rate.
    public func tick(now: NIODeadline) {
        if let start = self.rateWindowStart {
            let elapsed = now - start
            if elapsed >= .seconds(1) {
                self.measurements.sendRateKbps = Double(self.bytesThisSecond) * 8 / 1_000 / (Double(elapsed.nanoseconds) / 1e9)
                self.bytesThisSecond = 0
                self.rateWindowStart = now
            }
        } else {
            self.rateWindowStart = now
        }
        if self.isUp, let heard = self.measurements.lastHeard, now - heard > self.configuration.deadAfter {
            self.isUp = false
            self.counters.downs += 1
            self.missing.removeAll()
            self.measurements.loss = 1
            self.onStateChange(false)
        }
        if self.lastProbeAt.map({ now - $0 >= self.configuration.probeInterval }) ?? true {
            self.lastProbeAt = now
            self.counters.probesSent += 1
            self.append(.probe(id: self.nextProbeID, sentAt: now.uptimeNanoseconds), now: now)
            self.nextProbeID &+= 1
        }
        self.sendNACKs(now: now)
        self.flush(now: now)
    }

    private func sendNACKs(now: NIODeadline) {
        guard !self.missing.isEmpty else { return }
        // Ask again after about an RTT (at least 10 ms), so a lost retransmission is asked for once more.
        let retry = max(TimeAmount.milliseconds(10), (self.measurements.rtt ?? .milliseconds(50)) + self.measurements.jitter)
        // Repair equations in hand will rebuild about that many of the newest missing datagrams as the next
        // repairs arrive: those wait up to ``fecGrace`` before their first NACK.
        let pending = self.fecDecoder.pendingEquations
        let waiting: Set<UInt64> =
            pending > 0
            ? Set(
                self.missing.filter { $0.value.lastNACK == nil && now - $0.value.seenAt < Self.fecGrace }.keys.sorted()
                    .suffix(pending)) : []
        var due: [UInt64] = []
        for index in self.missing.keys.sorted() {
            guard let entry = self.missing[index] else { continue }
            if now - entry.seenAt > self.configuration.repairDeadline || entry.nacks >= self.configuration.maximumNACKs {
                if entry.lastNACK.map({ now - $0 > retry }) ?? true {
                    self.missing[index] = nil
                    self.counters.unrepaired += 1
                }
                continue
            }
            if !waiting.contains(index), entry.lastNACK.map({ now - $0 >= retry }) ?? true {
                due.append(index)
                self.missing[index]?.lastNACK = now
                self.missing[index]?.nacks += 1
            }
        }
        guard !due.isEmpty else { return }
        var start = 0
        while start < due.count {
            let chunk = Array(due[start..<min(due.count, start + 128)])
            self.append(.nack(chunk), now: now)
            self.counters.nacksSent += 1
            start += 128
        }
    }
}

/// A sealed datagram kept for retransmission.
private struct SentDatagram {
    let index: UInt64
    let sentAt: NIODeadline
    let bytes: ByteBuffer
    /// Times it was asked for and sent again.
    var resends = 0
}

/// A hop sequence number seen missing.
private struct MissingDatagram {
    let seenAt: NIODeadline
    var lastNACK: NIODeadline?
    var nacks = 0
}
