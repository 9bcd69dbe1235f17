#!/usr/bin/env bash
# Runs Braid's whole test suite: unit and loopback integration tests, then every libFuzzer target for a
# few seconds. Installs missing Debian packages first. Usage: Tools/test.sh [fuzz-seconds-per-target]
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds="${1:-${BRAID_FUZZ_SECONDS:-5}}"

Tools/install-deps.sh

echo "== build" >&2
swift build --build-tests
echo "== tests" >&2
swift test --skip-build
echo "== fuzz (${fuzz_seconds}s per target)" >&2
Tools/Fuzz/run.sh "$fuzz_seconds"
echo "== all tests passed" >&2
