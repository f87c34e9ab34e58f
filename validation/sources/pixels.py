"""What every decoder of untrusted images shares, so the decoders need not import each other.

`validation.sources.decode` (sniffing, Pillow formats) and `validation.sources.dicom`
both report failures with the same `Reason` codes, obey one `DecodeConfig`, return one
`DecodedImage`, check the same pixel and frame limits before any pixel is decoded, and
end at the same 8-bit "L" or "RGB" image (alpha over black, high bit depths stretched
min-max). Those pieces live here, once; the dispatcher imports the DICOM decoder and
never the other way round, and importing the dispatcher does not import pydicom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, PositiveInt, field_validator

from consentgen.errors import DecodeError


class Reason(StrEnum):
    """Stable quarantine reason codes for undecodable input (never rename: rows keep them)."""

    NOT_A_REGULAR_FILE = "not_a_regular_file"
    UNREADABLE = "unreadable"
    EMPTY_FILE = "empty_file"
    FILE_TOO_LARGE = "file_too_large"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TOO_MANY_PIXELS = "too_many_pixels"
    TRUNCATED = "truncated"
    CORRUPT_IMAGE = "corrupt_image"
    MULTIFRAME_REJECTED = "multiframe_rejected"
    UNSUPPORTED_MODE = "unsupported_mode"
    NONFINITE_PIXELS = "nonfinite_pixels"
    DICOM_INVALID = "dicom_invalid"
    DICOM_NO_PIXEL_DATA = "dicom_no_pixel_data"
    DICOM_CODEC_UNAVAILABLE = "dicom_codec_unavailable"
    DICOM_UNSUPPORTED_TRANSFER_SYNTAX = "dicom_unsupported_transfer_syntax"
    DICOM_UNSUPPORTED_PHOTOMETRIC = "dicom_unsupported_photometric"


class DecodeConfig(BaseModel):
    """What the decoder accepts. Frozen so one config describes a whole ingest run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_pixels: PositiveInt = 40_000_000
    """Width x height of one frame, checked from the header before decoding (bombs).
    40 MP is about 6300 x 6300, above any radiograph or mammogram."""
    max_file_bytes: PositiveInt = 512 * 2**20
    """Files are read whole into memory, so their size is bounded too."""
    multiframe: Literal["first", "reject"] = "first"
    """Animated PNG / multi-frame DICOM: take the first frame, or quarantine."""
    formats: tuple[str, ...] = ("PNG", "JPEG")
    """Pillow formats decoded besides DICOM; each extra plugin is extra attack surface."""
    dicom_window: Literal["file", "full_range"] = "file"
    """Grayscale DICOM: apply the file's VOI window/LUT, or stretch the full value range."""

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        Image.init()
        names = tuple(v.upper() for v in value)
        unknown = [n for n in names if n not in Image.OPEN]
        if unknown:
            raise ValueError(f"unknown Pillow format(s): {', '.join(unknown)}")
        return names


@dataclass(frozen=True)
class DecodedImage:
    """One decoded frame plus what the ingest records about the original file."""

    image: Image.Image
    """8-bit "L" or "RGB", orientation applied, alpha composited over black, `info` empty."""
    format: str
    """Sniffed container: "PNG", "JPEG", "DICOM", ..."""
    mode: str
    """Original pixel mode: a Pillow mode, or DICOM photometric/bits ("MONOCHROME1/16")."""
    width: int
    height: int
    """Stored size of the original, before orientation or any resizing."""
    frames: int = 1
    notes: tuple[str, ...] = ()
    """What was done that a reviewer may want to know (frame taken, window, inversion)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Requested DICOM tag values (e.g. PatientID for --subject-from-tag); empty otherwise."""


def short_error(exc: BaseException, limit: int = 300) -> str:
    """An exception's message, bounded so one bad file cannot bloat a quarantine row."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_pixels(width: int, height: int, config: DecodeConfig) -> None:
    """Refuse empty or oversized frames before any pixel buffer is allocated."""
    if width <= 0 or height <= 0:
        raise DecodeError(Reason.CORRUPT_IMAGE, f"image size {width}x{height} is empty")
    if width * height > config.max_pixels:
        raise DecodeError(
            Reason.TOO_MANY_PIXELS,
            f"{width}x{height} = {width * height} pixels is over the limit of {config.max_pixels}",
        )


def check_frames(frames: int, config: DecodeConfig) -> tuple[str, ...]:
    """Apply the multi-frame policy; the note says which frame was kept."""
    if frames <= 1:
        return ()
    if config.multiframe == "reject":
        raise DecodeError(
            Reason.MULTIFRAME_REJECTED, f"{frames} frames; multi-frame input is rejected"
        )
    return (f"first of {frames} frames taken",)


_RGB_LIKE = {"RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
_HIGH_DEPTH = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}


def to_8bit(im: Image.Image, notes: list[str]) -> Image.Image:
    """Any Pillow mode to 8-bit "L" or "RGB", without metadata carried along.

    Alpha is composited over black, the background of medical images, so transparent
    regions do not turn into arbitrary colours hidden under alpha.
    """
    mode = im.mode
    if mode == "L":
        return im
    if mode == "1":
        return im.convert("L")
    if mode == "P":
        has_alpha = "transparency" in im.info or im.palette.mode == "RGBA"
        return _over_black(im.convert("RGBA"), notes) if has_alpha else im.convert("RGB")
    if mode == "PA":
        return _over_black(im.convert("RGBA"), notes)
    if mode in ("LA", "La"):
        return _over_black(im.convert("LA"), notes)
    if mode in ("RGBA", "RGBa"):
        return _over_black(im.convert("RGBA"), notes)
    if mode == "RGB":
        return im
    if mode in _RGB_LIKE:
        return im.convert("RGB")
    if mode in _HIGH_DEPTH:
        return stretch_to_l(np.asarray(im), notes)
    raise DecodeError(Reason.UNSUPPORTED_MODE, f"pixel mode {mode!r} is not supported")


def _over_black(im: Image.Image, notes: list[str]) -> Image.Image:
    base_mode = im.mode[:-1]  # "LA" -> "L", "RGBA" -> "RGB"
    alpha = im.getchannel("A")
    if alpha.getextrema()[0] < 255:
        notes.append("alpha composited over black")
    canvas = Image.new(base_mode, im.size, 0)
    canvas.paste(im.convert(base_mode), mask=alpha)
    return canvas


def stretch_to_l(values: np.ndarray, notes: list[str]) -> Image.Image:
    """Grayscale numbers of any depth to 8-bit "L", min-max (see `stretch_to_unit`)."""
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise DecodeError(Reason.UNSUPPORTED_MODE, f"expected one channel, got shape {arr.shape}")
    return unit_to_8bit(stretch_to_unit(arr, notes))


def stretch_to_unit(values: np.ndarray, notes: list[str]) -> np.ndarray:
    """Min-max to [0, 1] as float64; NaN or infinity is refused rather than guessed."""
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise DecodeError(Reason.NONFINITE_PIXELS, "pixels include NaN or infinity")
    lo, hi = float(arr.min()), float(arr.max())
    notes.append(f"values {lo:g}..{hi:g} stretched to 0..255")
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def unit_to_8bit(unit: np.ndarray) -> Image.Image:
    """Values in [0, 1] to an 8-bit image (rounded, clipped): "L" for H x W, "RGB" for
    H x W x 3."""
    return Image.fromarray(np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8))
