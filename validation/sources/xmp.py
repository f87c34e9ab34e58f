"""XMP packets of a JPEG or PNG, parsed without entity expansion, read in bounded work.

Ingest reads a source's XMP before decoding strips it, for two declarations: the PLUS
Data Mining property (``plus:DataMining``, e.g. ``DMI-PROHIBITED-AIMLTRAINING``), a
do-not-train opt-out, and IPTC's ``Iptc4xmpExt:DigitalSourceType``, which marks
AI-generated images. The release gate reads our own packet back the same way. Where
packets are found is `validation.sources.xmp_places`.

Parsing uses defusedxml: a packet with an entity declaration, an external reference or
broken XML is reported in `XmpReading.errors` rather than expanded, and the caller
decides (ingest fails closed). A packet starting with a UTF-16 byte-order mark is
decoded first. The values are read in one walk of the tree (a property's own text,
rdf:resource, rdf:value and the rdf:li of a direct rdf:Bag/Seq/Alt; never a subtree
again), and a packet deeper than `MAX_DEPTH` or with more than `MAX_ELEMENTS` elements
is an error, as is a file with more than `MAX_PACKETS` packets: a hostile packet must
not cost minutes. Whatever declaration word (`validation.sources.declarations.markers`)
a packet or an inflated text holds beyond the values read is in `XmpReading.unexplained`.
"""

from __future__ import annotations

from collections import Counter
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from pydantic import BaseModel, ConfigDict

from validation.sources.declarations import MAX_MARKERS, Spans, markers, text_markers
from validation.sources.xmp_places import (
    MAX_PACKET_BYTES,
    MAX_RAW_PACKETS,
    XMP_PNG_KEY,
    Places,
    raw_packets,
    structured,
)

__all__ = ["MAX_PACKET_BYTES", "MAX_RAW_PACKETS", "XMP_PNG_KEY", "XmpReading", "parse_packet",
           "property_values", "read_xmp", "xmp_packets"]

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
DCTERMS_NS = "http://purl.org/dc/terms/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
MAX_PACKETS = 16
"""Packets parsed per file (structured, inflated and raw together); more is an error."""
MAX_DEPTH = 64
MAX_ELEMENTS = 100_000
"""A packet nested deeper or with more elements is refused (XMP of an image nests a
handful of levels and holds a few hundred elements)."""

_RDF = {n: f"{{{RDF_NS}}}{n}" for n in ("li", "value", "resource", "Description")}
_CONTAINERS = frozenset(f"{{{RDF_NS}}}{n}" for n in ("Bag", "Seq", "Alt"))
_PROPERTIES = {"data_mining": f"{{{PLUS_NS}}}DataMining",
               "digital_source_types": f"{{{IPTC_EXT_NS}}}DigitalSourceType",
               "remote_manifests": f"{{{DCTERMS_NS}}}provenance"}


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
    spans: tuple[tuple[int, int], ...] = ()
    """Byte ranges of the file read here (XMP segments and chunks, inflated or decoded
    text chunks, raw packets): a declaration word there is accounted for by this reading
    (its values, `unexplained` or `errors`), not by the caller's backstop."""
    unexplained: tuple[str, ...] = ()
    """Declaration words in a packet that none of its values holds, or in inflated text
    outside any packet: where they are and which (never the content around them)."""


class _TooMany(Exception):
    pass


class _Reader:
    """The reading of one file, one packet at a time."""

    def __init__(self) -> None:
        self.places = Places()
        self.packets = 0
        self.values: dict[str, list[str]] = {name: [] for name in _PROPERTIES}
        self.unexplained: list[str] = []

    def packet(self, where: str, packet: bytes) -> None:
        if self.packets == MAX_PACKETS:
            self.places.errors.append(f"more than {MAX_PACKETS} XMP packets")
            raise _TooMany
        self.packets += 1
        try:
            text = _packet_text(packet)
            found = _walk(_parse(text), _PROPERTIES)
        except ValueError as exc:
            self.places.errors.append(f"{where}: {exc}")
            return
        for name, values in found.items():
            self.values[name] += values
        said = Counter(k for name in ("data_mining", "digital_source_types")
                       for v in found[name] for k in text_markers(v).elements())
        words = markers(text)
        stray = Counter(m.kind for m in words) - said
        if len(words) > MAX_MARKERS:
            self.unexplained.append(f"{where}: more than {MAX_MARKERS} declaration words")
        elif stray:
            self.unexplained.append(f"{where}: {', '.join(sorted(stray))} outside "
                                    "plus:DataMining and Iptc4xmpExt:DigitalSourceType")

    def text(self, where: str, blob: bytes) -> None:
        inside: list[tuple[int, int]] = []
        for packet, span in raw_packets(blob, [], self.places.errors, where):
            inside.append(span)
            self.packet(where, packet)
        read, words = Spans(inside), markers(blob)
        stray = sorted({m.kind for m in words if not read.holds(m.pos)})
        if len(words) > MAX_MARKERS:
            self.unexplained.append(f"{where}: more than {MAX_MARKERS} declaration words")
        elif stray:
            self.unexplained.append(f"{where}: {', '.join(stray)} outside any XMP packet")

    def read(self, data: bytes) -> None:
        for found in structured(data, self.places):
            (self.packet if found.packet else self.text)(found.where, found.body)
        for packet, span in raw_packets(data, self.places.spans, self.places.errors):
            self.places.spans.append(span)
            self.packet("raw bytes", packet)


