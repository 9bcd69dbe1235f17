// libFuzzer target for the forwarding core: what a hostile or broken peer can send into a room.
//
// The input is a script of records `[op][length: 2 bytes, big endian][bytes]`. The op's low two bits choose
// where the bytes go: 0 publisher RTP, 1 publisher RTCP, 2 subscriber RTCP (to both subscribers: one with Braid
// FEC, one with ULPFEC inside RED), 3 a tick after `length`
// milliseconds (no bytes). Every packet the router sends must be valid RTP or RTCP that our own parsers
// accept; anything else is a bug and calls fatalError. Crashes, traps and hangs are what libFuzzer finds.
import BraidSFU
import BraidWire
import FuzzSupport
import NIOCore

private let publisherIDs = RTPExtensionIDs(
    mid: 1, rid: 2, repairedRID: 3, absSendTime: 4, transportWideSequence: 5, audioLevel: 6, absCaptureTime: 7)
private let subscriberIDs = RTPExtensionIDs(
    mid: 9, rid: 8, repairedRID: 14, absSendTime: 10, transportWideSequence: 11, audioLevel: 12, absCaptureTime: 13)
private let feedback = RTCPFeedbackSupport(nack: true, pli: true, fir: true, transportCC: true, remb: true)

private let publisher = PublisherDescription(
    extensions: publisherIDs,
    tracks: [
        PublishedTrackDescription(
            mid: "0", kind: .video, trackID: "cam", streamID: "s", codecName: "VP8", payloadType: 96,
            clockRate: 90000, rtxPayloadType: 97, redPayloadType: nil, rids: ["q", "h", "f"], feedback: feedback),
        PublishedTrackDescription(
            mid: "1", kind: .audio, trackID: "mic", streamID: "s", codecName: "opus", payloadType: 111,
            clockRate: 48000, redPayloadType: 63, ssrcs: [0x1111], feedback: feedback),
    ]
)
private let subscriber = SubscriberDescription(
    extensions: subscriberIDs,
    slots: [
        // With RED and Braid FEC, so that loss reports in the fuzzed RTCP turn the protection paths on.
        SubscriberSlotDescription(
            mid: "v0", kind: .video, payloadType: 100, clockRate: 90000, rtxPayloadType: 101,
            ssrc: 0xAAAA_0001, rtxSSRC: 0xAAAA_0002, fecPayloadType: 98, fecSSRC: 0xAAAA_0003, feedback: feedback),
        SubscriberSlotDescription(
            mid: "a0", kind: .audio, payloadType: 109, clockRate: 48000, redPayloadType: 120, ssrc: 0xBBBB_0001,
            feedback: feedback),
    ]
)

/// A browser's subscriber without FlexFEC: ULPFEC inside RED on the media SSRC (the same SSRCs, so the fuzzed
/// RTCP reaches both subscribers' slots).
private let ulpfecSubscriber = SubscriberDescription(
    extensions: subscriberIDs,
    slots: [
        SubscriberSlotDescription(
            mid: "v0", kind: .video, payloadType: 100, clockRate: 90000, rtxPayloadType: 101, redPayloadType: 116,
            ssrc: 0xAAAA_0001, rtxSSRC: 0xAAAA_0002, fecPayloadType: 117, fecScheme: .ulpfec, feedback: feedback),
        SubscriberSlotDescription(
            mid: "a0", kind: .audio, payloadType: 109, clockRate: 48000, redPayloadType: 120, ssrc: 0xBBBB_0001,
            feedback: feedback),
    ]
)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let input = FuzzScript.input(start, count) else { return 0 }
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let router = SFURouter(wallClock: WallClock(referenceDeadline: now, referenceUnixNanoseconds: 1_700_000_000_000_000_000))
    let transport = CheckingTransport()
    let up = router.addPublisher(room: "r", peerID: "p", description: publisher, transport: transport, now: now)
    let down = router.addSubscriber(room: "r", peerID: "s", description: subscriber, transport: transport, now: now)
    let browser = router.addSubscriber(
        room: "r", peerID: "u", description: ulpfecSubscriber, transport: transport, now: now)
    for record in FuzzScript.framed(input, carriesBytes: { $0 & 3 != 3 }) {
        let op = record.op & 3
        if op == 3 {
            now = now + .milliseconds(Int64(record.length % 2000))
            router.tick(now: now)
            continue
        }
        let bytes = ByteBuffer(bytes: record.bytes)
        switch op {
        case 0: up.receiveRTP(bytes, now: now)
        case 1: up.receiveRTCP(bytes, now: now)
        default:
            down.receiveRTCP(bytes, now: now)
            browser.receiveRTCP(bytes, now: now)
        }
    }
    router.tick(now: now + .seconds(1))
    _ = router.roomStatuses(now: now)
    router.removePeer("p", now: now)
    router.removePeer("s", now: now)
    router.removePeer("u", now: now)
    return 0
}
