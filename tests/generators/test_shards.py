"""Shard assignment must never move a subject: fixed vectors, other processes, spread."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections import Counter

import pytest

from generators.errors import GeneratorInputError
from generators.shards import SHARD_DOMAIN, shard_of

# Pinned: changing any of these moves subjects between shards and retrains every shard.
VECTORS = [
    ("subject-0001", 4, 1),
    ("subject-0002", 4, 2),
    ("subject-0003", 4, 3),
    ("patient-ä-17", 7, 3),
    ("S", 1, 0),
    ("subject-0001", 1_000_003, 826_798),
]


@pytest.mark.parametrize(("subject", "k", "expected"), VECTORS)
def test_fixed_vectors(subject: str, k: int, expected: int) -> None:
    assert shard_of(subject, k) == expected


def test_derivation_is_the_documented_sha256() -> None:
    digest = hashlib.sha256(b"consentgen/shard/v1\x00subject-0001").digest()
    assert SHARD_DOMAIN == b"consentgen/shard/v1\x00"
    assert digest.hex().startswith("bda0bda6ffd19de1")
    assert shard_of("subject-0001", 97) == int.from_bytes(digest[:8], "big") % 97


def test_same_answer_in_another_process_with_another_hash_seed() -> None:
    code = (
        "import sys; from generators.shards import shard_of; "
        f"print([shard_of(s, k) for s, k, _ in {VECTORS!r}]); print('torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split("\n")
    assert out[0] == str([expected for _, _, expected in VECTORS])
    assert out[1] == "False", "importing generators.shards must stay light (no torch)"


def test_subjects_spread_evenly_over_shards() -> None:
    counts = Counter(shard_of(f"subject-{i:05d}", 4) for i in range(4000))
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(900 <= c <= 1100 for c in counts.values()), counts


@pytest.mark.parametrize(("subject", "k"), [("", 4), ("s", 0), ("s", -1), ("s", True), (17, 4)])
def test_bad_arguments_are_refused(subject: object, k: object) -> None:
    with pytest.raises(GeneratorInputError):
        shard_of(subject, k)  # type: ignore[arg-type]
