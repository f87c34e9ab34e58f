"""DICOM pixel decoding for ingest: one displayable 8-bit frame from an untrusted file.

What a radiologist would see is what we keep, so grayscale goes through the display
pipeline of PS3.3 C.11: the Modality LUT (rescale slope/intercept or a LUT sequence),
then the file's VOI LUT or first window (LINEAR, LINEAR_EXACT or SIGMOID) when
`dicom_window="file"`, else a min-max stretch; MONOCHROME1 is inverted afterwards so
that bright always means dense. Palette colour goes through its LUT, YBR is converted
to RGB by pydicom, and RGB deeper than 8 bits is scaled by its Bits Stored.

Compressed transfer syntaxes are decoded when pydicom has a plugin for them (Pillow
covers JPEG baseline and JPEG 2000, pydicom itself RLE); otherwise the file is
quarantined as `dicom_codec_unavailable` with the packages that would decode it. Files
without pixel data (structured reports, RT plans) are `dicom_no_pixel_data`.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder
from pydicom.pixels import pixel_array as _pixel_array
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from consentgen.errors import ConfigError, DecodeError
from validation.sources.pixels import (
    DecodeConfig,
    DecodedImage,
    Reason,
    check_frames,
    check_pixels,
    short_error,
    stretch_to_unit,
    unit_to_8bit,
)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"}
_TAG_TEXT = re.compile(r"^\(?\s*([0-9a-fA-F]{4})\s*,?\s*([0-9a-fA-F]{4})\s*\)?$")


def looks_like_dicom(data: bytes) -> bool:
    """A Part 10 file ("DICM" after the 128-byte preamble), or a bare dataset that starts
    with a group 0002/0008 element in either byte order (old exports without preamble)."""
    if data[128:132] == b"DICM":
        return True
    return data[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08") and len(data) >= 8


def resolve_tag(name: str) -> int:
    """A tag from a keyword ("PatientID") or hex ("0010,0020", "(0010,0020)", "00100020")."""
    text = name.strip()
    match = _TAG_TEXT.match(text)
    if match:
        return int(match.group(1) + match.group(2), 16)
    tag = tag_for_keyword(text)
    if tag is None:
        raise ConfigError(f"unknown DICOM tag {name!r}: use a keyword like PatientID or gggg,eeee")
    return int(tag)


def tag_text(ds: Dataset, tag: int) -> str | None:
    """The stripped text of a tag's value, or None when absent or empty."""
    elem = ds.get(tag)
    if elem is None or elem.value in (None, "", b""):
        return None
    value = elem.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    text = str(value).strip().strip("\x00").strip()
    return text or None


def decode_dicom(data: bytes, config: DecodeConfig, *, tags: tuple[str, ...] = ()) -> DecodedImage:
    """Decode the first frame of a DICOM file (see the module docstring); only DecodeError."""
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")  # pydicom warns on every odd VR; the reasons say enough
        ds = _read(data)
        header = _header(ds, config)
        wanted = {name: tag_text(ds, resolve_tag(name)) for name in tags}
        arr = _first_frame(ds, header["frames"])
        notes = list(header["notes"])
        image = _to_image(arr, ds, header["photometric"], config, notes)
    return DecodedImage(
        image=image,
        format="DICOM",
        mode=f"{header['photometric']}/{header['bits']}",
        width=header["columns"],
        height=header["rows"],
        frames=header["frames"],
        notes=tuple(notes),
        tags={k: v for k, v in wanted.items() if v is not None},
    )


def _read(data: bytes) -> Dataset:
    preamble = data[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not preamble)
        ds.get("PixelData")  # surfaces a broken element table now, not later
    except Exception as exc:
        raise DecodeError(
            Reason.DICOM_INVALID, f"{type(exc).__name__}: {short_error(exc)}"
        ) from exc
    if not isinstance(ds, Dataset) or len(ds) == 0:
        raise DecodeError(Reason.DICOM_INVALID, "no data elements could be read")
    return ds


def _header(ds: Dataset, config: DecodeConfig) -> dict[str, Any]:
    """The image pixel module, checked before any pixel is decoded."""
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        if "Rows" in ds and "Columns" in ds:  # pixel data is the last element: cut off
            raise DecodeError(
                Reason.TRUNCATED, "image header present but the pixel data is missing"
            )
        kind = str(ds.get("Modality", "") or ds.get("SOPClassUID", "") or "dataset")
        raise DecodeError(Reason.DICOM_NO_PIXEL_DATA, f"{kind} without pixel data")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        bits = int(ds.get("BitsStored", ds.BitsAllocated))
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        photometric = str(ds.PhotometricInterpretation).strip().upper()
    except Exception as exc:
        raise DecodeError(
            Reason.DICOM_INVALID,
            f"image pixel module unusable: {type(exc).__name__}: {short_error(exc)}",
        ) from exc
    if frames < 1 or samples not in (1, 3) or not 1 <= bits <= 64:
        raise DecodeError(
            Reason.DICOM_INVALID, f"frames={frames} samples={samples} bits={bits} out of range"
        )
    check_pixels(columns, rows, config)
    notes = list(check_frames(frames, config))
    notes.extend(_transfer_syntax(ds))
    return {
        "rows": rows,
        "columns": columns,
        "bits": bits,
        "frames": frames,
        "photometric": photometric,
        "notes": notes,
    }


def _transfer_syntax(ds: Dataset) -> list[str]:
    """Make sure a decoder exists for the file's transfer syntax, inferring a missing one."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    notes: list[str] = []
    if "TransferSyntaxUID" not in meta:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else ExplicitVRLittleEndian
            if little
            else ExplicitVRBigEndian
        )
        notes.append(f"no transfer syntax in file; read as {meta.TransferSyntaxUID.name}")
    uid = meta.TransferSyntaxUID
    try:
        decoder = get_decoder(uid)
    except Exception as exc:
        raise DecodeError(
            Reason.DICOM_UNSUPPORTED_TRANSFER_SYNTAX,
            f"no pixel decoder exists for transfer syntax {uid} ({getattr(uid, 'name', '?')})",
        ) from exc
    if not decoder.is_available:
        needs = "; ".join(decoder.missing_dependencies) or "a decoding plugin"
        raise DecodeError(
            Reason.DICOM_CODEC_UNAVAILABLE,
            f"{uid.name} needs a plugin that is not installed ({needs})",
        )
    return notes


def _first_frame(ds: Dataset, frames: int) -> np.ndarray:
    try:
        arr = _pixel_array(ds, index=0 if frames > 1 else None)
    except Exception as exc:
        raise DecodeError(
            _pixel_reason(str(exc).lower()), f"pixel data: {type(exc).__name__}: {short_error(exc)}"
        ) from exc
    return np.asarray(arr)


def _pixel_reason(text: str) -> Reason:
    """pydicom wraps every plugin failure in one RuntimeError; its text tells them apart."""
    if "exceeds limit" in text or "decompression bomb" in text:
        return Reason.TOO_MANY_PIXELS  # Pillow's bomb check inside pydicom's JPEG plugin
    if "does not support" in text or "not supported" in text:
        return Reason.DICOM_CODEC_UNAVAILABLE  # e.g. 12-bit JPEG Extended via Pillow
    if any(m in text for m in ("less than", "truncat", "end of file", "insufficient")):
        return Reason.TRUNCATED
    return Reason.CORRUPT_IMAGE


def _to_image(
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
    if photometric in _COLOUR:
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


def tag_keyword(tag: int) -> str:
    """A readable name for a tag, for findings and notes."""
    return keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
