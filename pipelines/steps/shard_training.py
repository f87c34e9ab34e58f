"""Train one SISA shard's generator on that shard's eligible training records only.

A shard's model is named by a fingerprint of exactly what it was trained on (record ids,
generator settings, seed, and the snapshot's class list: which label each class index
stands for). A shard whose records did not change since its last model is
not retrained, which is what makes a revocation cost 1/K of a full rebuild.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from consent import Ledger
from consent.events import utc_now
from consentgen.crash import crashpoint
from consentgen.errors import CheckpointError, GeneratorError
from consentgen.files import discard_tree
from consentgen.home import MODELS_DIR
from generators.checkpoints import load_checkpoint, save_checkpoint, verify_checkpoint
from generators.config import DiffusionConfig, DPConfig
from generators.trained import CheckpointMeta, TrainedGenerator
from generators.training import train_diffusion
from pipelines.catalog import Catalog, EligibleRecord, ModelRecord, ShardModel, Snapshot
from pipelines.catalog.lineage import (
    model_by_fingerprint,
    models_of_fingerprint,
    shard_training_records,
    usable_model,
)
from pipelines.settings import BuildConfig
from pipelines.steps.classes import ClassList, snapshot_classes
from pipelines.steps.conditioning import conditioning_fingerprint, record_conditioning_set
from pipelines.steps.images import load_pixels


class StaleShardError(GeneratorError):
    """A shard's records changed but its model has not been rebuilt yet."""


def diffusion_config(config: BuildConfig, shard: int, classes: ClassList) -> DiffusionConfig:
    g = config.generator
    dp = DPConfig(epsilon=g.dp_epsilon, delta=g.dp_delta) if g.dp_epsilon else None
    return DiffusionConfig(
        preset=g.preset, image_size=g.image_size, channels=g.channels,
        num_classes=classes.num_classes, epochs=g.epochs, batch_size=g.batch_size, lr=g.lr,
        sample_steps=g.sample_steps, seed=config.seed * 1000 + shard, dp=dp,
    )


