// swift-tools-version: 6.2
// Hummingbird 2.28 requires tools 6.2; everything here builds in Swift 6 language mode.
import PackageDescription

/// Settings every Swift target of ours shares.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    // Release builds drop the run-time exclusivity checks (a thread-local access set entered on every
    // mutation of a class's stored property: 4-5 % of the node's CPU per forwarded packet). Debug builds,
    // which run the tests, keep them, so a violation still traps there.
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "braid",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "braid-node", targets: ["braid-node"]),
        .library(name: "BraidWire", targets: ["BraidWire"]),
        .library(name: "BraidSecurity", targets: ["BraidSecurity"]),
        .library(name: "BraidCodecs", targets: ["BraidCodecs"]),
        .library(name: "BraidSDP", targets: ["BraidSDP"]),
        .library(name: "BraidICE", targets: ["BraidICE"]),
        .library(name: "BraidRTPStreams", targets: ["BraidRTPStreams"]),
        .library(name: "BraidCongestion", targets: ["BraidCongestion"]),
        .library(name: "BraidTransport", targets: ["BraidTransport"]),
        .library(name: "BraidSFU", targets: ["BraidSFU"]),
        .library(name: "BraidMesh", targets: ["BraidMesh"]),
        .library(name: "BraidScheduler", targets: ["BraidScheduler"]),
        .library(name: "BraidAccess", targets: ["BraidAccess"]),
        .library(name: "BraidNode", targets: ["BraidNode"]),
        .library(name: "BraidClient", targets: ["BraidClient"]),
        .library(name: "BraidLoad", targets: ["BraidLoad"]),
        .library(name: "BraidCluster", targets: ["BraidCluster"]),
        .library(name: "BraidFunctions", targets: ["BraidFunctions"]),
        .library(name: "BraidWasm", targets: ["BraidWasm"]),
        .executable(name: "braid-load", targets: ["braid-load"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swiftwasm/WasmKit.git", from: "0.4.2"),
    ],
    targets: [
        // MARK: Debian system libraries (pkg-config) and the C shims Swift cannot import directly.
        .systemLibrary(name: "CSRTP", pkgConfig: "libsrtp2", providers: [.apt(["libsrtp2-dev"])]),
        .systemLibrary(name: "COpus", pkgConfig: "opus", providers: [.apt(["libopus-dev"])]),
        .systemLibrary(name: "CVPX", pkgConfig: "vpx", providers: [.apt(["libvpx-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // libyuv has no .pc file in Debian: its module map links -lyuv directly.
        .systemLibrary(name: "CYUV", providers: [.apt(["libyuv-dev"])]),
        .target(name: "CBraidShims", dependencies: ["COpus", "CVPX", "COpenSSL"]),

        // MARK: Protocol and media modules (no knowledge of rooms or nodes).
        .target(
            name: "BraidWire",
            dependencies: ["CBraidShims", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BraidSecurity",
            dependencies: ["CSRTP", "COpenSSL", "CBraidShims", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .target(name: "BraidSDP", swiftSettings: swiftSettings),
        .target(
            name: "BraidICE",
            dependencies: ["BraidWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BraidRTPStreams",
            dependencies: ["BraidWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .target(name: "BraidCongestion", swiftSettings: swiftSettings),
        // One peer's ICE, DTLS and SRTP, I/O-free: the node's sessions, the client and mesh links share it.
        .target(
            name: "BraidTransport",
            dependencies: ["BraidWire", "BraidSecurity", "BraidICE", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BraidSFU",
            dependencies: [
                "BraidWire", "BraidRTPStreams", "BraidCongestion", .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Relay links between nodes: RouterLink messages in encrypted datagrams, hop repair, link probes.
        .target(
            name: "BraidMesh",
            dependencies: [
                "BraidWire", "BraidSecurity", "BraidSFU", "BraidRTPStreams",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The mesh's link-state scheduler: routes, distribution trees, placement. Pure, no dependencies.
        .target(name: "BraidScheduler", swiftSettings: swiftSettings),
        .target(
            name: "BraidCodecs",
            dependencies: ["COpus", "CVPX", "CYUV", "CBraidShims"],
            swiftSettings: swiftSettings
        ),

        // MARK: Edge functions: consumers and producers of the router that work on frames (mix, and
        // the runtime that runs them off the forwarding event loops).
        .target(
            name: "BraidFunctions",
            dependencies: [
                "BraidCodecs",
                "BraidRTPStreams",
                "BraidSFU",
                "BraidWasm",
                "BraidWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // Operators' own edge functions in WebAssembly: a WasmKit sandbox with a fuel budget per frame and
        // host-owned, capped memory. Pure (no sockets, no threads); the function runtime drives it.
        .target(
            name: "BraidWasm",
            dependencies: [.product(name: "WasmKit", package: "WasmKit")],
            exclude: ["ABI.md"],
            swiftSettings: swiftSettings
        ),

        // MARK: Cluster state (node registry, links, track directory, leader) in etcd or in memory.
        .target(
            name: "BraidCluster",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Access tokens (JWT, HS256 on OpenSSL's HMAC) and the request bodies of the HTTP API: what
        // untrusted clients send.
        .target(
            name: "BraidAccess",
            dependencies: ["BraidSecurity"],
            swiftSettings: swiftSettings
        ),

        // MARK: The node: configuration, UDP media I/O, HTTP dashboard, services.
        .target(
            name: "BraidNode",
            dependencies: [
                "CBraidShims",
                "BraidWire",
                "BraidSecurity",
                "BraidSDP",
                "BraidICE",
                "BraidTransport",
                "BraidSFU",
                "BraidMesh",
                "BraidScheduler",
                "BraidCluster",
                "BraidFunctions",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                "BraidAccess",
            ],
            swiftSettings: swiftSettings
        ),
        // MARK: The client SDK (WHIP publish / WHEP subscribe), what the load tester is built on.
        .target(
            name: "BraidClient",
            dependencies: [
                "BraidWire",
                "BraidSecurity",
                "BraidICE",
                "BraidTransport",
                "BraidSDP",
                "BraidCodecs",
                "BraidRTPStreams",
                "CBraidShims",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // MARK: The load generator: scenarios, impairments, reports and SLOs over BraidClient.
        .target(
            name: "BraidLoad",
            dependencies: [
                "BraidClient",
                "BraidSecurity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "braid-load",
            dependencies: [
                "BraidLoad",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "braid-node",
            dependencies: [
                "BraidNode",
                "BraidAccess",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Tests
        .testTarget(name: "BraidWireTests", dependencies: ["BraidWire"], swiftSettings: swiftSettings),
        .testTarget(name: "BraidSecurityTests", dependencies: ["BraidSecurity"], swiftSettings: swiftSettings),
        .testTarget(name: "BraidSDPTests", dependencies: ["BraidSDP"], swiftSettings: swiftSettings),
        .testTarget(name: "BraidICETests", dependencies: ["BraidICE"], swiftSettings: swiftSettings),
        .testTarget(name: "BraidRTPStreamsTests", dependencies: ["BraidRTPStreams"], swiftSettings: swiftSettings),
        .testTarget(name: "BraidCongestionTests", dependencies: ["BraidCongestion"], swiftSettings: swiftSettings),
        .testTarget(
            name: "BraidTransportTests",
            dependencies: [
                "BraidTransport", "BraidICE", "BraidSecurity", "BraidWire",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "BraidSFUTests", dependencies: ["BraidSFU"], swiftSettings: swiftSettings),
        .testTarget(
            name: "BraidMeshTests",
            dependencies: ["BraidMesh", "BraidSFU", "BraidSecurity", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "BraidSchedulerTests", dependencies: ["BraidScheduler"], swiftSettings: swiftSettings),
        .testTarget(name: "BraidCodecsTests", dependencies: ["BraidCodecs"], swiftSettings: swiftSettings),
        .testTarget(
            name: "BraidFunctionsTests",
            dependencies: [
                "BraidFunctions", "BraidCodecs", "BraidRTPStreams", "BraidSFU", "BraidWire",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // WAT assembles the misbehaving test modules inline; the examples come from Tools/WasmExamples.
        .testTarget(
            name: "BraidWasmTests",
            dependencies: ["BraidWasm", .product(name: "WasmKit", package: "WasmKit"), .product(name: "WAT", package: "WasmKit")],
            swiftSettings: swiftSettings
        ),
        // Runs a real etcd (/usr/bin/etcd, Debian's etcd-server) on loopback.
        .testTarget(name: "BraidClusterTests", dependencies: ["BraidCluster"], swiftSettings: swiftSettings),
        .testTarget(
            name: "BraidClientTests",
            dependencies: [
                "BraidClient", "BraidNode", "BraidRTPStreams", "BraidCluster", "BraidMesh", "BraidFunctions",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "WAT", package: "WasmKit"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BraidLoadTests",
            dependencies: [
                "BraidLoad",
                "BraidClient",
                "BraidNode",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BraidNodeTests",
            dependencies: [
                "BraidNode",
                "BraidAccess",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
