"""Builders of real image files for the ingest tests (no fixtures on disk, no mocks).

Everything is made in memory with Pillow and pydicom, or loaded from pydicom-data with
`get_testdata_file(name, download=False)` (the plural helper goes to the network).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def pattern(width: int = 48, height: int = 32) -> Image.Image:
    """An RGB test card: black, with a white block in the left half and a red stripe."""
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[:, : width // 2] = 255
    arr[height - 4 :, :, 0] = 255
    return Image.fromarray(arr)


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` and carries one tiny IDAT: a bomb by header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """A valid JPEG whose SOF header is rewritten to claim another size."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]
    raise ValueError("no SOF marker")


def gps_exif(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "ScannerCo"  # Make
    exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (51.0, 30.0, 12.5)
    gps[3], gps[4] = "E", (0.0, 7.0, 1.0)
    return exif.tobytes()


def png_with_text(im: Image.Image) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Patient")
    info.add_text("Comment", "MRN 12345", zip=True)
    info.add_itxt("Description", "born 1970-01-01, Leeds")
    return encode(im, "PNG", pnginfo=info, exif=gps_exif())


def apng(colours: list[tuple[int, int, int]], size: tuple[int, int] = (16, 16)) -> bytes:
    frames = [Image.new("RGB", size, c) for c in colours]
    return encode(frames[0], "PNG", save_all=True, append_images=frames[1:])


def dicom(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    signed: bool = False,
    slope: float | None = None,
    intercept: float | None = None,
    window: tuple[float, float] | None = None,
    frames: int | None = None,
    float_pixels: bool = False,
    patient: bool = True,
) -> bytes:
    """A Part 10 DICOM file around `pixels` ((rows, cols) or (frames, rows, cols))."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("test.dcm", {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    if patient:
        ds.PatientName = "Doe^Jane"
        ds.PatientID = "PAT-0001"
        ds.PatientBirthDate = "19700101"
        ds.PatientAddress = "1 Hospital Road, Leeds"
    ds.Rows, ds.Columns = pixels.shape[-2], pixels.shape[-1]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    if frames is not None:
        ds.NumberOfFrames = frames
    if float_pixels:
        ds.BitsAllocated = 32
        ds.FloatPixelData = np.ascontiguousarray(pixels, dtype="<f4").tobytes()
    else:
        dtype = "<i2" if signed else "<u2"
        ds.BitsAllocated = 16
        ds.BitsStored = bits_stored or 16
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 1 if signed else 0
        ds.PixelData = np.ascontiguousarray(pixels, dtype=dtype).tobytes()
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0.0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def testdata(name: str) -> Path:
    """A pydicom-data file, offline only."""
    found = get_testdata_file(name, download=False)
    if found is None:
        raise FileNotFoundError(f"pydicom-data has no {name}")
    return Path(str(found))


def write_manifest(path: Path, rows: list[dict[str, object]]) -> Path:
    columns = list(rows[0])
    lines = [",".join(columns)] + [",".join(str(r.get(c, "")) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