def fingerprint_of(record_ids: Sequence[str], dconfig: DiffusionConfig,
                   classes: Sequence[str]) -> str:
    """What a model is named by: its sorted record ids, its generator settings (a
    checkpoint's metadata holds both, so a folder can be matched without its row) and the
    labels its class indices stand for (the snapshot's class list)."""
    payload = {"records": sorted(record_ids), "config": dconfig.model_dump(mode="json"),
               "classes": list(classes)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def expected_model(catalog: Catalog, snapshot_id: str, shard: int, config: BuildConfig
                   ) -> tuple[list[EligibleRecord], str]:
    records = shard_training_records(catalog, snapshot_id, shard)
    if config.generator.kind == "img2img":  # a conditioning set: nothing is trained
        return records, conditioning_fingerprint([r.record_id for r in records], config)
    classes = snapshot_classes(catalog, snapshot_id)
    dconfig = diffusion_config(config, shard, classes)
    return records, fingerprint_of([r.record_id for r in records], dconfig, classes.labels)


@dataclass(frozen=True)
class ShardOutcome:
    shard: int
    model: ShardModel | None  # None: the shard has no eligible training records
    retrained: bool
    adopted: bool = False  # saved by a run that died before recording it; recorded now


def train_shard(catalog: Catalog, snapshot: Snapshot, shard: int, config: BuildConfig,
                *, progress: bool = False) -> ShardOutcome:
    """The shard's model for this snapshot: reused, adopted, or trained and recorded.

    A checkpoint is saved (atomically) before its catalog row is written, so a crash in
    between leaves a complete folder that no row names. The next run adopts it when it is
    exactly the model this snapshot expects (records, settings, weights hash), and
    otherwise discards it and trains: a crash never wedges a shard. With img2img the
    shard's "model" is its conditioning set (`pipelines.steps.conditioning`).
    """
    if config.generator.kind == "img2img":
        return record_conditioning_set(catalog, snapshot, shard, config)
    records, fp = expected_model(catalog, snapshot.snapshot_id, shard, config)
    if not records:
        return ShardOutcome(shard, None, False)
    existing = model_by_fingerprint(catalog, shard, fp)
    if existing is not None and (catalog.home / existing.model_path).exists():
        return ShardOutcome(shard, existing, False)
    version, rel_path = model_location(catalog, shard, fp)
    target = catalog.home / rel_path
    if target.exists():
        adopted = adopt_checkpoint(catalog, target, snapshot_id=snapshot.snapshot_id,
                                   records=records, fp=fp)
        if adopted is not None:
            return ShardOutcome(shard, adopted, False, adopted=True)
        discard_tree(target)
    classes = snapshot_classes(catalog, snapshot.snapshot_id)
    dconfig = diffusion_config(config, shard, classes)
    source_by_id = {s.record_id: s for s in catalog.sources()}
    images = load_pixels([catalog.home / source_by_id[r.record_id].image_path for r in records],
                         config.generator.image_size, config.generator.channels)
    labels = classes.indices(r.label for r in records)
    trained = train_diffusion(images, labels, dconfig, record_ids=[r.record_id for r in records],
                              progress=progress)
    meta = save_checkpoint(trained, target, shard=shard, version=version,
                           consent_head={"sequence": snapshot.head_seq, "hash": snapshot.head_hash})
    crashpoint("train.checkpoint_saved")
    return ShardOutcome(shard, _record_model(catalog, meta, rel_path, snapshot.snapshot_id,
                                             records, fp), True)


def model_location(catalog: Catalog, shard: int, fp: str) -> tuple[str, str]:
    """The version and home-relative folder a new model of fingerprint `fp` is saved as.

    `shard<k>-<fp[:16]>`, unless a row already holds that version (its folder was erased
    or deleted, and the same records came back): then the first free `-<n>` after it, so
    a save never collides with a recorded version.
    """
    base = f"shard{shard}-{fp[:16]}"
    taken = {m.model_version for m in models_of_fingerprint(catalog, shard, fp)}
    version = next(v for n in range(1, len(taken) + 2)
                   if (v := base if n == 1 else f"{base}-{n}") not in taken)
    return version, f"{MODELS_DIR}/{shard}/{version}"


def adopt_checkpoint(catalog: Catalog, folder: Path, *, snapshot_id: str,
                     records: Sequence[EligibleRecord], fp: str) -> ShardModel | None:
    """Record a saved but unrecorded checkpoint as this snapshot's model, or None when it is
    not exactly that model: incomplete, another shard or version, other records or
    settings (`fp`), or weights that are not the ones its metadata names."""
    try:
        meta = verify_checkpoint(folder)
    except CheckpointError:
        return None
    shard = records[0].shard if records else -1
    if (meta.shard != shard or meta.version != folder.name
            or not folder.name.startswith(f"shard{shard}-{fp[:16]}")
            or sorted(meta.training.record_ids) != sorted(r.record_id for r in records)
            or fingerprint_of(meta.training.record_ids, meta.training.config,
                              snapshot_classes(catalog, snapshot_id).labels) != fp):
        return None
    return _record_model(catalog, meta, folder.relative_to(catalog.home).as_posix(), snapshot_id,
                         records, fp)


def _record_model(catalog: Catalog, meta: CheckpointMeta, rel_path: str, snapshot_id: str,
                  records: Sequence[EligibleRecord], fp: str) -> ShardModel:
    losses = meta.training.loss_history
    model = ShardModel(
        model_version=str(meta.version), shard=int(meta.shard or 0), snapshot_id=snapshot_id,
        fingerprint=fp, n_records=len(records), model_path=rel_path,
        epsilon=meta.training.epsilon, final_loss=float(losses[-1]) if losses else None,
        trained_at=utc_now(),
    )
    catalog.add([model], [ModelRecord(model_version=model.model_version, record_id=r.record_id,
                                      subject_id=r.subject_id) for r in records])
    return model


def current_models(catalog: Catalog, snapshot: Snapshot, config: BuildConfig,
                   ledger: Ledger | None = None) -> dict[int, ShardModel]:
    """The model each shard uses for this snapshot; refuses one that saw a lapsed subject.

    The model trained on exactly this snapshot's records is preferred. A shard this run
    did not retrain may keep its newest model as long as every record that model saw is
    still eligible (it merely lacks records granted since). Either way the ledger is read
    afresh (`ledger`, default the home's): a model that saw a subject not eligible NOW —
    revoked or expired since the snapshot, or by an operator — is stale and never used,
    whether or not its shard is being rebuilt.
    """
    from pipelines.service.client import ledger_at  # the service's, while it holds the file

    ledger = ledger or ledger_at(catalog.home)
    eligible_now = set(ledger.eligible(snapshot.purpose))
    models, stale = {}, []
    for shard in range(config.shards):
        records, fp = expected_model(catalog, snapshot.snapshot_id, shard, config)
        if not records:
            continue
        model = usable_model(catalog, snapshot.snapshot_id, shard, fp, eligible_now,
                             conditioning=config.generator.kind == "img2img")
        if model is None:
            stale.append(shard)
        else:
            models[shard] = model
    if stale:
        raise StaleShardError(
            f"shard(s) {', '.join(map(str, stale))} have no model whose records are all eligible "
            f"in snapshot {snapshot.snapshot_id} and whose subjects all consent now; "
            "materialise their shard_models assets (a rebuild) first"
        )
    return models


def load_model(catalog: Catalog, model: ShardModel) -> TrainedGenerator:
    return load_checkpoint(catalog.home / model.model_path)
