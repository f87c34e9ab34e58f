"""The memorisation audit of a build's candidates against EVERY source, with replacement.

Sources here are all ingested records, consented or not, revoked too: a synthetic image
must not copy anyone. Flagged candidates are dropped and replaced by new samples from
the same shard model, for a bounded number of rounds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from consentgen.errors import ReplacementExhaustedError
from pipelines.steps.candidates import _seed, sample_candidates, snapshot_candidates
from pipelines.catalog import AuditRow, Candidate, Catalog, Snapshot
from pipelines.steps.images import load_gray
from pipelines.settings import BuildConfig
from pipelines.steps.shard_training import current_models
from validation.audit import AuditConfig, AuditIndex
from validation.audit.results import AuditSummary


def audit_config(config: BuildConfig) -> AuditConfig:
    return AuditConfig(**config.audit_overrides)


def source_index(catalog: Catalog, config: BuildConfig) -> AuditIndex:
    """Every source at the generator's resolution (what a model could have memorised)."""
    sources = catalog.sources()
    pixels = load_gray([catalog.home / s.image_path for s in sources], config.generator.image_size)
    return AuditIndex.build(pixels, [s.record_id for s in sources], audit_config(config))


def audit_files(index: AuditIndex, catalog: Catalog, candidates: list[Candidate], size: int):
    pixels = load_gray([catalog.home / c.image_path for c in candidates], size)
    return index.audit(pixels, [c.candidate_id for c in candidates])


def _rows(snapshot: Snapshot, table: pa.Table, round_: int) -> list[AuditRow]:
    cols = table.to_pydict()
    return [
        AuditRow(
            snapshot_id=snapshot.snapshot_id, candidate_id=cols["candidate_id"][i], round=round_,
            phash_distance=int(cols["phash_distance"][i]), pixel_l2=float(cols["pixel_l2"][i]),
            patch_l2=float(cols["patch_l2"][i]), embedding_cosine=float(cols["embedding_cosine"][i]),
            nearest_phash=cols["phash_source_id"][i], nearest_pixel=cols["pixel_l2_source_id"][i],
            nearest_patch=cols["patch_l2_source_id"][i], nearest_embedding=cols["embedding_source_id"][i],
            flagged=bool(cols["flagged"][i]), kept=not cols["flagged"][i],
        )
        for i in range(table.num_rows)
    ]


@dataclass(frozen=True)
class AuditOutcome:
    kept: int
    flagged_total: int
    replaced: int
    rounds: int
    summary: AuditSummary  # of the first round, all candidates


def audit_and_replace(catalog: Catalog, snapshot: Snapshot, config: BuildConfig,
                      *, progress: bool = False) -> AuditOutcome:
    size = config.generator.image_size
    index = source_index(catalog, config)
    models = current_models(catalog, snapshot, config)
    pending = snapshot_candidates(catalog, snapshot.snapshot_id)
    first = audit_files(index, catalog, pending, size)
    tables = [first.table]
    catalog.add(_rows(snapshot, first.table, 0))
    flagged = [c for c, f in zip(pending, first.flagged, strict=True) if f]
    flagged_total, replaced, round_ = len(flagged), 0, 0
    while flagged and round_ < config.max_replacement_rounds:
        round_ += 1
        by_shard: dict[int, list[Candidate]] = defaultdict(list)
        for c in flagged:
            by_shard[c.shard].append(c)
        fresh: list[Candidate] = []
        for shard, dropped in sorted(by_shard.items()):
            labels = np.array([c.label for c in dropped], dtype=np.int64)
            fresh += sample_candidates(catalog, snapshot, models[shard], labels,
                                       _seed(config.seed, snapshot.snapshot_id, shard, round_),
                                       config, progress=progress)
        catalog.add(fresh)
        result = audit_files(index, catalog, fresh, size)
        tables.append(result.table)
        catalog.add(_rows(snapshot, result.table, round_))
        flagged = [c for c, f in zip(fresh, result.flagged, strict=True) if f]
        flagged_total += len(flagged)
        replaced += len(fresh) - len(flagged)
    if flagged:
        raise ReplacementExhaustedError(
            f"{len(flagged)} candidate(s) were still near-duplicates of a source after "
            f"{round_} replacement round(s) ({flagged_total} flagged in all); raise "
            "max_replacement_rounds or train longer"
        )
    kept = sum(t.num_rows - sum(t.column("flagged").to_pylist()) for t in tables)
    return AuditOutcome(kept=kept, flagged_total=flagged_total, replaced=replaced,
                        rounds=round_, summary=first.summary)
