#!/usr/bin/env bash
# Installs missing Debian packages, builds braid-node (release) and starts it with the embedded default
# configuration: dashboard on http://127.0.0.1:8080/, media on UDP 127.0.0.1. Extra arguments go to
# braid-node (see `Tools/run-node.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

Tools/install-deps.sh
swift build -c release --product braid-node
exec .build/release/braid-node "$@"
