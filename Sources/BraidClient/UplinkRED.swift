import BraidRTPStreams
import NIOCore

/// RED ([RFC 2198](https://www.rfc-editor.org/rfc/rfc2198)) on a publisher's audio uplink, when the node
/// took `red/48000/2` in its answer: each Opus packet carries the frames before it, as many as the uplink's
/// measured loss needs for a frame to reach the node in time to be played (``AudioRedundancyPolicy``).
/// When that is not enough (from about 50 % loss), each packet is also sent up to three times over its
/// frame interval: identical copies, which the node's SRTP replay check reduces to the first that arrives
/// (where the node's repeats toward a subscriber take new sequence numbers, which a player's jitter buffer
/// sorts out but the node's RED recovery, mapping a block to `sequence − offset / 960`, could not). The node
/// rebuilds the packets its uplink lost from the blocks, for every subscriber (RED-capable or not). The loss
/// is the node's transport-wide feedback before any repair, as for ``UplinkFEC``; below 0.5 % packets go out
/// as plain Opus. Confined to the publisher's event loop.
struct UplinkRED {
    /// The subscriber's 200 ms playout deadline, with the uplink's own delay and the downlink taken out:
    /// a copy the node gets later than about 110 ms after capture comes too late to be forwarded.
    static let policy = AudioRedundancyPolicy()
    /// One-way delay assumed for the uplink (the publisher measures none).
    static let oneWayDelay = TimeAmount.milliseconds(50)
    /// Opus frames are 20 ms here (BraidPublisher's sources and pre-encoded media).
    static let frameDuration = TimeAmount.milliseconds(20)

    /// The RED payload type the answer gave.
    let payloadType: UInt8
    private var encoder = AudioRedundancy()

    init(payloadType: UInt8) {
        self.payloadType = payloadType
    }

    /// Earlier frames carried in each packet (0: plain Opus).
    var distance: Int { self.encoder.plan.distance }
    /// Times each packet is sent.
    var sendsPerFrame: Int { self.encoder.plan.sendsPerFrame }
    /// Bytes of redundant blocks sent, headers included.
    var redundantBytesSent: Int { self.encoder.redundantBytesSent }

    /// Re-plans from the uplink's loss (0–1).
    mutating func update(loss: Double) {
        self.encoder.update(
            plan: Self.policy.plan(loss: loss, oneWayDelay: Self.oneWayDelay, frameDuration: Self.frameDuration))
    }

    /// The RED payload for the Opus frame `opus` (under `opusPayloadType`) at `timestamp`, or nil to send
    /// it plain; the frame is kept for the packets after it once redundancy has been planned.
    mutating func wrap(_ opus: ByteBuffer, timestamp: UInt32, opusPayloadType: UInt8) -> ByteBuffer? {
        self.encoder.payload(primary: opus, timestamp: timestamp, payloadType: opusPayloadType)
    }
}
