"""Candidate synthetic images: drawn from every shard's current model, with lineage.

Each candidate records the shard and model version that made it; that, through the
model's record list, is the lineage a revocation follows. A shard whose model did not
change since an earlier build keeps its already-audited candidates, so a rebuild samples
only from the shards it retrained.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

import numpy as np

from consent.events import utc_now
from pipelines.catalog import Candidate, Catalog, ShardModel, Snapshot
from pipelines.steps.images import write_png
from pipelines.settings import BuildConfig
from pipelines.steps.shard_training import current_models, load_model, shard_training_records

CANDIDATES_DIR = "candidates"


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:7], "big")


def shard_labels(catalog: Catalog, snapshot: Snapshot, shard: int, n: int) -> np.ndarray:
    """Class-balanced over the classes this shard's model actually saw."""
    seen = sorted({r.label for r in shard_training_records(catalog, snapshot.snapshot_id, shard)})
    return np.array([seen[i % len(seen)] for i in range(n)], dtype=np.int64)


def sample_candidates(
    catalog: Catalog, snapshot: Snapshot, model: ShardModel, labels: np.ndarray, seed: int,
    config: BuildConfig, *, progress: bool = False,
) -> list[Candidate]:
    """Sample one image per label from `model`, write PNGs, return (unrecorded) rows."""
    from generators.sampling import sample  # torch: only when sampling

    generator = load_model(catalog, model)
    pixels = sample(generator, len(labels), labels, steps=config.generator.sample_steps, seed=seed,
                    progress=progress)
    now = utc_now()
    rows = []
    for i, label in enumerate(labels):
        candidate_id = uuid.uuid4().hex
        rel = f"{CANDIDATES_DIR}/{candidate_id}.png"
        write_png(pixels[i], catalog.home / rel)
        rows.append(Candidate(
            candidate_id=candidate_id, snapshot_id=snapshot.snapshot_id, shard=model.shard,
            model_version=model.model_version, label=int(label), seed=seed,
            image_path=rel, created_at=now,
        ))
    return rows


def reusable_candidates(catalog: Catalog, model: ShardModel) -> list[Candidate]:
    """Candidates of the same model version that an earlier build audited and kept."""
    kept = catalog.select(
        Candidate,
        "WHERE model_version = ? AND snapshot_id = (SELECT max(c.snapshot_id) FROM candidates c "
        "WHERE c.model_version = ?) AND candidate_id IN (SELECT candidate_id FROM audit_results "
        "WHERE kept) ORDER BY candidate_id",
        [model.model_version, model.model_version],
    )
    return [c for c in kept if (catalog.home / c.image_path).exists()]


def generate_candidates(
    catalog: Catalog, snapshot: Snapshot, config: BuildConfig, *, progress: bool = False,
    on_shard: Callable[[int, str], None] | None = None,
) -> list[Candidate]:
    """`images_per_shard` candidates from each shard with a model, recorded in the catalog."""
    out: list[Candidate] = []
    for shard, model in current_models(catalog, snapshot, config).items():
        reused = reusable_candidates(catalog, model)[: config.images_per_shard]
        if len(reused) == config.images_per_shard:
            rows = [c.model_copy(update={"snapshot_id": snapshot.snapshot_id}) for c in reused]
            how = "reused"
        else:
            labels = shard_labels(catalog, snapshot, shard, config.images_per_shard)
            rows = sample_candidates(catalog, snapshot, model, labels,
                                     _seed(config.seed, snapshot.snapshot_id, shard, 0), config,
                                     progress=progress)
            how = "sampled"
        catalog.add(rows)
        out.extend(rows)
        if on_shard:
            on_shard(shard, how)
    return out


def snapshot_candidates(catalog: Catalog, snapshot_id: str) -> list[Candidate]:
    return catalog.select(Candidate, "WHERE snapshot_id = ? ORDER BY shard, candidate_id", [snapshot_id])


def kept_candidates(catalog: Catalog, snapshot_id: str) -> list[Candidate]:
    return catalog.select(
        Candidate,
        "WHERE snapshot_id = ? AND candidate_id IN (SELECT candidate_id FROM audit_results "
        "WHERE snapshot_id = ? AND kept) ORDER BY shard, candidate_id",
        [snapshot_id, snapshot_id],
    )

