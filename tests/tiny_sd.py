"""A folder of tiny random Stable Diffusion components, saved as a real diffusers pipeline.

Built as diffusers' own `get_dummy_components()` does, with a CLIP tokenizer made from a
vocabulary written here (no hub download is possible), and saved with `save_pretrained`,
so `Img2ImgGenerator.load` reads it exactly as it reads a real weights folder. The VAE
halves an image once: a 16 px image has 8x8 latents.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionImg2ImgPipeline,
    UNet2DConditionModel,
)
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

TINY_SD_SIZE = 16
"""The resolution the components are made for (any multiple of 8 runs)."""


def _tiny_tokenizer() -> CLIPTokenizer:
    alphabet = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in alphabet + [a + "</w>" for a in alphabet] + ["th", "the</w>"]:
        vocab.setdefault(symbol, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[("t", "h"), ("th", "e</w>")], model_max_length=16)


def save_tiny_sd(folder: Path, *, size: int = TINY_SD_SIZE) -> Path:
    """Write tiny random SD img2img components to `folder` (model_index.json and all)."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=size // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=8,
    )
    vae = AutoencoderKL(
        block_out_channels=[16, 32],
        norm_num_groups=8,
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=size,
    )
    tokenizer = _tiny_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=16,
            intermediate_size=37,
            num_attention_heads=2,
            num_hidden_layers=2,
            max_position_embeddings=16,
            vocab_size=len(tokenizer),
        )
    )
    pipeline = StableDiffusionImg2ImgPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            clip_sample=False,
            steps_offset=1,
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    return folder
