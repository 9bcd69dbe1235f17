import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension EtcdClient {
    /// Every change to keys that start with `prefix`, from `fromRevision` on (0: from now).
    ///
    /// The stream survives etcd restarts and endpoint failures: when the HTTP stream drops it reconnects
    /// (backing off from 100 ms to 1 s, to any endpoint) and asks for the revision after the last one it
    /// delivered, so no change is lost or repeated. It ends only
    /// - with ``EtcdError/compacted(compactRevision:)`` when that revision was compacted away (the caller
    ///   reads the state again with a range and watches from its revision), or
    /// - when the consuming task is cancelled or stops iterating.
    public func watch(prefix: String, fromRevision: Int64 = 0) -> AsyncThrowingStream<EtcdWatchBatch, any Error> {
        self.watch(key: Data(prefix.utf8), rangeEnd: Self.rangeEnd(prefix), fromRevision: fromRevision)
    }

    /// Every change to the single key `key`, from `fromRevision` on (0: from now). See
    /// ``watch(prefix:fromRevision:)``.
    public func watch(key: String, fromRevision: Int64 = 0) -> AsyncThrowingStream<EtcdWatchBatch, any Error> {
        self.watch(key: Data(key.utf8), rangeEnd: nil, fromRevision: fromRevision)
    }

    private func watch(key: Data, rangeEnd: Data?, fromRevision: Int64) -> AsyncThrowingStream<EtcdWatchBatch, any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: EtcdWatchBatch.self, throwing: (any Error).self)
        let task = Task {
            var next = fromRevision
            var backoff: Duration = .milliseconds(100)
            while !Task.isCancelled {
                do {
                    try await self.watchOnce(key: key, rangeEnd: rangeEnd, from: next) { batch in
                        next = batch.revision + 1
                        backoff = .milliseconds(100)
                        continuation.yield(batch)
                    } created: { revision in
                        // Watching "from now": pin "now" so that a reconnect resumes there, not at a later now.
                        if next == 0 { next = revision + 1 }
                        backoff = .milliseconds(100)
                    }
                } catch let error as EtcdError {
                    switch error {
                    case .compacted, .shutDown:
                        continuation.finish(throwing: error)
                        return
                    default:
                        break  // dropped or unreachable: reconnect below
                    }
                } catch {
                    if Task.isCancelled { break }
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(1))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// One watch stream, from connect to disconnect. Returns when etcd closes it.
    private func watchOnce(
        key: Data, rangeEnd: Data?, from revision: Int64, deliver: (EtcdWatchBatch) -> Void,
        created: (Int64) -> Void
    ) async throws {
        let request = WireWatchCreate(
            create_request: .init(
                key: key, range_end: rangeEnd, start_revision: revision > 0 ? WireInt64(revision) : nil, prev_kv: true))
        let (response, endpoint) = try await self.open("watch", body: try JSONEncoder().encode(request), deadline: nil)
        guard response.status == .ok else {
            let body = try await response.body.collect(upTo: 1 << 16)
            throw Self.statusError(response.status, Data(body.readableBytesView), endpoint)
        }
        // The answer is chunked NDJSON: one `{"result":…}` per line, lines split anywhere across chunks.
        var pending = Data()
        let decoder = JSONDecoder()
        for try await chunk in response.body {
            pending.append(contentsOf: chunk.readableBytesView)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[pending.startIndex..<newline]
                pending = Data(pending[(newline + 1)...])
                guard !line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) else { continue }
                let decoded: WireWatchLine
                do {
                    decoded = try decoder.decode(WireWatchLine.self, from: line)
                } catch {
                    throw EtcdError.decoding(what: "watch line", reason: "\(error)")
                }
                if let error = decoded.error {
                    throw EtcdError.status(code: error.code ?? 0, message: error.message ?? error.error ?? "", url: endpoint)
                }
                guard let result = decoded.result else { continue }
                if let compact = result.compact_revision?.value, compact > 0 {
                    throw EtcdError.compacted(compactRevision: compact)
                }
                if result.canceled == true {
                    // Canceled for another reason (e.g. the member lost its leader): reconnect and resume.
                    throw EtcdError.status(code: 200, message: "watch canceled: \(result.cancel_reason ?? "")", url: endpoint)
                }
                let headerRevision = result.header?.revision?.value ?? 0
                if result.created == true {
                    created(headerRevision)
                }
                guard let events = result.events, !events.isEmpty else { continue }
                let mapped = events.map { event -> EtcdWatchEvent in
                    let kv = EtcdKeyValue(event.kv)
                    let previous = event.prev_kv.map(EtcdKeyValue.init)
                    return event.type == "DELETE" ? .delete(kv, previous: previous) : .put(kv, previous: previous)
                }
                // Resume after the newest event delivered; the header's revision covers the same events.
                let newest = events.compactMap { $0.kv.mod_revision?.value }.max() ?? headerRevision
                deliver(EtcdWatchBatch(revision: max(newest, 0), events: mapped))
            }
        }
    }
}
