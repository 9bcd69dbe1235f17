// libFuzzer target for the links between routers (the node's event loops; mesh links later): what a broken
// or hostile other side can put in a media batch, mixed with real traffic.
//
// Router A publishes a simulcast VP8 track and an Opus track; router B mirrors them over a RouterLink and
// forwards them to a WebRTC subscriber. The input is a script of records `[op][length: 2 bytes][bytes]`:
// op & 3 == 0 hands the bytes to B as a media batch from A, 1 gives them to A's publisher as RTP (then the
// link's messages are delivered), 2 gives them to B's subscriber as RTCP, 3 ticks both after `length` ms.
// Every packet B sends its subscriber must parse; anything else is a bug and calls fatalError.
import BraidSFU
import BraidWire
import FuzzSupport
import NIOCore

private let feedback = RTCPFeedbackSupport(nack: true, pli: true, fir: true, transportCC: true, remb: true)
private let publisher = PublisherDescription(
    extensions: RTPExtensionIDs(mid: 1, rid: 2, repairedRID: 3, absSendTime: 4, transportWideSequence: 5, audioLevel: 6),
    tracks: [
        PublishedTrackDescription(
            mid: "0", kind: .video, trackID: "cam", streamID: "s", codecName: "VP8", payloadType: 96,
            clockRate: 90000, rtxPayloadType: 97, rids: ["q", "h", "f"], feedback: feedback),
        PublishedTrackDescription(
            mid: "1", kind: .audio, trackID: "mic", streamID: "s", codecName: "opus", payloadType: 111,
            clockRate: 48000, redPayloadType: 63, ssrcs: [0x1111], feedback: feedback),
    ]
)
private let subscriber = SubscriberDescription(
    extensions: RTPExtensionIDs(mid: 9, absSendTime: 10, transportWideSequence: 11, audioLevel: 12),
    slots: [
        SubscriberSlotDescription(
            mid: "v0", kind: .video, payloadType: 100, clockRate: 90000, rtxPayloadType: 101,
            ssrc: 0xAAAA_0001, rtxSSRC: 0xAAAA_0002, feedback: feedback),
        SubscriberSlotDescription(
            mid: "a0", kind: .audio, payloadType: 109, clockRate: 48000, redPayloadType: 63, ssrc: 0xBBBB_0001,
            feedback: feedback),
    ]
)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let input = FuzzScript.input(start, count) else { return 0 }
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let clock = WallClock(referenceDeadline: now, referenceUnixNanoseconds: 1_700_000_000_000_000_000)
    let a = SFURouter(wallClock: clock, shard: 0, shards: 2)
    let b = SFURouter(wallClock: clock, shard: 1, shards: 2)
    var toA: [RouterLinkMessage] = []
    var toB: [RouterLinkMessage] = []
    let linkA = a.link(name: "b") { toB.append($0) }
    let linkB = b.link(name: "a") { toA.append($0) }
    func pump() {
        a.flushLinks()
        b.flushLinks()
        for _ in 0..<8 where !toA.isEmpty || !toB.isEmpty {
            let forB = toB
            toB.removeAll()
            for message in forB { linkB.receive(message, now: now) }
            let forA = toA
            toA.removeAll()
            for message in forA { linkA.receive(message, now: now) }
            a.flushLinks()
            b.flushLinks()
        }
    }
    let transport = CheckingTransport()
    let up = a.addPublisher(room: "r", peerID: "p", description: publisher, transport: transport, now: now)
    let down = b.addSubscriber(room: "r", peerID: "s", description: subscriber, transport: transport, now: now)
    pump()
    for record in FuzzScript.framed(input, carriesBytes: { $0 & 3 != 3 }) {
        let op = record.op & 3
        if op == 3 {
            now = now + .milliseconds(Int64(record.length % 2000))
            a.tick(now: now)
            b.tick(now: now)
            pump()
            continue
        }
        let bytes = ByteBuffer(bytes: record.bytes)
        switch op {
        case 0: linkB.receive(.media(bytes), now: now)
        case 1:
            up.receiveRTP(bytes, now: now)
            pump()
        default: down.receiveRTCP(bytes, now: now)
        }
    }
    _ = b.roomStatuses(now: now)
    a.removePeer("p", now: now)
    pump()
    b.removePeer("s", now: now)
    return 0
}
