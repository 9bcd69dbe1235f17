// swift-tools-version: 6.2
// libFuzzer targets for Braid's parsers. Build and run with `Tools/Fuzz/run.sh` (see README.md): it builds
// with `swift build --sanitize fuzzer --sanitize address -Xswiftc -parse-as-library`, which instruments
// every module (BraidWire and NIOCore included) and links libFuzzer's main.
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
