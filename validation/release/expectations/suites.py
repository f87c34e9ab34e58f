"""The two release suites as plain data: which expectations, with which parameters.

The manifest suite pins the exact column set (so a column naming a source, subject or
record can never slip into a public file), random image ids, allowed labels, the
release image size, known generator kinds, and every audit distance on the safe side of
its threshold. The audit suite checks that no row of the table (every row ships) was
flagged, and that every distance is present, plausible and on its safe side.

Specs are ``(GE expectation class name, keyword arguments)`` pairs rather than GE
objects: building them needs no GE import (seconds), and hashing them finds the cached
runner of an identical suite (`validation.release.expectations.runner`). Unusable
settings are refused here, as ConfigError, before any table is looked at.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from consentgen.errors import ConfigError
from validation.release.expectations.guards import IdentifyingDataError, identifying_names

Direction = Literal["min", "max"]
"""Which bound a threshold is for a value that ships.

``"min"``: the threshold is an exclusive lower bound (distances: a shipped image must be
farther than it from every source). ``"max"``: an exclusive upper bound (similarities
such as the embedding cosine). Exclusive, because the audit flags at equality.
"""

Thresholds = Mapping[str, tuple[Direction, float]]

Spec = tuple[str, dict[str, Any]]
"""(GE expectation class name, its keyword arguments)."""

IMAGE_ID_PATTERN = r"^[0-9a-f]{32}$"
"""Published image ids are random: 128 bits as lower-case hex (``uuid4().hex``)."""

DEFAULT_GENERATOR_KINDS: tuple[str, ...] = ("ddpm", "img2img")

MANIFEST_CORE_COLUMNS: tuple[str, ...] = (
    "image_id", "label", "width", "height", "generator", "model_version",
)
"""Columns every manifest has; ``expected_columns`` adds the metric columns (and any
others the release chooses to publish)."""

AUDIT_FLAG_COLUMN = "flagged"

DEFAULT_METRIC_RANGES: dict[str, tuple[float, float]] = {
    "phash_distance": (0.0, 64.0),          # Hamming distance of 64-bit hashes
    "pixel_l2": (0.0, 2.0 + 1e-3),          # RMS of standardised images: at most 2
    "patch_l2": (0.0, 64.0),                # tile-wise max of the same: at most 2 * grid
    "embedding_cosine": (-1.0 - 1e-3, 1.0 + 1e-3),
}
"""Plausible (inclusive) ranges of the audit metrics; outside means a broken audit."""

MANIFEST_SUITE = "release_manifest"
AUDIT_SUITE = "release_audit"


def thresholds_from_flag_rules(
    thresholds: Mapping[str, float], flag_when: Mapping[str, str]
) -> dict[str, tuple[Direction, float]]:
    """Translate the audit's "flag when" rules into the safe-side bounds of this module.

    The audit flags a distance at or below its threshold (``"<="``), so a shipped value
    must lie above it (``"min"``); it flags a similarity at or above (``">="``), so a
    shipped value must lie below (``"max"``). E.g. ``thresholds_from_flag_rules(
    AuditConfig().thresholds(), FLAG_WHEN)``.
    """
    out: dict[str, tuple[Direction, float]] = {}
    for metric, value in thresholds.items():
        rule = flag_when.get(metric)
        if rule == "<=":
            out[metric] = ("min", float(value))
        elif rule == ">=":
            out[metric] = ("max", float(value))
        else:
            raise ConfigError(f"no flag rule ('<=' or '>=') for metric {metric!r}")
    return out


def _check_thresholds(thresholds: Thresholds) -> dict[str, tuple[Direction, float]]:
    if not thresholds:
        raise ConfigError("thresholds: at least one audit metric is required")
    out: dict[str, tuple[Direction, float]] = {}
    for metric, spec in thresholds.items():
        try:
            direction, value = spec
            value = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"thresholds[{metric!r}]: expected ('min'|'max', number), got {spec!r}"
            ) from exc
        if direction not in ("min", "max"):
            raise ConfigError(f"thresholds[{metric!r}]: direction must be 'min' or 'max'")
        if not math.isfinite(value):
            raise ConfigError(f"thresholds[{metric!r}]: threshold must be finite")
        out[str(metric)] = (direction, value)
    bad = identifying_names(list(out))
    if bad:
        raise IdentifyingDataError(f"thresholds name identifying columns: {bad}", bad)
    return dict(sorted(out.items()))


def _safe_side(metric: str, direction: Direction, value: float) -> Spec:
    if direction == "min":
        return ("ExpectColumnValuesToBeBetween",
                {"column": metric, "min_value": value, "strict_min": True})
    return ("ExpectColumnValuesToBeBetween",
            {"column": metric, "max_value": value, "strict_max": True})


def manifest_specs(
    *,
    expected_columns: Sequence[str],
    labels: Collection[int | str],
    image_size: tuple[int, int],
    thresholds: Thresholds,
    generator_kinds: Collection[str] = DEFAULT_GENERATOR_KINDS,
    image_id_pattern: str = IMAGE_ID_PATTERN,
) -> list[Spec]:
    """The manifest suite as plain data (validated; ConfigError on unusable settings)."""
    limits = _check_thresholds(thresholds)
    columns = [str(c) for c in expected_columns]
    bad = identifying_names(columns)
    if bad:
        raise IdentifyingDataError(
            f"expected_columns would publish identifying columns: {', '.join(bad)}", bad
        )
    missing = [c for c in (*MANIFEST_CORE_COLUMNS, *limits) if c not in columns]
    if missing:
        raise ConfigError(f"expected_columns lacks required column(s): {', '.join(missing)}")
    if len(set(columns)) != len(columns):
        raise ConfigError("expected_columns has duplicates")
    if not labels:
        raise ConfigError("labels: the allowed label set is empty")
    if not generator_kinds:
        raise ConfigError("generator_kinds is empty")
    try:
        width, height = (int(image_size[0]), int(image_size[1]))
    except (TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"image_size: expected (width, height), got {image_size!r}") from exc
    if width < 1 or height < 1:
        raise ConfigError(f"image_size must be positive, got {image_size!r}")
    try:
        re.compile(image_id_pattern)
    except re.error as exc:
        raise ConfigError(f"image_id_pattern: {exc}") from exc

    specs: list[Spec] = [
        ("ExpectTableColumnsToMatchSet", {"column_set": sorted(columns), "exact_match": True}),
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
        ("ExpectColumnValuesToNotBeNull", {"column": "image_id"}),
        ("ExpectColumnValuesToBeUnique", {"column": "image_id"}),
        ("ExpectColumnValuesToMatchRegex", {"column": "image_id", "regex": image_id_pattern}),
        ("ExpectColumnValuesToNotBeNull", {"column": "label"}),
        ("ExpectColumnValuesToBeInSet",
         {"column": "label", "value_set": sorted(labels, key=lambda v: (str(type(v)), v))}),
        ("ExpectColumnValuesToNotBeNull", {"column": "width"}),
        ("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": width,
                                           "max_value": width}),
        ("ExpectColumnValuesToNotBeNull", {"column": "height"}),
        ("ExpectColumnValuesToBeBetween", {"column": "height", "min_value": height,
                                           "max_value": height}),
        ("ExpectColumnValuesToNotBeNull", {"column": "generator"}),
        ("ExpectColumnValuesToBeInSet",
         {"column": "generator", "value_set": sorted(str(k) for k in generator_kinds)}),
        ("ExpectColumnValuesToNotBeNull", {"column": "model_version"}),
    ]
    for metric, (direction, value) in limits.items():
        specs.append(("ExpectColumnValuesToNotBeNull", {"column": metric}))
        specs.append(_safe_side(metric, direction, value))
    return specs


def audit_specs(
    *,
    thresholds: Thresholds,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> list[Spec]:
    """The audit suite as plain data; every row of the audit table ships, so every row
    is held to it (replaced candidates are not in the table)."""
    limits = _check_thresholds(thresholds)
    plausible = {**DEFAULT_METRIC_RANGES, **(ranges or {})}
    specs: list[Spec] = [
        ("ExpectTableRowCountToBeBetween", {"min_value": 1}),
        ("ExpectColumnToExist", {"column": AUDIT_FLAG_COLUMN}),
        ("ExpectColumnValuesToNotBeNull", {"column": AUDIT_FLAG_COLUMN}),
        ("ExpectColumnValuesToBeInSet", {"column": AUDIT_FLAG_COLUMN, "value_set": [False]}),
    ]
    for metric, (direction, value) in limits.items():
        specs.append(("ExpectColumnToExist", {"column": metric}))
        specs.append(("ExpectColumnValuesToNotBeNull", {"column": metric}))
        if metric in plausible:
            lo, hi = plausible[metric]
            specs.append(("ExpectColumnValuesToBeBetween",
                          {"column": metric, "min_value": float(lo), "max_value": float(hi)}))
        specs.append(_safe_side(metric, direction, value))
    return specs
