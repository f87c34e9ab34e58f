"""Stable Diffusion img2img from a local folder of tiny random components.

The components are built here, as diffusers' own `get_dummy_components()` does, with a
CLIP tokenizer made from a vocabulary written in the test (no hub download is possible),
saved with `save_pretrained`, and loaded back through `Img2ImgGenerator.load`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionImg2ImgPipeline,
    UNet2DConditionModel,
)
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from consentgen.errors import GeneratorError
from generators.config import Img2ImgConfig
from generators.errors import GeneratorInputError
from generators.img2img import Img2ImgGenerator

SIZE = 16  # pixels; the tiny VAE halves it once, so latents are 8x8


def _tiny_tokenizer() -> CLIPTokenizer:
    alphabet = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in alphabet + [a + "</w>" for a in alphabet] + ["th", "the</w>"]:
        vocab.setdefault(symbol, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[("t", "h"), ("th", "e</w>")], model_max_length=16)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=SIZE // 2,
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
        sample_size=SIZE,
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
    folder = tmp_path_factory.mktemp("sd") / "tiny-sd"
    pipeline.save_pretrained(folder)
    return folder


def _sources() -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    colour = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    larger = rng.integers(0, 256, (40, 24), dtype=np.uint8)  # resized to SIZE
    return [grey, colour, larger], ["rec-a", "rec-b", "rec-c"]


def _config(weights_dir: Path, **overrides) -> Img2ImgConfig:
    settings = {
        "weights_dir": weights_dir,
        "strength": 0.5,
        "steps": 4,
        "guidance": 2.0,
        "prompt": "the brain",
        "batch_size": 2,
        "seed": 3,
    }
    return Img2ImgConfig(**{**settings, **overrides})


def test_one_output_per_input_with_exactly_its_record(weights_dir: Path) -> None:
    generator = Img2ImgGenerator.load(_config(weights_dir))
    assert generator.pipeline.safety_checker is None and generator.image_size == SIZE
    images, ids = _sources()
    results = generator.generate(images, ids)
    assert [r.record_id for r in results] == ids
    assert [r.image.shape for r in results] == [(SIZE, SIZE), (SIZE, SIZE, 3), (SIZE, SIZE)]
    assert all(r.image.dtype == np.uint8 and r.image.std() > 0 for r in results)
    assert len({r.seed for r in results}) == 3
    # conditioned on the source: a different source gives a different output
    other = generator.generate([255 - images[0]], ["rec-a"])[0]
    assert not np.array_equal(other.image, results[0].image)


def test_outputs_follow_the_record_not_the_order(weights_dir: Path) -> None:
    generator = Img2ImgGenerator.load(_config(weights_dir))
    images, ids = _sources()
    forward = {r.record_id: r.image for r in generator.generate(images, ids)}
    backward = {r.record_id: r.image for r in generator.generate(images[::-1], ids[::-1])}
    for record_id in ids:
        assert np.abs(forward[record_id].astype(int) - backward[record_id].astype(int)).max() <= 1
    reseeded = Img2ImgGenerator.load(_config(weights_dir, seed=4)).generate(images[:1], ids[:1])[0]
    assert not np.array_equal(reseeded.image, forward["rec-a"])


def test_missing_weights_folder_and_bad_inputs_are_refused(
    weights_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(GeneratorError, match="model_index.json"):
        Img2ImgGenerator.load(_config(tmp_path / "nowhere"))
    generator = Img2ImgGenerator.load(_config(weights_dir))
    images, ids = _sources()
    with pytest.raises(GeneratorInputError, match="one record id per image"):
        generator.generate(images, ids[:2])
    with pytest.raises(GeneratorInputError, match="uint8"):
        generator.generate([images[0].astype(np.float32)], ["rec-a"])
