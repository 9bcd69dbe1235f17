import BraidCluster
import Foundation
import Testing

/// Collects a store's events in the background so that a test can wait for one.
actor EventRecorder {
    private(set) var events: [ClusterEvent] = []
    private var task: Task<Void, Never>?

    init(_ stream: AsyncStream<ClusterEvent>) {
        self.task = nil
        Task { await self.start(stream) }
    }

    private func start(_ stream: AsyncStream<ClusterEvent>) {
        self.task = Task {
            for await event in stream {
                self.append(event)
            }
        }
    }

    private func append(_ event: ClusterEvent) {
        self.events.append(event)
    }

    func stop() {
        self.task?.cancel()
    }

    /// Waits until an event satisfies `predicate` and returns it; fails the test after `timeout`.
    @discardableResult
    func waitFor(
        _ what: String, timeout: Duration = .seconds(5), sourceLocation: SourceLocation = #_sourceLocation,
        _ predicate: (ClusterEvent) -> Bool
    ) async -> ClusterEvent? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let event = self.events.first(where: predicate) {
                return event
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("no event \(what) within \(timeout); got \(self.events)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Waits until `condition` holds; fails the test after `timeout`.
@discardableResult
func eventually(
    _ what: String, timeout: Duration = .seconds(5), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return true }
        try? await Task.sleep(for: .milliseconds(25))
    }
    Issue.record("not true within \(timeout): \(what)", sourceLocation: sourceLocation)
    return false
}

func node(_ id: UInt64, _ name: String) -> NodeRecord {
    NodeRecord(
        id: id, name: name, region: "eu-west", latitude: 52.37, longitude: 4.9, httpURL: "http://\(name):8080",
        meshAddress: "\(name):40000", load: NodeLoad(sessions: 3, cpu: 0.25), started: "2026-12-02T18:00:00Z")
}

let idA: UInt64 = 0x9f2c_3a1b_00d4_e7f2
let idB: UInt64 = 0x0000_0000_0000_00b2
