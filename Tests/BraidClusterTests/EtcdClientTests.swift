import BraidCluster
import Foundation
import Testing

/// EtcdClient against a real etcd: the gateway calls, leases, watches, failover and failure reports.
@Suite struct EtcdClientTests {
    private func withClient(_ body: (EtcdClient, EtcdProcess) async throws -> Void) async throws {
        try await withEtcd { etcd in
            let client = EtcdClient(endpoints: [etcd.url])
            do {
                try await body(client, etcd)
            } catch {
                await client.shutdown()
                throw error
            }
            await client.shutdown()
        }
    }

    @Test func putRangeDeleteAndCreateIfAbsent() async throws {
        try await self.withClient { client, _ in
            let r1 = try await client.put("/t/a", value: Data("1".utf8))
            try await client.put("/t/b", value: Data("2".utf8))
            try await client.put("/u", value: Data("3".utf8))
            #expect(try await client.get("/t/a")?.value == Data("1".utf8))
            #expect(try await client.get("/t/a")?.createRevision == r1)
            #expect(try await client.get("/missing") == nil)
            let range = try await client.range(prefix: "/t/")
            #expect(range.kvs.map(\.key) == ["/t/a", "/t/b"])
            #expect(range.revision >= r1 + 2)

            let created = try await client.createIfAbsent("/t/c", value: Data("first".utf8))
            guard case .created(let revision) = created else {
                Issue.record("expected created, got \(created)")
                return
            }
            #expect(try await client.createIfAbsent("/t/c", value: Data("second".utf8))
                == .exists(EtcdKeyValue(key: "/t/c", value: Data("first".utf8), createRevision: revision, modRevision: revision)))

            // Only the incarnation created at `revision` is deleted by a conditional delete.
            #expect(try await client.delete("/t/c", ifCreateRevision: revision + 100) == false)
            #expect(try await client.delete("/t/c", ifCreateRevision: revision))
            #expect(try await client.get("/t/c") == nil)
            try await client.put("/t/c", value: Data("third".utf8))

            #expect(try await client.delete("/t/a") == 1)
            #expect(try await client.delete("/t/a") == 0)
            #expect(try await client.delete(prefix: "/t/") == 2)
            #expect(try await client.range(prefix: "/t/").kvs.isEmpty)
            #expect(try await client.get("/u") != nil)
        }
    }

    /// A lease of the minimum TTL (2 s) that is not renewed takes its key with it; keepalive then reports
    /// the loss (etcd answers 200 without a TTL). A revoked lease removes its keys at once.
    @Test func leaseExpiryAndRevoke() async throws {
        try await self.withClient { client, _ in
            let short = try await client.grantLease(ttl: 2)
            #expect(short.ttl == 2)
            try await client.put("/lease/short", value: Data("x".utf8), lease: short.id)
            #expect(try await client.keepAlive(short.id) > 0)
            #expect(try await client.get("/lease/short")?.lease == short.id)

            let revoked = try await client.grantLease(ttl: 30)
            try await client.put("/lease/revoked", value: Data("y".utf8), lease: revoked.id)
            try await client.revoke(revoked.id)
            #expect(try await client.get("/lease/revoked") == nil)
            try await client.revoke(revoked.id)  // already gone: not an error
            await #expect(throws: EtcdError.leaseLost(id: revoked.id)) { try await client.keepAlive(revoked.id) }

            await eventually("the short lease expired", timeout: .seconds(5)) {
                try await client.get("/lease/short") == nil
            }
            await #expect(throws: EtcdError.leaseLost(id: short.id)) { try await client.keepAlive(short.id) }
            // etcd refuses a put under a dead lease.
            await #expect {
                try await client.put("/lease/again", value: Data(), lease: short.id)
            } throws: { error in
                if case EtcdError.status(404, let message, _) = error { message.contains("lease not found") } else { false }
            }
        }
    }

    /// A watch delivers puts and deletes (with previous values) from a revision, including history; a
    /// compacted start revision ends it with `.compacted`.
    @Test func watchFromRevisionAndCompaction() async throws {
        try await self.withClient { client, _ in
            let first = try await client.put("/w/a", value: Data("1".utf8))
            let watch = client.watch(prefix: "/w/", fromRevision: first)
            try await client.put("/w/a", value: Data("2".utf8))
            try await client.put("/other", value: Data("ignored".utf8))
            try await client.delete("/w/a")
            var events: [EtcdWatchEvent] = []
            for try await batch in watch {
                events += batch.events
                if events.count >= 3 { break }
            }
            guard events.count == 3, case .put(let kv1, nil) = events[0], case .put(let kv2, let prev2) = events[1],
                case .delete(let kv3, let prev3) = events[2]
            else {
                Issue.record("unexpected events \(events)")
                return
            }
            #expect(kv1.value == Data("1".utf8) && kv2.value == Data("2".utf8))
            #expect(prev2?.value == Data("1".utf8))
            #expect(kv3.key == "/w/a" && prev3?.value == Data("2".utf8))

            let now = try await client.range(prefix: "/w/").revision
            try await client.compact(revision: now)
            await #expect(throws: EtcdError.compacted(compactRevision: now)) {
                for try await _ in client.watch(prefix: "/w/", fromRevision: first) {}
            }
        }
    }

    /// A watch open while etcd is killed and restarted resumes after the last revision it delivered:
    /// the change made while it was reconnecting arrives, the earlier ones are not repeated.
    @Test func watchResumesAfterRestart() async throws {
        try await self.withClient { client, etcd in
            let start = try await client.put("/r/a", value: Data("1".utf8))
            let watch = client.watch(prefix: "/r/", fromRevision: start)
            var iterator = watch.makeAsyncIterator()
            let firstBatch = try #require(try await iterator.next())
            #expect(firstBatch.events.map(\.key) == ["/r/a"])

            await etcd.kill()
            try await etcd.start()
            try await client.put("/r/b", value: Data("2".utf8))
            let next = try #require(try await iterator.next())
            #expect(next.events.map(\.key) == ["/r/b"])
        }
    }

    /// The first endpoint refuses connections: calls go to the second; the client then prefers it.
    @Test func failsOverToTheNextEndpoint() async throws {
        try await withEtcd { etcd in
            let reserved = try ReservedPorts(1)
            defer { reserved.release() }
            let dead = "http://127.0.0.1:\(reserved.ports[0])"
            let client = EtcdClient(endpoints: "\(dead), \(etcd.url)")
            #expect(client.endpoints == [dead, etcd.url])
            do {
                try await client.put("/f", value: Data("ok".utf8))
                #expect(try await client.get("/f")?.value == Data("ok".utf8))
            } catch {
                await client.shutdown()
                throw error
            }
            await client.shutdown()
        }
    }

    /// No etcd at all: a clear error naming every URL tried, within 2 s; a store reports degraded health.
    @Test func unreachableAtStart() async throws {
        let reserved = try ReservedPorts(2)
        defer { reserved.release() }
        let urls = reserved.ports.map { "http://127.0.0.1:\($0)" }
        let client = EtcdClient(endpoints: urls)
        let start = ContinuousClock.now
        await #expect {
            _ = try await client.grantLease(ttl: 2)
        } throws: { error in
            guard case EtcdError.unreachable(let tried, _) = error else { return false }
            return tried == urls
        }
        #expect(ContinuousClock.now - start < .seconds(2))
        await client.shutdown()

        let store = EtcdClusterStore(endpoints: urls, ttl: 2)
        let joinStart = ContinuousClock.now
        await #expect {
            try await store.join(node: node(idA, "a"))
        } throws: { error in
            if case EtcdError.unreachable = error { true } else { false }
        }
        #expect(ContinuousClock.now - joinStart < .seconds(2))
        let health = await store.health
        #expect(!health.isHealthy, "\(health)")
        await store.shutdown()
    }
}
