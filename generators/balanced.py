"""Class-balanced generation across SISA shard models, with per-image lineage.

Each image records the shard and model version that made it: that is what a revocation
follows to withdraw exactly the images of the affected shard. Each shard samples with a
seed derived from the run seed and its shard number, so after shard s is retrained the
other shards' images come out exactly as before and only shard s's images change.

A class is drawn only from shards whose model was trained on at least one record of it
(a class-conditional model asked for a class it never saw returns noise shaped by the
other classes); within a class the images are spread round-robin over those shards.

`class_balanced_labels` is the one rule for "as even across classes as n allows": the
plan here counts its labels, and the build asks it for each shard's labels over the
classes that shard saw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from consentgen.errors import GeneratorError
from generators.labels import class_balanced_labels
from generators.runtime import derive_seed
from generators.sampling import sample
from generators.trained import TrainedGenerator


@dataclass(frozen=True)
class GeneratedImages:
    """Images with their labels and lineage; row i of every array describes image i."""

    images: np.ndarray  # uint8 [n,H,W] or [n,H,W,C]
    labels: np.ndarray  # int64 [n]
    shards: np.ndarray  # int64 [n]: the shard whose model made the image
    versions: list[str | None]  # the model version of that shard (None if never saved)
    seeds: dict[int, int]  # the sampling seed each shard used


def shard_plan(
    models: Mapping[int, TrainedGenerator], n: int, num_classes: int | None
) -> dict[int, list[int]]:
    """Which labels each shard generates: `n` images, class-balanced, over shards that know
    the class (`num_classes` None: unconditional models, every image class 0)."""
    plan: dict[int, list[int]] = {shard: [] for shard in sorted(models)}
    classes = num_classes or 1
    counts = Counter(class_balanced_labels(n, range(classes)).tolist())
    for label in range(classes):
        wanted = counts[label]
        able = [s for s in sorted(models) if models[s].record.class_counts[label] > 0]
        if wanted and not able:
            raise GeneratorError(f"no shard model was trained on class {label}; cannot generate it")
        for j in range(wanted):
            plan[able[(j + label) % len(able)]].append(label)
    return plan


def generate_balanced(
    models: Mapping[int, TrainedGenerator],
    n: int,
    num_classes: int | None,
    seed: int,
    *,
    steps: int | None = None,
    batch_size: int = 64,
    bf16: bool | None = None,
    progress: bool | None = None,
) -> GeneratedImages:
    """`n` class-balanced images drawn from all shard `models` (keyed by shard number);
    `num_classes` None for unconditional models."""
    if not models or n < 1:
        raise GeneratorError(
            f"generate_balanced needs n >= 1 and shard models (n={n}, {len(models)} models)"
        )
    mislabelled = {s: m.shard for s, m in models.items() if m.shard is not None and m.shard != s}
    if mislabelled:
        raise GeneratorError(
            f"models keyed under another shard than their checkpoint's: {mislabelled}"
        )
    shapes = {
        (m.config.image_size, m.config.channels, m.config.num_classes) for m in models.values()
    }
    if len(shapes) != 1 or next(iter(shapes))[2] != num_classes:
        raise GeneratorError(
            f"shard models disagree on (image_size, channels, num_classes): {sorted(shapes)}; "
            f"expected num_classes={num_classes}"
        )
    plan = shard_plan(models, n, num_classes)
    seeds = {shard: derive_seed(seed, "shard", shard) for shard in plan}
    images, labels, shards, versions = [], [], [], []
    for shard, shard_labels in plan.items():
        if not shard_labels:
            continue
        wanted = np.asarray(shard_labels, dtype=np.int64)
        images.append(
            sample(
                models[shard],
                len(wanted),
                wanted,
                steps=steps,
                seed=seeds[shard],
                batch_size=batch_size,
                bf16=bf16,
                progress=progress,
            )
        )
        labels.append(wanted)
        shards.append(np.full(len(wanted), shard, dtype=np.int64))
        versions.extend([models[shard].version] * len(wanted))
    return GeneratedImages(
        images=np.concatenate(images),
        labels=np.concatenate(labels),
        shards=np.concatenate(shards),
        versions=versions,
        seeds=seeds,
    )
