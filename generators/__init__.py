"""Diffusion generators: train and sample DDPMs per SISA shard (class-conditional, or
unconditional with num_classes None), img2img.

Never imports dagster, duckdb, `pipelines`, `consent` or `validation`: the API takes
numpy arrays and labels and returns numpy arrays, so it is tested alone. Names below are
re-exported lazily, so `from generators.shards import shard_of` does not import torch.

Public API (module: signature)

generators.config
    DiffusionConfig(preset="small"|"tiny"|"base", image_size=32 (8..256), channels=1|3,
        num_classes: int | None (None: unconditional), epochs=None|train_steps=None (neither: 10 epochs), batch_size=64,
        lr=1e-3, lr_warmup_steps=20, ema=True, ema_decay=0.999, schedule="cosine"|"linear",
        train_timesteps=1000, sample_steps=50, seed=0, mixed_precision=True,
        dp: DPConfig | None = None)
    DPConfig(epsilon, delta, max_grad_norm=1.0)
    Img2ImgConfig(weights_dir, strength=0.5, steps=30, guidance=7.5, prompt="",
        negative_prompt=None, image_size=None, batch_size=4, seed=0)
    Every config: frozen, unknown keys refused; `X.parse(mapping)` raises ConfigError.
generators.shards
    shard_of(subject_id: str, k: int) -> int            SHA-256 based, pinned by tests
generators.training
    train_diffusion(images: np.ndarray uint8 [N,H,W] | [N,C,H,W] | [N,H,W,C],
        labels: np.ndarray int [N] | None, config: DiffusionConfig, *, record_ids: Sequence[str],
        progress: bool | None = None) -> TrainedGenerator
generators.trained
    TrainedGenerator(unet, record: TrainingRecord, checkpoint: CheckpointMeta | None)
        .config .shard .version .epsilon
    TrainingRecord: config, record_ids, class_counts, seed, loss_history, steps,
        epochs_run, epsilon/delta/noise_multiplier/accountant (DP only), device, ...
    CheckpointMeta: training, shard, version, consent_head, weights_sha256, saved_at
    ConsentHead(sequence: int, hash: str)
generators.checkpoints
    save_checkpoint(trained, directory, *, shard: int | None = None, version: str | None = None,
        consent_head: ConsentHead | Mapping | None = None) -> CheckpointMeta
    load_checkpoint(directory) -> TrainedGenerator       CheckpointError without record list
    read_checkpoint_meta(directory) -> CheckpointMeta    (no weights read)
generators.sampling
    sample(generator: TrainedGenerator, n: int, labels: np.ndarray | None = None, *,
        steps: int | None = None, seed: int = 0, batch_size: int = 64,
        bf16: bool | None = None, progress: bool | None = None)
        -> np.ndarray uint8 [n,H,W] (grey) or [n,H,W,C]
generators.labels
    class_balanced_labels(n, classes) -> np.ndarray int64   the distinct classes, ascending,
        cycled: each class's count differs by at most one (the build's per-shard labels)
generators.balanced
    shard_plan(models, n, num_classes | None) -> dict[shard, labels]   which shard draws which class
    generate_balanced(models: Mapping[int, TrainedGenerator], n: int, num_classes: int | None,
        seed: int, *, steps=None, batch_size=64, bf16=None, progress=None) -> GeneratedImages
    GeneratedImages(images, labels, shards, versions, seeds)   row i = lineage of image i
generators.membership
    per_sample_loss(generator: TrainedGenerator, images, labels | None, timestep: int, seed: int, *,
        batch_size: int = 256) -> np.ndarray float64 [N]
generators.img2img
    Img2ImgGenerator.load(config: Img2ImgConfig) -> Img2ImgGenerator
    Img2ImgGenerator.generate(images: Sequence[np.ndarray], record_ids: Sequence[str], *,
        progress=None) -> list[Img2ImgResult(image, record_id, seed)]
generators.dp        DP-SGD wiring (Opacus, functorch per-sample gradients); see its docstring
generators.presets   PRESETS, new_unet(config)
generators.runtime   torch_device(), configure_threads(), bf16_supported(device)

CPU demo (2 cores, ~2,400 images at 32x32 over 4 shards in ~4 minutes): preset "small",
batch_size 16, lr 2e-3, 6 epochs on a quiet machine (about 3 where other work shares the
cores); sample with DDIM-25 or -50 under bf16 (bench/generators.py has the figures).
Torch threads: `configure_threads` uses the CPUs this process may use, or
CONSENTGEN_TORCH_THREADS; set it to 1 per process when several train at once, and set
OMP_WAIT_POLICY=PASSIVE before torch is imported on a shared machine (spinning OpenMP
threads lose up to 5x under contention).

Errors: consentgen.errors.GeneratorError, CheckpointError, ConfigError, and
generators.errors.GeneratorInputError (bad arrays, labels or record ids).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "DiffusionConfig": "generators.config",
    "DPConfig": "generators.config",
    "Img2ImgConfig": "generators.config",
    "shard_of": "generators.shards",
    "train_diffusion": "generators.training",
    "TrainedGenerator": "generators.trained",
    "TrainingRecord": "generators.trained",
    "CheckpointMeta": "generators.trained",
    "ConsentHead": "generators.trained",
    "save_checkpoint": "generators.checkpoints",
    "load_checkpoint": "generators.checkpoints",
    "read_checkpoint_meta": "generators.checkpoints",
    "sample": "generators.sampling",
    "class_balanced_labels": "generators.labels",
    "shard_plan": "generators.balanced",
    "generate_balanced": "generators.balanced",
    "GeneratedImages": "generators.balanced",
    "per_sample_loss": "generators.membership",
    "Img2ImgGenerator": "generators.img2img",
    "Img2ImgResult": "generators.img2img",
    "GeneratorInputError": "generators.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'generators' has no attribute {name!r}")
