"""XMP packets of a JPEG or PNG, found by structure and parsed without entity expansion.

Ingest reads a source's XMP before decoding strips it, for two declarations: the PLUS
Data Mining property (``plus:DataMining``, e.g. ``DMI-PROHIBITED-AIMLTRAINING``), a
do-not-train opt-out, and IPTC's ``Iptc4xmpExt:DigitalSourceType``, which marks
AI-generated images. The release gate reads our own packet back the same way.

Where packets live:
- JPEG: APP1 ``http://ns.adobe.com/xap/1.0/`` (the standard packet) and APP1
  ``http://ns.adobe.com/xmp/extension/`` (extended XMP: a packet over 64 KB split into
  chunks keyed by a GUID and an offset, which Pillow's ``info['xmp']`` does not show);
- PNG: an iTXt (possibly compressed) chunk keyed ``XML:com.adobe.xmp``, also tEXt/zTXt
  under that key, which some writers use;
- anywhere else in the bytes (after the image end, inside an unknown chunk): a raw
  ``<x:xmpmeta>`` element, found by a byte scan, because a declaration hidden there
  still says what its author meant.

Parsing uses defusedxml: a packet with an entity declaration, an external reference or
broken XML is reported in `XmpReading.errors` rather than expanded, and the caller
decides (ingest fails closed). Sizes are bounded before anything is inflated.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ConfigDict

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
DCTERMS_NS = "http://purl.org/dc/terms/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMP_PNG_KEY = b"XML:com.adobe.xmp"
MAX_PACKET_BYTES = 4 << 20
"""Larger packets (or extended XMP totals) are reported, not parsed: XMP of a medical
image is a few KB, and the bound keeps a hostile chunk from costing memory."""

_STANDARD = b"http://ns.adobe.com/xap/1.0/\x00"
_EXTENDED = b"http://ns.adobe.com/xmp/extension/\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RAW_OPEN, _RAW_CLOSE = b"<x:xmpmeta", b"</x:xmpmeta>"
MAX_RAW_PACKETS = 8


class XmpReading(BaseModel):
    """What the XMP of one file declares (values as written, in file order)."""

    model_config = ConfigDict(frozen=True)

    packets: int = 0
    data_mining: tuple[str, ...] = ()
    """Values of ``plus:DataMining``."""
    digital_source_types: tuple[str, ...] = ()
    """Values of ``Iptc4xmpExt:DigitalSourceType``."""
    remote_manifests: tuple[str, ...] = ()
    """Values of ``dcterms:provenance``: where C2PA puts the address of a manifest kept
    outside the file (a remote manifest)."""
    errors: tuple[str, ...] = ()
    """Packets that could not be read, and why (never their content)."""


def read_xmp(data: bytes) -> XmpReading:
    """Every XMP packet of the JPEG or PNG `data`, parsed; never raises."""
    packets, errors = xmp_packets(data)
    mining: list[str] = []
    sources: list[str] = []
    remote: list[str] = []
    for where, packet in packets:
        try:
            root = parse_packet(packet)
        except ValueError as exc:
            errors.append(f"{where}: {exc}")
            continue
        mining += property_values(root, PLUS_NS, "DataMining")
        sources += property_values(root, IPTC_EXT_NS, "DigitalSourceType")
        remote += property_values(root, DCTERMS_NS, "provenance")
    return XmpReading(
        packets=len(packets),
        data_mining=tuple(mining),
        digital_source_types=tuple(sources),
        remote_manifests=tuple(remote),
        errors=tuple(errors),
    )


def xmp_packets(data: bytes) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(where, packet) for every packet, and the problems met finding them."""
    errors: list[str] = []
    spans: list[tuple[int, int]] = []  # the segments and chunks read by structure
    if data.startswith(_PNG_SIGNATURE):
        found = list(_png_packets(data, errors, spans))
    elif data.startswith(b"\xff\xd8"):
        found = list(_jpeg_packets(data, errors, spans))
    else:
        found = []
    found += _raw_packets(data, spans, errors)
    return found, errors


def parse_packet(packet: bytes) -> Element:
    """The packet's root element; ValueError (one line) for anything defusedxml refuses."""
    if len(packet) > MAX_PACKET_BYTES:
        raise ValueError(f"packet of {len(packet)} bytes is over {MAX_PACKET_BYTES}")
    text = packet.strip(b"\x00 \t\r\n")
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    try:
        return SafeET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise ValueError(f"refused ({type(exc).__name__})") from exc
    except SafeET.ParseError as exc:
        raise ValueError(f"not well-formed XML ({exc})") from exc


