"""`find_identifying_metadata`: the release gate's check that a file carries nothing extra.

Releases promise that no metadata of a source leaks (DESIGN.md invariant 5), so this
check reads container structure itself rather than trusting a decoder to show it
everything: PNG chunks and JPEG segments are walked byte by byte, DICOM elements are
listed, and the whole file is scanned for EXIF and XMP signatures hidden elsewhere
(after the image end, inside unknown chunks). It fails closed: a file whose structure
cannot be walked is itself a finding ("unparsed"), so an empty list really means clean.

Findings name where metadata sits and how big it is, never its value: a gate's log
must not become the leak it is guarding against.

Our own provenance (`validation.release.provenance`: one XMP packet, one C2PA manifest)
is allowed on a published PNG only when the caller says which release's it must be
(`provenance=`): the packet must be byte-for-byte ours and the manifest must verify and
hold exactly that release's assertions; otherwise each is a finding like any other.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from collections.abc import Iterator

import pydicom
from PIL import Image
from pydantic import BaseModel, ConfigDict

from consentgen.errors import DecodeError
from validation.release.provenance import ExpectedProvenance, is_our_xmp, manifest_problems
from validation.sources.decode import DecodeConfig, read_limited, short_error
from validation.sources.dicom import looks_like_dicom, tag_keyword
from validation.sources.xmp import XMP_PNG_KEY


class MetadataFinding(BaseModel):
    """One block of metadata found in a file."""

    model_config = ConfigDict(frozen=True)

    kind: str
    """Stable code: exif, exif_gps, xmp, icc_profile, comment, png_text, png_time,
    png_chunk, c2pa, jpeg_app, iptc, dicom_tag, dicom_dataset, trailing_data, unparsed."""
    key: str = ""
    """Where: a chunk type, a text keyword, a marker, a DICOM keyword."""
    detail: str = ""
    """Size or structure only, never the value."""


# Chunks that carry pixels, colour interpretation or animation timing, nothing personal.
_PNG_HARMLESS = {
    b"IHDR",
    b"PLTE",
    b"IDAT",
    b"IEND",
    b"tRNS",
    b"gAMA",
    b"cHRM",
    b"sRGB",
    b"sBIT",
    b"bKGD",
    b"pHYs",
    b"acTL",
    b"fcTL",
    b"fdAT",
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_SIGNATURE = b"Exif\x00\x00"
_XMP_SIGNATURES = (b"http://ns.adobe.com/xap/1.0/", b"<x:xmpmeta", b"<?xpacket")
_GPS_IFD = 0x8825

# DICOM elements that identify a person, a place or an event, beyond group 0010.
_DICOM_IDENTIFYING_VRS = {"PN", "DA", "DT", "TM", "UI"}
_DICOM_IDENTIFYING_KEYWORDS = {
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "StudyID",
    "OtherPatientIDs",
    "RequestingService",
    "PerformedProcedureStepID",
    "ScheduledProcedureStepID",
    "RequestedProcedureID",
    "AdmissionID",
    "IssuerOfPatientID",
    "InstanceCreatorUID",
    "StudyDescription",
    "ImageComments",
    "PatientComments",
    "AdditionalPatientHistory",
}


def find_identifying_metadata(
    path: str | os.PathLike[str],
    *,
    max_file_bytes: int = 1 << 30,
    provenance: ExpectedProvenance | None = None,
) -> list[MetadataFinding]:
    """Every metadata block left in the file at `path`; an empty list means clean.

    With `provenance`, a PNG's one XMP packet and one C2PA manifest are allowed when they
    are exactly that release's (see the module's docstring)."""
    try:
        data = read_limited(path, DecodeConfig(max_file_bytes=max_file_bytes))
    except DecodeError as exc:
        return [MetadataFinding(kind="unparsed", key=exc.reason, detail=str(exc))]
    return find_identifying_metadata_in(data, provenance=provenance)


def find_identifying_metadata_in(
    data: bytes, *, provenance: ExpectedProvenance | None = None
) -> list[MetadataFinding]:
    """As `find_identifying_metadata`, over bytes already in memory."""
    allowed: list[tuple[int, int]] = []  # byte ranges of our own provenance, left out of the scan
    if data.startswith(_PNG_SIGNATURE):
        findings = list(_png(data, provenance, allowed))
    elif data.startswith(b"\xff\xd8"):
        findings = list(_jpeg(data))
    elif looks_like_dicom(data):
        findings = list(_dicom(data))
    else:
        findings = list(_other(data))
    for lo, hi in sorted(allowed, reverse=True):
        data = data[:lo] + data[hi:]
    return findings + _signatures(data, findings)


_OUR_XMP_PREFIX = XMP_PNG_KEY + b"\x00\x00\x00\x00\x00"  # uncompressed, no language


def _png(
    data: bytes, provenance: ExpectedProvenance | None, allowed: list[tuple[int, int]]
) -> Iterator[MetadataFinding]:
    pos = len(_PNG_SIGNATURE)
    seen: set[bytes] = set()
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length:
            yield MetadataFinding(kind="unparsed", key=_text(ctype), detail="chunk runs past end")
            return
        span = (pos, pos + 12 + length)
        pos += 12 + length
        if provenance is not None and ctype == b"iTXt" and b"xmp" not in seen and (
            body.startswith(_OUR_XMP_PREFIX) and is_our_xmp(body[len(_OUR_XMP_PREFIX) :])
        ):
            seen.add(b"xmp")
            allowed.append(span)
        elif ctype == b"caBX":
            problems = manifest_problems(data, provenance) if ctype not in seen else [
                "a second C2PA store"]
            seen.add(ctype)
            for problem in problems:
                yield MetadataFinding(kind="c2pa", key="caBX", detail=problem)
            if not problems:
                allowed.append(span)
        elif ctype in (b"tEXt", b"zTXt", b"iTXt"):
            keyword = body.split(b"\x00", 1)[0]
            yield MetadataFinding(
                kind="png_text", key=_text(keyword), detail=f"{ctype.decode()} {length} bytes"
            )
        elif ctype == b"eXIf":
            yield from _exif(body, "eXIf")
        elif ctype == b"iCCP":
            yield MetadataFinding(
                kind="icc_profile", key=_text(body.split(b"\x00", 1)[0]), detail=f"{length} bytes"
            )
        elif ctype == b"tIME":
            yield MetadataFinding(kind="png_time", key="tIME", detail="modification time")
        elif ctype not in _PNG_HARMLESS:
            yield MetadataFinding(kind="png_chunk", key=_text(ctype), detail=f"{length} bytes")
        if ctype == b"IEND":
            if pos < len(data):
                yield MetadataFinding(
                    kind="trailing_data", key="after IEND", detail=f"{len(data) - pos} bytes"
                )
            return
    yield MetadataFinding(kind="unparsed", key="PNG", detail="no IEND chunk")


def _jpeg(data: bytes) -> Iterator[MetadataFinding]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            yield MetadataFinding(kind="unparsed", key="JPEG", detail=f"no marker at byte {pos}")
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers
            pos += 2
            continue
        if marker == 0xD9:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xDA:  # start of scan: entropy data follows up to EOI
            end = data.find(b"\xff\xd9", pos + 2 + length)
            if end < 0:
                yield MetadataFinding(kind="unparsed", key="JPEG", detail="no end-of-image marker")
                return
            if end + 2 < len(data):
                yield MetadataFinding(
                    kind="trailing_data", key="after EOI", detail=f"{len(data) - end - 2} bytes"
                )
            return
        yield from _jpeg_segment(marker, body)
        pos += 2 + length
    yield MetadataFinding(kind="unparsed", key="JPEG", detail="no start-of-scan marker")


def _jpeg_segment(marker: int, body: bytes) -> Iterator[MetadataFinding]:
    size = f"{len(body)} bytes"
    if marker == 0xFE:
        yield MetadataFinding(kind="comment", key="COM", detail=size)
    elif marker == 0xE1 and body.startswith(_EXIF_SIGNATURE):
        yield from _exif(body, "APP1")
    elif marker == 0xE1 and body.startswith(b"http://ns.adobe.com/"):
        yield MetadataFinding(kind="xmp", key="APP1", detail=size)
    elif marker == 0xE2 and body.startswith(b"ICC_PROFILE\x00"):
        yield MetadataFinding(kind="icc_profile", key="APP2", detail=size)
    elif marker == 0xED:
        yield MetadataFinding(kind="iptc", key="APP13", detail=size)
    elif marker == 0xE0 and body.startswith((b"JFIF\x00", b"JFXX\x00")) and len(body) <= 16:
        return  # a bare JFIF header (version, density), no thumbnail
    elif marker == 0xEE and body.startswith(b"Adobe"):
        return  # APP14 Adobe: colour transform flag only
    elif 0xE0 <= marker <= 0xEF:
        yield MetadataFinding(kind="jpeg_app", key=f"APP{marker - 0xE0}", detail=size)


def _exif(body: bytes, where: str) -> Iterator[MetadataFinding]:
    yield MetadataFinding(kind="exif", key=where, detail=f"{len(body)} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exif = Image.Exif()
            exif.load(body)
            gps = exif.get_ifd(_GPS_IFD)
    except Exception as exc:
        yield MetadataFinding(kind="unparsed", key=f"{where} EXIF", detail=short_error(exc))
        return
    if gps:
        yield MetadataFinding(kind="exif_gps", key=where, detail=f"{len(gps)} GPS tags")


def _dicom(data: bytes) -> Iterator[MetadataFinding]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
            elements = list(ds.iterall())
    except Exception as exc:
        yield MetadataFinding(kind="unparsed", key="DICOM", detail=short_error(exc))
        return
    yield MetadataFinding(kind="dicom_dataset", key="DICOM", detail=f"{len(elements)} elements")
    for elem in elements:
        if elem.value in (None, "", b"") or elem.tag.group == 0x0002:
            continue
        keyword = elem.keyword or tag_keyword(int(elem.tag))
        if (
            elem.tag.group == 0x0010
            or elem.tag.is_private
            or elem.VR in _DICOM_IDENTIFYING_VRS
            or keyword in _DICOM_IDENTIFYING_KEYWORDS
        ):
            yield MetadataFinding(kind="dicom_tag", key=keyword, detail=f"VR {elem.VR}")


def _other(data: bytes) -> Iterator[MetadataFinding]:
    """Formats we do not walk ourselves: ask Pillow what it sees, and fail closed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                info = dict(im.info)
                exif = im.getexif()
                fmt = im.format or "image"
    except Exception as exc:
        yield MetadataFinding(kind="unparsed", key="unknown", detail=short_error(exc))
        return
    if exif:
        yield MetadataFinding(kind="exif", key=fmt, detail=f"{len(exif)} tags")
        if exif.get_ifd(_GPS_IFD):
            yield MetadataFinding(kind="exif_gps", key=fmt)
    for key in ("xmp", "XML:com.adobe.xmp", "icc_profile", "comment", "exif"):
        if info.get(key) and not (key == "exif" and exif):
            kind = {"XML:com.adobe.xmp": "xmp"}.get(key, key)
            yield MetadataFinding(kind=kind, key=fmt, detail=f"{len(info[key])} bytes")


