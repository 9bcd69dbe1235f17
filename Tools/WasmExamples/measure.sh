#!/bin/sh
# Measures the examples and the fuel budgets in a release build: copies measure/main.swift into a
# throwaway package that depends on this repository (only WasmKit, WAT and BraidWasm are built, ~3 min
# the first time on 2 cores), then runs it. Debug builds of WasmKit are ~150-350x slower: do not quote those.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="${TMPDIR:-/tmp}/braid-wasm-measure"
mkdir -p "$work/Sources/measure"
cp "$here/measure/main.swift" "$work/Sources/measure/main.swift"
cat > "$work/Package.swift" <<PKG
// swift-tools-version: 6.2
import PackageDescription
let package = Package(
    name: "braid-wasm-measure",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "braid", path: "$repo"),
        .package(url: "https://github.com/swiftwasm/WasmKit.git", from: "0.4.2"),
    ],
    targets: [
        .executableTarget(
            name: "measure",
            dependencies: [
                .product(name: "BraidWasm", package: "braid"), .product(name: "WasmKit", package: "WasmKit"),
                .product(name: "WAT", package: "WasmKit"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)])
    ]
)
PKG
cd "$work"
swift build -c release --product measure 2>&1 | tail -3
"$work/.build/release/measure" "$here"
