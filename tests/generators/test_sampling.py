"""Sampling: shapes, dtype, range, determinism by seed, conditioning, bf16 agreement."""

from __future__ import annotations

import numpy as np
import pytest

from generators.errors import GeneratorInputError
from generators.labels import class_balanced_labels
from generators.sampling import sample
from generators.trained import TrainedGenerator
from generators.training import train_diffusion
from tests.generators.conftest import make_images, record_ids, tiny_config


def test_grey_samples_are_uint8_n_h_w_and_use_the_range(trained_tiny: TrainedGenerator) -> None:
    images = sample(trained_tiny, 5, steps=4, seed=1, bf16=False)
    assert images.shape == (5, 8, 8) and images.dtype == np.uint8
    # an almost untrained model gives noisy images: spread over the range, not saturated
    assert images.min() < 64 and images.max() > 191
    assert 0.02 < np.mean((images == 0) | (images == 255)) < 0.9


def test_colour_samples_are_n_h_w_c() -> None:
    images, labels = make_images(8, channels=3)
    trained = train_diffusion(
        images, labels, tiny_config(channels=3, train_steps=1), record_ids=record_ids(8)
    )
    out = sample(trained, 3, steps=2, seed=0, bf16=False)
    assert out.shape == (3, 8, 8, 3) and out.dtype == np.uint8


def test_same_seed_same_images_other_seed_other_images(trained_tiny: TrainedGenerator) -> None:
    a = sample(trained_tiny, 4, steps=4, seed=11, bf16=False)
    b = sample(trained_tiny, 4, steps=4, seed=11, bf16=False)
    c = sample(trained_tiny, 4, steps=4, seed=12, bf16=False)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_an_image_does_not_depend_on_the_batch_it_was_sampled_in(
    trained_tiny: TrainedGenerator,
) -> None:
    whole = sample(trained_tiny, 6, steps=4, seed=5, batch_size=6, bf16=False).astype(int)
    split = sample(trained_tiny, 6, steps=4, seed=5, batch_size=4, bf16=False).astype(int)
    assert np.abs(whole - split).max() <= 1  # float summation order may differ by batch


def test_labels_condition_the_output(trained_tiny: TrainedGenerator) -> None:
    zeros = sample(trained_tiny, 4, np.zeros(4, dtype=np.int64), steps=4, seed=3, bf16=False)
    ones = sample(trained_tiny, 4, np.ones(4, dtype=np.int64), steps=4, seed=3, bf16=False)
    assert not np.array_equal(zeros, ones)


def test_default_labels_are_balanced_and_default_steps_come_from_config(trained_tiny) -> None:
    assert class_balanced_labels(5, range(2)).tolist() == [0, 1, 0, 1, 0]
    implicit = sample(trained_tiny, 4, seed=2, bf16=False)
    explicit = sample(trained_tiny, 4, class_balanced_labels(4, range(2)), steps=4, seed=2, bf16=False)
    assert np.array_equal(implicit, explicit)


def test_bf16_autocast_agrees_with_float32(trained_tiny: TrainedGenerator) -> None:
    fp32 = sample(trained_tiny, 6, steps=4, seed=9, bf16=False).astype(float)
    bf16 = sample(trained_tiny, 6, steps=4, seed=9, bf16=True).astype(float)
    assert not np.array_equal(fp32, bf16)  # autocast really ran in lower precision
    assert np.abs(fp32 - bf16).mean() < 4.0  # grey levels out of 255


def test_zero_images_and_bad_requests(trained_tiny: TrainedGenerator) -> None:
    assert sample(trained_tiny, 0, steps=2).shape == (0, 8, 8)
    with pytest.raises(GeneratorInputError):
        sample(trained_tiny, 2, np.array([0, 2]), steps=2)
    with pytest.raises(GeneratorInputError):
        sample(trained_tiny, 2, steps=0)
