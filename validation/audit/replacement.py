"""The one replacement loop: audit a draw, drop the near-duplicates, draw again for them.

Callers name the places to fill (`slots`: the build names them after its first
candidates, a test after positions) and reach their generator only through
`sample_fn(open_slots, round) -> Batch`: one candidate per open slot, each with the
caller's own id. Round 0 draws every slot; each later round draws only the slots whose
candidate the previous round flagged. Because every candidate keeps the caller's id,
the per-round table says which candidate filled which slot in which round, so a
caller can record lineage and audit rows as they happen (`on_round`) and this module
needs no generator or catalog code.

The source set is prepared once (`AuditIndex`) and each round audits only its new
candidates. The bound on replacement rounds is what keeps a generator that memorises
from looping forever: when it is spent, `ReplacementExhaustedError` says how many
candidates were near-duplicates, so a person can decide what to do about the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from consentgen.errors import AuditError, ReplacementExhaustedError

from .arrays import check_ids, check_images
from .audit import AuditIndex
from .results import AuditSummary


@dataclass(frozen=True)
class Batch:
    """Candidates as the caller names them: row i of `images` is candidate `ids[i]`."""

    ids: Sequence[str]
    images: np.ndarray
    """uint8 [N, H, W(, C)], the sources' size."""


SampleFn = Callable[[list[str], int], Batch]
"""(open slots, round number from 0) -> one new candidate per slot, in the slots' order."""

RoundFn = Callable[[pa.Table], None]
"""Called with each round's rows (see `ReplacementOutcome.table`) once they are audited."""


@dataclass(frozen=True)
class ReplacementOutcome:
    """What the loop kept, every row it audited, and how it got there."""

    kept_ids: list[str]
    """Ids of the candidates no metric flagged, one per slot, in the order audited."""
    kept: np.ndarray
    """Their images, row i being `kept_ids[i]`."""
    table: pa.Table
    """Audit rows of EVERY candidate drawn, round after round, with `slot`, `round` and
    `kept` columns; the rows with kept=True are, in order, `kept_ids`."""
    summary: AuditSummary
    """The first round's audit: every slot's first candidate."""
    rounds: int
    """Rounds that audited something: the first draw and each replacement round."""
    n_flagged: int
    """Candidates dropped as near-duplicates over all rounds."""

    @property
    def replacement_rounds(self) -> int:
        return max(self.rounds - 1, 0)

    @property
    def replaced(self) -> int:
        """Slots whose kept candidate came from a replacement round."""
        rounds = self.table.column("round").to_numpy(zero_copy_only=False)
        kept = self.table.column("kept").to_numpy(zero_copy_only=False)
        return int(np.count_nonzero(kept & (rounds > 0)))


def replace_near_duplicates(
    sample_fn: SampleFn, index: AuditIndex, slots: Sequence[object], *,
    max_replacement_rounds: int = 3, on_round: RoundFn | None = None,
) -> ReplacementOutcome:
    """Fill every slot with a candidate no metric flags; at most `max_replacement_rounds`
    rounds after the first draw, else `ReplacementExhaustedError`.

    Rows reach `on_round` before the error is raised, so what was drawn stays on record.
    """
    if max_replacement_rounds < 0:
        raise AuditError(f"max_replacement_rounds must be >= 0 (got {max_replacement_rounds})")
    names = check_ids(slots, len(slots), "slots")
    open_slots = names
    seen: set[str] = set()
    kept_ids: list[str] = []
    kept: list[np.ndarray] = []
    tables: list[pa.Table] = []
    summary: AuditSummary | None = None
    n_flagged = rounds = 0
    for round_ in range(max_replacement_rounds + 1):
        if round_ and not open_slots:
            break
        batch = sample_fn(list(open_slots), round_)
        ids = _checked(batch, len(open_slots), round_, seen)
        result = index.audit(batch.images, ids)
        summary = summary or result.summary
        clean = ~result.flagged
        table = (result.table
                 .append_column("slot", pa.array(open_slots, pa.string()))
                 .append_column("round", pa.array(np.full(len(ids), round_, np.int32)))
                 .append_column("kept", pa.array(clean)))
        if on_round is not None:
            on_round(table)
        tables.append(table)
        kept_ids += [i for i, c in zip(ids, clean, strict=True) if c]
        kept.append(batch.images[clean])
        n_flagged += int(np.count_nonzero(~clean))
        rounds += bool(ids)
        open_slots = [s for s, c in zip(open_slots, clean, strict=True) if not c]
    if open_slots:
        raise ReplacementExhaustedError(n_flagged, len(open_slots), len(kept_ids), len(names),
                                        rounds)
    assert summary is not None  # round 0 always runs
    return ReplacementOutcome(kept_ids, np.concatenate(kept), pa.concat_tables(tables), summary,
                              rounds, n_flagged)


def _checked(batch: Batch, asked: int, round_: int, seen: set[str]) -> list[str]:
    """The batch's ids, once the batch is one uint8 image and one new id per slot."""
    check_images(batch.images, f"sample_fn(round {round_})")
    if len(batch.images) != asked or len(batch.ids) != asked:
        raise AuditError(
            f"sample_fn was asked for {asked} candidate(s) in round {round_} and returned "
            f"{len(batch.images)} image(s) with {len(batch.ids)} id(s)"
        )
    ids = check_ids(batch.ids, asked, f"sample_fn(round {round_}) ids")
    again = seen.intersection(ids)
    if again:
        raise AuditError(f"sample_fn(round {round_}) reused candidate id(s) of an earlier "
                         f"round: {sorted(again)[:3]}")
    seen.update(ids)
    return ids
