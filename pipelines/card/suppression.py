"""Small counts on the public card: shown as "< k", never as their value.

A card ships with every release and every version has one, so two cards can be set side
by side. A count of subjects, of their records or of exclusions that is small (1 to k-1)
would let that diff say something about one person: "eligible subjects" 11 then 10, or
"excluded, ConsentWithdrawn" 0 then 3. Such a count is replaced by `Suppressed` before
the card is built, so the value is not in the card model, its ``card.json`` or either
file; zero is suppressed too (else "absent" vs "< k" would tell the two apart). Counts at
or above k are exact. Which counts are suppressed is decided in `pipelines.card.model`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Count = Annotated[int, Field(ge=0)]


class Suppressed(BaseModel):
    """A count under `under` (k), withheld: the card prints "< k"."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    under: int = Field(ge=2)

    def __str__(self) -> str:
        return f"< {self.under:,}"


PublicCount = Count | Suppressed
"""A count that describes subjects, records or exclusions: exact when at least k."""


def public_count(value: int, k: int) -> int | Suppressed:
    """`value` if it is at least `k`, else "< k" (k = 1 suppresses nothing)."""
    if value < 0:
        raise ValueError(f"a count cannot be negative ({value})")
    return value if k <= 1 or value >= k else Suppressed(under=k)


def is_public(value: int | Suppressed | None, k: int) -> bool:
    """Whether `value` may stand on a card that suppresses counts under `k`."""
    if value is None:
        return True
    if isinstance(value, Suppressed):
        return value.under == k
    return k <= 1 or value >= k
