"""Drop flagged candidates and sample again, until the target count is met or rounds run out.

The generator is reached only through `sample_fn(n, round) -> uint8 images`, so this
module needs no generator code. The source set is prepared once (`AuditIndex`) and
every round audits only the new samples. The bound on rounds is what keeps a generator
that memorises from looping forever: when it is spent, the error says how many
candidates were near-duplicates, so a person can decide what to do about the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from consentgen.errors import AuditError, ReplacementExhaustedError

from .arrays import check_images
from .audit import AuditIndex
from .config import AuditConfig

SampleFn = Callable[[int, int], np.ndarray]
"""(how many, round number from 0) -> uint8 images of the sources' size."""


class ReplacementOutcome(NamedTuple):
    """What the loop kept, every row it audited, how many rounds it took, and the drops."""

    kept: np.ndarray
    """uint8 [target, H, W(, C)]: candidates no metric flagged, in the order audited."""
    table: pa.Table
    """Audit rows of EVERY candidate sampled, with `round` and `kept` columns; the rows
    with kept=True are, in order, the rows of `kept`."""
    rounds: int
    n_flagged: int
    """Candidates dropped as near-duplicates over all rounds."""


class ReplacementExhausted(ReplacementExhaustedError):
    """The rounds ran out with near-duplicates still being drawn; says how many."""

    def __init__(self, n_flagged: int, n_kept: int, target: int, rounds: int) -> None:
        self.n_flagged = n_flagged
        self.n_kept = n_kept
        self.target = target
        self.rounds = rounds
        super().__init__(
            f"{n_flagged} candidate(s) were near-duplicates of sources over {rounds} "
            f"round(s); kept {n_kept} of the {target} wanted. The generator may be "
            f"memorising its training images: check it before raising max_rounds"
        )


def replace_near_duplicates(
    sample_fn: SampleFn, sources: np.ndarray, source_ids: Sequence[object] | None,
    target: int, config: AuditConfig | None = None, max_rounds: int = 5,
) -> ReplacementOutcome:
    """Sample, audit, keep the clean ones, resample the shortfall; at most `max_rounds`."""
    if target < 0 or max_rounds < 1:
        raise AuditError(f"target must be >= 0 and max_rounds >= 1 (got {target}, {max_rounds})")
    index = AuditIndex.build(sources, source_ids, config)
    kept: list[np.ndarray] = []
    tables: list[pa.Table] = []
    n_kept = n_flagged = 0
    rounds = 0
    while n_kept < target and rounds < max_rounds:
        need = target - n_kept
        batch = sample_fn(need, rounds)
        check_images(batch, f"sample_fn(round {rounds})")
        if len(batch) != need:
            raise AuditError(f"sample_fn was asked for {need} images and returned {len(batch)}")
        result = index.audit(batch, [f"r{rounds}-{i}" for i in range(need)])
        clean = ~result.flagged
        kept.append(batch[clean])
        n_kept += int(clean.sum())
        n_flagged += int((~clean).sum())
        table = result.table
        table = table.append_column("round", pa.array(np.full(need, rounds, np.int32)))
        tables.append(table.append_column("kept", pa.array(clean)))
        rounds += 1
    if n_kept < target:
        raise ReplacementExhausted(n_flagged, n_kept, target, rounds)
    if not tables:  # target 0: nothing to sample, but the table keeps its columns
        empty = np.zeros((0, *sources.shape[1:]), np.uint8)
        table = index.audit(empty).table
        table = table.append_column("round", pa.array([], pa.int32()))
        return ReplacementOutcome(empty, table.append_column("kept", pa.array([], pa.bool_())),
                                  0, 0)
    return ReplacementOutcome(np.concatenate(kept), pa.concat_tables(tables), rounds, n_flagged)
