"""Pixels in and out of the data home: normalised sources at a size, metadata-free PNGs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from consentgen.files import atomic_output
from validation.sources.normalize import encode_png


def load_gray(paths: Sequence[Path], size: int) -> np.ndarray:
    """Grayscale uint8 [N, size, size] from our own normalised PNGs (trusted: we wrote them)."""
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            im = im.convert("L")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BOX if im.width > size else Image.Resampling.BICUBIC)
            out[i] = np.asarray(im)
    return out


def write_png(pixels: np.ndarray, path: Path) -> None:
    """Write a metadata-free PNG atomically (temp file, fsync, rename)."""
    with atomic_output(path, "wb") as fh:
        fh.write(encode_png(pixels))
