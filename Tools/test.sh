#!/usr/bin/env bash
# Runs Braid's whole test suite: unit and loopback integration tests, then every libFuzzer target for a
# few seconds, then the WebRTC interop suite (Tools/Interop: Chromium and aiortc against a real braid-node; set
# BRAID_SKIP_INTEROP=1 to skip it locally), then the mesh test (Tools/Mesh: real etcd and braid-node processes;
# BRAID_SKIP_MESH=1 skips it), then the drain check (Tools/drain_check.py), then release-build load runs (Tools/load-smoke.sh; BRAID_SKIP_LOAD=1
# skips them). Installs missing packages first.
# Usage: Tools/test.sh [fuzz-seconds-per-target]
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds="${1:-${BRAID_FUZZ_SECONDS:-5}}"

if [ "${BRAID_SKIP_INTEROP:-0}" = "1" ]; then
    Tools/install-deps.sh
else
    Tools/install-deps.sh --interop
fi

echo "== build" >&2
swift build --build-tests
echo "== tests" >&2
# Suites run one after another: several measure timing on loopback, and in parallel they starve each
# other on a 2-core machine (about 60 s either way).
swift test --skip-build --no-parallel
echo "== fuzz (${fuzz_seconds}s per target)" >&2
Tools/Fuzz/run.sh "$fuzz_seconds"
if [ "${BRAID_SKIP_INTEROP:-0}" = "1" ]; then
    echo "== interop skipped (BRAID_SKIP_INTEROP=1)" >&2
else
    echo "== interop" >&2
    # `swift build --build-tests` above built every product, braid-node included.
    Tools/Interop/run.sh .build/debug/braid-node
fi
if [ "${BRAID_SKIP_MESH:-0}" = "1" ]; then
    echo "== mesh skipped (BRAID_SKIP_MESH=1)" >&2
else
    echo "== mesh" >&2
    # Real etcd and three braid-node processes on the triangle topology, braid-load across them (< 3 min).
    Tools/Mesh/run.sh .build/debug/braid-node .build/debug/braid-load
fi
echo "== drain" >&2
# A real braid-node with a call open (braid-load) gets SIGTERM: 503 draining, BYE to every peer, exit 0
# within its drain time; a restart keeps its DTLS certificate (about 6 s).
Tools/drain_check.py .build/debug/braid-node .build/debug/braid-load
if [ "${BRAID_SKIP_LOAD:-0}" = "1" ]; then
    echo "== load smoke skipped (BRAID_SKIP_LOAD=1)" >&2
else
    Tools/load-smoke.sh
fi
echo "== all tests passed" >&2
