"""Candidate synthetic images: drawn from every shard's current model, with lineage.

Each candidate records the shard and model version that made it; that, through the
model's record list, is the lineage a revocation follows (an img2img candidate's is the
one record in `conditioned_on`, `pipelines.steps.conditioning`). A shard whose model did not
change since an earlier build keeps its already-audited candidates, so a rebuild samples
only from the shards it retrained; one that lost some (withdrawn) keeps the others and
draws only the images missing (`candidate_files.unfilled`), with new seeds (the snapshot
is in every seed), so nothing withdrawn is drawn again on the same inputs.

What was withdrawn never comes back (`pipelines.steps.bans`): a banned candidate, or one
whose pixels are banned, is never reused, and a fresh sample whose pixels are banned is
dropped and drawn again, here, where every sample (the audit's replacements too) is born.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from consentgen.crash import crashpoint
from generators.labels import class_balanced_labels
from pipelines.catalog import Candidate, Catalog, ShardModel, Snapshot
from pipelines.catalog.lineage import (
    is_conditioning_set,
    last_kept_candidates_of_model,
    shard_training_records,
)
from pipelines.settings import BuildConfig
from pipelines.steps.bans import file_pixel_hash, load_bans
from pipelines.steps.candidate_files import redraw_banned, store_candidates, unfilled
from pipelines.steps.classes import snapshot_classes
from pipelines.steps.conditioning import conditioned_candidates, conditioned_replacements
from pipelines.steps.shard_training import current_models, load_model



def shard_seed(config: BuildConfig, snapshot: Snapshot, shard: int, round_: int) -> int:
    """The seed a shard samples with in an audit round (0: the candidates step's draw).

    Fixed by (build seed, snapshot, shard, round): a build is reproducible, and a
    replacement round never redraws the noise of the images it replaces.
    """
    parts = f"{config.seed}|{snapshot.snapshot_id}|{shard}|{round_}"
    return int.from_bytes(hashlib.sha256(parts.encode()).digest()[:7], "big")


def shard_labels(catalog: Catalog, snapshot: Snapshot, shard: int, n: int) -> list[str]:
    """Class-balanced over the classes this shard's training records hold, in class-index
    order: a class-conditional model asked for a class it never saw returns noise."""
    classes = snapshot_classes(catalog, snapshot.snapshot_id)
    records = shard_training_records(catalog, snapshot.snapshot_id, shard)
    return classes.labels_at(class_balanced_labels(n, classes.indices(r.label for r in records)))


def sample_candidates(
    catalog: Catalog, snapshot: Snapshot, model: ShardModel, labels: Sequence[str], seed: int,
    config: BuildConfig, *, progress: bool = False,
) -> list[Candidate]:
    """Sample one image per label (text, one of the snapshot's classes) from `model`, write
    PNGs, return (unrecorded) rows.

    A sample whose pixels are banned is treated like a flagged one: dropped and drawn
    again (same label, a seed derived from `seed`), a bounded number of times.
    """
    from generators.sampling import sample  # torch: only when sampling

    generator = load_model(catalog, model)
    banned = load_bans(catalog).pixels
    indices = snapshot_classes(catalog, snapshot.snapshot_id).indices(labels)

    def draw(chosen: np.ndarray, draw_seed: int) -> np.ndarray:
        return sample(generator, len(chosen), chosen, steps=config.generator.sample_steps,
                      seed=draw_seed, progress=progress)

    pixels = dict(enumerate(draw(indices, seed)))
    redraw_banned(pixels, banned,
                  lambda redo, attempt: draw(indices[redo], _redraw_seed(seed, attempt)), model)
    return store_candidates(catalog, snapshot, model, [pixels[i] for i in range(len(labels))],
                            labels, [seed] * len(labels))


def _redraw_seed(seed: int, attempt: int) -> int:
    digest = hashlib.sha256(f"{seed}|banned-redraw|{attempt}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


def replacement_candidates(
    catalog: Catalog, snapshot: Snapshot, config: BuildConfig, models: Mapping[int, ShardModel],
    replacing: Sequence[Candidate], round_: int, *, progress: bool = False,
) -> list[Candidate]:
    """One new candidate for each of `replacing`, in its order: the same label from the same
    shard's model, each shard sampled once with its (shard, round) seed. Unrecorded.
    (img2img: conditioned on the next record of the slot's class, `conditioning`.)"""
    if any(is_conditioning_set(models[c.shard]) for c in replacing):
        return conditioned_replacements(catalog, snapshot, config, models, replacing, round_,
                                        progress=progress)
    positions: dict[int, list[int]] = {}
    for i, c in enumerate(replacing):
        positions.setdefault(c.shard, []).append(i)
    fresh: dict[int, Candidate] = {}
    for shard, where in sorted(positions.items()):
        labels = [replacing[i].label for i in where]
        drawn = sample_candidates(catalog, snapshot, models[shard], labels,
                                  shard_seed(config, snapshot, shard, round_), config,
                                  progress=progress)
        fresh.update(zip(where, drawn, strict=True))
    return [fresh[i] for i in range(len(replacing))]


def reusable_candidates(catalog: Catalog, model: ShardModel) -> list[Candidate]:
    """Candidates of the same model version that an earlier build audited and kept, while
    their files are still there and neither they nor their pixels are banned."""
    bans = load_bans(catalog)
    kept = [c for c in last_kept_candidates_of_model(catalog, model.model_version)
            if not bans.refuses(candidate_id=c.candidate_id)]
    return [c for c in kept
            if (h := file_pixel_hash(catalog.home / c.image_path)) is not None
            and not bans.refuses(pixel_hash=h)]


def generate_candidates(
    catalog: Catalog, snapshot: Snapshot, config: BuildConfig, *, progress: bool = False,
    on_shard: Callable[[int, str], None] | None = None,
) -> list[Candidate]:
    """`images_per_shard` candidates from each shard with a model, recorded in the catalog:
    the audited ones it can reuse, and new ones for the rest."""
    out: list[Candidate] = []
    n = config.images_per_shard
    for shard, model in current_models(catalog, snapshot, config).items():
        reused = reusable_candidates(catalog, model)[:n]
        rows = [c.model_copy(update={"snapshot_id": snapshot.snapshot_id}) for c in reused]
        how = "reused"
        if len(reused) < n:
            if is_conditioning_set(model):  # img2img: one image per slot of the shard's set
                fresh = conditioned_candidates(catalog, snapshot, model, config, kept=reused,
                                               progress=progress)
                verb = "conditioned"
            else:
                labels = unfilled(shard_labels(catalog, snapshot, shard, n), reused,
                                  [lambda label, c: label == c.label])
                fresh = sample_candidates(catalog, snapshot, model, labels,
                                          shard_seed(config, snapshot, shard, 0), config,
                                          progress=progress)
                verb = "sampled"
            crashpoint("candidates.written")
            rows += fresh
            how = f"reused {len(reused)}, {verb} {len(fresh)}" if reused else verb
        catalog.add(rows)
        out.extend(rows)
        if on_shard:
            on_shard(shard, how)
    return out
