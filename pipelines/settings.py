"""What a build does, in one typed object (DESIGN.md, "Pipeline").

`BuildConfig` is what `consentgen.toml` holds (`pipelines.buildfile` reads and writes it),
travels into Dagster as resource configuration, is recorded with every build, and is what
the data card reports. Every field has a default and every model forbids unknown keys,
so a typo in the build file is refused in one line naming the key instead of silently
building with a default.

Presets: `demo` (CPU, minutes) and `test` (tiny models, seconds) are the values a build
file starts from (its `profile` key); `BuildConfig()` alone is the demo preset.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from consentgen.errors import ConfigError
from consentgen.labels import canonical_label, folder_name
from generators.config import PRESET_LEVELS, PRESET_MAX_SIZE
from pipelines.service.settings import ServiceSettings
from validation.audit.config import AuditConfig

SHARDS_ENV = "CONSENTGEN_SHARDS"
PROFILE_ENV = "CONSENTGEN_PROFILE"
CRON_ENV = "CONSENTGEN_REFRESH_CRON"
DEFAULT_SHARDS = 4
MAX_SHARDS = 64
DEFAULT_CRON = "0 3 * * *"
DEFAULT_PURPOSE = "synthetic-training"
MAX_IMAGE_SIZE = 256

PURPOSE_PATTERN = re.compile(r"[a-z0-9][a-z0-9._:-]{0,63}")
"""A purpose is a short lower-case token (`synthetic-training`, `dpv:ResearchAndDevelopment`
spelt `research`): what a grant names and a build asks for must match byte for byte."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GeneratorSettings(_Section):
    """Which generator, and its knobs (the full configs are `generators.DiffusionConfig` and
    `generators.Img2ImgConfig`)."""

    kind: Literal["ddpm", "img2img"] = Field(
        "ddpm", description="ddpm: a class-conditional DDPM trained from scratch per shard; "
        "img2img: Stable Diffusion img2img from a local weights folder, one output per record")
    preset: Literal["tiny", "small", "base"] = Field(
        "small", description="ddpm model size: tiny (tests), small (CPU), base (GPU)")
    image_size: int = Field(32, ge=8, le=MAX_IMAGE_SIZE,
                            description="side of the generated images in pixels (8-256)")
    channels: Literal[1, 3] = Field(1, description="1 = grey, 3 = colour")
    # CPU demo defaults (bench/generators.py): batch 16 gives 4x the optimiser steps of 64
    # for ~5 % less throughput, which is what a few epochs need.
    epochs: int = Field(6, ge=1, description="ddpm training epochs per shard")
    batch_size: int = Field(16, ge=1, description="training (ddpm) or sampling (img2img) batch")
    lr: float = Field(2e-3, gt=0, le=1, description="ddpm learning rate")
    sample_steps: int = Field(25, ge=1, le=1000,
                              description="denoising steps per image (DDIM for ddpm, img2img steps)")
    dp_epsilon: float | None = Field(None, gt=0, le=100,
                                     description="DP-SGD budget epsilon (ddpm only); unset = no DP")
    dp_delta: float = Field(1e-5, gt=0, lt=1, description="DP-SGD delta")
    weights_dir: Path | None = Field(
        None, description="img2img: local Stable Diffusion folder (with model_index.json); "
        "never fetched")
    strength: float = Field(0.5, gt=0, le=1,
                            description="img2img: how far each source is pushed into noise")
    guidance: float = Field(7.5, ge=0, description="img2img: classifier-free guidance scale")
    prompt: str = Field("", description="img2img: text prompt")

    @model_validator(mode="after")
    def _consistent(self) -> GeneratorSettings:
        factor = 2 ** (PRESET_LEVELS[self.preset] - 1)
        if self.kind == "ddpm" and self.image_size % factor:
            raise ValueError(f"image_size {self.image_size} must be divisible by {factor} "
                             f"for preset {self.preset!r}")
        if self.kind == "ddpm" and self.image_size > PRESET_MAX_SIZE[self.preset]:
            raise ValueError(f"preset {self.preset!r} is for images up to "
                             f"{PRESET_MAX_SIZE[self.preset]} px, not {self.image_size}: use "
                             "preset \"small\" or \"base\"")
        if self.kind == "img2img":
            if self.weights_dir is None:
                raise ValueError("weights_dir is required when kind = \"img2img\" (a local "
                                 "Stable Diffusion folder; weights are never fetched)")
            if self.dp_epsilon is not None:
                raise ValueError("dp_epsilon applies to kind = \"ddpm\" only (img2img trains nothing)")
            if self.image_size % 8:
                raise ValueError("image_size must be a multiple of 8 for img2img")
            if int(self.sample_steps * self.strength) < 1:
                raise ValueError(f"sample_steps * strength ({self.sample_steps} * {self.strength}) "
                                 "must allow at least one img2img denoising step")
        return self


