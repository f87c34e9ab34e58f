"""What a build does, in one typed object (DESIGN.md, "Pipeline").

`BuildConfig` travels into Dagster as resource configuration, is recorded with every
build, and is what the data card reports. Presets: `demo` (CPU, minutes) and `test`
(tiny models, seconds); `BuildConfig()` alone is the demo preset.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from consentgen.errors import ConfigError

SHARDS_ENV = "CONSENTGEN_SHARDS"
PROFILE_ENV = "CONSENTGEN_PROFILE"
CRON_ENV = "CONSENTGEN_REFRESH_CRON"
DEFAULT_SHARDS = 4
DEFAULT_CRON = "0 3 * * *"


class GeneratorSettings(BaseModel):
    """The default generator's knobs (the full config is `generators.DiffusionConfig`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: Literal["tiny", "small", "base"] = "small"
    image_size: int = Field(32, ge=8, le=64)
    # CPU demo defaults (bench/generators.py): batch 16 gives 4x the optimiser steps of 64
    # for ~5 % less throughput, which is what a few epochs need.
    epochs: int = Field(6, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-3, gt=0)
    sample_steps: int = Field(25, ge=1)
    dp_epsilon: float | None = Field(None, gt=0)
    dp_delta: float = Field(1e-5, gt=0, lt=1)


class FigureSettings(BaseModel):
    """Privacy and utility figures for the data card; each can be switched off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dcr: bool = True
    membership_inference: bool = True
    mia_timestep: int = Field(100, ge=1)
    mia_max_records: int = Field(256, ge=8)
    utility: bool = True
    utility_epochs: int = Field(8, ge=1)
    calibration: bool = True
    calibration_sources: int = Field(200, ge=10)


class BuildConfig(BaseModel):
    """One build: which purpose, how many shards, which generator, how many images."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    purpose: str = "synthetic-training"
    shards: int = Field(DEFAULT_SHARDS, ge=1, le=64)
    holdout_fraction: float = Field(0.1, ge=0.0, lt=0.9)
    images_per_shard: int = Field(100, ge=1)
    label_names: dict[int, str] = Field(default_factory=lambda: {0: "no_tumour", 1: "tumour"})
    generator: GeneratorSettings = GeneratorSettings()
    audit_overrides: dict[str, Any] = Field(default_factory=dict)
    max_replacement_rounds: int = Field(3, ge=0)
    figures: FigureSettings = FigureSettings()
    seed: int = Field(0, ge=0)
    notices: list[str] = Field(default_factory=list)
    expiry_policy: Literal["withdraw", "keep"] = "withdraw"
    """When a grant expires: withdraw the images its subject stands behind (default), or
    keep images made while consent held (later builds leave the subject out either way)."""
    min_public_count: int = Field(10, ge=1)
    """k: counts on the public card that describe subjects or exclusions and fall under k
    are suppressed ("< k"), so two versions cannot be diffed to learn about one person."""

    @property
    def num_classes(self) -> int:
        return max(self.label_names) + 1 if self.label_names else 1

    def label_name(self, label: int) -> str:
        return self.label_names.get(label, f"label_{label}")


def quick_profile(**overrides: Any) -> BuildConfig:
    """Tiny models and few images: an end-to-end build in seconds."""
    base = BuildConfig(
        shards=2,
        images_per_shard=8,
        holdout_fraction=0.2,
        generator=GeneratorSettings(preset="tiny", image_size=16, epochs=2, batch_size=16,
                                    sample_steps=4),
        figures=FigureSettings(mia_max_records=32, utility_epochs=1, calibration_sources=20),
        max_replacement_rounds=2,
    )
    return base.model_copy(update=overrides)


PROFILES = {"demo": BuildConfig, "test": quick_profile}


def config_from_env() -> BuildConfig:
    """The build config a deployment runs with: `$CONSENTGEN_PROFILE` and `$CONSENTGEN_SHARDS`."""
    name = os.environ.get(PROFILE_ENV, "demo")
    if name not in PROFILES:
        raise ConfigError(f"{PROFILE_ENV}={name!r}: use one of {', '.join(PROFILES)}")
    config = PROFILES[name]()
    shards = os.environ.get(SHARDS_ENV)
    if shards:
        try:
            config = config.model_copy(update={"shards": int(shards)})
        except ValueError:
            raise ConfigError(f"{SHARDS_ENV}={shards!r} is not a whole number") from None
    return config
