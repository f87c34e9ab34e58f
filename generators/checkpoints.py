"""Saving and loading generator checkpoints, lineage included.

A checkpoint folder (`models/<shard>/<version>/` in a data home) holds:
- `unet/`: `UNet2DModel.save_pretrained` output (config.json + safetensors weights),
- `consentgen_checkpoint.json`: `CheckpointMeta`, i.e. the record ids the model was
  trained on, the consent snapshot head, the config, the seed, the ε spent under DP,
  and the SHA-256 of the weights file.

The folder is written under a temporary name and renamed into place, so a crash never
leaves a checkpoint that looks complete. Loading refuses a folder whose record list is
missing or empty (its lineage would be unknown, so a revocation could not find it) and a
folder whose weights are not the ones the metadata was written for. A folder the data
home holds but its catalog never recorded (a crash between the save and the row) is
checked with `verify_checkpoint` before anything adopts it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from diffusers import UNet2DModel
from pydantic import ValidationError

from consentgen.crash import crashpoint
from consentgen.errors import CheckpointError
from consentgen.files import fsync_dir, fsync_tree
from generators.runtime import torch_device
from generators.trained import CheckpointMeta, ConsentHead, TrainedGenerator

META_FILE = "consentgen_checkpoint.json"
UNET_DIR = "unet"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


def save_checkpoint(
    trained: TrainedGenerator,
    directory: str | os.PathLike[str],
    *,
    shard: int | None = None,
    version: str | None = None,
    consent_head: ConsentHead | Mapping[str, Any] | None = None,
) -> CheckpointMeta:
    """Write `trained` into `directory` (which must not exist yet, or be empty).

    Returns the metadata written and sets it on `trained.checkpoint`, so lineage (shard,
    version) is known to later sampling calls without reloading.
    """
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CheckpointError(
            f"{target} already holds something; checkpoints are never overwritten"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        trained.unet.save_pretrained(staging / UNET_DIR, safe_serialization=True)
        meta = CheckpointMeta(
            training=trained.record,
            shard=shard,
            version=version,
            consent_head=ConsentHead.model_validate(consent_head)
            if consent_head is not None
            else None,
            weights_sha256=_sha256(staging / UNET_DIR / WEIGHTS_FILE),
            saved_at=datetime.now(UTC),
        )
        (staging / META_FILE).write_text(meta.model_dump_json(indent=2), encoding="utf-8")
        fsync_tree(staging)
        crashpoint("checkpoint.staged")
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
        fsync_dir(target.parent)
    except ValidationError as exc:
        raise CheckpointError(f"invalid checkpoint metadata: {exc.errors()[0]['msg']}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    trained.checkpoint = meta
    return meta


def load_checkpoint(directory: str | os.PathLike[str]) -> TrainedGenerator:
    """Load a checkpoint written by `save_checkpoint`, onto CUDA when present."""
    folder = Path(directory)
    meta = verify_checkpoint(folder)
    try:
        unet = UNet2DModel.from_pretrained(folder / UNET_DIR, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{folder}: cannot load the UNet: {exc}") from exc
    unet = unet.to(torch_device()).eval().requires_grad_(False)
    return TrainedGenerator(unet=unet, record=meta.training, checkpoint=meta)


def verify_checkpoint(directory: str | os.PathLike[str]) -> CheckpointMeta:
    """The metadata of a complete checkpoint: its record list there, its weights present
    and the ones the metadata was written for (sha256). No UNet is built, so a sweep can
    check a folder left by a crash without loading a model."""
    folder = Path(directory)
    meta = read_checkpoint_meta(folder)
    weights = folder / UNET_DIR / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{folder}: weights file {UNET_DIR}/{WEIGHTS_FILE} is missing")
    if _sha256(weights) != meta.weights_sha256:
        raise CheckpointError(
            f"{folder}: weights do not match the checkpoint metadata (sha256 differs)"
        )
    return meta


def read_checkpoint_meta(directory: str | os.PathLike[str]) -> CheckpointMeta:
    """The metadata of a checkpoint alone (cheap: no weights are read)."""
    path = Path(directory) / META_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(
            f"{directory}: no {META_FILE}; a checkpoint without lineage is refused"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint metadata: {exc}") from exc
    training = raw.get("training") if isinstance(raw, dict) else None
    if not isinstance(training, dict) or not training.get("record_ids"):
        raise CheckpointError(
            f"{path}: the record list is missing or empty; a checkpoint whose training records "
            "are unknown cannot be withdrawn on revocation, so it is refused"
        )
    try:
        return CheckpointMeta.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CheckpointError(
            f"{path}: invalid checkpoint metadata at {where}: {first['msg']}"
        ) from exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
