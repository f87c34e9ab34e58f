"""The replacement loop keeps clean samples, terminates, and says when it cannot."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from consentgen.errors import AuditError, ReplacementExhaustedError
from validation.audit import (
    AuditConfig,
    AuditIndex,
    Batch,
    ReplacementOutcome,
    replace_near_duplicates,
    transform_images,
)

from .conftest import smooth_noise

CONFIG = AuditConfig(search="exact")


def replace(sample: Callable[[int, int], np.ndarray], sources: np.ndarray, target: int,
            max_rounds: int = 5) -> ReplacementOutcome:
    """The loop over `target` numbered slots, for a sampler of (n, round) -> images whose
    candidates are named r<round>-<i>; `max_rounds` counts the first draw too."""
    def draw(slots: list[str], round_: int) -> Batch:
        images = sample(len(slots), round_)
        return Batch([f"r{round_}-{i}" for i in range(len(images))], images)

    return replace_near_duplicates(draw, AuditIndex.build(sources, None, CONFIG),
                                   [f"slot{i}" for i in range(target)],
                                   max_replacement_rounds=max_rounds - 1)


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

    out = replace(sample, sources, target=20)
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
        replace(always_copies, sources, target=8, max_rounds=3)
    assert info.value.n_flagged == 24 and info.value.n_kept == 0 and info.value.rounds == 3


def test_partial_success_reports_what_was_kept(sources) -> None:
    def half_copies(n: int, round_: int) -> np.ndarray:
        out = smooth_noise(n, seed=round_)
        out[: (n + 1) // 2] = transform_images(sources[: (n + 1) // 2], "noise", seed=round_)
        return out

    with pytest.raises(ReplacementExhaustedError, match="kept 6 of the 8") as info:
        replace(half_copies, sources, target=8, max_rounds=2)
    assert info.value.n_flagged == 6


def test_zero_target_and_bad_samplers(sources) -> None:
    out = replace(lambda n, r: smooth_noise(n, r), sources, target=0)
    assert out.rounds == 0 and len(out.kept) == 0 and out.table.num_rows == 0
    assert "kept" in out.table.column_names
    with pytest.raises(AuditError, match="asked for 5"):
        replace(lambda n, r: smooth_noise(n + 1, r), sources, target=5)
    with pytest.raises(AuditError, match="uint8"):
        replace(lambda n, r: np.zeros((n, 64, 64)), sources, target=2)


def test_ids_of_kept_and_replaced_candidates_match_the_per_round_table(sources) -> None:
    slots = [f"s{i}" for i in range(10)]
    drawn: dict[str, np.ndarray] = {}
    calls: list[tuple[list[str], int]] = []
    seen_rounds: list[pa.Table] = []

    def draw(open_slots: list[str], round_: int) -> Batch:
        calls.append((open_slots, round_))
        images = smooth_noise(len(open_slots), seed=200 + round_)
        for j, slot in enumerate(open_slots):  # s2 and s7 draw copies; s7 twice
            if (slot, round_) in {("s2", 0), ("s7", 0), ("s7", 1)}:
                images[j] = transform_images(sources[30 + j: 31 + j], "noise", seed=j)[0]
        ids = [f"{slot}@{round_}" for slot in open_slots]
        drawn.update(zip(ids, images, strict=True))
        return Batch(ids, images)

    out = replace_near_duplicates(draw, AuditIndex.build(sources, None, CONFIG), slots,
                                  max_replacement_rounds=2, on_round=seen_rounds.append)
    assert calls == [(slots, 0), (["s2", "s7"], 1), (["s7"], 2)]
    assert out.rounds == 3 and out.replacement_rounds == 2
    assert out.n_flagged == 3 and out.replaced == 2
    assert out.kept_ids == [f"{s}@0" for s in slots if s not in ("s2", "s7")] + ["s2@1", "s7@2"]
    assert out.summary.n_candidates == 10 and out.summary.n_flagged == 2
    np.testing.assert_array_equal(out.kept, np.stack([drawn[i] for i in out.kept_ids]))

    table = out.table
    assert pa.concat_tables(seen_rounds).equals(table)  # each round was reported as it ran
    assert [t.column("round").to_pylist() for t in seen_rounds] == [[0] * 10, [1, 1], [2]]
    rows = table.to_pylist()
    assert [r["candidate_id"] for r in rows if r["kept"]] == out.kept_ids
    for r in rows:
        assert r["candidate_id"] == f"{r['slot']}@{r['round']}" and r["kept"] is not r["flagged"]
    for slot in slots:  # flagged until its last candidate, which is the one kept
        mine = [r for r in rows if r["slot"] == slot]
        assert [r["kept"] for r in mine] == [False] * (len(mine) - 1) + [True]
    assert [r["candidate_id"] for r in rows if r["flagged"]] == ["s2@0", "s7@0", "s7@1"]


def test_a_generator_that_always_copies_exhausts_with_the_one_error(sources) -> None:
    reported: list[pa.Table] = []

    def copies(open_slots: list[str], round_: int) -> Batch:
        images = transform_images(sources[: len(open_slots)], "jpeg", seed=round_)
        return Batch([f"{s}@{round_}" for s in open_slots], images)

    with pytest.raises(ReplacementExhaustedError) as info:
        replace_near_duplicates(copies, AuditIndex.build(sources, None, CONFIG),
                                ["a", "b", "c", "d"], max_replacement_rounds=2,
                                on_round=reported.append)
    err = info.value
    assert type(err) is ReplacementExhaustedError
    message = str(err)
    for part in ("12 candidate(s)", "over 3 round(s)", "2 replacement round(s)",
                 "4 still were in the last", "kept 0 of the 4", "max_replacement_rounds"):
        assert part in message
    assert (err.n_flagged, err.n_open, err.n_kept, err.target, err.rounds) == (12, 4, 0, 4, 3)
    assert str(pickle.loads(pickle.dumps(err))) == message
    # what was drawn is on record before the error: every round, all flagged
    assert [t.column("candidate_id").to_pylist() for t in reported] == [
        [f"{s}@{r}" for s in "abcd"] for r in range(3)]
    assert all(not any(t.column("kept").to_pylist()) for t in reported)


def test_an_id_drawn_twice_is_refused(sources) -> None:
    def same_ids(open_slots: list[str], round_: int) -> Batch:
        images = smooth_noise(len(open_slots), seed=round_)
        images[:1] = transform_images(sources[:1], "noise", seed=0)  # one flag per round
        return Batch(list(open_slots), images)

    with pytest.raises(AuditError, match=r"reused candidate id\(s\) of an earlier round"):
        replace_near_duplicates(same_ids, AuditIndex.build(sources, None, CONFIG), ["x", "y"])
