"""Class-balanced generation over shard models, with per-image (shard, version) lineage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from consentgen.errors import GeneratorError
from generators.balanced import generate_balanced, shard_plan
from generators.labels import class_balanced_labels
from generators.checkpoints import load_checkpoint, save_checkpoint
from generators.trained import TrainedGenerator
from generators.training import train_diffusion
from tests.generators.conftest import make_images, record_ids, tiny_config


def _shard_model(
    shard: int, tmp_path: Path, *, seed: int, classes: tuple[int, ...] = (0, 1, 2)
) -> TrainedGenerator:
    images, labels = make_images(12, num_classes=3, seed=shard)
    keep = np.isin(labels, classes)
    trained = train_diffusion(
        images[keep],
        labels[keep],
        tiny_config(num_classes=3, train_steps=1, seed=seed),
        record_ids=record_ids(int(keep.sum()), prefix=f"s{shard}"),
    )
    save_checkpoint(trained, tmp_path / str(shard) / f"v{seed}", shard=shard, version=f"v{seed}")
    return load_checkpoint(tmp_path / str(shard) / f"v{seed}")


@pytest.fixture(scope="module")
def shard_models(tmp_path_factory) -> dict[int, TrainedGenerator]:
    root = tmp_path_factory.mktemp("shards")
    # shard 2 never saw class 2: it must not be asked for it
    return {
        0: _shard_model(0, root, seed=1),
        1: _shard_model(1, root, seed=2),
        2: _shard_model(2, root, seed=3, classes=(0, 1)),
    }


def test_classes_are_balanced_and_lineage_is_per_image(shard_models) -> None:
    out = generate_balanced(shard_models, 13, 3, seed=5, steps=2)
    assert out.images.shape == (13, 8, 8) and out.images.dtype == np.uint8
    assert sorted(np.bincount(out.labels, minlength=3).tolist()) == [4, 4, 5]
    assert len(out.versions) == len(out.shards) == 13
    for shard, version in zip(out.shards, out.versions, strict=True):
        assert version == f"v{shard + 1}"
    assert set(out.shards.tolist()) == {0, 1, 2}
    assert not np.any((out.shards == 2) & (out.labels == 2))


def test_plan_spreads_each_class_over_the_shards_that_know_it(shard_models) -> None:
    plan = shard_plan(shard_models, 30, 3)
    assert sum(len(v) for v in plan.values()) == 30
    assert plan[2].count(2) == 0
    assert plan[0].count(2) == plan[1].count(2) == 5
    # known to all three shards: round-robin, each class starting one shard further on
    assert [plan[s].count(0) for s in (0, 1, 2)] == [4, 3, 3]
    assert [plan[s].count(1) for s in (0, 1, 2)] == [3, 4, 3]


def test_retraining_one_shard_changes_only_that_shards_images(shard_models, tmp_path: Path) -> None:
    before = generate_balanced(shard_models, 12, 3, seed=5, steps=2)
    retrained = {**shard_models, 1: _shard_model(1, tmp_path, seed=42)}
    after = generate_balanced(retrained, 12, 3, seed=5, steps=2)
    assert np.array_equal(before.labels, after.labels) and np.array_equal(
        before.shards, after.shards
    )
    untouched = before.shards != 1
    assert np.array_equal(before.images[untouched], after.images[untouched])
    assert not np.array_equal(before.images[~untouched], after.images[~untouched])
    assert {after.versions[i] for i in np.flatnonzero(~untouched)} == {"v42"}


def test_a_class_no_shard_knows_is_refused(tmp_path: Path) -> None:
    only_zero = _shard_model(0, tmp_path, seed=1, classes=(0,))
    with pytest.raises(GeneratorError, match="class 1"):
        generate_balanced({0: only_zero}, 4, 3, seed=0, steps=1)


def test_a_model_under_the_wrong_shard_key_is_refused(shard_models) -> None:
    with pytest.raises(GeneratorError, match="another shard"):
        generate_balanced({5: shard_models[0]}, 3, 3, seed=0, steps=1)


def test_class_balanced_labels_cycle_the_distinct_classes_in_order() -> None:
    labels = class_balanced_labels(7, [2, 0, 2])
    assert labels.dtype == np.int64 and labels.tolist() == [0, 2, 0, 2, 0, 2, 0]
    assert class_balanced_labels(5, range(3)).tolist() == [0, 1, 2, 0, 1]
    assert class_balanced_labels(0, []).tolist() == []
    with pytest.raises(GeneratorError, match="no classes"):
        class_balanced_labels(3, [])


def test_the_plan_draws_as_many_of_each_class_as_the_balanced_labels(shard_models) -> None:
    for n in (1, 2, 13, 30):
        plan = shard_plan(shard_models, n, 3)
        drawn = np.bincount([label for labels in plan.values() for label in labels], minlength=3)
        assert drawn.tolist() == np.bincount(class_balanced_labels(n, range(3)),
                                             minlength=3).tolist()
