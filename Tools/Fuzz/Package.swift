// swift-tools-version: 6.2
// libFuzzer targets for Braid's parsers. Build and run with `Tools/Fuzz/run.sh` (see there): it passes
// `-sanitize=fuzzer,address -parse-as-library` to every Swift module, so the parsers are instrumented.
import PackageDescription

let fuzzTargets = ["FuzzRTP", "FuzzRTCP", "FuzzSTUN", "FuzzVP8"]

let package = Package(
    name: "braid-fuzz",
    dependencies: [.package(name: "braid", path: "../..")],
    targets: fuzzTargets.map { name in
        .executableTarget(
            name: name,
            dependencies: [.product(name: "BraidWire", package: "braid")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    }
)
