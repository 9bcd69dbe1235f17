#!/usr/bin/env bash
# The allocation regression check: each hot-path benchmark's malloc count (p90 per sample) against the
# committed Thresholds/, with zero tolerance (set in each suite's defaultConfiguration).
#
#   Benchmarks/allocation-thresholds.sh check    # fails (exit 1) when any benchmark allocates more
#   Benchmarks/allocation-thresholds.sh update   # records the current counts (review the diff, commit)
#
# package-benchmark writes threshold files under shell-safe names (spaces as '_') but looks them up under
# the benchmark's own name; `update` renames them so `check` finds them. Benchmark names must not contain '/'.
set -euo pipefail
cd "$(dirname "$0")"

targets=(SFUBenchmarks SecurityBenchmarks WireBenchmarks StreamBenchmarks MeshBenchmarks)
target_flags=()
for target in "${targets[@]}"; do target_flags+=(--target "$target"); done
operation="${1:-check}"

case "$operation" in
update)
    rm -rf Thresholds
    swift package --allow-writing-to-package-directory benchmark thresholds update "${target_flags[@]}" \
        --metric mallocCountTotal --no-progress
    # Map each shell-safe file name back to the benchmark's name, from the suites' own list.
    swift package benchmark list "${target_flags[@]}" 2>/dev/null | python3 -c '
import os, sys
target = None
for line in sys.stdin.read().splitlines():
    if line.startswith("Target ") and line.endswith(" available benchmarks:"):
        target = line.split(chr(39))[1]
    elif target and line.strip():
        name = line.strip()
        safe = f"Thresholds/{target}.{name.replace(chr(47), chr(95)).replace(chr(32), chr(95))}.p90.json"
        if os.path.exists(safe):
            os.rename(safe, f"Thresholds/{target}.{name}.p90.json")
'
    echo "thresholds recorded in Benchmarks/Thresholds"
    ;;
check)
    swift package benchmark thresholds check "${target_flags[@]}" --metric mallocCountTotal --no-progress
    ;;
*)
    echo "usage: $0 check|update" >&2
    exit 2
    ;;
esac
