"""How a figure prints on the card, in one place.

The threshold rules on the model, the plot legends and both card files all print
numbers through these, so a threshold reads the same in the table, on the plot and in
the Markdown. A missing figure prints as `NOT_COMPUTED`, never as a guessed value.
"""

from __future__ import annotations

from datetime import datetime

from pipelines.card.suppression import Suppressed

NOT_COMPUTED = "not computed"


def number(value: float) -> str:
    """Four significant digits: thresholds and distances without float noise."""
    return f"{value:.4g}"


def count(value: int | Suppressed | None) -> str:
    """An exact count with thousands separators, or a suppressed one as "< k"."""
    if value is None:
        return NOT_COMPUTED
    return str(value) if isinstance(value, Suppressed) else f"{value:,}"


def optional_number(value: float | None) -> str:
    return NOT_COMPUTED if value is None else number(value)


def percent(value: float | None) -> str:
    """A share as a percentage with one decimal, e.g. 0.512 -> '51.2 %'."""
    return NOT_COMPUTED if value is None else f"{100 * value:.1f} %"


def timestamp(value: datetime) -> str:
    """Seconds are enough to match a card with the ledger and the run logs."""
    return value.isoformat(timespec="seconds")
