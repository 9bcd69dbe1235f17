import Foundation
public import BraidRTPStreams
import BraidWire
public import NIOCore

/// How much repair a subscriber's link gets from Braid's sliding-window FEC
/// (``BraidRTPStreams/SlidingWindowFECEncoder``; hops with BraidClient at the other end): repair packets
/// sent with the media up front, and repair rounds in answer to NACKs (LOSS-NOTES §1.2).
///
/// Up front: `ρ = margin · p / (1 − p)` repairs per packet at loss `p` repair about `margin` of the losses
/// before the receiver has to ask (``BraidRTPStreams/RepairCredit``). What is left is the receiver's deficit: it NACKs that many
/// of its missing packets, and the node answers with fresh repairs over the span from the oldest of them
/// through the newest packet sent, as many as make it likely that at least the deficit arrives
/// (``repairs(deficit:loss:round:)``). Any deficit-many repairs rebuild every missing packet in the span,
/// so a round costs about `deficit / (1 − p)` packets where per-packet copies would cost several times
/// that. No repair below ``lossThreshold``: a clean link costs nothing, and its rare loss goes to RTX.
public struct VideoFECPolicy: Sendable, Hashable {
    /// Below this loss no repair packets are sent.
    public var lossThreshold: Double = 0.005
    /// Repairs sent up front that arrive per packet lost. Measured with braid-load at 50 % loss (see
    /// Benchmarks/README.md, "Loss protection"): 1.0 made 99.3 % of frames decodable in time at 3.6× the
    /// media bytes; 0.7 and 0.5 left more to the repair rounds, which were later and dearer (98.1–98.7 %
    /// at 3.6×, 97.7 % at 3.9×).
    public var margin: Double = 1.0
    /// Most repair packets per media packet.
    public var maximumRatio: Double = 2
    /// The chance that a repair round brings at least the deficit, for the first round and for each later
    /// one (a span asked for again was not repaired in time by the last round: the next one is surer).
    /// Cheaper first rounds trade time for bytes: [0.75, 0.9, 0.99] sent 10 % fewer bytes at 50 % loss
    /// (3.35–3.47× against 3.71–3.79×, seeds 7–9) but made 98.0–99.0 % of frames decodable in time
    /// against 99.2–99.5 % (Benchmarks/README.md, "Loss protection").
    public var roundSuccess: [Double] = [0.9, 0.97, 0.99]
    /// Most repair packets in one round.
    public var maximumRoundRepairs: Int = 32
    /// Packets a repair covers at most.
    public var window: Int = 24
    /// A repair covers only packets sent this recently (older ones would be recovered too late to play).
    public var windowDuration: TimeAmount = .milliseconds(200)
    /// A repair's window stops before a packet that would make it more than this many times longer than
    /// the newer packets need (a keyframe's full-size packets would otherwise inflate every later repair).
    public var maximumSymbolGrowth: Int = 2

    public init() {}

    /// Repair packets per media packet for a link losing `loss` (0–1) of its packets.
    public func repairRatio(loss: Double) -> Double {
        RepairCredit.ratio(loss: loss, margin: self.margin, threshold: self.lossThreshold, maximum: self.maximumRatio)
    }

    /// Repair packets to send in answer to a NACK of `deficit` packets on a link losing `loss` (0–1), in
    /// repair round `round` (0 for the first time these packets are asked for): the fewest `m` with
    /// P(at least `deficit` of `m` arrive) ≥ ``roundSuccess``, at most ``maximumRoundRepairs``.
    public func repairs(deficit: Int, loss: Double, round: Int) -> Int {
        guard loss.isFinite, loss > 0 else { return deficit > 0 ? deficit : 0 }
        guard loss < 1 else { return deficit > 0 ? max(deficit, self.maximumRoundRepairs) : 0 }
        return self.repairs(deficit: deficit, round: round) { Self.atLeast($0, of: $1, arriving: 1 - loss) }
    }

    /// ``repairs(deficit:loss:round:)`` on a link whose losses come in bursts, as `bursts` measured them:
    /// the round's repairs go out back to back, so a burst can take them all, and the fewest that reach
    /// the round's target under the fitted chain are sent (more than for independent loss at the same
    /// rate, since extra repairs die in the same burst; LOSS-NOTES §1.4).
    public func repairs(deficit: Int, bursts: BurstLossModel, round: Int) -> Int {
        let loss = bursts.lossRate
        guard loss.isFinite, loss > 0, loss < 1 else { return self.repairs(deficit: deficit, loss: loss, round: round) }
        return self.repairs(deficit: deficit, round: round) { bursts.atLeast($0, of: $1) }
    }

