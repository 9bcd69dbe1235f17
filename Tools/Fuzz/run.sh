#!/usr/bin/env bash
# Builds every parser fuzz target with libFuzzer + AddressSanitizer, replays the committed FailCases/ as a
# regression check, then fuzzes each target for N seconds (default 5) from its Corpus/ seeds.
#
#   Tools/Fuzz/run.sh [seconds-per-target]
#
# Exits non-zero on any finding (a crash, sanitizer report, timeout or fatalError in a target) and prints
# the path of the input that caused it. See README.md for turning a finding into a FailCases entry and a
# unit test. Environment: FUZZ_TARGETS="FuzzSTUN FuzzRTP" limits the targets; FUZZ_JOBS sets build jobs.
set -euo pipefail

seconds="${1:-5}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [seconds-per-target]" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scratch="$here/.build-fuzz"
findings="$here/corpus-findings"  # ignored by git (/Tools/Fuzz/corpus-*/)
read -r -a targets <<< "${FUZZ_TARGETS:-FuzzRTP FuzzFEC FuzzFlexFEC FuzzRTCP FuzzSTUN FuzzVP8 FuzzSDP FuzzSFU FuzzRouterLink FuzzSRTP FuzzDTLS FuzzMesh FuzzAccess FuzzWasm}"

# Every Swift module (BraidWire, NIOCore, ...) must be compiled with -sanitize=fuzzer,address in ONE flag:
# SwiftPM's `--sanitize fuzzer --sanitize address` passes them as two, and swiftc keeps only the last, so
# the Swift code got AddressSanitizer but no coverage counters and libFuzzer fuzzed blind. The SwiftPM
# options stay (they instrument the C modules, and `fuzzer` makes SwiftPM link libFuzzer's main instead of
# the target's); the -Xswiftc flag comes after them, so it is the one swiftc keeps. -parse-as-library keeps
# main.swift from defining its own entry point, which would replace libFuzzer's.
build_flags=(-c release --package-path "$here" --scratch-path "$scratch"
    --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
if [[ -n "${FUZZ_JOBS:-}" ]]; then build_flags+=(--jobs "$FUZZ_JOBS"); fi

echo "== building ${targets[*]}"
start=$(date +%s)
for target in "${targets[@]}"; do
    swift build "${build_flags[@]}" --product "$target"
done
echo "== build took $(( $(date +%s) - start )) s"
bin="$(swift build "${build_flags[@]}" --show-bin-path)"

mkdir -p "$findings"
status=0
# Let a Swift trap abort straight into libFuzzer's handler; the runtime's backtracer would otherwise read
# the stack under ASan and add a spurious report after the real one.
export SWIFT_BACKTRACE=enable=no

# 1. Regression: every committed fail case must now pass. Running libFuzzer on files (not folders)
#    executes each once.
for target in "${targets[@]}"; do
    name="${target#Fuzz}"
    cases=()
    if [[ -d "$here/FailCases/$name" ]]; then
        while IFS= read -r -d '' file; do cases+=("$file"); done \
            < <(find "$here/FailCases/$name" -type f ! -name '.*' ! -name '*.md' -print0 | sort -z)
    fi
    if (( ${#cases[@]} == 0 )); then
        echo "== $target: no fail cases to replay"
        continue
    fi
    echo "== $target: replaying ${#cases[@]} fail case(s)"
    for file in "${cases[@]}"; do
        if ! "$bin/$target" -timeout=10 "$file" > "$findings/$target-replay.log" 2>&1; then
            echo "!! $target fails on committed fail case: $file (log: $findings/$target-replay.log)"
            status=1
        fi
    done
done

# 2. Fuzz each target from a temporary copy of its seeds, so runs never write into git.
for target in "${targets[@]}"; do
    name="${target#Fuzz}"
    work="$(mktemp -d "${TMPDIR:-/tmp}/braid-fuzz-$name.XXXXXX")"
    mkdir -p "$work/corpus"
    if [[ -d "$here/Corpus/$name" ]]; then
        find "$here/Corpus/$name" -type f ! -name '.*' -exec cp {} "$work/corpus/" \;
    fi
    log="$findings/$target.log"
    echo "== $target: fuzzing for $seconds s from $(find "$work/corpus" -type f | wc -l) seed(s)"
    if "$bin/$target" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$findings/$target-" "$work/corpus" > "$log" 2>&1; then
        runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo "?")
        speed=$(grep -Eo 'exec/s: *[0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+$' || echo "?")
        echo "   ok: $runs runs, ~$speed exec/s (log: $log)"
    else
        status=1
        artifact=$(grep -Eo "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //' || true)
        echo "!! $target found a failure. Input: ${artifact:-see log}"
        echo "   log: $log"
        grep -E "ERROR|Fatal error|fatal error|SUMMARY" "$log" | head -5 | sed 's/^/   /' || true
    fi
    rm -rf "$work"
done

exit "$status"
