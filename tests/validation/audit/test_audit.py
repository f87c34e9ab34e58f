"""The audit flags planted copies, spares unrelated images, and obeys its config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch

from consentgen.errors import AuditError, ConfigError
from validation.audit import (
    METRICS,
    AuditConfig,
    AuditIndex,
    audit_candidates,
    distance_histograms,
    transform_images,
)

from .conftest import smooth_noise

N_SOURCES = 300


@pytest.fixture(scope="module")
def sources(distinct) -> tuple[np.ndarray, list[str]]:
    images, _, names = distinct
    return images[:N_SOURCES], names[:N_SOURCES]


@pytest.fixture(scope="module")
def index(sources) -> AuditIndex:
    images, names = sources
    return AuditIndex.build(images, names, AuditConfig(search="exact"))


@pytest.mark.parametrize("transform", ["noise", "brightness", "jpeg", "flip", "crop"])
def test_planted_copy_is_flagged_and_names_its_source(index, sources, transform) -> None:
    images, names = sources
    rows = np.arange(0, N_SOURCES, 15)  # 20 planted copies
    planted = transform_images(images[rows], transform, seed=1)
    others = smooth_noise(20, seed=5)
    result = index.audit(np.concatenate([planted, others]))
    flagged = result.flagged
    if transform == "crop":  # the hardest: caught by region descriptors, not every time
        assert flagged[:20].mean() >= 0.6
    else:
        assert flagged[:20].all()
    assert not flagged[20:].any()
    column = "pixel_l2_source_id" if transform in ("noise", "brightness", "jpeg") else (
        "embedding_source_id")
    named = result.table.column(column).to_pylist()[:20]
    hits = [named[i] == names[r] for i, r in enumerate(rows) if flagged[i]]
    assert np.mean(hits) >= 0.9


def test_exact_copy_is_at_distance_zero_under_every_metric(index, sources) -> None:
    images, names = sources
    row = index.audit(images[7:8]).table.to_pylist()[0]
    assert row["phash_distance"] == 0
    assert row["pixel_l2"] < 5e-3 and row["patch_l2"] < 5e-3
    assert row["embedding_cosine"] > 0.999
    assert row["pixel_l2_source_id"] == names[7]
    assert row["flagged_by"] == ",".join(METRICS)


def test_unrelated_slices_are_rarely_flagged(index, distinct) -> None:
    images, _, _ = distinct
    others = images[N_SOURCES:]  # different groups: no twin among the sources
    result = index.audit(others)
    assert result.summary.n_flagged / len(others) <= 0.05


def test_mirrored_copy_is_caught_by_the_flip_matched_embedding_only(index, sources) -> None:
    images, _ = sources
    mirrored = transform_images(images[:30], "flip")
    table = index.audit(mirrored).table
    assert all(table.column("flagged").to_pylist())
    by = table.column("flagged_by").to_pylist()
    assert all("embedding_cosine" in b for b in by)
    assert np.mean(["pixel_l2" in b for b in by]) < 0.5
    no_flip = AuditIndex.build(images, None, AuditConfig(search="exact",
                                                         embedding_flip_invariant=False))
    assert no_flip.audit(mirrored).summary.n_flagged < 15


def test_thresholds_come_from_the_config(sources) -> None:
    images, names = sources[0][:100], sources[1][:100]
    copies = transform_images(images[:10], "noise", seed=2)
    strict = AuditConfig(search="exact", phash_max_distance=0, pixel_l2_max=0.01,
                         patch_l2_max=0.01, embedding_cosine_min=0.99999)
    default = audit_candidates(copies, images, names, AuditConfig(search="exact"))
    assert default.summary.flagged_by["pixel_l2"] == 10
    result = audit_candidates(copies, images, names, strict)
    by = result.summary.flagged_by
    assert by["pixel_l2"] == by["patch_l2"] == by["embedding_cosine"] == 0
    assert by["phash_distance"] == int((result.table.column("phash_distance").to_numpy() == 0)
                                       .sum())
    assert result.summary.thresholds == strict.thresholds()
    loose = AuditConfig(search="exact", pixel_l2_max=2.0)
    unrelated = smooth_noise(10, seed=9)
    result = audit_candidates(unrelated, images, names, loose)
    assert result.summary.flagged_by["pixel_l2"] == 10
    assert result.summary.histograms["pixel_l2"].threshold == 2.0


def test_table_summary_and_histograms_describe_every_candidate(index, sources) -> None:
    images, names = sources
    cands = np.concatenate([transform_images(images[:5], "jpeg"), smooth_noise(7, seed=1)])
    result = index.audit(cands, [f"gen-{i}" for i in range(12)])
    table = result.table
    assert table.num_rows == 12
    assert table.column("candidate_id").to_pylist()[0] == "gen-0"
    assert set(table.column("pixel_l2_source_id").to_pylist()) <= set(names)
    summary = result.summary
    assert summary.n_candidates == 12 and summary.n_sources == N_SOURCES
    assert summary.n_flagged == 5
    assert summary.search.mode_used == "exact"
    for metric in METRICS:
        assert sum(summary.histograms[metric].counts) == 12
    assert distance_histograms(table, index.config) == summary.histograms
    assert summary.model_dump_json()  # serialisable for the data card


def test_block_size_does_not_change_results(sources) -> None:
    images, names = sources[0][:100], sources[1][:100]
    cands = np.concatenate([transform_images(images[:40], "noise"), smooth_noise(40, seed=2)])
    small = audit_candidates(cands, images, names, AuditConfig(search="exact", block_size=16))
    large = audit_candidates(cands, images, names, AuditConfig(search="exact", block_size=4096))
    for metric in METRICS:
        np.testing.assert_allclose(small.table.column(metric).to_numpy(),
                                   large.table.column(metric).to_numpy(), atol=1e-4)
    assert small.table.column("flagged").equals(large.table.column("flagged"))


def test_colour_and_single_channel_inputs_audit_like_grey(sources) -> None:
    images, names = sources[0][:100], sources[1][:100]
    cands = transform_images(images[:8], "brightness")
    grey = audit_candidates(cands, images, names, AuditConfig(search="exact"))
    rgb = audit_candidates(np.repeat(cands[..., None], 3, axis=-1),
                           np.repeat(images[..., None], 3, axis=-1), names,
                           AuditConfig(search="exact"))
    assert grey.table.equals(rgb.table.set_column(
        rgb.table.schema.get_field_index("candidate_id"), "candidate_id",
        grey.table.column("candidate_id")))
    one = audit_candidates(cands[..., None], images, names, AuditConfig(search="exact"))
    assert one.table.column("flagged").equals(grey.table.column("flagged"))


def test_bad_inputs_raise_audit_errors(sources) -> None:
    images, names = sources
    with pytest.raises(AuditError, match="32x32"):
        audit_candidates(np.zeros((2, 32, 32), np.uint8), images, names)
    with pytest.raises(AuditError, match="uint8"):
        audit_candidates(images[:2].astype(np.float32), images, names)
    with pytest.raises(AuditError, match="unique"):
        audit_candidates(images[:2], images[:3], ["a", "a", "b"])
    with pytest.raises(AuditError, match="ids for"):
        audit_candidates(images[:2], images[:3], ["a", "b"])
    with pytest.raises(AuditError, match="at least one source"):
        audit_candidates(images[:2], images[:0], [])


class _TinyEmbedder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=2)
        self.fc = torch.nn.Linear(8 * 16, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        return self.fc(h.flatten(1))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_a_local_torchscript_model_replaces_the_builtin_embedding(tmp_path: Path,
                                                                  sources) -> None:
    images, names = sources
    path = tmp_path / "copy_model.torchscript.pt"
    torch.jit.script(_TinyEmbedder()).save(str(path))
    config = AuditConfig(search="exact", embedding_model_path=path, embedding_cosine_min=0.999,
                         embedding_input_size=48, embedding_crop_scales=())
    result = audit_candidates(images[:3], images[:50], names[:50], config)
    assert result.summary.embedding == "torchscript:copy_model.torchscript.pt"
    assert result.table.column("embedding_cosine").to_numpy().min() > 0.999
    assert result.table.column("embedding_source_id").to_pylist() == names[:3]


def test_embedding_model_config_is_checked(tmp_path: Path, sources) -> None:
    images, names = sources
    with pytest.raises(pydantic.ValidationError, match="embedding_cosine_min"):
        AuditConfig(embedding_model_path=tmp_path / "sscd.pt")
    missing = AuditConfig(embedding_model_path=tmp_path / "sscd.pt", embedding_cosine_min=0.75)
    with pytest.raises(ConfigError, match="never downloaded"):
        audit_candidates(images[:1], images[:5], names[:5], missing)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    junk = AuditConfig(embedding_model_path=tmp_path / "junk.pt", embedding_cosine_min=0.75)
    with pytest.raises(ConfigError, match="TorchScript"):
        audit_candidates(images[:1], images[:5], names[:5], junk)