def property_values(root: Element, namespace: str, name: str) -> list[str]:
    """The values of one XMP property however RDF spells it: an attribute of an
    rdf:Description, an element's text, its rdf:resource, or the rdf:li of a container."""
    key = f"{{{namespace}}}{name}"
    values: list[str] = []
    for element in root.iter():
        if key in element.attrib:
            values.append(element.attrib[key].strip())
        if element.tag != key:
            continue
        resource = element.attrib.get(f"{{{RDF_NS}}}resource")
        if resource:
            values.append(resource.strip())
        items = [li for li in element.iter(f"{{{RDF_NS}}}li")]
        values += [(li.text or li.attrib.get(f"{{{RDF_NS}}}resource", "")).strip() for li in items]
        if not items and (element.text or "").strip():
            values.append((element.text or "").strip())
        if not items:  # a qualified value: <rdf:Description rdf:value="..."> or <rdf:value>
            values += _rdf_values(element)
    return [v for v in values if v]


def _rdf_values(element: Element) -> list[str]:
    key = f"{{{RDF_NS}}}value"
    found = [e.attrib[key].strip() for e in element.iter() if key in e.attrib]
    found += [(e.text or e.attrib.get(f"{{{RDF_NS}}}resource", "")).strip()
              for e in element.iter(key)]
    return found


def _jpeg_packets(
    data: bytes, errors: list[str], spans: list[tuple[int, int]]
) -> Iterator[tuple[str, bytes]]:
    extended: dict[bytes, dict[int, bytes]] = {}
    totals: dict[bytes, int] = {}
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more APPn
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        span = (pos, pos + 2 + length)
        pos += 2 + length
        if marker != 0xE1:
            continue
        if body.startswith(_STANDARD):
            spans.append(span)
            yield "JPEG APP1", body[len(_STANDARD) :]
        elif body.startswith(_EXTENDED) and len(body) >= len(_EXTENDED) + 40:
            spans.append(span)
            head = body[len(_EXTENDED) : len(_EXTENDED) + 40]
            guid = head[:32]
            total, offset = struct.unpack(">II", head[32:40])
            totals[guid] = total
            extended.setdefault(guid, {})[offset] = body[len(_EXTENDED) + 40 :]
    for guid, parts in extended.items():
        joined = b"".join(parts[o] for o in sorted(parts))
        if totals[guid] > MAX_PACKET_BYTES or len(joined) != totals[guid]:
            errors.append(f"extended XMP {guid[:8].decode('latin-1')}: "
                          f"{len(joined)} of {totals[guid]} bytes present")
            if len(joined) > MAX_PACKET_BYTES:
                continue
        yield "JPEG extended XMP", joined


def _png_packets(
    data: bytes, errors: list[str], spans: list[tuple[int, int]]
) -> Iterator[tuple[str, bytes]]:
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        span = (pos, pos + 12 + length)
        pos += 12 + length
        if ctype not in (b"iTXt", b"tEXt", b"zTXt"):
            if ctype == b"IEND":
                return
            continue
        keyword, _, rest = body.partition(b"\x00")
        if keyword != XMP_PNG_KEY:
            continue
        spans.append(span)
        try:
            yield f"PNG {ctype.decode()}", _png_text(ctype, rest)
        except ValueError as exc:
            errors.append(f"PNG {ctype.decode()} {XMP_PNG_KEY.decode()}: {exc}")


def _png_text(ctype: bytes, rest: bytes) -> bytes:
    if ctype == b"tEXt":
        return rest
    if ctype == b"zTXt":
        return _inflate(rest[1:])
    if len(rest) < 2:
        raise ValueError("iTXt chunk too short")
    compressed = rest[0] == 1
    _lang, _, rest = rest[2:].partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    return _inflate(text) if compressed else text


def _inflate(packed: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(packed, MAX_PACKET_BYTES + 1)
    except zlib.error as exc:
        raise ValueError(f"does not inflate ({exc})") from exc
    if len(out) > MAX_PACKET_BYTES:
        raise ValueError(f"inflates past {MAX_PACKET_BYTES} bytes")
    if not inflater.eof:
        raise ValueError("does not inflate (the stream is cut short)")
    return out


def _raw_packets(
    data: bytes, spans: list[tuple[int, int]], errors: list[str]
) -> list[tuple[str, bytes]]:
    """Packets outside the structural segments (after the image end, in an EXIF or unknown
    chunk, in a DICOM): an unterminated one or more than MAX_RAW_PACKETS is an error, not
    silence, because what we did not read may be the declaration."""
    found: list[tuple[str, bytes]] = []
    start = data.find(_RAW_OPEN)
    while start >= 0:
        end = data.find(_RAW_CLOSE, start)
        inside = next((hi for lo, hi in spans if lo <= start < hi), None)
        if inside is not None:
            start = data.find(_RAW_OPEN, max(inside, start + 1))
            continue
        if end < 0:
            errors.append(f"raw bytes: {_RAW_OPEN.decode()} at byte {start} has no end")
            break
        if len(found) == MAX_RAW_PACKETS:
            errors.append(f"raw bytes: more than {MAX_RAW_PACKETS} XMP packets")
            break
        found.append(("raw bytes", data[start : end + len(_RAW_CLOSE)]))
        start = data.find(_RAW_OPEN, end)
    return found
