@testable import BraidSFU
import BraidWire
import NIOCore
import Testing

/// Three nodes' routers (A, B, C) joined pairwise by mesh links, with in-memory queues: what the node's
/// mesh service does with real relay links, without sockets.
final class MeshOfRouters {
    let names = ["a", "b", "c"]
    var routers: [String: SFURouter] = [:]
    /// links[x][y]: x's link to y.
    var links: [String: [String: RouterLink]] = [:]
    var queue: [(to: String, from: String, message: RouterLinkMessage)] = []
    /// Media records x sent to y.
    var recordsSent: [String: Int] = [:]

    init() {
        for name in self.names { self.routers[name] = SFURouter(wallClock: testWallClock, node: NodeID(name: name)) }
        for x in self.names {
            for y in self.names where x != y {
                self.links[x, default: [:]][y] = self.routers[x]!.link(name: "mesh-\(y)", kind: .mesh) {
                    [unowned self] message in
                    if case .media(let batch) = message { self.recordsSent["\(x)>\(y)", default: 0] += Self.records(batch) }
                    self.queue.append((y, x, message))
                }
            }
        }
    }

    static func records(_ batch: ByteBuffer) -> Int {
        var batch = batch
        var count = 0
        while batch.readableBytes >= 16, let length = batch.getInteger(at: batch.readerIndex + 14, as: UInt16.self) {
            batch.moveReaderIndex(forwardBy: 16 + Int(length))
            count += 1
        }
        return count
    }

    func pump(now: NIODeadline) {
        for router in self.routers.values { router.flushLinks() }
        while !self.queue.isEmpty {
            let pending = self.queue
            self.queue.removeAll()
            for item in pending { self.links[item.to]![item.from]!.receive(item.message, now: now) }
            for router in self.routers.values { router.flushLinks() }
        }
    }
}

@Suite struct MeshMirrorTests {
    @Test func aMirrorIsPulledAlongItsRouteAndMovesWhenTheRouteChanges() throws {
        let mesh = MeshOfRouters()
        let a = mesh.routers["a"]!, b = mesh.routers["b"]!, c = mesh.routers["c"]!
        let publisher = a.addPublisher(
            room: "r", peerID: "pub", description: PublisherDescription(extensions: publisherIDs, tracks: [videoTrack()]),
            transport: RecordingTransport(), now: at(0))
        let id = publisher.producers[0].id
        let announcement = TrackAnnouncement(publisher.producers[0])
        // Nothing is announced over mesh links: the directory says what exists.
        mesh.pump(now: at(0))
        #expect(b.track(id) == nil && c.track(id) == nil)
        // The route to A from C goes via B: C mirrors on its link to B, B on its link to A.
        mesh.links["c"]!["b"]!.receive(.published(announcement), now: at(0))
        mesh.links["b"]!["a"]!.receive(.published(announcement), now: at(0))
        // The mirror on B also gets its C-facing copy: a mirror mirrored from a mesh link is not re-sent.
        let sinks = [RecordingSink(), RecordingSink()]
        for sink in sinks { _ = try c.consume(id, into: sink, layers: .layer(0), now: at(1)) }
        mesh.pump(now: at(1))

        var source = SimulcastSource()
        for step in 0..<5 {
            for layer in 0..<3 { publisher.receiveRTP(source.frame(layer: layer, keyframe: step == 0), now: at(Int64(step) * 33)) }
            mesh.pump(now: at(Int64(step) * 33))
        }
        // One copy per link whatever the consumers: A→B and B→C carry layer 0 once; A→C carries nothing.
        #expect(mesh.recordsSent["a>b"] == 5)
        #expect(mesh.recordsSent["b>c"] == 5)
        #expect(mesh.recordsSent["a>c"] == nil)
        #expect(sinks.allSatisfy { $0.received.map(\.sequenceNumber) == [100, 101, 102, 103, 104] })
        #expect(sinks.allSatisfy { $0.received.allSatisfy { $0.track == id } })

        // The direct link becomes the better route: C moves the mirror; B stops pulling; the consumers
        // continue with the origin's numbering and a keyframe request reached A.
        c.moveMirror(id, to: mesh.links["c"]!["a"]!, now: at(200))
        mesh.pump(now: at(200))
        #expect(c.upstreamLink(of: id) === mesh.links["c"]!["a"]!)
        #expect(b.track(id)!.consumers.isEmpty)
        #expect(publisher.producers[0].consumers.count == 1)
        for step in 5..<8 {
            for layer in 0..<3 { publisher.receiveRTP(source.frame(layer: layer, keyframe: false), now: at(200 + Int64(step) * 33)) }
            mesh.pump(now: at(200 + Int64(step) * 33))
        }
        #expect(mesh.recordsSent["a>b"] == 5)
        #expect(mesh.recordsSent["a>c"] == 3)
        #expect(sinks.allSatisfy { $0.received.map(\.sequenceNumber) == Array(100...107) })

        // The last consumer leaves: C stops pulling; A's link to C has no relay left.
        for sink in sinks { _ = sink }
        c.unpublish(id, now: at(500))
        mesh.pump(now: at(500))
        #expect(mesh.links["a"]!["c"]!.relayedTracks.isEmpty)
        #expect(publisher.producers[0].consumers.isEmpty)
    }

    @Test func aMeshMirrorIsAnnouncedToTheNodesOtherLoopsButNotBack() throws {
        // Node C has two loops; its loop 0 holds the mesh link to A.
        let nodeC = NodeID(name: "c")
        let loop0 = SFURouter(wallClock: testWallClock, node: nodeC, shard: 0, shards: 2)
        let loop1 = SFURouter(wallClock: testWallClock, node: nodeC, shard: 1, shards: 2)
        var toLoop1: [RouterLinkMessage] = []
        var toMesh: [RouterLinkMessage] = []
        let loopLink = loop0.link(name: "loop-1") { toLoop1.append($0) }
        let meshLink = loop0.link(name: "mesh-a", kind: .mesh) { toMesh.append($0) }
        _ = loopLink
        let origin = SFURouter(wallClock: testWallClock, node: NodeID(name: "a"))
        let producer = origin.publish(
            videoTrack(), room: "r", peerID: "p", extensions: RTPHeaderExtensionMap(), source: RecordingSource(), now: at(0))
        meshLink.receive(.published(TrackAnnouncement(producer)), now: at(0))
        #expect(toLoop1.contains { if case .published(let a) = $0 { a.id == producer.id } else { false } })
        #expect(toMesh.isEmpty)
        // A track of C's loop 1 mirrored on loop 0 is not announced anywhere from loop 0.
        let local = loop1.publish(
            audioTrack(), room: "r", peerID: "q", extensions: RTPHeaderExtensionMap(), source: RecordingSource(), now: at(0))
        let back = loop1.link(name: "loop-0") { _ in }
        _ = back
        loopLink.receive(.published(TrackAnnouncement(local)), now: at(0))
        #expect(loop0.track(local.id)?.isMirror == true)
        #expect(!toLoop1.contains { if case .published(let a) = $0 { a.id == local.id } else { false } })
        // The mesh mirror ends: loop 1 is told.
        loop0.unpublish(producer.id, now: at(10))
        #expect(toLoop1.contains { if case .ended(producer.id) = $0 { true } else { false } })
    }
}
