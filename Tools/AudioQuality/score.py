#!/usr/bin/env python3
"""PESQ (ITU-T P.862.2 wideband, the `pesq` package) of what subscribers played against the clip sent.

Usage: score.py REFERENCE.pcm RECORDING.pcm... (raw 48 kHz mono s16le). The publisher loops the clip, so
each recording is a circular shift of it: one clip length from 3 s in is cut out, the reference is rotated
to the shift that correlates best, both go to 16 kHz, and PESQ scores the pair. Prints the mean MOS-LQO
and the scores one per recording.
"""
import sys

import numpy as np
from pesq import pesq
from scipy import signal

RATE = 48_000


def load(path):
    return np.fromfile(path, dtype="<i2").astype(np.float64)


def score(reference, recording):
    n = len(reference)
    start = 3 * RATE
    if len(recording) < start + n:
        raise ValueError(f"recording of {len(recording) / RATE:.1f} s is shorter than 3 s + one clip")
    segment = recording[start : start + n]
    correlation = np.fft.irfft(np.fft.rfft(segment) * np.conj(np.fft.rfft(reference)), n)
    aligned = np.roll(reference, int(np.argmax(correlation)))
    ref16 = signal.resample_poly(aligned, 1, 3)
    deg16 = signal.resample_poly(segment, 1, 3)
    return pesq(16_000, ref16, deg16, "wb")


def main():
    reference = load(sys.argv[1])
    scores = []
    for path in sys.argv[2:]:
        try:
            scores.append(score(reference, load(path)))
        except Exception as error:  # a recording PESQ cannot score counts as the worst score
            print(f"{path}: {error}", file=sys.stderr)
            scores.append(1.0)
    print(f"{np.mean(scores):.2f}", " ".join(f"{s:.2f}" for s in scores))


if __name__ == "__main__":
    main()
