"""The DICOM display pipeline: a decoded frame to what a radiologist would see, 8-bit.

Grayscale goes through PS3.3 C.11: the Modality LUT (rescale slope/intercept or a LUT
sequence), then the file's VOI LUT or first window (LINEAR, LINEAR_EXACT or SIGMOID) when
`dicom_window="file"`, else a min-max stretch; MONOCHROME1 is inverted afterwards so that
bright always means dense. Palette colour goes through its LUT, and RGB deeper than 8
bits is scaled by its Bits Stored. `validation.sources.dicom` reads the file and calls
`to_image`; only DecodeError leaves here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from consentgen.errors import DecodeError
from validation.sources.pixels import (
    DecodeConfig,
    Reason,
    short_error,
    stretch_to_unit,
    unit_to_8bit,
)

COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"}


def to_image(
    arr: np.ndarray, ds: Dataset, photometric: str, config: DecodeConfig, notes: list[str]
) -> Image.Image:
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        if arr.ndim != 2:
            raise DecodeError(Reason.CORRUPT_IMAGE, f"grayscale frame has shape {arr.shape}")
        unit = _display_gray(arr, ds, config, notes)
        if photometric == "MONOCHROME1":
            unit = 1.0 - unit
            notes.append("MONOCHROME1 inverted")
        return unit_to_8bit(unit)
    if photometric == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(arr, ds)
        except Exception as exc:
            raise DecodeError(Reason.CORRUPT_IMAGE, f"palette: {short_error(exc)}") from exc
        notes.append("palette applied")
        return _rgb(rgb, 8 * rgb.dtype.itemsize)
    if photometric in COLOUR:
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise DecodeError(Reason.CORRUPT_IMAGE, f"colour frame has shape {arr.shape}")
        return _rgb(arr, int(ds.get("BitsStored", 8)))
    raise DecodeError(
        Reason.DICOM_UNSUPPORTED_PHOTOMETRIC, f"photometric interpretation {photometric!r}"
    )


def _rgb(arr: np.ndarray, bits: int) -> Image.Image:
    """Colour of any stored depth to 8 bits per channel, scaled by its full range."""
    return unit_to_8bit(np.asarray(arr, dtype=np.float64) / float(2**bits - 1))


def _display_gray(
    arr: np.ndarray, ds: Dataset, config: DecodeConfig, notes: list[str]
) -> np.ndarray:
    """Modality LUT, then the file's VOI (LUT or window) or a min-max stretch, to [0, 1]."""
    try:
        values = apply_modality_lut(arr, ds)
    except Exception as exc:
        raise DecodeError(Reason.CORRUPT_IMAGE, f"modality LUT: {short_error(exc)}") from exc
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        notes.append("modality rescale applied")
    if not np.isfinite(np.asarray(values, dtype=np.float64)).all():
        raise DecodeError(Reason.NONFINITE_PIXELS, "pixels include NaN or infinity")
    if config.dicom_window == "file":
        if ds.get("VOILUTSequence"):
            try:
                shown = apply_voi_lut(values, ds, index=0, prefer_lut=True)
            except Exception as exc:
                raise DecodeError(Reason.CORRUPT_IMAGE, f"VOI LUT: {short_error(exc)}") from exc
            notes.append("VOI LUT applied")
            return stretch_to_unit(shown, notes)
        window = _window(ds)
        if window is not None:
            center, width, function = window
            notes.append(f"window {function} center {center:g} width {width:g} applied")
            return apply_window(values, center, width, function)
    return stretch_to_unit(values, notes)


def _window(ds: Dataset) -> tuple[float, float, str] | None:
    """The first (center, width, function) of the file, or None when absent or unusable."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    try:
        center, width = (_first_number(ds.WindowCenter), _first_number(ds.WindowWidth))
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    except (TypeError, ValueError, IndexError):
        return None
    usable = (
        np.isfinite(center)
        and np.isfinite(width)
        and (width >= 1 if function == "LINEAR" else width > 0)
    )
    return (center, width, function) if usable and function in _WINDOWS else None


def _first_number(value: Any) -> float:
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0]
    return float(value)


def _linear(x: np.ndarray, c: float, w: float) -> np.ndarray:  # PS3.3 C.11.2.1.2.1
    if w <= 1:
        return (x > c - 0.5).astype(np.float64)
    return np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)


def _linear_exact(x: np.ndarray, c: float, w: float) -> np.ndarray:  # C.11.2.1.3.2
    return np.clip((x - c) / w + 0.5, 0.0, 1.0)


def _sigmoid(x: np.ndarray, c: float, w: float) -> np.ndarray:  # C.11.2.1.3.1
    return 1.0 / (1.0 + np.exp(np.clip(-4.0 * (x - c) / w, -700, 700)))


_WINDOWS = {"LINEAR": _linear, "LINEAR_EXACT": _linear_exact, "SIGMOID": _sigmoid}


def apply_window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """A DICOM VOI window mapped to [0, 1] (not to the stored bit range, as pydicom does)."""
    return _WINDOWS[function](np.asarray(values, dtype=np.float64), center, width)