    /// The fewest `m` in deficit...cap with `atLeast(deficit, m)` ≥ the round's target, or the cap.
    private func repairs(deficit: Int, round: Int, atLeast: (Int, Int) -> Double) -> Int {
        guard deficit > 0 else { return 0 }
        let cap = max(deficit, self.maximumRoundRepairs)
        guard let target = self.roundSuccess.isEmpty ? nil : self.roundSuccess[min(round, self.roundSuccess.count - 1)]
        else { return cap }
        var m = deficit
        while m < cap, atLeast(deficit, m) < target { m += 1 }
        return m
    }

    /// P(Binomial(n, q) ≥ k).
    static func atLeast(_ k: Int, of n: Int, arriving q: Double) -> Double {
        guard k > 0 else { return 1 }
        guard k <= n else { return 0 }
        // Sum the terms below k: P(X = i) = C(n, i) qⁱ (1 − q)ⁿ⁻ⁱ, built up term by term.
        var term = pow(1 - q, Double(n))
        var below = 0.0
        for i in 0..<k {
            below += term
            term *= Double(n - i) / Double(i + 1) * q / (1 - q)
        }
        return max(0, 1 - below)
    }
}

/// How much FlexFEC or ULPFEC a browser's link gets (``BraidRTPStreams/FlexFECEncoder``,
/// ``BraidRTPStreams/ULPFECEncoder``): one XOR repair after every
/// `span` media packets, over those packets. A browser rebuilds a packet only when it is the one missing
/// packet of a repair (libwebrtc recovers one packet per FEC packet), so the span is about the number of
/// packets the link delivers per packet it loses, `(1 − p) / p`: 4 at 20 % loss, 1 (a copy of every
/// packet) from 50 %. What FEC does not rebuild is left to NACK and RTX. No repair below
/// ``lossThreshold``.
public struct FlexFECPolicy: Sendable, Hashable {
    /// Below this loss no repair packets are sent.
    public var lossThreshold: Double = 0.01
    /// The widest span (the least overhead, 1 / span, on a link barely losing).
    public var maximumSpan: Int = 10

    public init() {}

    /// Media packets per repair packet on a link losing `loss` (0–1) of its packets; nil: no repair.
    public func span(loss: Double) -> Int? {
        guard loss.isFinite, loss >= self.lossThreshold else { return nil }
        guard loss < 0.5 else { return 1 }
        return max(1, min(self.maximumSpan, Int(((1 - loss) / loss).rounded(.down))))
    }
}

/// The repair stream of one video slot: the encoder (made the first time the link needs repair), the
/// repair packets' own sequence numbers (ULPFEC repairs take the media stream's instead), and the credit
/// that spreads `ρ` repairs per packet evenly (with the XOR codes, `ratio` is 1 / span). Owned by its slot
/// on the router's event loop.
struct VideoProtection {
    private var credit = RepairCredit()
    var ratio: Double { self.credit.ratio }
    /// Braid's sliding-window code (BraidClient receivers).
    var encoder: SlidingWindowFECEncoder?
    /// FlexFEC (browsers that offer it) or ULPFEC (other browsers), and their media packets per repair
    /// (0: none).
    var flexEncoder: FlexFECEncoder?
    var ulpEncoder: ULPFECEncoder?
    private(set) var xorSpan = 0
    /// ULPFEC: the packets sent since the last repair, through the frame just ended, that its repairs
    /// cover. A browser assembles a frame only from consecutive sequence numbers and a ULPFEC repair takes
    /// one, so repairs go out only after a frame's last packet (as libwebrtc sends them), once at least
    /// `xorSpan` packets wait: one repair per `xorSpan` of them, the oldest taking what is left over.
    private(set) var ulpFrameUncovered = 0
    var nextSequenceNumber: UInt16
    private(set) var repairsSent = 0
    var repairBytesSent = 0

    init(ssrc: UInt32) {
        self.nextSequenceNumber = UInt16(truncatingIfNeeded: ssrc &* 40_503)
    }

