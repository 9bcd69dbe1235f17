#!/usr/bin/env bash
# Installs what Braid's build needs, only when something is missing: the Debian packages of the native
# libraries; with --interop also what the WebRTC interop suite needs (chromium, python3-venv, iproute2 and the
# Python virtual environment .build/interop-venv with aiortc and websockets).
# Usage: Tools/install-deps.sh [--interop] [extra-package ...]
set -euo pipefail
cd "$(dirname "$0")/.."

interop=0
if [ "${1:-}" = "--interop" ]; then
    interop=1
    shift
fi
# python3 serves the test scripts (free ports, health checks); etcd-server is the real etcd (/usr/bin/etcd)
# that the BraidCluster tests start on loopback.
packages=(libsrtp2-dev libopus-dev libvpx-dev libyuv-dev libssl-dev pkg-config python3 etcd-server "$@")
[ "$interop" = 1 ] && packages+=(chromium python3-venv iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "braid: installing ${missing[*]}" >&2
    # A fresh Debian machine has no package lists yet: update once, only when something is missing.
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The interop suite's virtual environment. find_spec looks the packages up without importing them (importing
# aiortc takes seconds); the venv is built with Debian's interpreter, the one python3-venv belongs to (a
# python3 earlier on PATH may be another build).
[ "$interop" = 1 ] || exit 0
venv=.build/interop-venv
has_packages='import importlib.util as u, sys; sys.exit(not (u.find_spec("aiortc") and u.find_spec("websockets")))'
if ! "$venv/bin/python" -c "$has_packages" 2>/dev/null; then
    echo "braid: creating $venv (aiortc, websockets)" >&2
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check aiortc==1.16.0 websockets==17.4
fi
