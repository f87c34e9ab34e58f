"""Stable Diffusion img2img through the same build: conditioning sets, conditioned candidates.

With `[generator] kind = "img2img"` a shard trains nothing. Its "model" is its
conditioning set: the shard's training records, recorded like a checkpoint (a
`shard_models` row whose fingerprint starts with `CONDITIONING_PREFIX`, its
`model_records`, and a small manifest folder under `models/`), so every rule the DDPM
path keeps holds here unchanged: a shard whose records and settings did not change keeps
its set and its audited candidates; a set that holds a subject who is no longer eligible
is stale, never used again, and its shard is rebuilt.

Each candidate is conditioned on exactly one record of its shard's set and records it in
`candidates.conditioned_on`: that record is its whole lineage, so a revocation withdraws
exactly the images conditioned on the subject's records and erasure deletes exactly those
files (`pipelines.catalog.lineage`, `pipelines.catalog.erasure_queries`). The audit,
checks, release and card are the DDPM's.

Every draw is new: a slot's noise seed holds the build's snapshot, so a rebuild never makes
an image an earlier build made (a withdrawn one above all), and a (record, seed) whose
candidate was banned is never conditioned on again (`banned_draws`). A shard that keeps
some of its audited candidates draws only the slots they leave empty (`open_slots`).

Weights come only from the local folder `generator.weights_dir` (`~` expanded);
`check_weights` refuses a folder that is missing or is not a diffusers pipeline in one
line, before any work.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from consent.events import utc_now
from consentgen.crash import crashpoint
from consentgen.errors import MissingWeightsError
from consentgen.files import atomic_output, discard_tree, fsync_dir
from consentgen.home import MODELS_DIR
from consentgen.labels import label_sort_key
from generators.config import Img2ImgConfig
from pipelines.catalog import Candidate, Catalog, EligibleRecord, ModelRecord, ShardModel, Snapshot
from pipelines.catalog.lineage import (
    CONDITIONING_PREFIX,
    model_by_fingerprint,
    model_record_ids,
    models_of_fingerprint,
    shard_training_records,
)
from pipelines.settings import BuildConfig
from pipelines.steps.bans import load_bans
from pipelines.steps.candidate_files import redraw_banned, store_candidates, unfilled
from pipelines.steps.images import load_pixels

if TYPE_CHECKING:
    from generators.img2img import Img2ImgGenerator
    from pipelines.steps.shard_training import ShardOutcome

MANIFEST_FILE = "conditioning.json"


# --- settings and the weights folder -------------------------------------------------


def img2img_config(config: BuildConfig) -> Img2ImgConfig:
    """The one mapping of the build's generator settings onto `Img2ImgConfig`, with `~` in
    the weights folder expanded: the early check and the run look at the same folder.

    `GeneratorSettings` refuses kind = "img2img" without `weights_dir`; a ddpm build has
    no img2img config, and `Img2ImgConfig.parse` says so in one line.
    """
    g = config.generator
    weights = None if g.weights_dir is None else g.weights_dir.expanduser()
    return Img2ImgConfig.parse({
        "weights_dir": weights, "strength": g.strength, "steps": g.sample_steps,
        "guidance": g.guidance, "prompt": g.prompt, "image_size": g.image_size,
        "batch_size": g.batch_size, "seed": config.seed,
    })


def check_weights(config: BuildConfig) -> None:
    """Refuse, in one line and before any work, an img2img build whose weights folder is
    missing or holds no diffusers pipeline (no `model_index.json`); nothing for ddpm."""
    if config.generator.kind != "img2img":
        return
    folder = img2img_config(config).weights_dir
    where = folder.resolve()
    if not folder.is_dir():
        raise MissingWeightsError(f"generator.weights_dir: no folder {where} (kind = \"img2img\" needs a "
                          "local Stable Diffusion folder; weights are never fetched)")
    if not (folder / "model_index.json").is_file():
        raise MissingWeightsError(f"generator.weights_dir: {where} has no model_index.json (not a "
                          "diffusers Stable Diffusion folder; save one with save_pretrained)")


def weights_digest(folder: Path) -> str:
    """What names the weights without reading gigabytes: the bytes of every config, tokenizer
    and index file (.json, .txt), and the path and size of every other file."""
    h = hashlib.sha256(b"consentgen/img2img-weights/v1\x00")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in Path(rel).parts):
            continue  # a hub cache or an editor's temp file, not the pipeline
        h.update(rel.encode() + b"\x00")
        if path.suffix in {".json", ".txt"}:
            h.update(path.read_bytes())
        else:
            h.update(str(path.stat().st_size).encode())
        h.update(b"\x00")
    return h.hexdigest()


def conditioning_fingerprint(record_ids: Sequence[str], config: BuildConfig) -> str:
    """What a conditioning set is named by: its records, the img2img settings (the seed
    among them), the output channels and the weights (by `weights_digest`, not by path)."""
    cfg = img2img_config(config)
    settings = cfg.model_dump(mode="json", exclude={"weights_dir"})
    payload = {"records": sorted(record_ids), "img2img": settings,
               "channels": config.generator.channels, "weights": weights_digest(cfg.weights_dir)}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return CONDITIONING_PREFIX + digest


# --- the shard step: record the set ------------------------------------------------


def record_conditioning_set(catalog: Catalog, snapshot: Snapshot, shard: int,
                            config: BuildConfig) -> ShardOutcome:
    """The shard's conditioning set for this snapshot: the recorded one, or a new one.

    Nothing is trained. The manifest folder is written (atomically) before its row, as a
    checkpoint is; one left without a row by a crash is the sweep's to remove.
    """
    from pipelines.steps.shard_training import ShardOutcome

    records = shard_training_records(catalog, snapshot.snapshot_id, shard)
    if not records:
        return ShardOutcome(shard, None, False)
    fp = conditioning_fingerprint([r.record_id for r in records], config)
    existing = model_by_fingerprint(catalog, shard, fp)
    if existing is not None and (catalog.home / existing.model_path).exists():
        return ShardOutcome(shard, existing, False)
    version, rel = _location(catalog, shard, fp)
    _write_manifest(catalog.home / rel, {
        "kind": "img2img", "shard": shard, "version": version, "fingerprint": fp,
        "record_ids": sorted(r.record_id for r in records),
        "settings": img2img_config(config).model_dump(mode="json", exclude={"weights_dir"}),
        "consent_head": {"sequence": snapshot.head_seq, "hash": snapshot.head_hash}})
    crashpoint("conditioning.manifest_saved")
    model = ShardModel(model_version=version, shard=shard, snapshot_id=snapshot.snapshot_id,
                       fingerprint=fp, n_records=len(records), model_path=rel, epsilon=None,
                       final_loss=None, trained_at=utc_now())
    catalog.add([model], [ModelRecord(model_version=version, record_id=r.record_id,
                                      subject_id=r.subject_id) for r in records])
    return ShardOutcome(shard, model, True)


def _location(catalog: Catalog, shard: int, fp: str) -> tuple[str, str]:
    base = f"shard{shard}-img2img-{fp.removeprefix(CONDITIONING_PREFIX)[:16]}"
    taken = {m.model_version for m in models_of_fingerprint(catalog, shard, fp)}
    version = next(v for n in range(1, len(taken) + 2)
                   if (v := base if n == 1 else f"{base}-{n}") not in taken)
    return version, f"{MODELS_DIR}/{shard}/{version}"


def _write_manifest(folder: Path, manifest: dict) -> None:
    staging = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    with atomic_output(staging / MANIFEST_FILE, "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
    if folder.exists():
        discard_tree(folder)  # a row-less folder of the same version: a crash's leftover
    os.rename(staging, folder)
    fsync_dir(folder.parent)


# --- which record each image is conditioned on --------------------------------------


@dataclass(frozen=True)
class Slot:
    """One image to make: the record it is conditioned on, and its noise seed."""

    record: EligibleRecord
    seed: int


def _seed(*parts: object) -> int:
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(b"consentgen/img2img-slot/v1\x00" + text).digest()[:8],
                          "big") >> 1


def _class_key(label: object) -> tuple:
    return (1, 0, 0, "") if label is None else (0, *label_sort_key(str(label)))


def class_orders(records: Sequence[EligibleRecord], seed: int, shard: int
                 ) -> dict[object, list[EligibleRecord]]:
    """Label -> its records in a stable order drawn from (seed, shard), labels in class order."""
    by_label: dict[object, list[EligibleRecord]] = {}
    for r in records:
        by_label.setdefault(r.label, []).append(r)
    return {label: sorted(by_label[label], key=lambda r: _seed(seed, shard, r.record_id))
            for label in sorted(by_label, key=_class_key)}


def conditioning_plan(records: Sequence[EligibleRecord], n: int, seed: int, shard: int,
                      snapshot_id: str) -> list[Slot]:
    """`n` slots over a shard's records, class-balanced: the classes in turn (counts differ
    by at most one), and within a class its records in their stable order, cycling with a
    new seed when a class has fewer records than slots.

    The records are the same for every snapshot of an unchanged set; the seeds are not
    (the snapshot is in them), so no build redraws an earlier build's image.
    """
    orders = class_orders(records, seed, shard)
    labels = list(orders)
    slots = []
    for i in range(n if labels else 0):
        members = orders[labels[i % len(labels)]]
        turn = i // len(labels)
        record = members[turn % len(members)]
        slots.append(Slot(record, _seed(seed, "img2img", snapshot_id, record.record_id,
                                        turn // len(members))))
    return slots


def open_slots(plan: Sequence[Slot], kept: Sequence[Candidate]) -> list[Slot]:
    """The slots of `plan` that the shard's kept (reused) candidates leave empty: each kept
    candidate fills a slot on its own record, else one of its class (an audit replacement
    stands on the next record of its class), else the last one left; so the shard holds
    `len(plan)` images and the classes stay balanced."""
    return unfilled(plan, kept, [lambda s, c: s.record.record_id == c.conditioned_on,
                                 lambda s, c: s.record.label == c.label])


def replacement_slots(records: Sequence[EligibleRecord], replacing: Sequence[Candidate],
                      seed: int, shard: int, round_: int, snapshot_id: str) -> list[Slot]:
    """One slot per replaced candidate: the record `round_` places after the one it was
    conditioned on, in its class's order (so a source the model copies is left behind),
    with a seed of its own for (snapshot, slot, round)."""
    orders = class_orders(records, seed, shard)
    slots = []
    for c in replacing:
        members = orders.get(c.label) or [r for o in orders.values() for r in o]
        at = next((i for i, r in enumerate(members) if r.record_id == c.conditioned_on), 0)
        record = members[(at + round_) % len(members)]
        slots.append(Slot(record, _seed(seed, "img2img-replace", snapshot_id, c.candidate_id,
                                        round_)))
    return slots


# --- conditioning -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _pipeline(cfg: Img2ImgConfig, weights: str, progress: bool) -> Img2ImgGenerator:
    """The loaded pipeline, kept for the next step of the same process (the audit's
    replacements after the candidates): loading Stable Diffusion costs seconds. `weights`
    (`weights_digest`) is in the key so that other weights in the same folder load anew."""
    from generators.img2img import Img2ImgGenerator  # torch: only when conditioning

    return Img2ImgGenerator.load(cfg, progress=progress)


def generator_for(config: BuildConfig, *, progress: bool = False) -> Img2ImgGenerator:
    """The build's img2img generator (each output's seed is given per slot, so the
    config's own seed plays no part and is left out of the cache key)."""
    check_weights(config)
    cfg = img2img_config(config).model_copy(update={"seed": 0})
    return _pipeline(cfg, weights_digest(cfg.weights_dir), progress)


