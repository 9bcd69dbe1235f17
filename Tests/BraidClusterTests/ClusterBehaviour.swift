import BraidCluster
import Foundation
import Testing

/// The behaviour both ``ClusterStore`` implementations must have, written once and run against etcd
/// (EtcdClusterStoreTests) and against the in-memory twin (InMemoryClusterStoreTests).
enum ClusterBehaviour {
    /// Two nodes see each other's record, links and tracks as events and in snapshots; a node that
    /// leaves disappears with everything it owned.
    static func twoNodesSeeEachOther(_ a: any ClusterStore, _ b: any ClusterStore) async throws {
        try await b.join(node: node(idB, "b"))
        let (initial, stream) = try await b.subscribe()
        #expect(initial.nodes[idB] == node(idB, "b"))
        #expect(initial.nodes[idA] == nil)
        let seen = EventRecorder(stream)

        try await a.join(node: node(idA, "a"))
        let links = [LinkRecord(from: idA, to: idB, rttMs: 12.5, loss: 0.01, jitterMs: 1.5, spareKbps: 90_000)]
        try await a.publishLinks(links)
        let track = TrackRecord(room: "room/1", id: "9f2c3a1b00d4e7f2/17", origin: idA, payload: Data(#"{"kind":"video"}"#.utf8))
        let other = TrackRecord(room: "room/1", id: "9f2c3a1b00d4e7f2/18", origin: idA, payload: Data("audio".utf8))
        try await a.publishTrack(track)
        try await a.publishTrack(other)
        try await a.updateNode(load: NodeLoad(sessions: 40, cpu: 0.5), draining: true)
        try await a.withdrawTrack(room: other.room, id: other.id)

        await seen.waitFor("nodeUp(a)") { $0 == .nodeUp(node(idA, "a")) }
        await seen.waitFor("linksChanged(a)") { $0 == .linksChanged(from: idA, links: links) }
        await seen.waitFor("trackPublished") { $0 == .trackPublished(track) }
        await seen.waitFor("nodeChanged(a, draining)") {
            if case .nodeChanged(let record) = $0 { record.draining && record.load.sessions == 40 } else { false }
        }
        await seen.waitFor("trackWithdrawn(other)") { $0 == .trackWithdrawn(room: other.room, id: other.id, origin: idA) }

        let state = try await b.snapshot()
        #expect(state.revision > initial.revision)
        #expect(state.nodes[idA]?.draining == true)
        #expect(state.nodes[idA]?.latitude == 52.37)
        #expect(state.links[idA] == links)
        #expect(state.tracks == [track.key: track])

        try await a.leave()
        await seen.waitFor("nodeDown(a)") { $0 == .nodeDown(idA) }
        await seen.waitFor("trackWithdrawn(track)") { $0 == .trackWithdrawn(room: track.room, id: track.id, origin: idA) }
        await seen.waitFor("linksChanged(a, [])") { $0 == .linksChanged(from: idA, links: []) }
        let after = try await b.snapshot()
        #expect(after.nodes.keys.sorted() == [idB])
        #expect(after.links.isEmpty && after.tracks.isEmpty)
        await seen.stop()
    }

    /// Function records live under no lease: they outlive the node that wrote them (so the leader can
    /// move the function), can be rewritten by another node, and go only when deleted.
    static func functionRecordsOutliveTheirNode(_ a: any ClusterStore, _ b: any ClusterStore) async throws {
        try await a.join(node: node(idA, "a"))
        try await b.join(node: node(idB, "b"))
        let (_, stream) = try await b.subscribe()
        let seen = EventRecorder(stream)
        let record = FunctionRecord(
            room: "room/1", id: "9f2c3a1b00d4e7f2-fn-1a2b", node: idA,
            request: #"{"kind":"audio-mix","inputs":"all-audio"}"#, created: "2026-12-04T17:00:00Z")
        try await a.placeFunction(record)
        await seen.waitFor("functionPlaced") { $0 == .functionPlaced(record) }
        #expect(try await b.snapshot().functions == [record.key: record])

        try await a.leave()
        await seen.waitFor("nodeDown(a)") { $0 == .nodeDown(idA) }
        #expect(try await b.snapshot().functions[record.key] == record)

        var moved = record
        moved.node = idB
        moved.moves = 1
        #expect(try await b.replaceFunction(record, with: moved))
        await seen.waitFor("functionPlaced(moved)") { $0 == .functionPlaced(moved) }
        // A second move from the same stale record is refused.
        var stale = moved
        stale.moves = 7
        #expect(try await b.replaceFunction(record, with: stale) == false)
        try await b.removeFunction(room: record.room, id: record.id)
        await seen.waitFor("functionRemoved") { $0 == .functionRemoved(room: record.room, id: record.id, node: idB) }
        #expect(try await b.snapshot().functions.isEmpty)
        try await b.removeFunction(room: record.room, id: record.id)  // nothing left: no error
        // A move racing a DELETE does not bring the function back.
        #expect(try await b.replaceFunction(moved, with: stale) == false)
        #expect(try await b.snapshot().functions.isEmpty)
        await seen.stop()
    }

    /// Exactly one of two candidates leads; when it resigns or leaves, the other takes over.
    static func leaderElection(_ a: any ClusterStore, _ b: any ClusterStore) async throws {
        try await a.join(node: node(idA, "a"))
        try await b.join(node: node(idB, "b"))
        let (_, stream) = try await b.subscribe()
        let seen = EventRecorder(stream)
        try await a.campaign()
        try await b.campaign()
        await eventually("one leader") {
            let aLeads = await a.isLeader
            let bLeads = await b.isLeader
            return aLeads || bLeads
        }
        // Give a wrong second winner time to appear.
        try await Task.sleep(for: .milliseconds(300))
        let aLeads = await a.isLeader
        let bLeads = await b.isLeader
        #expect(aLeads != bLeads, "exactly one leader")
        let (leader, follower, followerID) = aLeads ? (a, b, idB) : (b, a, idA)
        let leaderID = aLeads ? idA : idB
        #expect(try await b.snapshot().leader == leaderID)
        await seen.waitFor("leaderChanged(leader)") { $0 == .leaderChanged(leaderID) }

        // Resigning hands over to the other candidate; campaigning again does not take it back.
        try await leader.resign()
        #expect(await leader.isLeader == false)
        await eventually("the follower takes over") { await follower.isLeader }
        await seen.waitFor("leaderChanged(follower)") { $0 == .leaderChanged(followerID) }
        #expect(try await follower.snapshot().leader == followerID)
        try await leader.campaign()
        try await Task.sleep(for: .milliseconds(200))
        #expect(await leader.isLeader == false)

        // Leaving ends the leadership with the lease: the first leader, campaigning again, takes over.
        try await follower.leave()
        await eventually("the first leader leads again") { await leader.isLeader }
        #expect(try await leader.snapshot().leader == leaderID)
        await seen.stop()
    }

    /// A node whose lease is lost (expired behind its back) disappears for the others, then registers
    /// again with everything it owned under a new lease; its leadership ends with the lease, and one
    /// candidate (usually the other one, which is quicker) leads again.
    static func leaseLostReRegisters(
        _ a: any ClusterStore, _ b: any ClusterStore, expire: (Int64) async throws -> Void
    ) async throws {
        try await a.join(node: node(idA, "a"))
        let track = TrackRecord(room: "r", id: "9f2c3a1b00d4e7f2/1", origin: idA, payload: Data([1, 2, 3]))
        let links = [LinkRecord(from: idA, to: idB, rttMs: 30)]
        try await a.publishTrack(track)
        try await a.publishLinks(links)
        try await a.campaign()
        await eventually("a leads") { await a.isLeader }
        try await b.join(node: node(idB, "b"))
        try await b.campaign()
        let (_, stream) = try await b.subscribe()
        let seen = EventRecorder(stream)

        let oldLease = try #require(await a.leaseID)
        try await expire(oldLease)
        await seen.waitFor("nodeDown(a)") { $0 == .nodeDown(idA) }
        await seen.waitFor("trackWithdrawn") { $0 == .trackWithdrawn(room: "r", id: track.id, origin: idA) }
        await seen.waitFor("leaderChanged(nil): the leadership ended with the lease") { $0 == .leaderChanged(nil) }

        // a's keepalive finds the lease gone, grants a new one and writes everything again.
        await eventually("a re-registered") {
            let state = try await b.snapshot()
            return state.nodes[idA] != nil && state.tracks[track.key] == track && state.links[idA] == links
        }
        await seen.waitFor("nodeUp(a) again") { $0 == .nodeUp(node(idA, "a")) }
        #expect(try #require(await a.leaseID) != oldLease)
        await eventually("a leader again") {
            let aLeads = await a.isLeader
            let bLeads = await b.isLeader
            return aLeads || bLeads
        }
        let aLeads = await a.isLeader
        let bLeads = await b.isLeader
        #expect(aLeads != bLeads, "exactly one leader")
        #expect(try await b.snapshot().leader == (aLeads ? idA : idB))
        await seen.stop()
    }

    /// While the store is unreachable, operations fail at once with `EtcdError.unreachable` and health is
    /// degraded; when it is back, health recovers, the writes and withdrawals that failed are applied,
    /// new writes work and watchers catch up.
    static func outageAndRecovery(
        _ a: any ClusterStore, _ b: any ClusterStore, down: () async throws -> Void, up: () async throws -> Void
    ) async throws {
        try await a.join(node: node(idA, "a"))
        try await b.join(node: node(idB, "b"))
        let (_, stream) = try await b.subscribe()
        let seen = EventRecorder(stream)
        #expect(await a.health == .healthy)
        let early = TrackRecord(room: "r", id: "9f2c3a1b00d4e7f2/4", origin: idA)
        try await a.publishTrack(early)

        try await down()
        let track = TrackRecord(room: "r", id: "9f2c3a1b00d4e7f2/5", origin: idA)
        let start = ContinuousClock.now
        await #expect {
            try await a.publishTrack(track)
        } throws: { error in
            if case EtcdError.unreachable = error { true } else { false }
        }
        #expect(ContinuousClock.now - start < .seconds(2), "fails fast")
        await eventually("a degraded") { await !a.health.isHealthy }
        await #expect(throws: EtcdError.self) { try await b.snapshot() }
        await #expect(throws: EtcdError.self) { try await a.withdrawTrack(room: early.room, id: early.id) }
        await #expect(throws: EtcdError.self) { try await a.updateNode(load: nil, draining: true) }

        try await up()
        await eventually("a healthy again", timeout: .seconds(8)) { await a.health.isHealthy }
        try await a.publishTrack(track)
        await seen.waitFor("b catches up after the outage", timeout: .seconds(8)) { $0 == .trackPublished(track) }
        await seen.waitFor("the withdrawal that failed during the outage is applied") {
            $0 == .trackWithdrawn(room: early.room, id: early.id, origin: idA)
        }
        await eventually("the update that failed during the outage is applied") {
            try await b.snapshot().nodes[idA]?.draining == true
        }
        let state = try await b.snapshot()
        #expect(state.nodes.keys.sorted() == [idB, idA].sorted())
        #expect(state.tracks == [track.key: track])
        await seen.stop()
    }
}
