#!/usr/bin/env python3
"""Writes the speech clip the quality run sends: raw 48 kHz mono 16-bit little-endian PCM.

Speech from Debian's `flite` (its `slt` voice reading Harvard sentences, IEEE 1969, the classic test
material for speech transmission), resampled from 16 kHz to 48 kHz and set to -26 dBov.
Usage: speech.py OUTPUT
"""
import subprocess
import sys
import tempfile

import numpy as np
from scipy import signal
from scipy.io import wavfile

SENTENCES = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It's easy to tell the depth of a well. These days a chicken leg is a rare dish. "
    "Rice is often served in round bowls. The juice of lemons makes fine punch."
)


def main():
    with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
        subprocess.run(["flite", "-voice", "slt", "-t", SENTENCES, "-o", wav.name], check=True)
        rate, samples = wavfile.read(wav.name)
    x = signal.resample_poly(samples.astype(np.float64), 48_000 // rate, 1)
    active = x[np.abs(x) > 0.01 * np.abs(x).max()]
    x *= 10 ** (-26 / 20) * 32767 / np.sqrt(np.mean(active**2))
    # Whole 20 ms frames, so the looped clip repeats exactly.
    x = x[: len(x) // 960 * 960]
    np.clip(x, -32767, 32767).astype("<i2").tofile(sys.argv[1])


if __name__ == "__main__":
    main()
