public import BraidRTPStreams
public import BraidWire
public import NIOCore

/// Intervals, buffer sizes and thresholds of the forwarding core; the defaults are production values.
public struct SFUConfiguration: Sendable {
    /// Minimum time between two keyframe requests sent upstream for one stream (mediasoup: 1 s).
    public var keyframeRequestInterval: TimeAmount = .seconds(1)
    /// How often receiver reports go to each publisher (RFC 3550 §6.2 suggests ~5 s; WebRTC stacks use 1 s).
    public var receiverReportInterval: TimeAmount = .seconds(1)
    /// How often transport-wide feedback goes to each publisher (libwebrtc, pion, mediasoup: 100 ms).
    public var transportFeedbackInterval: TimeAmount = .milliseconds(100)
    /// Sender report interval for video consumers (libwebrtc: 1 s).
    public var videoSenderReportInterval: TimeAmount = .seconds(1)
    /// Sender report interval for audio consumers.
    public var audioSenderReportInterval: TimeAmount = .seconds(2)
    /// How often the video layer of each consumer is re-decided from the bandwidth estimate.
    public var layerDecisionInterval: TimeAmount = .milliseconds(100)
    /// Packets kept per video consumer for retransmission (rounded up to a power of two).
    public var videoRetransmissionCapacity: Int = 1024
    /// Packets kept per audio consumer for retransmission.
    public var audioRetransmissionCapacity: Int = 128
    /// Age after which a packet is no longer retransmitted (video); audio uses half.
    public var retransmissionMaxAge: TimeAmount = .seconds(1)
    /// Largest RTP packet the core builds or stores.
    public var maximumPacketSize: Int = 1500
    /// Window over which layer and peer bitrates are measured.
    public var bitrateWindow: TimeAmount = .milliseconds(500)
    /// Hysteresis of the layer choice: go up when the estimate is this multiple of the target layer.
    public var layerUpThreshold: Double = 1.2
    /// Go down when the estimate falls below this multiple of the current layer's bitrate.
    public var layerDownThreshold: Double = 0.95
    /// How long a higher layer must stay affordable before the consumer moves up.
    public var layerUpDwell: TimeAmount = .seconds(2)
    /// Start estimate of a subscriber's bandwidth estimator (bits/s).
    public var startBitrate: Int = 1_000_000
    /// Audio level (RFC 6464, −dBov; 127 = silence) at or above which a track counts as silent.
    public var speakerSilenceLevel: Double = 80
    /// Weight of each new audio level sample in the smoothed level (exponential average).
    public var speakerSmoothing: Double = 0.25
    /// A track whose last audio level is older than this counts as silent.
    public var speakerTimeout: TimeAmount = .seconds(1)
    /// How much audio redundancy (RED, repeats) each subscriber's measured loss gets.
    public var audioRedundancy = AudioRedundancyPolicy()
    /// How many FEC repair packets each subscriber's measured loss gets (video, BraidClient subscribers).
    public var videoFEC = VideoFECPolicy()
    /// The loss a subscriber's protection (video FEC up front and its repair rounds, audio redundancy) is
    /// planned for until its first feedback measures the link: its first transport-wide feedback or receiver
    /// report comes 100 ms to 1 s after its media starts, and its first keyframe, which every later frame
    /// needs, goes out before that. At 50 % loss an unprotected keyframe of six packets arrives whole one time
    /// in 64, and a broken start waits for the next keyframe (the node asks for at most one a second). On a
    /// clean link the cost is the first 100 ms protected as at this loss and the next seconds less and less
    /// (see ``lossPriorPackets``): 2 % more bytes over a 30 s run. Both at 0 plan from the measured loss
    /// alone. (RTX copies follow the measured loss only: a NACK before feedback gets one copy.)
    public var lossBeforeFeedback: Double = 0.5
    /// How many packets of transport-wide feedback ``lossBeforeFeedback`` weighs as against the measured loss
    /// (its weight is this over this plus the packets measured): on a clean link the planned loss is about
    /// 15 % after 100 ms, 1 % after 4 s.
    public var lossPriorPackets: Double = 10
    /// How much FlexFEC each browser subscriber's measured loss gets (video).
    public var flexFEC = FlexFECPolicy()
    /// How many copies of a retransmission each subscriber's measured loss gets.
    public var retransmission = RetransmissionPolicy()

    /// The production defaults.
    public init() {}
}

/// The NTP mapping of sender reports and abs-send-time: `BraidWire.WallClock`, shared with BraidClient;
/// the name stays here so that code importing only BraidSFU keeps compiling.
public typealias WallClock = BraidWire.WallClock
