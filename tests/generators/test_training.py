"""Training: reproducible by seed, lowers the loss, records its lineage, refuses bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generators.balanced import shard_plan
from generators.errors import GeneratorInputError
from generators.membership import per_sample_loss
from generators.sampling import sample
from generators.trained import TrainedGenerator
from generators.training import train_diffusion
from tests.generators.conftest import make_images, record_ids, tiny_config


def _weights(trained: TrainedGenerator) -> dict[str, torch.Tensor]:
    return trained.unet.state_dict()


def test_same_seed_and_data_give_the_same_weights(tiny_data) -> None:
    images, labels = tiny_data
    ids = record_ids(len(images))
    first = train_diffusion(images, labels, tiny_config(train_steps=3), record_ids=ids)
    second = train_diffusion(images, labels, tiny_config(train_steps=3), record_ids=ids)
    other_seed = train_diffusion(images, labels, tiny_config(train_steps=3, seed=8), record_ids=ids)
    a, b, c = _weights(first), _weights(second), _weights(other_seed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert first.record.loss_history == second.record.loss_history


def test_training_lowers_the_denoising_loss_on_a_fixed_batch(tiny_data) -> None:
    images, labels = tiny_data
    ids = record_ids(len(images))
    # The whole batch in every step; EMA off so the weights scored are the trained ones.
    config = tiny_config(batch_size=16, ema=False, lr=2e-3, lr_warmup_steps=0)
    start = train_diffusion(
        images, labels, config.model_copy(update={"train_steps": 1}), record_ids=ids
    )
    trained = train_diffusion(
        images, labels, config.model_copy(update={"train_steps": 60}), record_ids=ids
    )
    before = per_sample_loss(start, images, labels, timestep=300, seed=3)
    after = per_sample_loss(trained, images, labels, timestep=300, seed=3)
    assert before.shape == after.shape == (16,)
    assert after.mean() < 0.6 * before.mean(), (before.mean(), after.mean())
    history = trained.record.loss_history
    assert len(history) == 60  # one pass over 16 images per step
    assert np.mean(history[-10:]) < 0.6 * np.mean(history[:3])


def test_record_holds_lineage_and_run_facts(trained_tiny: TrainedGenerator, tiny_data) -> None:
    images, _ = tiny_data
    record = trained_tiny.record
    assert record.record_ids == record_ids(len(images))
    assert record.class_counts == [8, 8]
    assert record.seed == trained_tiny.config.seed == 7
    assert record.steps == 4 and record.epochs_run == 2.0  # 16 images, batch 8
    assert len(record.loss_history) == 2 and all(np.isfinite(record.loss_history))
    assert record.epsilon is None and record.delta is None
    assert record.device == "cpu" or record.device.startswith("cuda")
    assert {"torch", "diffusers"} <= record.versions.keys()
    assert not trained_tiny.unet.training
    assert not any(p.requires_grad for p in trained_tiny.unet.parameters())


def test_epochs_mode_runs_whole_passes() -> None:
    images, labels = make_images(10)
    trained = train_diffusion(
        images,
        labels,
        tiny_config(train_steps=None, epochs=2, batch_size=4),
        record_ids=record_ids(10),
    )
    assert trained.record.steps == 6  # ceil(10 / 4) = 3 steps per pass
    assert len(trained.record.loss_history) == 2


def test_colour_images_channels_last_and_first_train_alike() -> None:
    images, labels = make_images(8, channels=3)
    ids = record_ids(8)
    config = tiny_config(channels=3, train_steps=1)
    last = train_diffusion(images, labels, config, record_ids=ids)
    first = train_diffusion(np.moveaxis(images, -1, 1).copy(), labels, config, record_ids=ids)
    assert all(
        torch.equal(a, b)
        for a, b in zip(_weights(last).values(), _weights(first).values(), strict=True)
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda im, lb, ids: (im.astype(np.float32), lb, ids), "uint8"),
        (lambda im, lb, ids: (im[:, :4, :4], lb, ids), "8x8"),
        (lambda im, lb, ids: (im, lb + 1, ids), r"\[0, 2\)"),
        (lambda im, lb, ids: (im, lb[:-1], ids), "labels must be 16"),
        (lambda im, lb, ids: (im, lb, ids[:-1]), "one record id per image"),
        (lambda im, lb, ids: (im, lb, [ids[0]] * len(ids)), "unique"),
        (lambda im, lb, ids: (im, lb, ["", *ids[1:]]), "non-empty"),
    ],
)
def test_bad_input_is_refused_before_training(tiny_data, mutate, message: str) -> None:
    images, labels = tiny_data
    bad_images, bad_labels, bad_ids = mutate(images, labels, record_ids(len(images)))
    with pytest.raises(GeneratorInputError, match=message):
        train_diffusion(bad_images, bad_labels, tiny_config(), record_ids=bad_ids)


def test_an_unconditional_model_has_no_class_embedding_and_needs_no_labels() -> None:
    images, _ = make_images(8)
    config = tiny_config(num_classes=None, train_steps=2)
    trained = train_diffusion(images, None, config, record_ids=record_ids(8))
    assert trained.unet.class_embedding is None and trained.unet.config.num_class_embeds is None
    assert trained.record.class_counts == [8]  # the one implicit class
    drawn = sample(trained, 3, steps=2, seed=1, bf16=False)
    assert drawn.shape == (3, 8, 8)
    np.testing.assert_array_equal(drawn, sample(trained, 3, np.zeros(3, np.int64), steps=2,
                                                seed=1, bf16=False))  # class 0 is no label
    with pytest.raises(GeneratorInputError, match=r"labels must lie in \[0, 1\)"):
        sample(trained, 2, np.array([0, 1]), steps=2, seed=1)
    losses = per_sample_loss(trained, images, None, timestep=100, seed=3)
    assert losses.shape == (8,) and np.all(np.isfinite(losses))
    plan = shard_plan({0: trained, 1: trained}, 5, None)
    assert sorted(len(v) for v in plan.values()) == [2, 3] and {*plan[0], *plan[1]} == {0}


def test_a_256_px_colour_model_trains_and_samples() -> None:
    """The largest size a build file may ask for (one step: the shapes, not the quality)."""
    images = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    config = tiny_config(preset="small", image_size=256, channels=3, num_classes=None,
                         train_steps=1, batch_size=2, ema=False)
    trained = train_diffusion(images, None, config, record_ids=record_ids(2))
    assert sample(trained, 1, steps=2, seed=0, bf16=False).shape == (1, 256, 256, 3)
