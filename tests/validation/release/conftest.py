"""Shared builders for the release tests: a realistic manifest and audit table.

The frames look like what the release step will hand over: random 32-hex image ids,
two labels, 32x32 images from the DDPM generator, and audit distances comfortably on
the safe side of the default thresholds. Tests break one thing at a time.
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from validation.release.expectations import MANIFEST_CORE_COLUMNS

THRESHOLDS: dict[str, tuple[str, float]] = {
    "phash_distance": ("min", 4.0),
    "pixel_l2": ("min", 0.30),
    "patch_l2": ("min", 0.40),
    "embedding_cosine": ("max", 0.95),
}
LABELS = {0, 1}
SIZE = (32, 32)
COLUMNS = [*MANIFEST_CORE_COLUMNS, *THRESHOLDS]


def make_manifest(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A manifest that every expectation accepts."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "image_id": [uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i).hex
                     for i in range(n)],
        "label": [i % 2 for i in range(n)],
        "width": [SIZE[0]] * n,
        "height": [SIZE[1]] * n,
        "generator": ["ddpm"] * n,
        "model_version": [f"shard{i % 4}-v1" for i in range(n)],
        "phash_distance": rng.integers(8, 40, n).astype(np.int32),
        "pixel_l2": rng.uniform(0.5, 1.4, n).astype(np.float32),
        "patch_l2": rng.uniform(0.8, 2.5, n).astype(np.float32),
        "embedding_cosine": rng.uniform(0.1, 0.9, n).astype(np.float32),
    })


def make_audit(n: int = 30, seed: int = 1) -> pd.DataFrame:
    """The audit table as a release ships it: the images that ship, none flagged."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "image_id": [uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i).hex
                     for i in range(n)],
        "phash_distance": rng.integers(8, 40, n).astype(np.int32),
        "pixel_l2": rng.uniform(0.5, 1.4, n).astype(np.float32),
        "patch_l2": rng.uniform(0.8, 2.5, n).astype(np.float32),
        "embedding_cosine": rng.uniform(0.1, 0.9, n).astype(np.float32),
        "flagged": np.zeros(n, dtype=bool),
    })


@pytest.fixture
def manifest() -> pd.DataFrame:
    return make_manifest()


@pytest.fixture
def audit() -> pd.DataFrame:
    return make_audit()
