"""A trained generator and the record of what it was trained on.

The record travels with the weights from the moment training ends: a generator that
cannot say which records it learned from cannot be withdrawn when one of them is
revoked, so the record list is a required, non-empty field and never optional metadata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from diffusers import UNet2DModel
from pydantic import BaseModel, ConfigDict, Field, model_validator

from generators.config import DiffusionConfig

CHECKPOINT_FORMAT = "consentgen.generator/1"


class TrainingRecord(BaseModel):
    """What a model was trained on and how: the lineage and privacy facts of one run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: DiffusionConfig
    record_ids: list[str] = Field(min_length=1)
    class_counts: list[int]
    seed: int
    loss_history: list[float] = Field(description="mean training loss of each pass over the data")
    steps: int = Field(ge=1)
    epochs_run: float = Field(gt=0)
    epsilon: float | None = Field(
        default=None, description="ε spent, as computed by the Opacus accountant; None without DP"
    )
    delta: float | None = None
    noise_multiplier: float | None = None
    accountant: str | None = None
    device: str
    started_at: datetime
    duration_s: float = Field(ge=0)
    versions: dict[str, str]

    @model_validator(mode="after")
    def _privacy_facts_match_config(self) -> TrainingRecord:
        if len(self.class_counts) != self.config.n_classes:
            raise ValueError("class_counts must have one entry per class (one if unconditional)")
        if sum(self.class_counts) != len(self.record_ids):
            raise ValueError("class_counts must add up to the number of records")
        if len(set(self.record_ids)) != len(self.record_ids):
            raise ValueError("record_ids must be unique")
        if self.config.dp is None:
            if self.epsilon is not None or self.delta is not None:
                raise ValueError("epsilon/delta are recorded only for DP training")
        elif self.epsilon is None or not math.isfinite(self.epsilon) or self.delta is None:
            raise ValueError(
                "a DP-trained model must carry the accountant's finite epsilon and delta"
            )
        return self


class ConsentHead(BaseModel):
    """The consent-ledger head a training set was selected under (sequence and hash)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sequence: int = Field(ge=0)
    hash: str = Field(min_length=1)


class CheckpointMeta(BaseModel):
    """The JSON written next to the weights: the training record plus where it belongs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["consentgen.generator/1"] = CHECKPOINT_FORMAT
    training: TrainingRecord
    shard: int | None = Field(default=None, ge=0)
    version: str | None = Field(default=None, min_length=1)
    consent_head: ConsentHead | None = None
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    saved_at: datetime


@dataclass
class TrainedGenerator:
    """Sampling weights (EMA when enabled) with their training record.

    `checkpoint` is set once the generator has been saved or when it was loaded; it
    carries the shard and model version that image lineage refers to.
    """

    unet: UNet2DModel
    record: TrainingRecord
    checkpoint: CheckpointMeta | None = None

    @property
    def config(self) -> DiffusionConfig:
        return self.record.config

    @property
    def shard(self) -> int | None:
        return self.checkpoint.shard if self.checkpoint else None

    @property
    def version(self) -> str | None:
        return self.checkpoint.version if self.checkpoint else None

    @property
    def epsilon(self) -> float | None:
        return self.record.epsilon
