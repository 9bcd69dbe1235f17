import BraidRTPStreams
import BraidWire
public import NIOCore

/// How many repair packets per video packet a subscriber's link needs, for Braid's sliding-window FEC
/// (``BraidRTPStreams/SlidingWindowFECEncoder``; hops with BraidClient at the other end).
///
/// With random loss `p`, a window of `w` packets loses `p·w` of them; `ρ` repair packets per packet over the
/// same window bring `ρ·w·(1 − p)`. The ratio keeps the repairs that arrive a ``margin`` above the losses:
/// `ρ = margin · p / (1 − p)`. What FEC leaves (a window that lost more than its repairs) goes to NACK/RTX
/// within the deadline, as LOSS-NOTES §1.2 combines them. No repair below ``lossThreshold``: a clean link
/// costs nothing.
public struct VideoFECPolicy: Sendable, Hashable {
    /// Below this loss no repair packets are sent.
    public var lossThreshold: Double = 0.005
    /// Repairs that arrive per packet lost.
    public var margin: Double = 1.5
    /// Most repair packets per media packet.
    public var maximumRatio: Double = 2
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
        guard loss.isFinite, loss >= self.lossThreshold else { return 0 }
        guard loss < 1 else { return self.maximumRatio }
        return min(self.maximumRatio, self.margin * loss / (1 - loss))
    }
}

/// The repair stream of one video slot: the encoder (made the first time the link needs repair), the
/// repair packets' own sequence numbers, and the fractional repair credit that spreads `ρ` repairs per
/// packet evenly. Owned by its slot on the router's event loop.
struct VideoProtection {
    private(set) var ratio = 0.0
    var encoder: SlidingWindowFECEncoder?
    private var credit = 0.0
    var nextSequenceNumber: UInt16
    private(set) var repairsSent = 0
    var repairBytesSent = 0

    init(ssrc: UInt32) {
        self.nextSequenceNumber = UInt16(truncatingIfNeeded: ssrc &* 40_503)
    }

    var footprint: Int { self.encoder?.footprint ?? 0 }

    mutating func update(ratio: Double, window: Int, maximumPacketSize: Int) {
        self.ratio = ratio
        if ratio > 0, self.encoder == nil {
            self.encoder = SlidingWindowFECEncoder(capacity: window, maximumPacketSize: maximumPacketSize)
        }
        if ratio == 0 { self.credit = 0 }
    }

    /// Keeps a media packet just sent and says how many repair packets to send after it.
    mutating func sent(_ packet: ByteBuffer, sequenceNumber: UInt16, now: NIODeadline) -> Int {
        guard self.ratio > 0, self.encoder != nil else { return 0 }
        self.encoder!.add(packet, sequenceNumber: sequenceNumber, now: now)
        self.credit += self.ratio
        let repairs = Int(self.credit)
        self.credit -= Double(repairs)
        return repairs
    }

    /// The slot shows another track: its packets continue the output stream, but the window restarts.
    mutating func reset() { self.encoder?.reset() }

    mutating func counted(bytes: Int) {
        self.repairsSent += 1
        self.repairBytesSent += bytes
    }
}
