"""Normalised, metadata-free pixels: what `sources/` stores and what generators train on.

Every accepted source becomes the same shape (default 64x64, one grayscale channel) so
training and the near-duplicate audit compare like with like. The PNG is encoded from a
bare pixel array, so no EXIF, ICC profile, text chunk or timestamp of the original can
ride along (DESIGN.md invariant 5); `validation.release.metadata` checks that independently.
The content hash is taken over the pixels and their shape, not the PNG bytes, so it
names the image even if a different zlib would compress it differently.
"""

from __future__ import annotations

import hashlib
import io
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, PositiveInt, field_validator


class NormalizeConfig(BaseModel):
    """Target shape of normalised sources."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: tuple[PositiveInt, PositiveInt] = (64, 64)
    """(width, height); an int means a square."""
    channels: Literal[1, 3] = 1
    """1 = 8-bit grayscale, 3 = 8-bit RGB."""
    fit: Literal["pad", "crop", "stretch"] = "pad"
    """pad: whole image, letterboxed on black; crop: centre crop; stretch: distort."""

    @field_validator("size", mode="before")
    @classmethod
    def _square(cls, value: object) -> object:
        if isinstance(value, int):
            return (value, value)
        if isinstance(value, str):  # "64" or "64x48" from a command line
            parts = value.lower().split("x")
            if len(parts) == 1:
                parts = parts * 2
            if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
                raise ValueError(f"size {value!r}: use N or WxH, e.g. 64 or 64x48")
            return tuple(int(p) for p in parts)
        return value

    @field_validator("size")
    @classmethod
    def _bounded(cls, value: tuple[int, int]) -> tuple[int, int]:
        if max(value) > 4096:
            raise ValueError(f"size {value[0]}x{value[1]} is over 4096 per side")
        return value


def normalize(image: Image.Image, config: NormalizeConfig | None = None) -> np.ndarray:
    """An 8-bit "L"/"RGB" image to a uint8 array (H, W) or (H, W, 3) of the target size."""
    config = config or NormalizeConfig()
    target = config.size
    im = image.convert("L" if config.channels == 1 else "RGB")
    if config.fit == "stretch":
        out = _resize(im, target)
    elif config.fit == "crop":
        scale = max(target[0] / im.width, target[1] / im.height)
        scaled = _resize(im, _scaled(im.size, scale, minimum=target))
        left = (scaled.width - target[0]) // 2
        top = (scaled.height - target[1]) // 2
        out = scaled.crop((left, top, left + target[0], top + target[1]))
    else:
        scale = min(target[0] / im.width, target[1] / im.height)
        scaled = _resize(im, _scaled(im.size, scale, maximum=target))
        out = Image.new(im.mode, target, 0)
        out.paste(scaled, ((target[0] - scaled.width) // 2, (target[1] - scaled.height) // 2))
    return np.array(out, dtype=np.uint8)


def _scaled(
    size: tuple[int, int],
    scale: float,
    *,
    minimum: tuple[int, int] | None = None,
    maximum: tuple[int, int] | None = None,
) -> tuple[int, int]:
    w, h = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    if minimum is not None:
        w, h = max(w, minimum[0]), max(h, minimum[1])
    if maximum is not None:
        w, h = min(w, maximum[0]), min(h, maximum[1])
    return w, h


def _resize(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    if im.size == size:
        return im
    # reducing_gap: box-reduce big images first, then Lanczos; same look, much faster.
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes with only IHDR, IDAT and IEND: built from a bare array, no info copied."""
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError(f"expected (H, W) or (H, W, 3) uint8 pixels, got {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def content_hash(pixels: np.ndarray) -> str:
    """SHA-256 (hex) of the shape and the pixel bytes: the content address of a source."""
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    digest = hashlib.sha256(("x".join(map(str, arr.shape)) + ":").encode("ascii"))
    digest.update(arr.tobytes())
    return digest.hexdigest()
