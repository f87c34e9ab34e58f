"""The batched pHash gives imagehash's bits exactly, on real and on colour images."""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

from validation.audit.arrays import luminance
from validation.audit.phash import HammingIndex, pack, phash_bits

from .conftest import Br35H, smooth_noise


def test_batched_phash_bits_equal_imagehash_on_br35h(br35h: Br35H) -> None:
    sample = br35h.images[::7]  # 429 real slices
    ours = phash_bits(sample)
    theirs = np.stack([imagehash.phash(Image.fromarray(img)).hash for img in sample])
    assert ours.shape == (len(sample), 8, 8)
    assert np.array_equal(ours, theirs)


def test_batched_phash_bits_equal_imagehash_on_colour_arrays() -> None:
    rng = np.random.default_rng(3)
    rgb = np.stack([smooth_noise(40, seed=s) for s in (1, 2, 3)], axis=-1)
    rgb[:10] = rng.integers(0, 256, rgb[:10].shape, dtype=np.uint8)  # and pure noise
    ours = phash_bits(luminance(rgb))
    theirs = np.stack([imagehash.phash(Image.fromarray(img)).hash for img in rgb])
    assert np.array_equal(ours, theirs)


def test_luminance_is_pillows_conversion() -> None:
    rng = np.random.default_rng(4)
    rgba = rng.integers(0, 256, (5, 16, 16, 4), dtype=np.uint8)
    expected = np.stack([np.asarray(Image.fromarray(img, "RGBA").convert("L")) for img in rgba])
    assert np.array_equal(luminance(rgba), expected)


def test_hamming_index_returns_the_exact_nearest_hash(br35h: Br35H) -> None:
    bits = phash_bits(br35h.images[:300])
    packed = pack(bits)
    queries = packed[:50].copy()
    queries[:, 0] ^= 0b00000111  # three bits flipped in every query
    dist, row = HammingIndex(packed).nearest(queries)
    brute = np.bitwise_count(
        queries.view(np.uint64)[:, None, 0] ^ packed.view(np.uint64)[None, :, 0]
    )
    assert np.array_equal(dist, brute.min(axis=1))
    assert np.array_equal(brute[np.arange(50), row], dist)
    assert (dist <= 3).all()
