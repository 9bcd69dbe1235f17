// swift-tools-version: 6.2
// Benchmarks for Braid's hot paths (package-benchmark, with malloc counts). Run from this folder:
//   swift package --allow-writing-to-package-directory benchmark
// See README.md here for the figures measured on the reference machine.
import PackageDescription

let benchmarkTargets: [(name: String, module: String)] = [
    ("WireBenchmarks", "BraidWire"),
    ("SecurityBenchmarks", "BraidSecurity"),
]

let package = Package(
    name: "braid-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "braid", path: ".."),
        // MallocInterposer alone: the default traits pull a runtime interposer that is not needed here.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: benchmarkTargets.map { target in
        .executableTarget(
            name: target.name,
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: target.module, package: "braid"),
            ],
            path: "Benchmarks/\(target.name)",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    }
)
