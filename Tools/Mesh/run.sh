#!/usr/bin/env bash
# The mesh integration test with real processes: a real etcd and three braid-node processes on the triangle
# topology (Tools/topologies/triangle.json), started by Tools/mesh-up.sh, and braid-load as publisher and
# subscribers. Checks: a track published on A plays on C via B; one copy per link; kill -9 of the relay B keeps
# C's subscribers playing (gap < 3 s); a wrong cluster secret is refused and counted; etcd unreachable at start
# gives a clear error and a non-zero exit; the killed relay restarted under its name rejoins; BraidClient
# subscribers of a killed node move to another (braid-load --failover-node); an edge function runs on its
# subscribers' node and moves when that node is killed. Prints PASS/FAIL per check, exits non-zero on any failure, and
# leaves no etcd or node running. Tools/test.sh runs it after the interop suite unless BRAID_SKIP_MESH=1.
# Usage: Tools/Mesh/run.sh [braid-node binary] [braid-load binary]   (default: .build/debug, built if missing)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
node="${1:-$root/.build/debug/braid-node}"
load="${2:-$root/.build/debug/braid-load}"
for product in braid-node braid-load; do
    binary="$node"
    [ "$product" = braid-load ] && binary="$load"
    if [ ! -x "$binary" ]; then
        echo "mesh test: building $product" >&2
        (cd "$root" && swift build --product "$product" >&2)
    fi
done
command -v etcd >/dev/null || "$root/Tools/install-deps.sh"
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
exec timeout --signal=TERM --kill-after=10 200 python3 "$root/Tools/Mesh/mesh_test.py" "$(abs "$node")" "$(abs "$load")"
