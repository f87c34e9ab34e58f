"""Typed settings of the generators: one frozen pydantic model per generator kind.

The configs are frozen and forbid unknown keys so that what a checkpoint records as "the
config it was trained with" is exactly what ran; a typo in a Dagster run config fails
loudly instead of silently training with a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from consentgen.errors import ConfigError

Preset = Literal["tiny", "small", "base"]

DEFAULT_EPOCHS = 10

# How many times each preset halves the image on its way down; the image side must be
# divisible by 2**(levels - 1). Kept next to the config (not only in presets.py) so that a
# config that no model could be built from is refused when it is written, not at training.
PRESET_LEVELS: dict[str, int] = {"tiny": 2, "small": 3, "base": 4}

# The largest side each preset is built for. `tiny` (a test model) attends at half the side:
# 4,096 tokens an image at 128 px, 16,384 at 256 (attention maps of ~4 and ~69 GB for a
# batch of 16 where they are materialised); `small` has no attention, `base` attends at a
# quarter of the side.
PRESET_MAX_SIZE: dict[str, int] = {"tiny": 64, "small": 256, "base": 256}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def parse(cls, data: Any) -> Any:
        """Validate `data` (a mapping) and raise `ConfigError` with one readable line.

        Callers that print errors for people (the CLI, Dagster run configs) want our one
        error root, not pydantic's multi-line report.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or cls.__name__}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"invalid {cls.__name__}: {problems}") from exc


class DPConfig(_Frozen):
    """DP-SGD budget: the accountant picks the noise that spends exactly this (ε, δ)."""

    epsilon: float = Field(gt=0, le=100)
    delta: float = Field(gt=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)


class DiffusionConfig(_Frozen):
    """Everything that decides how a DDPM is trained and sampled.

    `num_classes` None is an unconditional model (no class embedding; its images have the
    one implicit class 0), else a class-conditional one over classes 0..num_classes-1.

    Give `epochs` or `train_steps` (not both); with neither, `epochs` is
    `DEFAULT_EPOCHS`. `sample_steps` is the default number of DDIM steps at sampling.
    `mixed_precision` applies on CUDA only; CPU training always runs in float32 so that
    the same seed and data give the same weights.
    """

    preset: Preset = "small"
    image_size: int = Field(default=32, ge=8, le=256)
    channels: Literal[1, 3] = 1
    num_classes: int | None = Field(ge=1, le=1000)
    epochs: int | None = Field(default=None, ge=1)
    train_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=64, ge=1)
    lr: float = Field(default=1e-3, gt=0, le=1)
    lr_warmup_steps: int = Field(default=20, ge=0)
    ema: bool = True
    ema_decay: float = Field(default=0.999, gt=0, lt=1)
    schedule: Literal["cosine", "linear"] = "cosine"
    train_timesteps: int = Field(default=1000, ge=10, le=4000)
    sample_steps: int = Field(default=50, ge=1)
    seed: int = Field(default=0, ge=0, lt=2**63)
    mixed_precision: bool = True
    dp: DPConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_epochs(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("epochs") is None
            and data.get("train_steps") is None
        ):
            return {**data, "epochs": DEFAULT_EPOCHS}
        return data

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    @property
    def n_classes(self) -> int:
        """Class indices a label may take: num_classes, or the one class 0 when unconditional."""
        return self.num_classes or 1

    @model_validator(mode="after")
    def _consistent(self) -> DiffusionConfig:
        if self.epochs is not None and self.train_steps is not None:
            raise ValueError("give epochs or train_steps, not both")
        factor = 2 ** (PRESET_LEVELS[self.preset] - 1)
        if self.image_size % factor:
            raise ValueError(
                f"image_size {self.image_size} must be divisible by {factor} for preset "
                f"{self.preset!r}"
            )
        if self.image_size > PRESET_MAX_SIZE[self.preset]:
            raise ValueError(
                f"preset {self.preset!r} is for images up to {PRESET_MAX_SIZE[self.preset]} px, "
                f"not {self.image_size}: use preset \"small\" or \"base\""
            )
        if self.sample_steps > self.train_timesteps:
            raise ValueError("sample_steps cannot exceed train_timesteps")
        return self


class Img2ImgConfig(_Frozen):
    """Stable Diffusion img2img from a local weights folder (never fetched at run time).

    `strength` is how far each source is pushed into noise before denoising (0 keeps the
    source, 1 ignores it); `steps * strength` denoising steps run. `image_size` None means
    the model's own resolution. Each output image gets a seed derived from `seed` and its
    record id, so regenerating one record after another is revoked leaves the rest as they
    were.
    """

    weights_dir: Path
    strength: float = Field(default=0.5, gt=0, le=1)
    steps: int = Field(default=30, ge=1, le=1000)
    guidance: float = Field(default=7.5, ge=0)
    prompt: str = ""
    negative_prompt: str | None = None
    image_size: int | None = Field(default=None, ge=8, le=2048)
    batch_size: int = Field(default=4, ge=1)
    seed: int = Field(default=0, ge=0, lt=2**63)

    @model_validator(mode="after")
    def _consistent(self) -> Img2ImgConfig:
        if int(self.steps * self.strength) < 1:
            raise ValueError("steps * strength must allow at least one denoising step")
        if self.image_size is not None and self.image_size % 8:
            raise ValueError("image_size must be a multiple of 8 (the VAE downsamples by 8)")
        return self
