"""The per-sample loss the membership-inference audit reads."""

from __future__ import annotations

import numpy as np
import pytest

from generators.errors import GeneratorInputError
from generators.membership import per_sample_loss
from generators.trained import TrainedGenerator
from tests.generators.conftest import make_images


def test_one_finite_loss_per_image_fixed_by_seed(trained_tiny: TrainedGenerator, tiny_data) -> None:
    images, labels = tiny_data
    first = per_sample_loss(trained_tiny, images, labels, timestep=250, seed=1)
    again = per_sample_loss(trained_tiny, images, labels, timestep=250, seed=1, batch_size=5)
    other = per_sample_loss(trained_tiny, images, labels, timestep=250, seed=2)
    assert first.shape == (16,) and first.dtype == np.float64
    assert np.all(np.isfinite(first)) and np.all(first > 0)
    np.testing.assert_allclose(first, again, rtol=1e-5)
    assert not np.allclose(first, other)


def test_an_image_is_scored_alone(trained_tiny: TrainedGenerator) -> None:
    images, labels = make_images(6)
    whole = per_sample_loss(trained_tiny, images, labels, timestep=600, seed=4)
    # the same noise draw for image 0 whatever follows it
    head = per_sample_loss(trained_tiny, images[:1], labels[:1], timestep=600, seed=4)
    np.testing.assert_allclose(whole[:1], head, rtol=1e-5)


def test_timestep_outside_the_schedule_is_refused(
    trained_tiny: TrainedGenerator, tiny_data
) -> None:
    images, labels = tiny_data
    with pytest.raises(GeneratorInputError):
        per_sample_loss(trained_tiny, images, labels, timestep=1000, seed=0)
