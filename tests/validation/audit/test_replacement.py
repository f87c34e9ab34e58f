"""The replacement loop keeps clean samples, terminates, and says when it cannot."""

from __future__ import annotations

import numpy as np
import pytest

from consentgen.errors import AuditError, ReplacementExhaustedError
from validation.audit import AuditConfig, replace_near_duplicates, transform_images

from .conftest import smooth_noise

CONFIG = AuditConfig(search="exact")


@pytest.fixture(scope="module")
def sources(distinct) -> np.ndarray:
    return distinct[0][:120]


def test_flagged_samples_are_replaced_until_the_target_is_met(sources) -> None:
    calls: list[tuple[int, int]] = []

    def sample(n: int, round_: int) -> np.ndarray:
        calls.append((n, round_))
        fresh = smooth_noise(n, seed=100 + round_)
        if round_ == 0:  # a memorising generator's first draw: 6 copies of sources
            fresh[:6] = transform_images(sources[10:16], "noise", seed=round_)
        return fresh

    out = replace_near_duplicates(sample, sources, None, target=20, config=CONFIG)
    assert calls == [(20, 0), (6, 1)]
    assert out.rounds == 2 and out.n_flagged == 6
    assert out.kept.shape == (20, 64, 64) and out.kept.dtype == np.uint8
    table = out.table
    assert table.num_rows == 26
    assert table.column("round").to_pylist() == [0] * 20 + [1] * 6
    kept_rows = table.filter(table.column("kept"))
    assert kept_rows.num_rows == 20
    assert not any(kept_rows.column("flagged").to_pylist())
    assert sum(table.column("flagged").to_pylist()) == 6
    np.testing.assert_array_equal(out.kept[:14], sample(20, 0)[6:])


def test_the_bounded_loop_raises_and_names_the_flagged_count(sources) -> None:
    def always_copies(n: int, round_: int) -> np.ndarray:
        return transform_images(sources[:n], "jpeg", seed=round_)

    with pytest.raises(ReplacementExhaustedError, match="24 candidate") as info:
        replace_near_duplicates(always_copies, sources, None, target=8, config=CONFIG,
                                max_rounds=3)
    assert info.value.n_flagged == 24 and info.value.n_kept == 0 and info.value.rounds == 3


def test_partial_success_reports_what_was_kept(sources) -> None:
    def half_copies(n: int, round_: int) -> np.ndarray:
        out = smooth_noise(n, seed=round_)
        out[: (n + 1) // 2] = transform_images(sources[: (n + 1) // 2], "noise", seed=round_)
        return out

    with pytest.raises(ReplacementExhaustedError, match="kept 6 of the 8") as info:
        replace_near_duplicates(half_copies, sources, None, target=8, config=CONFIG,
                                max_rounds=2)
    assert info.value.n_flagged == 6


def test_zero_target_and_bad_samplers(sources) -> None:
    out = replace_near_duplicates(lambda n, r: smooth_noise(n, r), sources, None, target=0,
                                  config=CONFIG)
    assert out.rounds == 0 and len(out.kept) == 0 and out.table.num_rows == 0
    assert "kept" in out.table.column_names
    with pytest.raises(AuditError, match="asked for 5"):
        replace_near_duplicates(lambda n, r: smooth_noise(n + 1, r), sources, None, target=5,
                                config=CONFIG)
    with pytest.raises(AuditError, match="uint8"):
        replace_near_duplicates(lambda n, r: np.zeros((n, 64, 64)), sources, None, target=2,
                                config=CONFIG)
