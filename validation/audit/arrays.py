"""Checking and converting the image arrays every audit function takes.

Images arrive as uint8 arrays, [N, H, W] (grey) or [N, H, W, C] (C = 1, 3 or 4), all
normalised to one size upstream. Every metric works on luminance: medical sources are
grey, and a colourised copy is still a copy. Luminance uses Pillow's own integer
formula, so the pHash of an RGB array is exactly imagehash's on the same image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from consentgen.errors import AuditError

_EPS_STD = 1e-3
"""Below this standard deviation (grey levels) an image is flat; it standardises to 0."""


def check_images(images: np.ndarray, name: str) -> np.ndarray:
    """The array itself if it is a uint8 image batch; AuditError naming `name` if not."""
    if not isinstance(images, np.ndarray):
        raise AuditError(f"{name}: expected a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise AuditError(f"{name}: expected uint8 pixels, got {images.dtype}")
    if images.ndim == 4 and images.shape[-1] not in (1, 3, 4):
        raise AuditError(f"{name}: 4-d images need 1, 3 or 4 channels, got {images.shape[-1]}")
    if images.ndim not in (3, 4):
        raise AuditError(f"{name}: expected [N, H, W] or [N, H, W, C], got shape {images.shape}")
    if images.shape[1] < 8 or images.shape[2] < 8:
        raise AuditError(f"{name}: images of {images.shape[1]}x{images.shape[2]} are too small")
    return images


def luminance(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] luminance, as Pillow's convert('L') computes it (alpha ignored)."""
    if images.ndim == 3:
        return images
    if images.shape[-1] == 1:
        return images[..., 0]
    rgb = images[..., :3].astype(np.uint32)
    lum = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    return lum.astype(np.uint8)


def same_size(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> None:
    """AuditError unless both batches hold images of one height and width."""
    if a.shape[1:3] != b.shape[1:3]:
        raise AuditError(
            f"{a_name} are {a.shape[1]}x{a.shape[2]} but {b_name} are "
            f"{b.shape[1]}x{b.shape[2]}: normalise both to one size first"
        )


def standardise(gray: np.ndarray) -> np.ndarray:
    """float32 [N, H*W]: each image minus its mean, over its standard deviation.

    Gain and offset then no longer separate a copy from its source, and the RMS of a
    difference reads on one scale for every image (0 = same, ~1.4 = unrelated).
    """
    x = gray.reshape(len(gray), gray.shape[1] * gray.shape[2]).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    std = x.std(axis=1, keepdims=True)
    flat = std[:, 0] < _EPS_STD
    x /= np.where(std < _EPS_STD, 1.0, std)
    x[flat] = 0.0
    return x


def check_ids(ids: Sequence[object] | None, n: int, name: str, prefix: str = "") -> list[str]:
    """Ids as unique strings, one per image; `prefix` + position when none are given."""
    if ids is None:
        return [f"{prefix}{i}" for i in range(n)]
    out = [str(i) for i in ids]
    if len(out) != n:
        raise AuditError(f"{name}: {len(out)} ids for {n} images")
    if len(set(out)) != n:
        raise AuditError(f"{name}: ids must be unique ({n - len(set(out))} repeated)")
    return out
