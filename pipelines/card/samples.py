"""Which published images the card's sample grid shows.

Each image is ranked by a hash of the build's seed and its public id, and the grid shows
the first `SAMPLE_GRID`. Publish and every redraw after a withdrawal choose the same way,
so a withdrawal only replaces the withdrawn tiles by the next-ranked images still
published, and a redraw with nothing new withdrawn draws the very same grid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

SAMPLE_GRID = 32
"""Tiles on the grid at most (4 rows of 8)."""


def _rank(seed: int, image_id: str) -> bytes:
    return hashlib.sha256(f"consentgen-card-sample|{seed}|{image_id}".encode()).digest()


def choose_samples(image_ids: Iterable[str], *, seed: int, n: int = SAMPLE_GRID) -> list[str]:
    """Up to `n` of `image_ids`, in grid order; the same ids give the same choice."""
    return sorted(set(image_ids), key=lambda i: _rank(seed, i))[:n]
