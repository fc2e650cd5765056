"""Named, independent random streams: the same (seed, purpose, day) always gives the same draws."""

from __future__ import annotations

import zlib

import numpy as np


def rng_for(seed: int, purpose: str, *keys: int) -> np.random.Generator:
    """A generator for one purpose (and optional integer keys such as a day index)."""
    tag = zlib.crc32(purpose.encode())
    return np.random.default_rng(np.random.SeedSequence([seed, tag, *keys]))
