"""The noise schedule a model is trained under, and the DDIM sampler that matches it.

Both schedulers are built from the config alone, never stored separately, so a loaded
checkpoint always samples under exactly the betas it was trained with.
"""

from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler

from generators.config import DiffusionConfig

_BETA_SCHEDULES = {"cosine": "squaredcos_cap_v2", "linear": "linear"}


def training_scheduler(config: DiffusionConfig) -> DDPMScheduler:
    """DDPM forward process with epsilon prediction (the training target)."""
    return DDPMScheduler(
        num_train_timesteps=config.train_timesteps,
        beta_schedule=_BETA_SCHEDULES[config.schedule],
        prediction_type="epsilon",
        clip_sample=True,
    )


def sampling_scheduler(config: DiffusionConfig, steps: int) -> DDIMScheduler:
    """Deterministic DDIM (eta 0) over `steps` steps of the training schedule.

    "trailing" spacing starts from the last training timestep (pure noise); the default
    "leading" spacing skips the noisiest steps, which shows at 25-50 steps.
    """
    scheduler = DDIMScheduler.from_config(
        training_scheduler(config).config,
        timestep_spacing="trailing",
    )
    scheduler.set_timesteps(steps)
    return scheduler
