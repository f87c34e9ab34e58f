"""What may never be published again: withdrawn candidates and their pixels.

A withdrawal bans the candidate (by id) and its pixels (by `content_hash`, the SHA-256 of
shape and pixel bytes that also addresses sources), so no later build brings them back:
not by reusing an audited candidate, and not by a model that happens to draw the same
pixels again. Pixels are hashed as decoded, so a re-encoded copy of a PNG is still caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.catalog import Catalog
from pipelines.catalog.lineage import banned_values
from validation.sources.normalize import content_hash

CANDIDATE = "candidate"
PIXELS = "pixels"


@dataclass(frozen=True)
class Bans:
    candidates: frozenset[str]
    pixels: frozenset[str]

    def refuses(self, candidate_id: str | None = None, pixel_hash: str | None = None) -> bool:
        return candidate_id in self.candidates or pixel_hash in self.pixels


def load_bans(catalog: Catalog) -> Bans:
    candidates, pixels = banned_values(catalog)
    return Bans(frozenset(candidates), frozenset(pixels))


def pixel_hash(pixels: np.ndarray) -> str:
    return content_hash(pixels)


def file_pixel_hash(path: Path) -> str | None:
    """The pixel hash of an image file, None when it is gone (erased or never written)."""
    try:
        with Image.open(path) as im:
            return pixel_hash(np.asarray(im))
    except FileNotFoundError:
        return None