    var footprint: Int {
        (self.encoder?.footprint ?? 0) + (self.flexEncoder?.footprint ?? 0) + (self.ulpEncoder?.footprint ?? 0)
    }

    /// Whether any encoder is set up.
    var hasEncoder: Bool { self.encoder != nil || self.flexEncoder != nil || self.ulpEncoder != nil }

    /// Whether media goes out RED-wrapped now: while ULPFEC repairs are sent, since a browser's ULPFEC
    /// receiver sees only the packets that came in RED (on a clean link the media stays plain).
    var wrapsInRED: Bool { self.xorSpan > 0 && self.ulpEncoder != nil }

    mutating func update(ratio: Double, window: Int, maximumPacketSize: Int) {
        self.credit.set(ratio: ratio)
        if ratio > 0, self.encoder == nil {
            self.encoder = SlidingWindowFECEncoder(capacity: window, maximumPacketSize: maximumPacketSize)
        }
    }

    /// FlexFEC or ULPFEC toward a browser: one repair per `span` packets (nil: none). The encoder, made the
    /// first time, zeroes the data of `mutableExtensionIDs` in its copies, as the browser does in its own.
    mutating func updateXOR(
        span: Int?, ulpfec: Bool, maximumPacketSize: Int, mutableExtensionIDs: (UInt8, UInt8, UInt8)
    ) {
        self.xorSpan = span ?? 0
        self.credit.set(ratio: span.map { 1 / Double($0) } ?? 0)
        guard let span else { return }
        if ulpfec, self.ulpEncoder == nil {
            // Room for a keyframe's packets: its repairs are written after its last one.
            self.ulpEncoder = ULPFECEncoder(
                capacity: ULPFECHeader.maximumSpan, maximumPacketSize: maximumPacketSize,
                mutableExtensionIDs: mutableExtensionIDs)
        } else if !ulpfec, self.flexEncoder == nil {
            self.flexEncoder = FlexFECEncoder(
                capacity: max(span, 16), maximumPacketSize: maximumPacketSize, mutableExtensionIDs: mutableExtensionIDs)
        }
    }

    /// Keeps a media packet about to be sent (for ULPFEC: before its RED header) and says how many repair
    /// packets to send after it.
    mutating func sent(_ packet: ByteBuffer, sequenceNumber: UInt16, now: NIODeadline) -> Int {
        if self.xorSpan > 0, self.flexEncoder != nil {
            self.flexEncoder!.add(packet, sequenceNumber: sequenceNumber)
            return self.flexEncoder!.unprotected >= self.xorSpan ? 1 : 0
        }
        if self.xorSpan > 0, self.ulpEncoder != nil {
            self.ulpEncoder!.add(packet, sequenceNumber: sequenceNumber)
            let marker = (packet.getInteger(at: packet.readerIndex + 1, as: UInt8.self) ?? 0) & 0x80 != 0
            // Frames shorter than the span add up until they fill one.
            let uncovered = self.ulpEncoder!.unprotected
            guard marker, uncovered >= self.xorSpan else { return 0 }
            self.ulpFrameUncovered = uncovered
            return (uncovered + self.xorSpan - 1) / self.xorSpan
        }
        guard self.ratio > 0, self.encoder != nil else { return 0 }
        self.encoder!.add(packet, sequenceNumber: sequenceNumber, now: now)
        return self.credit.packetSent()
    }

    /// Writes ULPFEC repair `index` of the `count` that follow the frame just ended: repair 0 covers its
    /// oldest packets (what is left over a multiple of the span), the last one its newest `xorSpan`.
    mutating func writeULPFECRepair(_ index: Int, of count: Int, into buffer: inout ByteBuffer) -> Bool {
        let skipped = (count - 1 - index) * self.xorSpan
        let packets = min(self.xorSpan, self.ulpFrameUncovered - skipped)
        guard packets > 0 else { return false }
        return self.ulpEncoder?.writeRepair(span: packets, skippingNewest: skipped, into: &buffer) ?? false
    }

    /// The slot shows another track: its packets continue the output stream, but the window restarts.
    mutating func reset() {
        self.encoder?.reset()
        self.flexEncoder?.reset()
        self.ulpEncoder?.reset()
    }

    mutating func counted(bytes: Int) {
        self.repairsSent += 1
        self.repairBytesSent += bytes
    }
}