def set_records(catalog: Catalog, snapshot: Snapshot, model: ShardModel) -> list[EligibleRecord]:
    """The snapshot's training records of `model`'s shard that its set holds (all of them,
    unless the shard kept an older set whose records are all still eligible)."""
    held = model_record_ids(catalog, model.model_version)
    return [r for r in shard_training_records(catalog, snapshot.snapshot_id, model.shard)
            if r.record_id in held]


def banned_draws(catalog: Catalog) -> set[tuple[str, int]]:
    """(record, seed) of every banned (withdrawn) img2img candidate: a draw never made
    again. The same record, seed and weights give the same image up to floating-point
    noise (fp16 on CUDA is not bit-exact), which the pixel ban alone would not catch."""
    rows = catalog.select(Candidate, "WHERE conditioned_on IS NOT NULL AND candidate_id IN "
                          "(SELECT value FROM bans WHERE kind = 'candidate')")
    return {(c.conditioned_on, c.seed) for c in rows if c.conditioned_on is not None}


def _unbanned(record_id: str, seed: int, draws: set[tuple[str, int]]) -> int:
    while (record_id, seed) in draws:
        seed = _seed(seed, "banned-draw")
    return seed


def condition_candidates(catalog: Catalog, snapshot: Snapshot, model: ShardModel,
                         slots: Sequence[Slot], config: BuildConfig, *, progress: bool = False
                         ) -> list[Candidate]:
    """One image per slot, conditioned on its record; PNGs written, rows returned unrecorded.

    A slot whose (record, seed) drew a banned candidate gets another seed before anything
    is drawn; an image whose pixels are banned (withdrawn before) is drawn again with a
    new seed, a bounded number of times, as a DDPM sample is.
    """
    if not slots:
        return []
    generator = generator_for(config, progress=progress)
    banned = load_bans(catalog).pixels
    draws = banned_draws(catalog)
    by_id = {s.record_id: s for s in catalog.sources()}
    # grey [H,W] in, grey out (the generator runs RGB inside); grey RGB in for channels 3
    sources = load_pixels([catalog.home / by_id[s.record.record_id].image_path for s in slots],
                          config.generator.image_size, config.generator.channels)
    seeds = [_unbanned(s.record.record_id, s.seed, draws) for s in slots]

    def draw(where: list[int]) -> dict[int, np.ndarray]:
        images = [sources[i] for i in where]
        out = generator.generate(images, [slots[i].record.record_id for i in where],
                                 seeds=[seeds[i] for i in where], progress=progress)
        return {i: r.image for i, r in zip(where, out, strict=True)}

    pixels = draw(list(range(len(slots))))

    def redraw(redo: list[int], attempt: int) -> list[np.ndarray]:
        for i in redo:
            seeds[i] = _unbanned(slots[i].record.record_id,
                                 _seed(seeds[i], "banned-redraw", attempt), draws)
        fresh = draw(redo)
        return [fresh[i] for i in redo]

    redraw_banned(pixels, banned, redraw, model)
    return store_candidates(catalog, snapshot, model, [pixels[i] for i in range(len(slots))],
                            [s.record.label for s in slots], seeds,
                            [s.record.record_id for s in slots])


