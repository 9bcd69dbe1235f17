#!/usr/bin/env bash
# Starts a local Braid mesh: a real etcd and one braid-node per node of a topology file, all on 127.0.0.1, with
# the topology's link latency/loss/bandwidth emulated by the nodes themselves on their relay links (user space:
# each node delays/drops what it sends to a peer, --cluster-link-emulation). Prints a table of the nodes and
# their HTTP URLs once every node's /api/v1/mesh shows a link up to every other node. Ctrl-C or SIGTERM stops
# every node and etcd and removes the temporary files; no process outlives the supervisor, even one killed with
# -9 (the children die with it: PR_SET_PDEATHSIG).
#
# Usage:
#   Tools/mesh-up.sh TOPOLOGY [--binary PATH] [--log-level LEVEL] [--timeout SECONDS] [--keep-logs DIR]
#       runs in the foreground until Ctrl-C.
#   Tools/mesh-up.sh TOPOLOGY --background --state-dir DIR [...]
#       returns once the mesh is up; DIR/mesh.json then holds etcd's URL, and per node its name, region, HTTP
#       URL, ports, PID, log file and emulation file (and the supervisor's PID). For scripts.
#   Tools/mesh-up.sh --down DIR
#       stops a background mesh (every node, etcd, temporary files).
# Default binary: .build/debug/braid-node (built if missing). Needs python3 and etcd (installed through
# Tools/install-deps.sh when missing).
#
# Topology file (JSON; samples in Tools/topologies/):
#   {
#     "name": "triangle",                                 optional
#     "nodes": [ {"name": "a", "region": "East US",       name = the node id (--node-id), region = --cluster-region
#                 "http_port": 8081, "media_port": 40001,   optional fixed ports (default: free ones)
#                 "mesh_port": 40101}, ... ],
#     "links": [ {"a": "a", "b": "c", "rtt_ms": 150,      round trip; each direction gets rtt_ms / 2 one way
#                 "jitter_ms": 0, "loss": 0.0,            optional: uniform extra delay, drop probability 0-1
#                 "bandwidth_kbps": 0}, ... ]              optional: rate cap, 0 = none
#   }
# A link is symmetric unless the other direction has its own entry ({"a": "c", "b": "a", ...}): then each
# entry sets only its own direction a -> b. Node pairs without a link entry talk over plain loopback (no delay).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

binary=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --binary=*) binary="${1#--binary=}"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        --down) exec python3 "$root/Tools/Mesh/meshup.py" --down "$2" ;;
        *) args+=("$1"); shift ;;
    esac
done

command -v python3 >/dev/null && command -v etcd >/dev/null || "$root/Tools/install-deps.sh"
if [ -z "$binary" ]; then
    binary="$root/.build/debug/braid-node"
    if [ ! -x "$binary" ]; then
        echo "mesh-up: building braid-node" >&2
        (cd "$root" && swift build --product braid-node >&2)
    fi
fi
[ -x "$binary" ] || { echo "mesh-up: no executable braid-node at $binary" >&2; exit 1; }
exec python3 "$root/Tools/Mesh/meshup.py" --binary "$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")" \
    "${args[@]}"
