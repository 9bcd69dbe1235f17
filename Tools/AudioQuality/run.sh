#!/usr/bin/env bash
# Objective audio quality through the real path: speech (flite, Harvard sentences) published by braid-load
# to a release braid-node, played by subscribers over a lossy downlink (25 ms each way, seeded random loss),
# recorded as played (decoded, RED blocks, in-band FEC, concealment) and scored with PESQ (ITU-T P.862.2
# wideband, the `pesq` package from PyPI) against the clip. Each loss rate runs with the node's protection
# and with `--no-loss-protection`. Prints a Markdown table. About 5 minutes.
# Usage: Tools/AudioQuality/run.sh [LOSS%...]   (default: 0 20 50 80)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=Tools/AudioQuality
losses=("$@")
[ ${#losses[@]} -gt 0 ] || losses=(0 20 50 80)

command -v flite > /dev/null || { apt-get update -q && apt-get install -y -q flite; } > /dev/null
venv=.build/audio-quality-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pesq, scipy" 2> /dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q numpy scipy pesq
fi
swift build -c release --product braid-node > /dev/null
swift build -c release --product braid-load > /dev/null
bin="$(swift build -c release --show-bin-path)"

work="$(mktemp -d "${TMPDIR:-/tmp}/braid-audio-quality.XXXXXX")"
"$venv/bin/python" "$here/speech.py" "$work/speech.pcm"
source Tools/local-node.sh
start_local_node "$bin" "$work/node.log"

echo "| downlink loss | protection | audio frames in time (200 ms) | PESQ MOS-LQO (wideband), mean of 3 subscribers |"
echo "| --- | --- | --- | --- |"
for loss in "${losses[@]}"; do
    for mode in on off; do
        out="$work/loss$loss-$mode"
        flags=()
        [ "$mode" = off ] && flags=(--no-loss-protection)
        "$bin/braid-load" audio-room --publishers 1 --subscribers 3 --duration 30s --node "$url" \
            --downlink-loss "$loss%" --downlink-delay 25ms --uplink-delay 25ms --seed 7 \
            --audio-pcm "$work/speech.pcm" --record-audio "$out" --json "$out.json" "${flags[@]}" > "$out.txt"
        in_time="$(python3 -c "import json; print('%.1f %%' % (100 * json.load(open('$out.json'))['audio']['inTimeRatio']))")"
        scores="$("$venv/bin/python" "$here/score.py" "$work/speech.pcm" "$out"/*.pcm)"
        label="RED, repeats (node)"
        [ "$mode" = off ] && label="none"
        echo "| $loss % | $label | $in_time | ${scores%% *} (${scores#* }) |"
    done
done
