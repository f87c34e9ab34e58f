"""What a class label is, in one place: text that can name a release's class folder.

A label comes from a manifest's `label` column, a DICOM attribute or a build file, and
ends up as a folder of every release (`images/<name>/...`). So it is text that is safe as
one folder name on every OS, and an integer label is held as its decimal text ("01" and
"1" are the same class). `validation` (the manifest), `pipelines` (settings, catalog,
release) all use these functions, so a label the manifest accepts is one a release can
publish.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_LABEL_LENGTH = 64
FOLDER_PATTERN = re.compile(r"[^\x00-\x1f/\\:*?\"<>|\x7f]{1,64}")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def folder_name(value: str) -> str:
    """`value`, stripped, if it is safe as one folder of a release on every OS; else ValueError."""
    value = value.strip()
    if not FOLDER_PATTERN.fullmatch(value) or value in {".", ".."} or value.startswith("."):
        raise ValueError(f"{value!r} cannot name a class folder: use 1-{MAX_LABEL_LENGTH} "
                         "characters without / \\ : * ? \" < > | or a leading dot")
    return value


def canonical_label(value: str | int) -> str:
    """The label as the catalog holds it: an integer as decimal text ("01" -> "1"), any other
    text stripped and checked as a folder name (ValueError when it cannot be one)."""
    text = str(value).strip()
    if _INTEGER.fullmatch(text) and text.isascii():
        return str(int(text))
    return folder_name(text)


def is_integer_label(label: str) -> bool:
    return _INTEGER.fullmatch(label) is not None and label.isascii()


def label_sort_key(label: str) -> tuple[int, int, str]:
    """Integers numerically first ("2" before "10"), then other labels as text."""
    if is_integer_label(label):
        return (0, int(label), "")
    return (1, 0, label)


def sorted_labels(labels: Iterable[str]) -> list[str]:
    """The distinct labels in class-index order (`label_sort_key`)."""
    return sorted(set(labels), key=label_sort_key)
