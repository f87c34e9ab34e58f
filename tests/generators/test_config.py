"""Configs refuse what no model could be built from, with one readable ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from consentgen.errors import ConfigError
from generators.config import DEFAULT_EPOCHS, DiffusionConfig, Img2ImgConfig


def test_defaults_and_round_trip() -> None:
    config = DiffusionConfig(num_classes=2)
    assert (config.preset, config.image_size, config.channels) == ("small", 32, 1)
    assert (config.epochs, config.train_steps, config.sample_steps) == (DEFAULT_EPOCHS, None, 50)
    assert DiffusionConfig.model_validate_json(config.model_dump_json()) == config


def test_train_steps_alone_leaves_epochs_unset() -> None:
    config = DiffusionConfig(num_classes=2, train_steps=100)
    assert (config.epochs, config.train_steps) == (None, 100)


@pytest.mark.parametrize(
    "settings",
    [
        {"num_classes": 2, "epochs": 3, "train_steps": 10},  # both
        {"num_classes": 2, "preset": "base", "image_size": 36},  # 36 not divisible by 8
        {"num_classes": 2, "image_size": 512},  # over 256
        {"num_classes": 2, "preset": "tiny", "image_size": 128},  # tiny attends at half the side
        {"num_classes": 2, "channels": 2},
        {"num_classes": 2, "schedule": "sigmoid"},
        {"num_classes": 2, "dp": {"epsilon": 0, "delta": 1e-5}},
        {"num_classes": 2, "learning_rate": 1e-3},  # unknown key (typo)
    ],
)
def test_invalid_settings_raise_config_error(settings: dict) -> None:
    with pytest.raises(ConfigError, match="invalid DiffusionConfig"):
        DiffusionConfig.parse(settings)


def test_configs_are_frozen() -> None:
    config = DiffusionConfig(num_classes=2)
    with pytest.raises(ValidationError):
        config.seed = 3  # type: ignore[misc]


def test_img2img_config_checks_steps_and_size(tmp_path: Path) -> None:
    assert Img2ImgConfig(weights_dir=tmp_path).strength == 0.5
    with pytest.raises(ConfigError, match="at least one denoising step"):
        Img2ImgConfig.parse({"weights_dir": tmp_path, "steps": 2, "strength": 0.3})
    with pytest.raises(ConfigError, match="multiple of 8"):
        Img2ImgConfig.parse({"weights_dir": tmp_path, "image_size": 30})
