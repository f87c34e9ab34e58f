"""Real files that declare things about themselves, for the provenance tests.

XMP packets written the ways writers write them (an attribute, an rdf:resource, element
text), put into JPEG by Pillow's `save(xmp=...)` or as extended XMP APP1 segments made
here byte by byte, and into PNG as an iTXt (compressed or not); DICOM with
BurnedInAnnotation; tampered signed files. C2PA signing is `tests.c2pa_certs`.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pydicom
from PIL import Image, PngImagePlugin

from tests import files as f

PLUS = "http://ns.useplus.org/ldf/xmp/1.0/"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
PROHIBITED = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"
ALLOWED = "http://ns.useplus.org/ldf/vocab/DMI-ALLOWED"
SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def xmp_packet(*, data_mining: str | None = None, source_type: str | None = None,
               form: str = "resource", padding: int = 0, extra: str = "") -> bytes:
    """A packet with `plus:DataMining` and/or `Iptc4xmpExt:DigitalSourceType`, written as
    attributes (`form="attribute"`), rdf:resource (`"resource"`) or element text (`"text"`)."""
    attrs, elements = [], []
    for prefix, name, value in (("plus", "DataMining", data_mining),
                                ("Iptc4xmpExt", "DigitalSourceType", source_type)):
        if value is None:
            continue
        if form == "attribute":
            attrs.append(f'{prefix}:{name}="{value}"')
        elif form == "resource":
            elements.append(f'<{prefix}:{name} rdf:resource="{value}"/>')
        else:
            elements.append(f"<{prefix}:{name}>{value}</{prefix}:{name}>")
    body = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:plus="{PLUS}" xmlns:Iptc4xmpExt="{IPTC_EXT}" '
        f'xmlns:dc="http://purl.org/dc/elements/1.1/" {" ".join(attrs)}>'
        f'{"".join(elements)}{extra}'
        "</rdf:Description></rdf:RDF></x:xmpmeta>\n"
        + " " * padding
        + '<?xpacket end="w"?>'
    )
    return body.encode("utf-8")


def billion_laughs(depth: int = 9) -> bytes:
    """The classic entity bomb, inside an xmpmeta element (a few GB if expanded)."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, depth + 1)]
    return (f'<?xml version="1.0"?><!DOCTYPE x:xmpmeta [{"".join(entities)}]>'
            f'<x:xmpmeta xmlns:x="adobe:ns:meta/">&lol{depth};</x:xmpmeta>').encode()


def image(seed: int = 0) -> Image.Image:
    """A small RGB test card, different per seed (so files are not duplicates)."""
    im = f.pattern()
    im.putpixel((1 + seed % 40, 2), (seed % 251, 7, 9))
    return im


def jpeg(seed: int = 0, **params: object) -> bytes:
    return f.encode(image(seed), "JPEG", quality=90, **params)


def png(seed: int = 0, **params: object) -> bytes:
    return f.encode(image(seed), "PNG", **params)


MIMES = {"JPEG": "image/jpeg", "PNG": "image/png"}


def plain(fmt: str, seed: int = 0) -> bytes:
    """A JPEG or PNG that declares nothing."""
    return jpeg(seed) if fmt == "JPEG" else png(seed)


def jpeg_with_xmp(packet: bytes, seed: int = 0) -> bytes:
    return jpeg(seed, xmp=packet)


def png_with_xmp(packet: bytes, *, compressed: bool, seed: int = 0) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet.decode("utf-8"), zip=compressed)
    return png(seed, pnginfo=info)


def app1(body: bytes) -> bytes:
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def extended_xmp_segments(packet: bytes, *, chunk: int = 60_000,
                          drop: int | None = None) -> tuple[str, list[bytes]]:
    """The GUID and the APP1 segments of `packet` as extended XMP (chunk `drop` left out)."""
    guid = hashlib.md5(packet).hexdigest().upper()
    segments = []
    for i, offset in enumerate(range(0, len(packet), chunk)):
        if i == drop:
            continue
        head = b"http://ns.adobe.com/xmp/extension/\x00" + guid.encode()
        segments.append(app1(head + struct.pack(">II", len(packet), offset)
                             + packet[offset : offset + chunk]))
    return guid, segments


def jpeg_with_extended_xmp(extended: bytes, *, drop: int | None = None, seed: int = 0) -> bytes:
    """A JPEG whose standard packet names extended XMP (`xmpNote:HasExtendedXMP`) that
    holds `extended`, split into APP1 segments written here (Pillow cannot)."""
    guid, segments = extended_xmp_segments(extended, drop=drop)
    note = (f'<xmpNote:HasExtendedXMP xmlns:xmpNote="http://ns.adobe.com/xmp/note/">'
            f"{guid}</xmpNote:HasExtendedXMP>")
    standard = app1(b"http://ns.adobe.com/xap/1.0/\x00" + xmp_packet(extra=note))
    plain = jpeg(seed)
    return plain[:2] + standard + b"".join(segments) + plain[2:]


def png_with_chunk(data: bytes, ctype: bytes, body: bytes) -> bytes:
    """`data` (a PNG) with one more chunk just before IEND."""
    at = data.rindex(b"IEND") - 4
    return data[:at] + f.png_chunk(ctype, body) + data[at:]


