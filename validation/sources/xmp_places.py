"""Where XMP lives in a JPEG or PNG, found by structure, one piece at a time, within bounds.

- JPEG: APP1 ``http://ns.adobe.com/xap/1.0/`` (the standard packet) and APP1
  ``http://ns.adobe.com/xmp/extension/`` (extended XMP: a packet over 64 KB split into
  chunks keyed by a GUID and an offset, which Pillow's ``info['xmp']`` does not show);
- PNG: a text chunk (iTXt, tEXt, zTXt; compressed or not; before or after IEND) keyed
  ``XML:com.adobe.xmp``; ImageMagick's and exiftool's ``Raw profile type xmp`` /
  ``Raw profile type APP1`` (hex text, usually in a zTXt); and every other compressed
  text chunk, inflated, because its words cannot be seen in the file's bytes;
- anywhere in the bytes (after the image end, in an EXIF or unknown chunk, in inflated
  text): a raw ``<x:xmpmeta>`` element (`raw_packets`).

A hostile file decides how much of this there is, so everything is bounded: a packet is
at most `MAX_PACKET_BYTES`; all inflated text of one file at most `MAX_INFLATED_BYTES`
(an oversize chunk or a spent budget is an error, never a silent skip); at most
`MAX_TEXT_CHUNKS` compressed chunks are inflated; pieces are yielded one at a time so
that only one inflated packet is alive at once; the raw scan finds the segment holding a
hit by bisection, and reports more than `MAX_RAW_PACKETS` as an error.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from validation.sources.containers import JPEG_SOI, PNG_SIGNATURE, jpeg_segments, png_chunks
from validation.sources.declarations import Spans

XMP_PNG_KEY = b"XML:com.adobe.xmp"
MAX_PACKET_BYTES = 4 << 20
"""Larger packets (or extended XMP totals) are reported, not parsed: XMP of a medical
image is a few KB, and the bound keeps a hostile chunk from costing memory."""
MAX_INFLATED_BYTES = 8 << 20
"""All text inflated from one file's compressed chunks (or decoded from hex profiles)."""
MAX_TEXT_CHUNKS = 64
"""Compressed text chunks inflated per file; more is an error."""
MAX_RAW_PACKETS = 8
MAX_EXTENDED = 16
"""Extended XMP packets (GUIDs) per JPEG; a file has one."""

STANDARD = b"http://ns.adobe.com/xap/1.0/\x00"
_EXTENDED = b"http://ns.adobe.com/xmp/extension/\x00"
_RAW_OPEN, _RAW_CLOSE = b"<x:xmpmeta", b"</x:xmpmeta>"
_RAW_PROFILE = b"Raw profile type "
_TEXT_CHUNKS = (b"iTXt", b"tEXt", b"zTXt")


@dataclass(frozen=True)
class Found:
    """One thing to read: an XMP packet, or inflated / decoded text that may hide one."""

    where: str
    body: bytes
    packet: bool
    """True: `body` is an XMP packet. False: text to scan for packets and declarations."""


@dataclass
class Places:
    """What finding the pieces of one file met: problems, the byte ranges read by
    structure, what is left of the inflate budget."""

    errors: list[str] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    budget: int = MAX_INFLATED_BYTES
    inflated: int = 0
    exhausted: bool = False


def structured(data: bytes, places: Places) -> Iterator[Found]:
    """The pieces of a JPEG or PNG in file order (nothing for other bytes)."""
    if data.startswith(PNG_SIGNATURE):
        yield from _png(data, places)
    elif data.startswith(JPEG_SOI):
        yield from _jpeg(data, places)


def raw_packets(blob: bytes, read: list[tuple[int, int]], errors: list[str],
                where: str = "raw bytes") -> Iterator[tuple[bytes, tuple[int, int]]]:
    """(packet, span) of each ``<x:xmpmeta>`` element of `blob` outside the ranges `read`
    by structure; an unterminated one or more than MAX_RAW_PACKETS is an error, not
    silence, because what we did not read may be the declaration."""
    covered = Spans(read)
    count = 0
    start = blob.find(_RAW_OPEN)
    while start >= 0:
        inside = covered.end_of(start)
        if inside is not None:
            start = blob.find(_RAW_OPEN, inside)
            continue
        end = blob.find(_RAW_CLOSE, start)
        if end < 0:
            errors.append(f"{where}: {_RAW_OPEN.decode()} at byte {start} has no end")
            return
        if count == MAX_RAW_PACKETS:
            errors.append(f"{where}: more than {MAX_RAW_PACKETS} XMP packets")
            return
        count += 1
        yield blob[start : end + len(_RAW_CLOSE)], (start, end + len(_RAW_CLOSE))
        start = blob.find(_RAW_OPEN, end)


