"""The memorisation audit of a build's candidates against EVERY source, with replacement.

Sources here are all ingested records, consented or not, revoked too: a synthetic image
must not copy anyone. Flagged candidates are dropped and replaced by new samples from
the same shard model, for a bounded number of rounds. The loop itself is the audit
package's (`validation.audit.replace_near_duplicates`); this step only says how to draw
and records what each round drew and found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipelines.catalog import AuditRow, Candidate, Catalog, Snapshot
from pipelines.catalog.lineage import snapshot_candidates
from pipelines.settings import BuildConfig
from pipelines.steps.candidates import replacement_candidates
from pipelines.steps.images import load_gray
from pipelines.steps.shard_training import current_models
from validation.audit import (
    AuditConfig,
    AuditIndex,
    AuditResult,
    AuditSummary,
    Batch,
    replace_near_duplicates,
)


def audit_config(config: BuildConfig) -> AuditConfig:
    return config.audit


def source_index(catalog: Catalog, config: BuildConfig) -> AuditIndex:
    """Every source at the generator's resolution (what a model could have memorised)."""
    sources = catalog.sources()
    pixels = load_gray([catalog.home / s.image_path for s in sources], config.generator.image_size)
    return AuditIndex.build(pixels, [s.record_id for s in sources], audit_config(config))


def candidate_pixels(catalog: Catalog, candidates: list[Candidate], size: int) -> np.ndarray:
    """The candidates' files as they would ship: the audit judges what is on disk."""
    return load_gray([catalog.home / c.image_path for c in candidates], size)


def audit_files(index: AuditIndex, catalog: Catalog, candidates: list[Candidate],
                size: int) -> AuditResult:
    return index.audit(candidate_pixels(catalog, candidates, size),
                       [c.candidate_id for c in candidates])


def _rows(snapshot: Snapshot, table: pa.Table) -> list[AuditRow]:
    """One round's audit table (with its `round` and `kept` columns) as catalog rows."""
    cols = table.to_pydict()
    return [
        AuditRow(
            snapshot_id=snapshot.snapshot_id, candidate_id=cols["candidate_id"][i],
            round=int(cols["round"][i]),
            phash_distance=int(cols["phash_distance"][i]), pixel_l2=float(cols["pixel_l2"][i]),
            patch_l2=float(cols["patch_l2"][i]), embedding_cosine=float(cols["embedding_cosine"][i]),
            nearest_phash=cols["phash_source_id"][i], nearest_pixel=cols["pixel_l2_source_id"][i],
            nearest_patch=cols["patch_l2_source_id"][i], nearest_embedding=cols["embedding_source_id"][i],
            flagged=bool(cols["flagged"][i]), kept=bool(cols["kept"][i]),
        )
        for i in range(table.num_rows)
    ]


@dataclass(frozen=True)
class AuditOutcome:
    kept: int
    flagged_total: int
    replaced: int
    rounds: int  # replacement rounds after the first audit
    summary: AuditSummary  # of the first round, all candidates


def audit_and_replace(catalog: Catalog, snapshot: Snapshot, config: BuildConfig,
                      *, progress: bool = False) -> AuditOutcome:
    """Audit the build's candidates and replace the flagged ones, recording every round.

    The loop runs once for the whole build rather than once per shard: each round audits
    every shard's new candidates in one pass, round 0's summary covers every candidate,
    and the bound on rounds and the exhaustion error are the build's, as the build's
    settings state them. Within a round each shard still samples once, with its own
    (shard, round) seed. A slot is named by the candidate the candidates step drew for
    it, whose shard and label every replacement keeps.
    """
    size = config.generator.image_size
    index = source_index(catalog, config)
    models = current_models(catalog, snapshot, config)
    first = {c.candidate_id: c for c in snapshot_candidates(catalog, snapshot.snapshot_id)}

    def draw(slots: list[str], round_: int) -> Batch:
        if round_ == 0:  # the candidates step drew these already
            batch = [first[s] for s in slots]
        else:
            batch = replacement_candidates(catalog, snapshot, config, models,
                                           [first[s] for s in slots], round_, progress=progress)
            catalog.add(batch)  # on record before the audit, as their files are
        return Batch([c.candidate_id for c in batch], candidate_pixels(catalog, batch, size))

    out = replace_near_duplicates(
        draw, index, list(first), max_replacement_rounds=config.max_replacement_rounds,
        on_round=lambda table: catalog.add(_rows(snapshot, table)),
    )
    return AuditOutcome(kept=len(out.kept_ids), flagged_total=out.n_flagged,
                        replaced=out.replaced, rounds=out.replacement_rounds,
                        summary=out.summary)
