// swift-tools-version: 6.2
// libFuzzer targets for Braid's parsers and SRTP. Build and run with `Tools/Fuzz/run.sh` (see README.md): it builds
// with `swift build --sanitize fuzzer --sanitize address -Xswiftc -parse-as-library`, which instruments
// every module (BraidWire and NIOCore included) and links libFuzzer's main.
import PackageDescription

/// Each fuzz target and the product holding the parser it exercises.
let fuzzTargets: [(name: String, product: String)] = [
    ("FuzzRTP", "BraidWire"),
    ("FuzzFEC", "BraidRTPStreams"),
    ("FuzzFlexFEC", "BraidRTPStreams"),
    ("FuzzRTCP", "BraidWire"),
    ("FuzzSTUN", "BraidWire"),
    ("FuzzVP8", "BraidWire"),
    ("FuzzSDP", "BraidSDP"),
    ("FuzzSFU", "BraidSFU"),
    ("FuzzRouterLink", "BraidSFU"),
    ("FuzzSRTP", "BraidSecurity"),
    ("FuzzDTLS", "BraidSecurity"),
    ("FuzzMesh", "BraidMesh"),
    ("FuzzAccess", "BraidAccess"),
    ("FuzzWasm", "BraidWasm"),
]

let package = Package(
    name: "braid-fuzz",
    dependencies: [
        .package(name: "braid", path: "../.."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // Reading an input as a script of records, and the checking subscriber transport.
        .target(
            name: "FuzzSupport",
            dependencies: [
                .product(name: "BraidSFU", package: "braid"),
                .product(name: "BraidWire", package: "braid"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ] + fuzzTargets.map { target in
        .executableTarget(
            name: target.name,
            dependencies: [
                "FuzzSupport",
                .product(name: target.product, package: "braid"),
                .product(name: "BraidSFU", package: "braid"),
                .product(name: "BraidSecurity", package: "braid"),
                .product(name: "BraidWire", package: "braid"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    }
)
