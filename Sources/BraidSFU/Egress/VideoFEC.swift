import Foundation
public import BraidRTPStreams
import BraidWire
public import NIOCore

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

    /// Sends `ratio` repairs per packet, with an encoder kept as `policy` says.
    mutating func update(ratio: Double, policy: VideoFECPolicy, maximumPacketSize: Int) {
        self.credit.set(ratio: ratio)
        if ratio > 0, self.encoder == nil {
            self.encoder = SlidingWindowFECEncoder(
                capacity: policy.window, maximumPacketSize: maximumPacketSize, retention: policy.keptDuration)
        } else if ratio == 0 {
            // A clean link keeps no copies: every subscriber is protected from its start, so otherwise
            // each would hold its start's slots for good. Loss coming back makes a fresh encoder.
            self.encoder = nil
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
