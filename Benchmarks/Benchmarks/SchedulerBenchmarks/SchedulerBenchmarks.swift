// The mesh scheduler at the size DESIGN.md holds it to: 2,500 nodes, 160,000 directed links (64 out-links
// per node, RTTs uniform in 5–250 ms), 250 active origins (nodes with published tracks). Targets: every
// route affected by a link change updated within 50 ms; a full recompute under 300 ms on 2 cores. The
// graph is built once per process, outside the measurement.
import Benchmark
import BraidScheduler

/// SplitMix64, so the graph and the sequence of changes are the same on every run.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private let nodeCount = 2_500
private let outLinks = 64

/// A scheduler holding the benchmark mesh, its links, and the active origins.
private final class Mesh {
    let scheduler = MeshScheduler()
    var links: [(from: MeshNodeID, to: MeshNodeID)] = []
    let origins: [MeshNodeID]
    var random = SplitMix64(state: 2026)

    init(activeOrigins: Int) {
        var changes: [MeshChange] = []
        for u in 0..<nodeCount {
            var targets = Set<Int>()
            while targets.count < outLinks {
                let v = Int.random(in: 0..<nodeCount, using: &self.random)
                if v != u { targets.insert(v) }
            }
            for v in targets.sorted() {
                let rtt = Double.random(in: 5...250, using: &self.random)
                changes.append(.link(from: MeshNodeID(u + 1), to: MeshNodeID(v + 1), LinkMeasurement(rtt: rtt)))
                self.links.append((MeshNodeID(u + 1), MeshNodeID(v + 1)))
            }
        }
        self.scheduler.apply(changes)
        // Every 10th node publishes (250 origins), or every node.
        let stride = nodeCount / activeOrigins
        self.origins = (1...activeOrigins).map { MeshNodeID($0 * stride) }
        self.scheduler.setActiveOrigins(Set(self.origins), concurrency: 2)
    }
}

// One process runs one benchmark at a time; the meshes are built on first use, outside the measurement.
nonisolated(unsafe) private var mesh250: Mesh?
nonisolated(unsafe) private var mesh2500: Mesh?
nonisolated(unsafe) private var restore: (from: MeshNodeID, to: MeshNodeID, LinkMeasurement)?

private func mesh(origins: Int) -> Mesh {
    if origins == nodeCount {
        if mesh2500 == nil { mesh2500 = Mesh(activeOrigins: origins) }
        return mesh2500!
    }
    if mesh250 == nil { mesh250 = Mesh(activeOrigins: origins) }
    return mesh250!
}

let benchmarks: @Sendable () -> Void = {
    let linkChange = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(10), maxIterations: 2_000)
    let recompute = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(20), maxIterations: 20)

    // A random link (most are in no tree) gets a new random RTT: what a probe round mostly is.
    Benchmark("Scheduler: one random link's RTT changes, 250 origins", configuration: linkChange) { benchmark in
        let mesh = mesh(origins: 250)
        let link = mesh.links.randomElement(using: &mesh.random)!
        let rtt = Double.random(in: 5...250, using: &mesh.random)
        benchmark.startMeasurement()
        let changes = mesh.scheduler.updateLink(from: link.from, to: link.to, measurement: LinkMeasurement(rtt: rtt))
        benchmark.stopMeasurement()
        blackHole(changes)
    }

    // The worst common case: a link some origin's tree uses gets 200 ms slower (every tree using it is
    // repaired), and on the next iteration comes back (every tree it then shortens is repaired).
    Benchmark("Scheduler: a tree link +200 ms RTT, then restored, 250 origins", configuration: linkChange) {
        benchmark in
        let mesh = mesh(origins: 250)
        let scheduler = mesh.scheduler
        if let (from, to, measurement) = restore {
            restore = nil
            benchmark.startMeasurement()
            let changes = scheduler.updateLink(from: from, to: to, measurement: measurement)
            benchmark.stopMeasurement()
            blackHole(changes)
            return
        }
        var edge: (MeshNodeID, MeshNodeID)?
        while edge == nil {
            let origin = mesh.origins.randomElement(using: &mesh.random)!
            let node = MeshNodeID(Int.random(in: 1...nodeCount, using: &mesh.random))
            if let parent = scheduler.nextHop(toward: origin, from: node) { edge = (parent, node) }
        }
        let (from, to) = edge!
        let measurement = scheduler.measurement(from: from, to: to)!
        restore = (from, to, measurement)
        benchmark.startMeasurement()
        let changes = scheduler.updateLink(
            from: from, to: to, measurement: LinkMeasurement(rtt: measurement.rtt + 200))
        benchmark.stopMeasurement()
        blackHole(changes)
    }

    for threads in [1, 2] {
        Benchmark("Scheduler: full recompute, 250 origins, \(threads) thread(s)", configuration: recompute) {
            benchmark in
            let mesh = mesh(origins: 250)
            benchmark.startMeasurement()
            let changes = mesh.scheduler.recomputeAll(concurrency: threads)
            benchmark.stopMeasurement()
            precondition(changes.isEmpty, "a recompute found trees the incremental updates got wrong")
        }
    }

    Benchmark("Scheduler: full recompute, all 2,500 origins, 2 threads", configuration: recompute) { benchmark in
        let mesh = mesh(origins: nodeCount)
        benchmark.startMeasurement()
        let changes = mesh.scheduler.recomputeAll(concurrency: 2)
        benchmark.stopMeasurement()
        precondition(changes.isEmpty, "a recompute found trees the incremental updates got wrong")
    }

    // The same without kept trees: every origin is new (as after a restart), so no run has its own
    // previous tree to take a hint from. The adjacency snapshot is already built (it was by the mesh).
    Benchmark("Scheduler: all 2,500 trees from scratch (new origins), 2 threads", configuration: recompute) {
        benchmark in
        let mesh = mesh(origins: nodeCount)
        mesh.scheduler.setActiveOrigins([])
        benchmark.startMeasurement()
        mesh.scheduler.setActiveOrigins(Set(mesh.origins), concurrency: 2)
        benchmark.stopMeasurement()
        precondition(mesh.scheduler.activeOrigins.count == nodeCount)
    }
}