def _signatures(data: bytes, found: list[MetadataFinding]) -> list[MetadataFinding]:
    """EXIF or XMP signatures anywhere in the bytes that the structured walk did not see
    (appended after the image, inside an unknown chunk, in a compressed text chunk)."""
    kinds = {f.kind for f in found}
    haystacks = [data, *_inflated_png_text(data)]
    extra: list[MetadataFinding] = []
    if "exif" not in kinds and any(_EXIF_SIGNATURE in h for h in haystacks):
        extra.append(MetadataFinding(kind="exif", key="embedded", detail="EXIF signature in bytes"))
    if "xmp" not in kinds and any(sig in h for h in haystacks for sig in _XMP_SIGNATURES):
        extra.append(MetadataFinding(kind="xmp", key="embedded", detail="XMP signature in bytes"))
    return extra


def _inflated_png_text(data: bytes, limit: int = 1 << 20) -> list[bytes]:
    """Decompressed zTXt bodies (bounded), where an XMP packet may hide from a byte scan."""
    if not data.startswith(_PNG_SIGNATURE):
        return []
    out: list[bytes] = []
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        if ctype == b"zTXt":
            body = data[pos + 8 : pos + 8 + length]
            packed = body.split(b"\x00", 1)[-1][1:]
            try:
                out.append(zlib.decompressobj().decompress(packed, limit))
            except zlib.error:
                pass
        pos += 12 + length
    return out


def _text(raw: bytes) -> str:
    return raw[:80].decode("latin-1", "replace")