def _jpeg(data: bytes, places: Places) -> Iterator[Found]:
    extended: dict[bytes, dict[int, bytes]] = {}
    totals: dict[bytes, int] = {}
    sizes: dict[bytes, int] = {}
    for seg in jpeg_segments(data):
        if seg.kind != b"\xe1":
            continue
        if data.startswith(STANDARD, seg.start):
            places.spans.append(seg.span)
            yield Found("JPEG APP1", data[seg.start + len(STANDARD) : seg.end], True)
        elif data.startswith(_EXTENDED, seg.start) and seg.end - seg.start >= len(_EXTENDED) + 40:
            places.spans.append(seg.span)
            head = data[seg.start + len(_EXTENDED) : seg.start + len(_EXTENDED) + 40]
            guid = head[:32]
            total, offset = struct.unpack(">II", head[32:40])
            totals[guid] = total
            part = data[seg.start + len(_EXTENDED) + 40 : seg.end]
            sizes[guid] = sizes.get(guid, 0) + len(part)
            if sizes[guid] <= MAX_PACKET_BYTES:  # past it, only the size is kept
                extended.setdefault(guid, {})[offset] = part
            else:
                extended.pop(guid, None)
    if len(totals) > MAX_EXTENDED:
        places.errors.append(f"more than {MAX_EXTENDED} extended XMP packets")
        return
    for guid, total in totals.items():
        parts = extended.pop(guid, {})
        present = sizes[guid] if not parts else sum(len(p) for p in parts.values())
        if total > MAX_PACKET_BYTES or present != total:
            places.errors.append(f"extended XMP {guid[:8].decode('latin-1')}: "
                                 f"{present} of {total} bytes present")
            if not parts:
                continue
        yield Found("JPEG extended XMP", b"".join(parts[o] for o in sorted(parts)), True)


def _png(data: bytes, places: Places) -> Iterator[Found]:
    for chunk in png_chunks(data):
        if chunk.kind not in _TEXT_CHUNKS:
            continue
        ctype = chunk.kind.decode()
        keyword, _, rest = data[chunk.start : chunk.end].partition(b"\x00")
        after = " after IEND" if chunk.after_end else ""
        compressed = chunk.kind == b"zTXt" or (chunk.kind == b"iTXt" and rest[:1] == b"\x01")
        if keyword == XMP_PNG_KEY:
            where = f"PNG {ctype}{after}"
        elif keyword.startswith(_RAW_PROFILE) or compressed:
            where = f"PNG {ctype} {keyword[:40].decode('latin-1')!r}{after}"
        else:  # plain text: in the file's bytes, where the raw scan and the backstop see it
            continue
        places.spans.append(chunk.span)
        try:
            text = _png_text(chunk.kind, rest, places, packet=keyword == XMP_PNG_KEY)
            if keyword == XMP_PNG_KEY:
                yield Found(where, text, True)
            elif keyword.startswith(_RAW_PROFILE):
                yield _profile(where, keyword[len(_RAW_PROFILE) :].lower(), text)
            else:
                yield Found(f"{where} (inflated)", text, False)
        except _Skipped:
            continue
        except ValueError as exc:
            places.errors.append(f"{where}: {exc}" if keyword != XMP_PNG_KEY
                                 else f"PNG {ctype} {XMP_PNG_KEY.decode()}{after}: {exc}")


def _profile(where: str, name: bytes, text: bytes) -> Found:
    """A raw profile: ``"\\n<name>\\n<length>\\n<hex lines>"``; XMP (or an APP1 that holds
    the standard packet) is a packet, anything else text to scan."""
    parts = text.lstrip(b"\n").split(b"\n", 2)
    if len(parts) < 3 or not parts[1].strip().isdigit():
        raise ValueError("not a raw profile (name, length, hex)")
    length = int(parts[1])
    if length > MAX_PACKET_BYTES:
        raise ValueError(f"raw profile of {length} bytes is over {MAX_PACKET_BYTES}")
    try:
        body = bytes.fromhex(parts[2].decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError("raw profile is not hex") from exc
    if len(body) != length:
        raise ValueError(f"raw profile holds {len(body)} of {length} bytes")
    if name == b"xmp":
        return Found(f"{where} (hex)", body, True)
    if name == b"app1" and body.startswith(STANDARD):
        return Found(f"{where} (hex)", body[len(STANDARD) :], True)
    return Found(f"{where} (hex)", body, False)


def _png_text(ctype: bytes, rest: bytes, places: Places, *, packet: bool) -> bytes:
    if ctype == b"tEXt":
        return rest
    if ctype == b"zTXt":
        return _inflate(rest[1:], places, packet=packet)
    if len(rest) < 2:
        raise ValueError("iTXt chunk too short")
    compressed = rest[0] == 1
    _lang, _, rest = rest[2:].partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    return _inflate(text, places, packet=packet) if compressed else text


def _inflate(packed: bytes, places: Places, *, packet: bool) -> bytes:
    """`packed` inflated within the bounds: a packet's size, the file's budget. Past the
    budget or the chunk count, one error says so and later chunks are not inflated."""
    if places.exhausted:
        raise _Skipped
    if places.inflated == MAX_TEXT_CHUNKS:
        places.exhausted = True
        raise ValueError(f"not inflated: more than {MAX_TEXT_CHUNKS} compressed text chunks")
    places.inflated += 1
    cap = min(MAX_PACKET_BYTES, places.budget) if packet else places.budget
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(packed, cap + 1)
    except zlib.error as exc:
        raise ValueError(f"does not inflate ({exc})") from exc
    if len(out) > cap:
        if cap == places.budget:  # the file's budget, not the packet's size, was the bound
            places.exhausted = True
            raise ValueError(f"inflates past the {MAX_INFLATED_BYTES} bytes one file may inflate")
        places.budget -= cap
        raise ValueError(f"inflates past {MAX_PACKET_BYTES} bytes")
    if not inflater.eof:
        raise ValueError("does not inflate (the stream is cut short)")
    places.budget -= len(out)
    return out


class _Skipped(Exception):
    """A chunk left uninflated after the budget was spent (already reported once)."""
