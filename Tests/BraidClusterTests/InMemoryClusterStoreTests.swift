import BraidCluster
import Foundation
import Testing

/// The shared behaviour on the in-memory twin (no etcd), plus what only it can show deterministically.
@Suite struct InMemoryClusterStoreTests {
    let cluster = InMemoryCluster()

    private func store() -> InMemoryClusterStore {
        InMemoryClusterStore(cluster: self.cluster, ttl: 2)
    }

    private func withStores(_ body: (InMemoryClusterStore, InMemoryClusterStore) async throws -> Void) async throws {
        let (a, b) = (self.store(), self.store())
        do {
            try await body(a, b)
        } catch {
            await a.shutdown()
            await b.shutdown()
            throw error
        }
        await a.shutdown()
        await b.shutdown()
    }

    @Test func twoNodesSeeEachOther() async throws {
        try await self.withStores { try await ClusterBehaviour.twoNodesSeeEachOther($0, $1) }
    }

    @Test func functionRecordsOutliveTheirNode() async throws {
        try await self.withStores { try await ClusterBehaviour.functionRecordsOutliveTheirNode($0, $1) }
    }

    @Test func functionRecordJSON() throws {
        let record = FunctionRecord(
            room: "lobby", id: "9f2c3a1b00d4e7f2-fn-3", node: idA, request: #"{"kind":"transcode","inputs":["x/1"]}"#,
            moves: 2, created: "2026-12-04T17:00:00Z")
        let json = String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
        #expect(json.contains(#""node":"9f2c3a1b00d4e7f2""#))
        #expect(try JSONDecoder().decode(FunctionRecord.self, from: Data(json.utf8)) == record)
        // Older writers omit moves and created; a bad node id is refused.
        let minimal = #"{"room":"r","id":"f","node":"0000000000000001","request":"{}"}"#
        #expect(try JSONDecoder().decode(FunctionRecord.self, from: Data(minimal.utf8)).moves == 0)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(FunctionRecord.self, from: Data(#"{"room":"r","id":"f","node":"1","request":"{}"}"#.utf8))
        }
        // Subscribers per room ride on the load, and are optional.
        let load = NodeLoad(sessions: 2, cpu: 0, subscribers: ["lobby": 2])
        #expect(try JSONDecoder().decode(NodeLoad.self, from: try JSONEncoder().encode(load)) == load)
        #expect(try JSONDecoder().decode(NodeLoad.self, from: Data(#"{"sessions":1,"cpu":0}"#.utf8)).subscribers == nil)
    }

    @Test func leaderElection() async throws {
        try await self.withStores { try await ClusterBehaviour.leaderElection($0, $1) }
    }

    @Test func leaseLostReRegisters() async throws {
        try await self.withStores { a, b in
            try await ClusterBehaviour.leaseLostReRegisters(a, b) { self.cluster.expire(lease: $0) }
        }
    }

    @Test func outageAndRecovery() async throws {
        try await self.withStores { a, b in
            try await ClusterBehaviour.outageAndRecovery(a, b) {
                self.cluster.setReachable(false)
            } up: {
                self.cluster.setReachable(true)
            }
        }
    }

    /// When a watch cannot resume (history compacted), the events are the difference between the
    /// subscriber's snapshot and the state read again: nothing is lost.
    @Test func compactedHistoryResyncs() async throws {
        try await self.withStores { a, b in
            try await b.join(node: node(idB, "b"))
            let old = try await b.snapshot()
            try await a.join(node: node(idA, "a"))
            let track = TrackRecord(room: "r", id: "t1", origin: idA)
            try await a.publishTrack(track)
            try await b.leave()
            self.cluster.compact()

            let seen = EventRecorder(a.events(after: old))
            await seen.waitFor("nodeUp(a)") { $0 == .nodeUp(node(idA, "a")) }
            await seen.waitFor("trackPublished") { $0 == .trackPublished(track) }
            await seen.waitFor("nodeDown(b)") { $0 == .nodeDown(idB) }
            await seen.stop()
        }
    }

    /// A leader that cannot renew its lease for a whole TTL stops acting as the leader (another node may
    /// lead by then); when renewals work again and its key survived, it leads again.
    @Test func leaderStepsDownWhileCutOff() async throws {
        let a = InMemoryClusterStore(cluster: self.cluster, ttl: 1)
        do {
            try await a.join(node: node(idA, "a"))
            try await a.campaign()
            await eventually("a leads") { await a.isLeader }
            self.cluster.setReachable(false)
            await eventually("a steps down", timeout: .seconds(3)) { await !a.isLeader }
            self.cluster.setReachable(true)
            await eventually("a leads again", timeout: .seconds(3)) { await a.isLeader }
            #expect(try await a.snapshot().leader == idA)
        } catch {
            await a.shutdown()
            throw error
        }
        await a.shutdown()
    }

    @Test func misuseIsRejected() async throws {
        try await self.withStores { a, _ in
            await #expect(throws: ClusterStoreError.notJoined) { try await a.publishLinks([]) }
            await #expect(throws: ClusterStoreError.notJoined) { try await a.campaign() }
            try await a.join(node: node(idA, "a"))
            await #expect(throws: ClusterStoreError.alreadyJoined) { try await a.join(node: node(idA, "a")) }
            await #expect(throws: ClusterStoreError.notOrigin(track: "x", origin: idB)) {
                try await a.publishTrack(TrackRecord(room: "r", id: "x", origin: idB))
            }
            // leave() revokes the lease: the cluster holds no lease and no key of the node any more.
            try await a.leave()
            #expect(self.cluster.leases.isEmpty)
            #expect(try await a.snapshot().nodes.isEmpty)
        }
    }

    @Test func recordsUseHexIDsInJSON() throws {
        let record = node(idA, "a")
        let json = String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
        #expect(json.contains(#""id":"9f2c3a1b00d4e7f2""#))
        #expect(try JSONDecoder().decode(NodeRecord.self, from: Data(json.utf8)) == record)
        let link = LinkRecord(from: 1, to: idA, rttMs: 3)
        let linkJSON = String(decoding: try JSONEncoder().encode(link), as: UTF8.self)
        #expect(linkJSON.contains(#""from":"0000000000000001""#))
        #expect(try JSONDecoder().decode(LinkRecord.self, from: Data(linkJSON.utf8)) == link)
        #expect(NodeIDText.parse("123") == nil)
    }

    @Test func linkFeaturesAreAbsentFromAnOlderNodesRecord() throws {
        var record = node(idA, "a")
        let older = String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
        #expect(!older.contains("linkFeatures"))
        #expect(try JSONDecoder().decode(NodeRecord.self, from: Data(older.utf8)).linkFeatures.isEmpty)
        record.linkFeatures = [NodeRecord.LinkFeature.repairs]
        let newer = String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
        #expect(newer.contains(#""linkFeatures":["fec-repairs"]"#))
        #expect(try JSONDecoder().decode(NodeRecord.self, from: Data(newer.utf8)) == record)
    }
}
