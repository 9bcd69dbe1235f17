// swift-tools-version: 6.2
// Benchmarks for Braid's hot paths (package-benchmark, with malloc counts). Run from this folder:
//   swift package --allow-writing-to-package-directory benchmark
// See README.md here for the figures measured on the reference machine.
import PackageDescription

let benchmarkTargets: [(name: String, dependencies: [Target.Dependency])] = [
    ("WireBenchmarks", [.product(name: "BraidWire", package: "braid"), .product(name: "NIOCore", package: "swift-nio")]),
    ("SecurityBenchmarks", [.product(name: "BraidSecurity", package: "braid")]),
    (
        "StreamBenchmarks",
        [
            .product(name: "BraidWire", package: "braid"),
            .product(name: "BraidRTPStreams", package: "braid"),
            .product(name: "BraidCongestion", package: "braid"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]
    ),
    (
        "SFUBenchmarks",
        [
            .product(name: "BraidSFU", package: "braid"),
            .product(name: "BraidWire", package: "braid"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]
    ),
    ("SchedulerBenchmarks", [.product(name: "BraidScheduler", package: "braid")]),
    (
        "FunctionBenchmarks",
        [
            .product(name: "BraidFunctions", package: "braid"), .product(name: "BraidCodecs", package: "braid"),
            .product(name: "BraidRTPStreams", package: "braid"), .product(name: "NIOCore", package: "swift-nio"),
        ]
    ),
    (
        "MeshBenchmarks",
        [
            .product(name: "BraidMesh", package: "braid"),
            .product(name: "BraidSFU", package: "braid"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]
    ),
]

let package = Package(
    name: "braid-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "braid", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // MallocInterposer alone: the default traits pull a runtime interposer that is not needed here.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: benchmarkTargets.map { target in
        .executableTarget(
            name: target.name,
            dependencies: [.product(name: "Benchmark", package: "benchmark")] + target.dependencies,
            path: "Benchmarks/\(target.name)",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    }
)