def read_xmp(data: bytes) -> XmpReading:
    """Every XMP packet of the JPEG or PNG `data`, parsed; never raises."""
    reader = _Reader()
    try:
        reader.read(data)
    except _TooMany:
        pass
    return XmpReading(
        packets=reader.packets,
        errors=tuple(reader.places.errors),
        spans=tuple(reader.places.spans),
        unexplained=tuple(reader.unexplained),
        **{name: tuple(values) for name, values in reader.values.items()},
    )


def xmp_packets(data: bytes) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(where, packet) for every packet found by structure or by the raw scan (not those
    inside inflated text), and the problems met finding them; for tests and tools."""
    places = Places()
    found = [(f.where, f.body) for f in structured(data, places) if f.packet]
    found += [("raw bytes", p) for p, _ in raw_packets(data, places.spans, places.errors)]
    return found, places.errors


def parse_packet(packet: bytes) -> Element:
    """The packet's root element; ValueError (one line) for anything defusedxml refuses."""
    return _parse(_packet_text(packet))


def property_values(root: Element, namespace: str, name: str) -> list[str]:
    """The values of one XMP property however RDF spells it: an attribute, an element's
    text, its rdf:resource or rdf:value, or the rdf:li of its rdf:Bag/Seq/Alt. One walk;
    ValueError past `MAX_DEPTH` or `MAX_ELEMENTS`."""
    return _walk(root, {"p": f"{{{namespace}}}{name}"})["p"]


def _packet_text(packet: bytes) -> bytes:
    """The packet as UTF-8 without padding: a UTF-16 one (byte-order mark) is decoded."""
    if len(packet) > MAX_PACKET_BYTES:
        raise ValueError(f"packet of {len(packet)} bytes is over {MAX_PACKET_BYTES}")
    if packet.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return packet.decode("utf-16").strip("\x00 \t\r\n").encode("utf-8")
        except UnicodeError as exc:
            raise ValueError("not UTF-16 after its byte-order mark") from exc
    text = packet.strip(b"\x00 \t\r\n")
    return text[3:] if text.startswith(b"\xef\xbb\xbf") else text


def _parse(text: bytes) -> Element:
    try:
        return SafeET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise ValueError(f"refused ({type(exc).__name__})") from exc
    except SafeET.ParseError as exc:
        raise ValueError(f"not well-formed XML ({exc})") from exc


def _walk(root: Element, properties: dict[str, str]) -> dict[str, list[str]]:
    """The values of each property (name -> Clark tag), visiting each element once."""
    tags = {tag: name for name, tag in properties.items()}
    found: dict[str, list[str]] = {name: [] for name in properties}
    stack: list[tuple[Element, int]] = [(root, 1)]
    visited = 0
    while stack:
        element, depth = stack.pop()
        visited += 1
        if visited > MAX_ELEMENTS:
            raise ValueError(f"more than {MAX_ELEMENTS} elements")
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} elements")
        for tag, name in tags.items():
            if tag in element.attrib:
                found[name].append(element.attrib[tag])
        if element.tag in tags:
            found[tags[element.tag]] += _own_values(element)
        stack.extend((child, depth + 1) for child in reversed(element))
    return {name: [v.strip() for v in values if v and v.strip()]
            for name, values in found.items()}


def _own_values(element: Element) -> list[str | None]:
    """A property element's values: its text, rdf:resource, rdf:value (attribute or
    child), a nested rdf:Description's, the items of a direct rdf:Bag/Seq/Alt."""
    values = _item(element)
    for child in element:
        if child.tag in _CONTAINERS:
            values += [v for li in child if li.tag == _RDF["li"] for v in _item(li)]
        elif child.tag == _RDF["Description"]:
            values += _item(child, text=False)
    return values


def _item(element: Element, *, text: bool = True) -> list[str | None]:
    """Text, rdf:resource and rdf:value of one value node (its direct children only)."""
    values = [element.text if text else None, element.attrib.get(_RDF["resource"]),
              element.attrib.get(_RDF["value"])]
    for child in element:
        if child.tag == _RDF["value"]:
            values += [child.text, child.attrib.get(_RDF["resource"])]
    return values
