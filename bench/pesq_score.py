#!/usr/bin/env python3
"""Wideband PESQ (ITU-T P.862.2, PyPI `pesq`) of what a call delivered against what was sent.

Usage: pesq_score.py REFERENCE.wav DEGRADED.wav  (both 48 kHz mono 16-bit, as speech-call
writes them). Both go to 16 kHz (a windowed-sinc low-pass, then every third sample), the
degraded one is aligned to the reference by cross-correlation (the call's delay), and the
reference's length of it is scored. Prints: score delay_ms.
"""
import sys
import wave

import numpy as np
from pesq import pesq


def read(path):
    with wave.open(path, "rb") as w:
        if w.getframerate() != 48000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            sys.exit(f"{path}: need 48 kHz mono 16-bit")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768.0


def to_16k(x):
    # Low-pass at 7.6 kHz (a 255-tap Blackman-windowed sinc), then keep every third sample.
    taps = 255
    n = np.arange(taps) - (taps - 1) / 2
    cutoff = 7600.0 / 48000.0
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
    return np.convolve(x, h / h.sum(), mode="same")[::3]


def align(ref, deg):
    """deg's samples from the delay that best matches ref, ref's length (zero-padded)."""
    size = 1 << int(np.ceil(np.log2(len(ref) + len(deg))))
    corr = np.fft.irfft(np.fft.rfft(deg, size) * np.conj(np.fft.rfft(ref, size)), size)
    delay = int(np.argmax(corr[: len(deg)]))
    out = deg[delay : delay + len(ref)]
    return np.pad(out, (0, len(ref) - len(out))), delay


def main():
    ref, deg = (to_16k(read(p)) for p in sys.argv[1:3])
    deg, delay = align(ref, deg)
    score = pesq(16000, ref, deg, "wb")
    print(f"{score:.3f} {delay / 16.0:.1f}")


if __name__ == "__main__":
    main()
