"""Training a DDPM (class-conditional, or unconditional) from scratch on one shard's records.

DDPM objective with epsilon prediction, AdamW with a short warm-up then cosine decay,
EMA weights for sampling, bf16 autocast on CUDA (never on CPU, so CPU runs are bitwise
reproducible), optional DP-SGD through Opacus (see generators.dp).

Every random draw (initial weights, batch order, noise, timesteps, DP sampling and
noise) comes from `config.seed`, so the same seed and data give the same weights on CPU.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib.metadata import version as package_version

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from consentgen.errors import GeneratorError
from generators.arrays import check_record_ids, images_to_tensor, labels_to_tensor
from generators.config import DiffusionConfig
from generators.dp import ACCOUNTANT, PrivateTraining, make_private, quiet_known_warnings
from generators.presets import new_unet
from generators.runtime import bf16_supported, configure_threads, torch_device
from generators.schedules import training_scheduler
from generators.trained import TrainedGenerator, TrainingRecord

WEIGHT_DECAY = 1e-6  # the default of diffusers' unconditional DDPM training example
MAX_GRAD_NORM = 1.0  # global clipping for non-DP runs (DP clips per sample instead)


def denoising_loss(
    unet: torch.nn.Module,
    scheduler: DDPMScheduler,
    clean: torch.Tensor,
    labels: torch.Tensor | None,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
) -> torch.Tensor:
    """Per-sample DDPM loss: mean squared error between true and predicted noise
    (`labels` None for an unconditional model)."""
    noisy = scheduler.add_noise(clean, noise, timesteps)
    predicted = unet(noisy, timesteps, class_labels=labels).sample
    return F.mse_loss(predicted.float(), noise, reduction="none").mean(dim=(1, 2, 3))


def train_diffusion(
    images: np.ndarray,
    labels: np.ndarray | None,
    config: DiffusionConfig,
    *,
    record_ids: Sequence[str],
    progress: bool | None = None,
) -> TrainedGenerator:
    """Train a fresh model on `images` (uint8 [N,H,W], [N,C,H,W] or [N,H,W,C]).

    `record_ids[i]` names the source record of `images[i]`; the list is the model's
    lineage and is stored with its checkpoint. `labels` may be None (all zeros) for an
    unconditional config. `progress` None shows a bar on a terminal.
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    configure_threads()
    device = torch_device()
    clean = images_to_tensor(images, channels=config.channels, image_size=config.image_size)
    count = clean.shape[0]
    if labels is None:
        labels = np.zeros(count, dtype=np.int64)
    targets = labels_to_tensor(labels, count=count, num_classes=config.n_classes)
    ids = check_record_ids(record_ids, count)

    batch_size = min(config.batch_size, count)
    steps_per_epoch = math.ceil(count / batch_size)
    total_steps = config.train_steps or config.epochs * steps_per_epoch
    planned_epochs = math.ceil(total_steps / steps_per_epoch)

    rng = torch.Generator(device="cpu").manual_seed(config.seed)
    unet = new_unet(config).to(device).train()
    scheduler = training_scheduler(config)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.lr, weight_decay=WEIGHT_DECAY)
    private: PrivateTraining | None = None
    if config.dp is not None:
        private = make_private(
            unet,
            optimizer,
            TensorDataset(clean, targets),
            config.dp,
            batch_size=batch_size,
            epochs=planned_epochs,
            generator=rng,
        )
        optimizer = private.optimizer
    lr_schedule = get_cosine_schedule_with_warmup(
        optimizer, min(config.lr_warmup_steps, total_steps // 5), total_steps
    )
    ema = (
        EMAModel(unet.parameters(), decay=config.ema_decay, use_ema_warmup=True, power=3 / 4)
        if config.ema
        else None
    )
    autocast_bf16 = device.type == "cuda" and config.mixed_precision and bf16_supported(device)

    loss_history: list[float] = []
    step = 0
    bar = tqdm(
        total=total_steps,
        desc=f"train {config.preset} {config.image_size}px" + (" DP" if private else ""),
        unit="step",
        disable=not (sys.stderr.isatty() if progress is None else progress),
    )
    model = private.module if private else unet
    with bar, quiet_known_warnings():
        while step < total_steps:
            epoch_losses: list[float] = []
            for batch_images, batch_labels in _batches(clean, targets, batch_size, rng, private):
                if step >= total_steps:
                    break
                if batch_images.shape[0] == 0:  # an empty Poisson batch (DP only)
                    private.noise_only_step()
                else:
                    batch_images = batch_images.to(device)
                    noise = torch.randn(batch_images.shape, generator=rng).to(device)
                    timesteps = torch.randint(
                        0, config.train_timesteps, (batch_images.shape[0],), generator=rng
                    ).to(device)
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast_bf16):
                        losses = denoising_loss(
                            model,
                            scheduler,
                            batch_images,
                            batch_labels.to(device) if config.conditional else None,
                            noise,
                            timesteps,
                        )
                    loss = losses.mean()
                    if not torch.isfinite(loss):
                        raise GeneratorError(
                            f"training diverged at step {step} (loss {loss.item()}); lower config.lr"
                        )
                    loss.backward()
                    if private is None:
                        torch.nn.utils.clip_grad_norm_(unet.parameters(), MAX_GRAD_NORM)
                    optimizer.step()
                    epoch_losses.append(loss.item())
                optimizer.zero_grad(set_to_none=True)
                lr_schedule.step()
                if ema is not None:
                    ema.step(unet.parameters())
                step += 1
                bar.update(1)
            if epoch_losses:
                loss_history.append(float(np.mean(epoch_losses)))
                bar.set_postfix(loss=f"{loss_history[-1]:.4f}")

    final = _sampling_copy(config, unet, ema, device)
    counts = np.bincount(targets.numpy(), minlength=config.n_classes)
    record = TrainingRecord(
        config=config,
        record_ids=ids,
        class_counts=[int(c) for c in counts],
        seed=config.seed,
        loss_history=loss_history,
        steps=step,
        epochs_run=step / steps_per_epoch,
        epsilon=private.spent_epsilon() if private else None,
        delta=private.delta if private else None,
        noise_multiplier=private.noise_multiplier if private else None,
        accountant=ACCOUNTANT if private else None,
        device=str(device),
        started_at=started_at,
        duration_s=time.perf_counter() - started,
        versions=_versions(dp=private is not None),
    )
    return TrainedGenerator(unet=final, record=record)


def _batches(
    clean: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    rng: torch.Generator,
    private: PrivateTraining | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One pass over the data: Opacus' Poisson batches under DP, else a seeded shuffle."""
    if private is not None:
        yield from private.loader
        return
    order = torch.randperm(clean.shape[0], generator=rng)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield clean[index], labels[index]


def _sampling_copy(
    config: DiffusionConfig, unet: UNet2DModel, ema: EMAModel | None, device: torch.device
) -> UNet2DModel:
    """A clean UNet (no Opacus hooks or grad_sample attributes) with the weights to sample.

    EMA weights when enabled: averaging is post-processing, so under DP it costs no budget.
    """
    final = new_unet(config).to(device)
    final.load_state_dict(unet.state_dict())
    if ema is not None:
        ema.copy_to(final.parameters())
    return final.eval().requires_grad_(False)


def _versions(*, dp: bool) -> dict[str, str]:
    names = ["torch", "diffusers"] + (["opacus"] if dp else [])
    return {name: package_version(name) for name in names}
