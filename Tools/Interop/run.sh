#!/usr/bin/env bash
# Runs the WebRTC interop suite: headless Chromium and aiortc peers against a real braid-node on loopback.
# Prints one PASS/FAIL line per scenario and exits non-zero when any fails. Needs Tools/install-deps.sh --interop
# (chromium, .build/interop-venv). Usage: Tools/Interop/run.sh [path-to-braid-node] [--only scenario ...]
# BRAID_INTEROP_SCENARIOS="name ..." runs only those scenarios when no --only is given (e.g. from Tools/test.sh).
set -euo pipefail
script="$(realpath "$0")"
repo="$(dirname "$script")/../.."
node="$(realpath -m "${1:-$repo/.build/debug/braid-node}")"
[ $# -gt 0 ] && shift
cd "$repo"
python=.build/interop-venv/bin/python
if [ ! -x "$node" ]; then
    echo "interop: no braid-node at $node (swift build --product braid-node)" >&2
    exit 2
fi
if [ ! -x "$python" ] || [ ! -x /usr/lib/chromium/chromium ]; then
    echo "interop: missing chromium or $python: run Tools/install-deps.sh --interop" >&2
    exit 2
fi
# Run everything (node, page server, browsers, aiortc) in a private network namespace of its own: loopback
# plus one veth end holding 198.18.0.1 (RFC 2544 test range). Chromium gathers host candidates only on
# non-loopback interfaces; here the only one it finds is that address inside this namespace, so no test
# packet can reach the machine's real interfaces. Needs root (or unprivileged user namespaces).
if [ "${BRAID_INTEROP_NETNS:-}" != "1" ]; then
    if ! command -v unshare >/dev/null || ! unshare --net true 2>/dev/null; then
        echo "interop: cannot create a private network namespace (unshare --net; run as root)" >&2
        exit 2
    fi
    exec env BRAID_INTEROP_NETNS=1 unshare --net -- "$script" "$node" "$@"
fi
ip link set lo up
ip link add braid-a type veth peer name braid-b
ip addr add 198.18.0.1/32 dev braid-a
ip link set braid-a up
ip link set braid-b up

# The suite bounds each scenario itself; this outer limit only guards against a hung harness. On SIGTERM
# the harness still stops the node and browsers it started.
if [ $# -eq 0 ] && [ -n "${BRAID_INTEROP_SCENARIOS:-}" ]; then
    # shellcheck disable=SC2086 # a space-separated list of names
    set -- --only $BRAID_INTEROP_SCENARIOS
fi
export PYTHONDONTWRITEBYTECODE=1
exec timeout -k 15 380 "$python" Tools/Interop/interop.py "$node" --work-dir .build/interop "$@"
