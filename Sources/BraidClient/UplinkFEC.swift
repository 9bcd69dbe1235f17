import BraidRTPStreams
import BraidWire
import NIOCore

/// Braid's sliding-window FEC on a publisher's uplink (`x-braid-fec`, the code the node sends its
/// BraidClient subscribers; ``BraidRTPStreams/SlidingWindowFECEncoder``): repair packets on their own SSRC
/// (`a=ssrc-group:FEC-FR <media> <repair>` in the offer) after the video packets, `loss / (1 − loss)` per
/// packet over the packets of the last 200 ms, so the node rebuilds about as many packets as the uplink
/// loses before it has to NACK (what is left goes to NACK and RTX). The loss is read from the node's
/// transport-wide feedback, packet by packet before any repair (its receiver reports count retransmitted
/// packets as received, so they show the loss left after repair); nothing is sent below 0.5 %.
///
/// A NACK from the node is answered as the node answers its BraidClient subscribers: the asked-for packets
/// the encoder still keeps are the node's deficit, and a round of fresh repairs over the span from the
/// oldest of them through the newest packet sent (``VideoFECPolicy/repairs(deficit:loss:round:)``)
/// rebuilds them all once that many arrive (``OutgoingStream/answer(_:now:nowNTP:transportSequence:send:)``).
/// Confined to the publisher's event loop.
struct UplinkFEC {
    /// Below this loss no repair packets are sent.
    static let lossThreshold = 0.005
    /// Most repair packets per media packet.
    static let maximumRatio = 2.0
    let ssrc: UInt32
    let payloadType: UInt8
    private(set) var sequenceNumber: UInt16
    /// Made the first time the uplink loses packets.
    private var encoder: SlidingWindowFECEncoder?
    /// The uplink's loss the repairs are sized for.
    private(set) var loss = 0.0
    /// The node's defaults toward its subscribers: the packets and time a repair covers, what the encoder
    /// keeps, and how many repairs a round answering a NACK sends.
    static let rounds = VideoFECPolicy()
    private(set) var repairRounds = 0
    /// Repairs per media packet, spread over the packets.
    private var credit = RepairCredit()
    var ratio: Double { self.credit.ratio }
    private(set) var repairsSent = 0
    /// Repair payload scratch, reused.
    private var scratch = ByteBuffer()

    init(ssrc: UInt32, payloadType: UInt8) {
        self.ssrc = ssrc
        self.payloadType = payloadType
        self.sequenceNumber = UInt16.random(in: 0...0x7FFF)
    }

    /// Repair packets per media packet for an uplink losing `loss` (0–1).
    static func ratio(loss: Double) -> Double {
        RepairCredit.ratio(loss: loss, threshold: Self.lossThreshold, maximum: Self.maximumRatio)
    }

    /// Re-sizes from the uplink's loss (0–1, the publisher's average of the node's feedback).
    mutating func update(loss: Double) {
        self.loss = loss
        self.credit.set(ratio: Self.ratio(loss: loss))
        if self.ratio > 0, self.encoder == nil {
            self.encoder = SlidingWindowFECEncoder(
                capacity: Self.rounds.window, maximumPacketSize: 1500, retention: Self.rounds.keptDuration)
        }
    }

    /// Whether repairs go out now (the uplink loses packets), so a NACK is answered with a repair round.
    var isProtecting: Bool { self.ratio > 0 && self.encoder != nil }

    /// How many kept packets a repair from `sequenceNumber` through the newest would cover (nil: not kept).
    func sourcesSince(_ sequenceNumber: UInt16) -> Int? { self.encoder?.sourcesSince(sequenceNumber) }

    /// Keeps the media packet just sent and says how many repairs to send after it.
    mutating func sent(_ packet: ByteBuffer, sequenceNumber: UInt16, now: NIODeadline) -> Int {
        guard self.ratio > 0, self.encoder != nil else { return 0 }
        self.encoder!.add(packet, sequenceNumber: sequenceNumber, now: now)
        return self.credit.packetSent()
    }

    /// Writes the next repair packet into `buffer`: the repair SSRC's header with `extensions` and the
    /// media's `timestamp`, then a repair over the recent packets. Returns false when there is nothing
    /// to cover.
    ///
    /// With `since`, a repair of a round answering a NACK: over `count` packets from `since` (through the
    /// newest when nil), flagged as an answer.
    mutating func writeRepair(
        timestamp: UInt32, extensions: RTPHeaderExtensionBuilder, now: NIODeadline, since: UInt16? = nil,
        count: Int? = nil, into buffer: inout ByteBuffer
    ) -> Bool {
        guard self.encoder != nil else { return false }
        self.scratch.clear()
        let written =
            if let since {
                self.encoder!.writeRepair(since: since, count: count, into: &self.scratch)
            } else {
                self.encoder!.writeRepair(
                    now: now, maximumAge: Self.rounds.windowDuration, maximumSources: Self.rounds.window,
                    maximumSymbolGrowth: Self.rounds.maximumSymbolGrowth, into: &self.scratch)
            }
        guard written else { return false }
        buffer.clear()
        let header = RTPHeader(
            marker: false, payloadType: self.payloadType, sequenceNumber: self.sequenceNumber, timestamp: timestamp,
            ssrc: self.ssrc)
        guard (try? buffer.writeRTPPacket(header, extensions: extensions, payload: self.scratch)) != nil else { return false }
        self.sequenceNumber &+= 1
        self.repairsSent += 1
        return true
    }

    /// A round answering a NACK was sent.
    mutating func roundSent() { self.repairRounds += 1 }
}
