"""The segments of a JPEG and the chunks of a PNG, walked by structure and never trusted.

Two readers walk the same containers: the XMP reader (APP1 segments, PNG text chunks)
and the C2PA reader (APP11 segments and ``caBX`` chunks, whose byte ranges the
provenance backstop counts as read once the SDK has judged the store). One walker each,
here, so they cannot disagree about where a segment ends. Both are linear in the file
and stop at the first thing that does not parse.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"


@dataclass(frozen=True)
class Piece:
    """One JPEG marker segment or PNG chunk: its type, its body's offsets in the file, and
    the whole segment's span (header and CRC included)."""

    kind: bytes
    """The PNG chunk type (``b"iTXt"``), or the JPEG marker byte (``b"\\xe1"``)."""
    start: int
    end: int
    """`data[start:end]` is the body."""
    span: tuple[int, int]
    after_end: bool = False
    """A PNG chunk after IEND: no decoder reads it, a declaration there still counts."""


def jpeg_segments(data: bytes) -> Iterator[Piece]:
    """The marker segments before the first scan (where APPn live), in file order."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more APPn
            return
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            return
        end = min(pos + 2 + length, len(data))
        yield Piece(kind=bytes([marker]), start=pos + 4, end=end, span=(pos, end))
        pos += 2 + length


def png_chunks(data: bytes) -> Iterator[Piece]:
    """Every chunk, those after IEND too for as long as the bytes there still read as
    chunks (a type of four ASCII letters); a chunk cut short by the end of the file is
    the last, its body as far as it goes."""
    pos = len(PNG_SIGNATURE)
    after_end = False
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        if not ctype.isalpha():
            return
        end = min(pos + 8 + length, len(data))
        yield Piece(kind=ctype, start=pos + 8, end=end,
                    span=(pos, min(pos + 12 + length, len(data))), after_end=after_end)
        after_end = after_end or ctype == b"IEND"
        pos += 12 + length
