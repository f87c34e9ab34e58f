"""Model-size presets and the one function that builds a UNet from a config.

Sizes were chosen from throughput measured on a 2-core AVX-512 CPU (see
bench/generators.py and bench/results/generators.jsonl):

- `tiny`: for tests at 8-16 px. Two levels with attention on the second level and in
  the mid block, so that everything DP must handle (attention, GroupNorm, embeddings)
  is present in the smallest possible model. Its attention runs at half the image side,
  so at 64 px it is slower than `small`.
- `small`: the CPU demo model. (32, 64, 64) channels, one resnet per level and no
  attention: at 32 px an attention level at 16x16 costs ~40 % of CPU training
  throughput (STACK-NOTES) and mid-block attention at 8x8 ~8 % (measured), and bf16
  autocast speeds a conv-only UNet up most.
- `base`: for a GPU. (64, 128, 256, 256), two resnets per level, attention at the third
  level (8x8 at 32 px, 16x16 at 64 px) and in the mid block.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import UNet2DModel

from generators.config import PRESET_LEVELS, DiffusionConfig

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "block_out_channels": (16, 32),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
        "add_attention": True,
        "attention_head_dim": 8,
        "norm_num_groups": 8,
    },
    "small": {
        "block_out_channels": (32, 64, 64),
        "layers_per_block": 1,
        "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D", "UpBlock2D"),
        "add_attention": False,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
    },
    "base": {
        "block_out_channels": (64, 128, 256, 256),
        "layers_per_block": 2,
        "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "add_attention": True,
        "attention_head_dim": 32,
        "norm_num_groups": 32,
    },
}

for _name, _kwargs in PRESETS.items():  # the config validates image sizes from this count
    assert len(_kwargs["block_out_channels"]) == PRESET_LEVELS[_name], _name


def unet_kwargs(config: DiffusionConfig) -> dict[str, Any]:
    """The `UNet2DModel` constructor arguments for `config` (also saved in its config.json)."""
    return {
        **PRESETS[config.preset],
        "sample_size": config.image_size,
        "in_channels": config.channels,
        "out_channels": config.channels,
        "num_class_embeds": config.num_classes,
    }


def new_unet(config: DiffusionConfig) -> UNet2DModel:
    """A freshly initialised UNet, its weights drawn from `config.seed`.

    Seeding here (and nowhere else for initialisation) is what makes "same seed, same
    data, same weights" hold: every caller that builds the starting model gets the same one.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return UNet2DModel(**unet_kwargs(config))