def conditioned_candidates(catalog: Catalog, snapshot: Snapshot, model: ShardModel,
                           config: BuildConfig, *, kept: Sequence[Candidate] = (),
                           progress: bool = False) -> list[Candidate]:
    """The candidates step's draw from a shard's set: `images_per_shard` images, less the
    slots that `kept` (audited candidates the shard reuses) already fill."""
    plan = conditioning_plan(set_records(catalog, snapshot, model), config.images_per_shard,
                             config.seed, model.shard, snapshot.snapshot_id)
    return condition_candidates(catalog, snapshot, model, open_slots(plan, kept), config,
                                progress=progress)


def conditioned_replacements(catalog: Catalog, snapshot: Snapshot, config: BuildConfig,
                             models: Mapping[int, ShardModel], replacing: Sequence[Candidate],
                             round_: int, *, progress: bool = False) -> list[Candidate]:
    """One new image for each of `replacing`, in its order: the same shard and label,
    conditioned on the next record of that class (`replacement_slots`). Unrecorded."""
    by_shard: dict[int, list[int]] = {}
    for i, c in enumerate(replacing):
        by_shard.setdefault(c.shard, []).append(i)
    fresh: dict[int, Candidate] = {}
    for shard, where in sorted(by_shard.items()):
        model = models[shard]
        slots = replacement_slots(set_records(catalog, snapshot, model),
                                  [replacing[i] for i in where], config.seed, shard, round_,
                                  snapshot.snapshot_id)
        drawn = condition_candidates(catalog, snapshot, model, slots, config, progress=progress)
        fresh.update(zip(where, drawn, strict=True))
    return [fresh[i] for i in range(len(replacing))]