def tamper(signed: bytes) -> bytes:
    """One byte of the pixel data changed after signing, the file still decodable: a
    JPEG scan byte flipped, or a PNG's IDAT inflated, one filtered byte changed, deflated
    again (CRC fixed). The manifest's data hash no longer holds."""
    out = bytearray(signed)
    if not signed.startswith(b"\x89PNG"):
        at = out.rindex(b"\xff\xda") + 20
        out[at] = 0x00 if out[at] != 0x00 else 0x11  # never 0xFF: no new marker
        return bytes(out)
    at = signed.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", signed[at : at + 4])
    raw = bytearray(zlib.decompress(signed[at + 8 : at + 8 + length]))
    raw[1] ^= 0x55  # the first pixel byte of the first row (raw[0] is its filter type)
    chunk = f.png_chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    return signed[:at] + chunk + signed[at + 12 + length :]


def dicom_burned_in(value: str | None, *, patient_id: str = "PAT-0001") -> bytes:
    """A real Part 10 DICOM with BurnedInAnnotation = `value` (None: the attribute absent)."""
    ds = pydicom.dcmread(io.BytesIO(f.dicom(np.arange(64, dtype=np.uint16).reshape(8, 8) * 50)))
    ds.PatientID = patient_id
    if value is not None:
        ds.BurnedInAnnotation = value
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# Hostile and hidden shapes (issue 14 review): nesting, many packets, XMP where no reader
# looked, C2PA stores moved, doubled or damaged.

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def bare_packet(inner: str) -> bytes:
    """An xmpmeta packet around `inner` (placed in an rdf:Description with plus:)."""
    return (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{RDF}">'
            f'<rdf:Description xmlns:plus="{PLUS}" xmlns:Iptc4xmpExt="{IPTC_EXT}">{inner}'
            "</rdf:Description></rdf:RDF></x:xmpmeta>").encode()


def nested_data_mining(depth: int, innermost: str = "x") -> bytes:
    """`depth` plus:DataMining elements inside each other (the reviewer's quadratic one)."""
    return bare_packet("<plus:DataMining>" * depth + innermost + "</plus:DataMining>" * depth)


def text_chunk(keyword: bytes, text: bytes, *, ctype: bytes = b"iTXt",
               compressed: bool = False) -> bytes:
    """The body of a PNG tEXt, zTXt or iTXt chunk holding `text` under `keyword`."""
    if ctype == b"tEXt":
        return keyword + b"\x00" + text
    if ctype == b"zTXt":
        return keyword + b"\x00\x00" + zlib.compress(text)
    flag = b"\x01\x00" if compressed else b"\x00\x00"
    return keyword + b"\x00" + flag + b"\x00\x00" + (zlib.compress(text) if compressed else text)


def raw_profile(payload: bytes, name: str = "xmp") -> bytes:
    """ImageMagick's and exiftool's ``Raw profile type NAME`` text: the name, the length,
    then hex in lines of 72 characters."""
    hexed = payload.hex()
    lines = "\n".join(hexed[i : i + 72] for i in range(0, len(hexed), 72))
    return f"\n{name}\n{len(payload):8d}\n{lines}\n".encode()


def png_after_end(data: bytes, *chunks: bytes) -> bytes:
    """`data` (a PNG) with whole chunks appended after IEND."""
    return data + b"".join(chunks)


def png_chunk_list(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole chunk) of a PNG, in order."""
    pos, out = 8, []
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        out.append((ctype, data[pos : pos + 12 + length]))
        pos += 12 + length
    return out


def png_from_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(c for _, c in chunks)


def png_store_chunk(signed: bytes) -> bytes:
    """The caBX chunk (whole) of a signed PNG."""
    return next(c for t, c in png_chunk_list(signed) if t == b"caBX")


def png_without_store(signed: bytes) -> list[tuple[bytes, bytes]]:
    return [(t, c) for t, c in png_chunk_list(signed) if t != b"caBX"]


def jpeg_head_segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """(marker, whole segment) before the first scan, and where the scan starts."""
    pos, out = 2, []
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        out.append((data[pos + 1], data[pos : pos + 2 + length]))
        pos += 2 + length
    return out, pos


def jpeg_store(signed: bytes) -> bytes:
    """The APP11 segments (the C2PA store) of a signed JPEG, joined."""
    return b"".join(s for m, s in jpeg_head_segments(signed)[0] if m == 0xEB)


def jpeg_without_store(signed: bytes) -> tuple[bytes, bytes]:
    """(SOI and every segment but APP11, the scan to EOI) of a signed JPEG."""
    segments, scan = jpeg_head_segments(signed)
    return signed[:2] + b"".join(s for m, s in segments if m != 0xEB), signed[scan:]


def fix_png_crcs(data: bytes) -> bytes:
    """`data` with every chunk's CRC recomputed (after bytes were changed in place)."""
    out = bytearray(data)
    pos = 8
    while pos + 8 <= len(out):
        (length,) = struct.unpack(">I", out[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(out[pos + 4 : end])))
        pos = end + 4
    return bytes(out)


def damage_assertion(signed: bytes, label: bytes) -> bytes:
    """`signed` with the first CBOR byte of assertion `label` made a reserved one (0xFC):
    the SDK reads the store but not that assertion (``assertion.cbor.invalid``)."""
    at = signed.index(b"cbor", signed.index(label + b"\x00")) + 4
    out = signed[:at] + b"\xfc" + signed[at + 1 :]
    return fix_png_crcs(out) if out.startswith(b"\x89PNG") else out
