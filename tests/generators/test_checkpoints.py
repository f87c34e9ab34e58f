"""Checkpoints: exact round trip with lineage; anything without a record list is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from consentgen.errors import CheckpointError
from generators.checkpoints import (
    META_FILE,
    UNET_DIR,
    WEIGHTS_FILE,
    load_checkpoint,
    save_checkpoint,
)
from generators.sampling import sample
from generators.trained import TrainedGenerator
from generators.training import train_diffusion
from tests.generators.conftest import record_ids, tiny_config

HEAD = {"sequence": 42, "hash": "ab" * 32}


@pytest.fixture
def fresh(tiny_data) -> TrainedGenerator:
    images, labels = tiny_data
    return train_diffusion(
        images, labels, tiny_config(train_steps=2), record_ids=record_ids(len(images))
    )


@pytest.fixture
def saved(fresh: TrainedGenerator, tmp_path: Path) -> Path:
    directory = tmp_path / "models" / "2" / "v0003"
    save_checkpoint(fresh, directory, shard=2, version="v0003", consent_head=HEAD)
    return directory


def test_round_trip_keeps_weights_lineage_and_samples(fresh: TrainedGenerator, saved: Path) -> None:
    loaded = load_checkpoint(saved)
    original, restored = fresh.unet.state_dict(), loaded.unet.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k].cpu(), restored[k].cpu()) for k in original)
    assert loaded.record == fresh.record
    assert (loaded.shard, loaded.version) == (2, "v0003") == (fresh.shard, fresh.version)
    assert loaded.checkpoint.consent_head.model_dump() == HEAD
    assert loaded.record.record_ids == record_ids(16)
    assert loaded.config == fresh.config
    assert np.array_equal(
        sample(fresh, 3, steps=3, seed=4, bf16=False),
        sample(loaded, 3, steps=3, seed=4, bf16=False),
    )


def test_folder_holds_save_pretrained_output_and_readable_json(saved: Path) -> None:
    assert (saved / UNET_DIR / "config.json").is_file()
    assert (saved / UNET_DIR / WEIGHTS_FILE).is_file()
    meta = json.loads((saved / META_FILE).read_text())
    assert meta["format"] == "consentgen.generator/1"
    assert meta["training"]["record_ids"][:2] == ["rec-000", "rec-001"]
    assert meta["training"]["seed"] == 7 and meta["training"]["config"]["preset"] == "tiny"
    assert meta["consent_head"] == HEAD and meta["shard"] == 2
    assert not list(saved.parent.glob(".*")), "no staging folder may be left behind"


def _edit_meta(folder: Path, edit) -> None:
    meta = json.loads((folder / META_FILE).read_text())
    edit(meta)
    (folder / META_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "edit",
    [
        lambda meta: meta["training"].pop("record_ids"),
        lambda meta: meta["training"].update(record_ids=[]),
        lambda meta: meta.pop("training"),
    ],
    ids=["record-list-removed", "record-list-empty", "training-section-removed"],
)
def test_a_checkpoint_without_its_record_list_is_refused(saved: Path, edit) -> None:
    _edit_meta(saved, edit)
    with pytest.raises(CheckpointError, match="record list is missing"):
        load_checkpoint(saved)


def test_weights_without_metadata_are_refused(saved: Path) -> None:
    (saved / META_FILE).unlink()
    with pytest.raises(CheckpointError, match="without lineage"):
        load_checkpoint(saved)


def test_swapped_weights_are_refused(saved: Path, tmp_path: Path, tiny_data) -> None:
    images, labels = tiny_data
    other = train_diffusion(
        images, labels, tiny_config(train_steps=2, seed=99), record_ids=record_ids(16)
    )
    save_checkpoint(other, tmp_path / "other")
    (saved / UNET_DIR / WEIGHTS_FILE).write_bytes(
        (tmp_path / "other" / UNET_DIR / WEIGHTS_FILE).read_bytes()
    )
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(saved)


def test_record_list_not_matching_class_counts_is_refused(saved: Path) -> None:
    _edit_meta(saved, lambda meta: meta["training"]["record_ids"].pop())
    with pytest.raises(CheckpointError, match="class_counts"):
        load_checkpoint(saved)


def test_checkpoints_are_never_overwritten(fresh: TrainedGenerator, saved: Path) -> None:
    with pytest.raises(CheckpointError, match="never overwritten"):
        save_checkpoint(fresh, saved)


def test_an_empty_existing_folder_is_filled(fresh: TrainedGenerator, tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    save_checkpoint(fresh, target, shard=0, version="v1")
    assert load_checkpoint(target).version == "v1"
