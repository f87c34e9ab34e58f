"""Per-sample denoising loss: the signal of a loss-based membership-inference audit.

A model that memorised a training image denoises it better than a comparable unseen
one, so the audit compares this loss on training records with held-out records. The
timestep and the noise are fixed by the caller (noise from `seed`, drawn for all images
at once), so two models, or the same model before and after a retrain, are scored on
exactly the same noisy inputs.
"""

from __future__ import annotations

import numpy as np
import torch

from generators.arrays import images_to_tensor, labels_to_tensor
from generators.errors import GeneratorInputError
from generators.runtime import configure_threads
from generators.schedules import training_scheduler
from generators.trained import TrainedGenerator
from generators.training import denoising_loss


def per_sample_loss(
    generator: TrainedGenerator,
    images: np.ndarray,
    labels: np.ndarray | None,
    timestep: int,
    seed: int,
    *,
    batch_size: int = 256,
) -> np.ndarray:
    """float64 [N]: each image's epsilon-prediction MSE at `timestep` (float32 compute);
    `labels` may be None (all class 0) for an unconditional model."""
    config = generator.config
    if not 0 <= timestep < config.train_timesteps:
        raise GeneratorInputError(
            f"timestep must lie in [0, {config.train_timesteps}), got {timestep}"
        )
    configure_threads()
    clean = images_to_tensor(images, channels=config.channels, image_size=config.image_size)
    if labels is None:
        labels = np.zeros(clean.shape[0], dtype=np.int64)
    targets = labels_to_tensor(labels, count=clean.shape[0], num_classes=config.n_classes)
    noise = torch.randn(clean.shape, generator=torch.Generator(device="cpu").manual_seed(seed))
    scheduler = training_scheduler(config)
    unet = generator.unet
    losses = []
    with torch.inference_mode():
        for start in range(0, clean.shape[0], batch_size):
            part = slice(start, start + batch_size)
            count = clean[part].shape[0]
            t = torch.full((count,), timestep, dtype=torch.long, device=unet.device)
            losses.append(
                denoising_loss(
                    unet,
                    scheduler,
                    clean[part].to(unet.device),
                    targets[part].to(unet.device) if config.conditional else None,
                    noise[part].to(unet.device),
                    t,
                )
                .double()
                .cpu()
            )
    return torch.cat(losses).numpy()
