"""Tiny data and tiny trained models shared by the generator tests.

Models are real diffusers UNets of the `tiny` preset (two levels, attention) at 8 px,
trained for a few steps: large enough to exercise every code path, small enough that the
whole area runs in about a minute on two CPU cores.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from generators.config import DiffusionConfig
from generators.trained import TrainedGenerator
from generators.training import train_diffusion


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread_per_worker() -> Iterator[None]:
    """One torch thread per test process.

    `make test` runs two xdist workers on two cores; two threads each would oversubscribe
    the cores, and torch's OpenMP barriers then make a tiny model's step ~6x slower
    (measured 0.34 s vs 0.056 s median). The code under test reads this variable in
    `generators.runtime.configure_threads`, so the path is exercised, not bypassed.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONSENTGEN_TORCH_THREADS", "1")
        yield


def make_images(
    n: int, *, size: int = 8, channels: int = 1, num_classes: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images whose class decides the direction of a gradient, plus a little noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    ramp = np.linspace(0, 255, size)
    patterns = [
        np.broadcast_to(ramp, (size, size)),  # left to right
        np.broadcast_to(ramp[:, None], (size, size)),  # top to bottom
        (np.add.outer(ramp, ramp) / 2),  # diagonal
    ]
    images = np.stack([patterns[c % len(patterns)] for c in labels]).astype(np.float64)
    images = images + rng.normal(0, 12, images.shape)
    if channels == 3:
        images = np.stack([images, 255 - images, images[:, ::-1]], axis=-1)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels


def record_ids(n: int, prefix: str = "rec") -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(n)]


def tiny_config(**overrides) -> DiffusionConfig:
    settings = {
        "preset": "tiny",
        "image_size": 8,
        "num_classes": 2,
        "train_steps": 4,
        "batch_size": 8,
        "sample_steps": 4,
        "seed": 7,
    }
    return DiffusionConfig(**{**settings, **overrides})


@pytest.fixture(scope="session")
def tiny_data() -> tuple[np.ndarray, np.ndarray]:
    return make_images(16)


@pytest.fixture(scope="session")
def trained_tiny(tiny_data: tuple[np.ndarray, np.ndarray]) -> TrainedGenerator:
    """A grey 8 px tiny model after 4 steps (EMA on): for sampling and checkpoint tests.

    Shared read-only: tests that mutate (save_checkpoint sets `.checkpoint`) train their own.
    """
    images, labels = tiny_data
    return train_diffusion(images, labels, tiny_config(), record_ids=record_ids(len(images)))