class LabelSettings(_Section):
    """What the manifest's `label` column means for the generator and the release folders."""

    mode: Literal["auto", "conditional", "unconditional"] = Field(
        "auto", description="auto: class-conditional when the eligible records carry labels, "
        "else unconditional; conditional: records without a label are excluded; "
        "unconditional: labels are ignored")
    classes: list[str] = Field(
        default_factory=list, description="the classes and their order; [] = every label "
        "the sources carry, sorted")
    names: dict[str, str] = Field(
        default_factory=dict, description="class folder name per label, e.g. { \"0\" = "
        "\"no_tumour\", \"1\" = \"tumour\" }; a label without one is its own name")
    unlabelled: str = Field("unlabelled",
                            description="the one class folder of an unconditional build")
    min_subjects_per_class: int = Field(
        5, ge=1, description="a class backed by fewer eligible subjects is left out "
        "(SmallClass): a class folder must never stand for one or two people")

    @field_validator("unlabelled")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        return folder_name(value)

    @field_validator("names")
    @classmethod
    def _folder_names(cls, value: dict[str, str]) -> dict[str, str]:
        names = {canonical_label(k): folder_name(v) for k, v in value.items()}
        if len(names) != len(value):
            raise ValueError("two keys name the same label (integers are compared as numbers)")
        return names

    @field_validator("classes")
    @classmethod
    def _class_labels(cls, value: list[str]) -> list[str]:
        labels = [canonical_label(v) for v in value]
        if len(set(labels)) != len(labels):
            raise ValueError("a class is listed twice (integers are compared as numbers)")
        return labels

    def name_of(self, label: str | int | None) -> str:
        """The class folder (and manifest `label_name`) of `label`."""
        if label is None:
            return self.unlabelled
        text = canonical_label(label)
        return self.names.get(text, text)


class FigureSettings(_Section):
    """Privacy and utility figures for the data card; each can be switched off."""

    dcr: bool = Field(True, description="distance to closest record, training vs holdout")
    membership_inference: bool = Field(True, description="loss-based membership inference AUC")
    mia_timestep: int = Field(100, ge=1)
    mia_max_records: int = Field(256, ge=8)
    utility: bool = Field(True, description="train-on-synthetic, test-on-real accuracy")
    utility_epochs: int = Field(8, ge=1)
    calibration: bool = Field(True, description="audit false-positive rate on unseen sources")
    calibration_sources: int = Field(200, ge=10)


class ScheduleSettings(_Section):
    """The daemon's refresh: a whole new build on a cron, skipped when nothing changed."""

    cron: str = Field(DEFAULT_CRON, description="refresh cron, UTC")
    enabled: bool = Field(True, description="whether the schedule starts running")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a five-field cron expression")
        return value


class DatasetSettings(_Section):
    """Who publishes the dataset and on what terms: the data card's first section."""

    name: str = Field("consentgen synthetic images", description="the dataset's title")
    controller: str = Field("", description="data controller (the organisation responsible)")
    contact: str = Field("", description="contact for data protection questions (DPO)")
    licence: str = Field("", description="licence of the synthetic images")
    legal_basis: str = Field("", description="legal basis of the processing, as the controller "
                             "states it (the card says 'not stated' until then)")
    intended_uses: list[str] = Field(
        default_factory=lambda: ["training and evaluating image models",
                                 "developing and testing data pipelines"],
        description="what the images are for")
    out_of_scope_uses: list[str] = Field(
        default_factory=lambda: ["clinical diagnosis or treatment of any person",
                                 "re-identifying, or learning about, any person"],
        description="what they must not be used for")
    withdrawal: str = Field(
        "", description="how a subject withdraws (default: ask the contact; the next "
        "reconcile withdraws every image derived from them)")


class ProvenanceSettings(_Section):
    """What every published image declares, and who signs it (`validation.release.provenance`)."""

    sign_cert: Path | None = Field(
        None, description="PEM certificate chain (signer first) the releases are signed with; "
        "unset: the home's local development signer (untrusted, made by `consentgen init`)")
    sign_key: Path | None = Field(None, description="PEM private key of sign_cert")
    trust_anchors: Path | None = Field(
        None, description="PEM CA certificate(s) a signed image must verify against (default: "
        "the last certificate of sign_cert)")
    training_mining: Literal["notAllowed", "allowed", "constrained"] = Field(
        "notAllowed", description="the cawg.training-mining answer each image carries for AI "
        "training, generative training, data mining and inference")
    watermark: bool = Field(
        True, description="embed an invisible release tag where the image size carries it "
        "reliably (the card says when it does not)")

    @model_validator(mode="after")
    def _pair(self) -> ProvenanceSettings:
        if (self.sign_cert is None) != (self.sign_key is None):
            raise ValueError("give sign_cert and sign_key together (or neither, for the "
                             "home's development signer)")
        return self


