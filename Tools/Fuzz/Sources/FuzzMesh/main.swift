// libFuzzer target for relay links between nodes: what an outsider can send to the relay socket, and what
// a node holding the cluster secret (a buggy or compromised peer) can put inside authenticated datagrams.
//
// Node B's MeshLink from node A feeds a RouterLink on B's router, which mirrors a simulcast VP8 track of
// A and forwards it to a WebRTC subscriber. The input is a script of records `[op][length: 2 bytes][bytes]`:
// op & 7 == 0 hands the bytes to B's link as a raw datagram (no valid key: must be refused), 1 seals them
// as the frames of an authenticated datagram from A (the real key schedule), 2 seals them behind a valid
// prefix but a newer epoch, 3 ticks B after `length` ms, 4–7 seal them as the payload of one of A's FEC
// repair datagrams (repair SSRC, its own numbering): a forged repair must never yield a wrong datagram. Every packet B sends its subscriber must parse.
import BraidMesh
import BraidSFU
import BraidSecurity
import BraidWire
import FuzzSupport
import NIOCore

private let secret = Array("fuzzing cluster secret".utf8)
private let nodeA = NodeID(name: "a")
private let nodeB = NodeID(name: "b")
private let feedback = RTCPFeedbackSupport(nack: true, pli: true, fir: true, transportCC: true, remb: true)
private let video = PublishedTrackDescription(
    mid: "0", kind: .video, trackID: "cam", streamID: "s", codecName: "VP8", payloadType: 96, clockRate: 90000,
    rtxPayloadType: 97, rids: ["q", "h", "f"], feedback: feedback)
private let slots = SubscriberDescription(
    extensions: RTPExtensionIDs(mid: 9, absSendTime: 10, transportWideSequence: 11),
    slots: [
        SubscriberSlotDescription(
            mid: "v0", kind: .video, payloadType: 100, clockRate: 90000, rtxPayloadType: 101, ssrc: 0xAAAA_0001,
            rtxSSRC: 0xAAAA_0002, feedback: feedback)
    ])

/// Seals `frames` as A's datagram number `index` of `epoch`, the way a MeshLink does.
func seal(
    _ frames: UnsafeRawBufferPointer, index: UInt16, epoch: UInt64,
    ssrc: UInt32 = UInt32(truncatingIfNeeded: nodeA.rawValue)
) -> ByteBuffer? {
    let key = MeshLink.masterKey(secret: secret, from: nodeA, to: nodeB, epoch: epoch)
    guard let session = try? SRTPOutboundSession(profile: .aeadAES128GCM, masterKey: key) else { return nil }
    var plain = ByteBuffer()
    plain.writeMultipleIntegers(UInt8(0x80), UInt8(127), index, UInt32(0), ssrc)
    plain.writeBytes(frames)
    var datagram = ByteBuffer()
    datagram.writeMultipleIntegers(nodeA.rawValue, epoch)
    guard (try? session.protect(plain, isRTCP: false, appendingTo: &datagram)) != nil else { return nil }
    return datagram
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let input = FuzzScript.input(start, count) else { return 0 }
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let clock = WallClock(referenceDeadline: now, referenceUnixNanoseconds: 1_700_000_000_000_000_000)
    let router = SFURouter(wallClock: clock, node: nodeB)
    guard let link = try? MeshLink(local: nodeB, peer: nodeA, secret: secret, epoch: 1, transmit: { _ in }) else { return 0 }
    let routerLink = router.link(name: "mesh-a", kind: .mesh) { message in link.send(message, now: now) }
    link.onMessage = { routerLink.receive($0, now: now) }
    let announcement = TrackAnnouncement(
        id: TrackID(origin: nodeA, number: 1), room: "r", peerID: "p", participant: "p", track: video,
        extensions: RTPHeaderExtensionMap())
    routerLink.receive(RouterLinkMessage.published(announcement), now: now)
    let transport = CheckingTransport()
    router.addSubscriber(room: "r", peerID: "s", description: slots, transport: transport, now: now)
    var index: UInt16 = 1
    var repairIndex: UInt16 = 1
    var epoch: UInt64 = 10
    for record in FuzzScript.framed(input, carriesBytes: { $0 & 7 != 3 }) {
        let op = record.op & 7
        if op == 3 {
            now = now + .milliseconds(Int64(record.length % 2000))
            link.tick(now: now)
            router.tick(now: now)
            router.flushLinks()
            continue
        }
        let bytes = record.bytes
        switch op {
        case 0:
            if link.receive(ByteBuffer(bytes: bytes), now: now) { fatalError("an unkeyed datagram was accepted") }
        case 1:
            if let datagram = seal(bytes, index: index, epoch: epoch) { link.receive(datagram, now: now) }
            index &+= 1
        case 4...:
            if let datagram = seal(bytes, index: repairIndex, epoch: epoch, ssrc: MeshLink.repairSSRC(nodeA)) {
                link.receive(datagram, now: now)
            }
            repairIndex &+= 1
        default:
            epoch += 1
            index = 1
            if let datagram = seal(bytes, index: index, epoch: epoch) { link.receive(datagram, now: now) }
        }
        router.flushLinks()
    }
    _ = router.roomStatuses(now: now)
    router.removePeer("s", now: now)
    // The link and the router link hold each other through their closures (the node's MeshPeer holds
    // both and lets them hold it unowned instead).
    link.onMessage = { _ in }
    router.unlink(routerLink, now: now)
    return 0
}
