#!/bin/sh
# Builds the example edge functions into bare wasm32 modules (no libc, no WASI) for BraidWasm.
# Needs a clang with the wasm32 target and wasm-ld: the Swift toolchain's (/opt/swift/usr/bin, clang 21)
# has both; Debian 12's `apt-get install -y clang lld` (clang 14) works too. CLANG=... picks another.
set -eu
cd "$(dirname "$0")"
CLANG="${CLANG:-clang}"
# --import-memory: the host owns (and caps) the memory; --max-memory: the module accepts at most 16 MiB
# (the host's cap may be lower); -mcpu=mvp: plain wasm 1.0 plus nothing the interpreter must special-case.
for name in gain overlay; do
  "$CLANG" --target=wasm32 -mcpu=mvp -O2 -nostdlib \
    -Wl,--no-entry -Wl,--import-memory -Wl,--max-memory=16777216 -Wl,-z,stack-size=16384 \
    -Wl,--strip-all \
    -o "$name.wasm" "$name.c"
  echo "built $name.wasm ($(wc -c < "$name.wasm") bytes)"
done