class BuildConfig(_Section):
    """One build: which purpose, how many shards, which generator, how many images."""

    profile: Literal["demo", "test"] = Field(
        "demo", description="preset the other values start from: demo (CPU, minutes) or test "
        "(tiny models; its releases carry a \"test build - not for publication\" banner)")
    purpose: str = Field(DEFAULT_PURPOSE, description="the consent purpose this build honours")
    purposes: list[str] = Field(
        default_factory=lambda: [DEFAULT_PURPOSE],
        description="declared purposes: a grant or revoke for any other is refused")
    shards: int = Field(DEFAULT_SHARDS, ge=1, le=MAX_SHARDS,
                        description="SISA shards: a revocation retrains one shard's model")
    holdout_fraction: float = Field(0.1, ge=0.0, lt=0.9,
                                    description="subjects kept out of training for the figures")
    images_per_shard: int = Field(100, ge=1, le=100_000,
                                  description="synthetic images drawn from each shard")
    seed: int = Field(0, ge=0, description="seed of the shards' training and sampling")
    labels: LabelSettings = LabelSettings()
    generator: GeneratorSettings = GeneratorSettings()
    audit: AuditConfig = AuditConfig()
    max_replacement_rounds: int = Field(3, ge=0, le=20,
                                        description="audit rounds that replace near-duplicates")
    figures: FigureSettings = FigureSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    dataset: DatasetSettings = DatasetSettings()
    service: ServiceSettings = ServiceSettings()
    provenance: ProvenanceSettings = ProvenanceSettings()
    notices: list[str] = Field(default_factory=list,
                               description="lines printed at the top of the data card")
    expiry_policy: Literal["withdraw", "keep"] = Field(
        "withdraw", description="when a grant expires: withdraw the images its subject stands "
        "behind, or keep those made while consent held")
    min_public_count: int = Field(
        10, ge=1, description="k: counts of people under k show as \"< k\" on the public card")

    @field_validator("purpose")
    @classmethod
    def _purpose_token(cls, value: str) -> str:
        return check_purpose(value)

    @field_validator("purposes")
    @classmethod
    def _purpose_tokens(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("declare at least one purpose")
        return [check_purpose(p) for p in value]

    @model_validator(mode="after")
    def _purpose_declared(self) -> BuildConfig:
        if self.purpose not in self.purposes:
            raise ValueError(f"purpose {self.purpose!r} is not declared in purposes "
                             f"({', '.join(self.purposes)})")
        return self


def check_purpose(value: str) -> str:
    if not PURPOSE_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a purpose: use 1-64 lower-case letters, digits "
                         "and . _ : - (e.g. synthetic-training)")
    return value


BR35H_NAMES = {"0": "no_tumour", "1": "tumour"}
"""Br35H's class folders (its manifest labels 0 and 1): what `demo_profile` and
`quick_profile` name them, for the demo's and the tests' Br35H deployments. The presets a
build file starts from (`PROFILES`) name no class: someone else's labels 0 and 1 are not
tumours."""


def demo_preset(**overrides: Any) -> BuildConfig:
    """The CPU demo preset (what `BuildConfig()` is)."""
    return BuildConfig().model_copy(update=overrides)


def quick_preset(**overrides: Any) -> BuildConfig:
    """Tiny models and few images: an end-to-end build in seconds."""
    base = BuildConfig(
        profile="test",
        shards=2,
        images_per_shard=8,
        holdout_fraction=0.2,
        generator=GeneratorSettings(preset="tiny", image_size=16, epochs=2, batch_size=16,
                                    sample_steps=4),
        figures=FigureSettings(mia_max_records=32, utility_epochs=1, calibration_sources=20),
        max_replacement_rounds=2,
    )
    return base.model_copy(update=overrides)


def demo_profile(**overrides: Any) -> BuildConfig:
    """The demo preset with Br35H's class names."""
    return demo_preset(labels=LabelSettings(names=BR35H_NAMES)).model_copy(update=overrides)


def quick_profile(**overrides: Any) -> BuildConfig:
    """The test preset with Br35H's class names (the tests' deployments are Br35H slices)."""
    return quick_preset(labels=LabelSettings(names=BR35H_NAMES)).model_copy(update=overrides)


PROFILES = {"demo": demo_preset, "test": quick_preset}


def config_from_env() -> BuildConfig:
    """The build config a deployment runs with: the home's `consentgen.toml` (if any) over
    the `$CONSENTGEN_PROFILE` preset, with `$CONSENTGEN_SHARDS` on top (`load_config`)."""
    from pipelines.buildfile import load_config

    name = os.environ.get(PROFILE_ENV) or None
    if name is not None and name not in PROFILES:
        raise ConfigError(f"{PROFILE_ENV}={name!r}: use one of {', '.join(PROFILES)}")
    return load_config(None)
