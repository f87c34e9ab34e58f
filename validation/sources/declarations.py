"""What counts as a do-not-train or AI-generated declaration, however and wherever it is written.

One vocabulary for every reader (XMP, C2PA assertions, the raw bytes), so that the same
value means the same thing in each:

- a Data Mining value (PLUS ``plus:DataMining``) opts out when the value as written
  holds ``PROHIBITED`` anywhere (`prohibits_mining`), not only in a display form;
- a digitalSourceType is generated media when its last path segment is one of
  `SYNTHETIC_SOURCE_TYPES` (`is_synthetic`);
- IPTC metadata inside a C2PA manifest is JSON-LD: a key names a property by prefix
  (``plus:DataMining``, any prefix) or by full URI, and a value is a string, an
  ``{"@id": ...}`` object or a list of them (`metadata_values`).

And one backstop (`markers`): the words such declarations cannot be written without
(``training-mining``, ``DMI-PROHIBITED``, the synthetic source-type codes; any case, as
ASCII/UTF-8 or UTF-16). A reader that finds one of them in bytes it did not judge, or
in a judged place that its values do not account for, says so, and ingest treats the
file as unreadable: a declaration we did not read may be the opt-out. On a file without
any of them this costs one ``lower()`` and six substring searches (per MB).
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SYNTHETIC_SOURCE_TYPES = frozenset(
    {"trainedalgorithmicmedia", "compositewithtrainedalgorithmicmedia", "algorithmicmedia"})
"""IPTC digital source type codes (lower case) of generated media."""
DATA_MINING, SOURCE_TYPE = "datamining", "digitalsourcetype"
"""Local names (lower case) of the two properties, whatever the namespace prefix."""
MAX_MARKERS = 1_000
"""Declaration words reported per blob; a file with more is unreadable, never a list of
millions (a hostile file can be nothing but the word)."""
WINDOW = 1 << 20
"""Bytes lowered at once: a file of hundreds of MB is not copied whole."""
_OVERLAP = 2 * len("compositewithtrainedalgorithmicmedia")
"""The longest word, in UTF-16: one that starts before a window's end ends inside it."""
MAX_METADATA_NODES = 10_000
"""JSON nodes walked per metadata assertion; more is an error (the SDK bounds nothing)."""

KINDS = frozenset({"training-mining", "dmi-prohibited", "trainedalgorithmicmedia",
                   "compositewithtrainedalgorithmicmedia", "algorithmicmedia"})
"""The kinds of declaration word `markers` reports (lower case)."""

_WORDS = ("training-mining", "dmi-prohibited", "algorithmicmedia")
_SYNTHETIC_PREFIXES = ("compositewithtrained", "trained")


def _utf16(word: str) -> bytes:
    """`word` as UTF-16LE without its last NUL: a substring of the UTF-16BE form too."""
    return word.encode("utf-16-le")[:-1]


_QUICK_TEXT = tuple(w.encode() for w in _WORDS)
_QUICK_UTF16 = tuple(_utf16(w) for w in _WORDS)
_MARKERS = re.compile(
    b"training-mining|dmi-prohibited|(?:compositewithtrained|trained)?algorithmicmedia")
_MARKERS_UTF16 = re.compile(
    b"|".join(re.escape(_utf16(w)) for w in _WORDS[:2])
    + b"|(?:" + b"|".join(re.escape(_utf16(p)) + b"\x00" for p in _SYNTHETIC_PREFIXES) + b")?"
    + re.escape(_utf16(_WORDS[2])))
_PATTERNS = ((_MARKERS, _QUICK_TEXT, False), (_MARKERS_UTF16, _QUICK_UTF16, True))
_MARKERS_TEXT = re.compile(
    "training-mining|dmi-prohibited|(?:compositewithtrained|trained)?algorithmicmedia")


@dataclass(frozen=True)
class Marker:
    """One declaration word in some bytes: where, which (lower case), in which encoding."""

    pos: int
    kind: str
    utf16: bool = False

    def shown(self, where: str = "byte") -> str:
        return f"{self.kind!r} at {where} {self.pos}{' (UTF-16)' if self.utf16 else ''}"


