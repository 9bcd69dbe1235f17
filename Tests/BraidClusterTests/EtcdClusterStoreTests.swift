import BraidCluster
import Foundation
import Testing

/// The shared behaviour against a real etcd: each test starts its own (EtcdProcess), on free ports.
@Suite struct EtcdClusterStoreTests {
    /// Two stores (two nodes) over `etcd`, with the minimum lease TTL so that expiry tests stay short.
    private func withStores(
        _ etcd: EtcdProcess, _ body: (EtcdClusterStore, EtcdClusterStore) async throws -> Void
    ) async throws {
        let a = EtcdClusterStore(endpoints: [etcd.url], ttl: 2)
        let b = EtcdClusterStore(endpoints: [etcd.url], ttl: 2)
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
        try await withEtcd { etcd in
            try await self.withStores(etcd) { try await ClusterBehaviour.twoNodesSeeEachOther($0, $1) }
        }
    }

    @Test func functionRecordsOutliveTheirNode() async throws {
        try await withEtcd { etcd in
            try await self.withStores(etcd) { try await ClusterBehaviour.functionRecordsOutliveTheirNode($0, $1) }
        }
    }

    @Test func leaderElection() async throws {
        try await withEtcd { etcd in
            try await self.withStores(etcd) { try await ClusterBehaviour.leaderElection($0, $1) }
        }
    }

    @Test func leaseLostReRegisters() async throws {
        try await withEtcd { etcd in
            try await self.withStores(etcd) { a, b in
                // Revoking the lease behind the node's back is what expiry does, without waiting for it.
                try await ClusterBehaviour.leaseLostReRegisters(a, b) { try await b.client.revoke($0) }
            }
        }
    }

    /// Killing etcd (SIGKILL) and starting it again on the same data: fast failures and degraded health
    /// while it is gone; the lease survives (etcd renews leases when it starts), and watches resume.
    @Test func outageAndRecovery() async throws {
        try await withEtcd { etcd in
            try await self.withStores(etcd) { a, b in
                try await ClusterBehaviour.outageAndRecovery(a, b) {
                    await etcd.kill()
                } up: {
                    try await etcd.start()
                }
            }
        }
    }

    /// The store's keys follow the layout drawn atop EtcdClusterStore, as JSON, under the prefix.
    @Test func keyLayout() async throws {
        try await withEtcd { etcd in
            let store = EtcdClusterStore(endpoints: [etcd.url], prefix: "/custom", ttl: 2)
            let client = EtcdClient(endpoints: [etcd.url])
            do {
                try await store.join(node: node(idA, "a"))
                try await store.publishLinks([LinkRecord(from: idA, to: idB, rttMs: 7)])
                try await store.publishTrack(TrackRecord(room: "r/1", id: "9f2c3a1b00d4e7f2/17", origin: idA))
                try await store.placeFunction(FunctionRecord(room: "r/1", id: "9f2c3a1b00d4e7f2-fn-1", node: idA, request: "{}"))
                try await store.campaign()
                await eventually("leader") { await store.isLeader }
                let keys = try await client.range(prefix: "/custom/").kvs
                #expect(keys.map(\.key) == [
                    "/custom/functions/r%2F1/9f2c3a1b00d4e7f2-fn-1",
                    "/custom/leader", "/custom/links/9f2c3a1b00d4e7f2", "/custom/nodes/9f2c3a1b00d4e7f2",
                    "/custom/tracks/r%2F1/9f2c3a1b00d4e7f2%2F17",
                ])
                let lease = try #require(await store.leaseID)
                // Every key under the node's lease but the function's, which must outlive the node.
                #expect(keys.dropFirst().allSatisfy { $0.lease == lease })
                #expect(keys[0].lease == 0)
                #expect(String(decoding: keys[1].value, as: UTF8.self) == #"{"id":"9f2c3a1b00d4e7f2"}"#)
                try await store.leave()
                #expect(try await client.range(prefix: "/custom/").kvs.map(\.key) == ["/custom/functions/r%2F1/9f2c3a1b00d4e7f2-fn-1"])
            } catch {
                await store.shutdown()
                await client.shutdown()
                throw error
            }
            await store.shutdown()
            await client.shutdown()
        }
    }
}
