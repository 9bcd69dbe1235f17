#!/usr/bin/env bash
# Release-build load runs on loopback, as an operator would run them: a release braid-node and braid-load,
# a 100-subscriber webinar and a 4-participant conference, each of which must meet its SLOs (braid-load's exit
# code). The debug test suite cannot run 100 subscribers against a debug node on 2 cores; this can.
# Usage: Tools/load-smoke.sh   (Tools/test.sh runs it unless BRAID_SKIP_LOAD=1)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== load smoke: release build" >&2
swift build -c release --product braid-node
swift build -c release --product braid-load
bin="$(swift build -c release --show-bin-path)"

log="$(mktemp "${TMPDIR:-/tmp}/braid-load-smoke-node.XXXXXX")"
source Tools/local-node.sh
start_local_node "$bin" "$log"

status=0
run() {
    echo "== load smoke: braid-load $*" >&2
    if ! "$bin/braid-load" "$@" --node "$url"; then
        echo "!! braid-load $1 missed its SLOs (node log: $log)" >&2
        status=1
    fi
}
run webinar --subscribers 100 --duration 8s --ramp-up 100 --timeout 10s \
    --slo p95-latency=200ms,residual-loss=1%,join-p95=2s,failures=0
run conference --rooms 1 --participants 4 --duration 5s \
    --slo p95-latency=200ms,residual-loss=1%,freezes=0,failures=0
exit "$status"