def markers(blob: bytes) -> list[Marker]:
    """Every declaration word in `blob` (per window: ASCII ones, then UTF-16 ones), at
    most `MAX_MARKERS` + 1 (more says enough; a caller treats that as unreadable). Read in
    windows of `WINDOW` bytes so that a large file is never copied whole."""
    found: list[Marker] = []
    last = {False: 0, True: 0}  # where the last word ended: one over a window's edge counts once
    for offset in range(0, len(blob), WINDOW):
        low = blob[offset : offset + WINDOW + _OVERLAP].lower()  # ASCII only: offsets hold
        for pattern, quick, utf16 in _PATTERNS:
            if not any(word in low for word in quick):
                continue
            for m in pattern.finditer(low):
                start = offset + m.start()
                if m.start() >= WINDOW or start < last[utf16]:
                    continue
                last[utf16] = offset + m.end()
                kind = m.group().replace(b"\x00", b"") if utf16 else m.group()
                found.append(Marker(start, kind.decode(), utf16))
                if len(found) > MAX_MARKERS:
                    return found
    return found


def text_markers(text: str) -> Counter[str]:
    """The declaration words in one decoded value, counted by kind."""
    return Counter(_MARKERS_TEXT.findall(text.lower()))


def source_type_code(value: str) -> str:
    """The bare code of a digitalSourceType (the last segment of an IPTC URI, or as is)."""
    return re.split(r"[/#]", value.strip().rstrip("/#"))[-1]


def is_synthetic(value: str) -> bool:
    return source_type_code(value).lower() in SYNTHETIC_SOURCE_TYPES


def prohibits_mining(value: str) -> bool:
    """A Data Mining value that opts out (every PLUS ``DMI-PROHIBITED-*`` term), judged
    on the value as written."""
    return "PROHIBITED" in value.upper()


def leftover(value: str, used: Iterable[str] = ()) -> list[str]:
    """Declaration words in `value` that its judgement (`used`) did not account for: a
    value that mentions a code in a form we do not judge."""
    return sorted(set(text_markers(value)) - set(used))


def local_name(key: str) -> str:
    """A JSON-LD or XMP key's property name, lower case: ``plus:DataMining``,
    ``http://ns.useplus.org/ldf/xmp/1.0/DataMining`` and ``x:datamining`` all give
    ``datamining``."""
    return re.split(r"[:/#]", key.strip().rstrip("/#"))[-1].lower()


def metadata_values(data: Any) -> list[tuple[str, str]]:
    """(key, value) for every Data Mining and digitalSourceType key anywhere in a JSON-LD
    metadata assertion, each string under it a value; ValueError past
    `MAX_METADATA_NODES` nodes walked (values under nested keys included)."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[Any, str | None]] = [(data, None)]  # (node, the key it is a value of)
    walked = 0
    while stack:
        node, under = stack.pop()
        walked += 1
        if walked > MAX_METADATA_NODES:
            raise ValueError(f"more than {MAX_METADATA_NODES} JSON nodes")
        if isinstance(node, str):
            if under is not None and node.strip():
                found.append((under, node))
        elif isinstance(node, dict):
            for key, value in reversed(list(node.items())):
                named = isinstance(key, str) and local_name(key) in (DATA_MINING, SOURCE_TYPE)
                stack.append((value, key if named else under))
        elif isinstance(node, list):
            stack.extend((item, under) for item in reversed(node))
    return found


class Spans:
    """Sorted, merged byte ranges, asked "does one hold this offset" in O(log n)."""

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        merged: list[list[int]] = []
        for lo, hi in sorted(spans):
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self._starts = [lo for lo, _ in merged]
        self._ends = [hi for _, hi in merged]

    def end_of(self, pos: int) -> int | None:
        """The end of the range holding `pos`, None when none does."""
        i = bisect.bisect_right(self._starts, pos) - 1
        return self._ends[i] if i >= 0 and pos < self._ends[i] else None

    def holds(self, pos: int) -> bool:
        return self.end_of(pos) is not None
