"""Pixels in and out of the data home: normalised sources at a size, metadata-free PNGs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from consentgen.files import atomic_output
from validation.sources.normalize import encode_png


def load_gray(paths: Sequence[Path], size: int) -> np.ndarray:
    """Grayscale uint8 [N, size, size] from our own normalised PNGs (trusted: we wrote them).

    The audit, the figures and the card judge luminance, whatever the generator's channels."""
    return load_pixels(paths, size, 1)


def load_pixels(paths: Sequence[Path], size: int, channels: int) -> np.ndarray:
    """uint8 [N, size, size] (channels 1) or [N, size, size, 3] (channels 3) from our own
    PNGs: what a generator trains on (a grey source given to a colour model is grey RGB)."""
    shape = (len(paths), size, size) + ((3,) if channels == 3 else ())
    out = np.empty(shape, dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BOX if im.width > size else Image.Resampling.BICUBIC)
            out[i] = np.asarray(im)
    return out


def write_png(pixels: np.ndarray, path: Path) -> None:
    """Write a metadata-free PNG atomically (temp file, fsync, rename)."""
    with atomic_output(path, "wb") as fh:
        fh.write(encode_png(pixels))
