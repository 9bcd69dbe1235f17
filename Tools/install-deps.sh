#!/usr/bin/env bash
# Installs the Debian packages Braid needs, only when one is missing.
# Usage: Tools/install-deps.sh [extra-package ...]
set -euo pipefail

packages=(libsrtp2-dev libopus-dev libvpx-dev libssl-dev pkg-config "$@")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "braid: installing ${missing[*]}" >&2
# A fresh Debian machine has no package lists yet: update once, only when something is missing.
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
