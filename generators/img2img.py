"""Stable Diffusion img2img conditioned on each opted-in source image.

One output per input, and the output's lineage is exactly that input's record: the
caller passes the record ids alongside the images and gets them back on the results.

Weights come only from a local folder (`local_files_only=True`); nothing is fetched at
run time. The pipeline is loaded WITHOUT the NSFW safety checker even when the folder
has one: on medical images it flags anatomy and replaces the output with a black frame,
which would then ship as a data point; whether an output may be published is decided by
the near-duplicate audit and the release checks instead.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import StableDiffusionImg2ImgPipeline
from diffusers.utils import logging as diffusers_logging
from PIL import Image
from transformers.utils import logging as transformers_logging

from consentgen.errors import GeneratorError
from generators.arrays import check_record_ids
from generators.config import Img2ImgConfig
from generators.errors import GeneratorInputError
from generators.runtime import configure_threads, derive_seed, torch_device


@dataclass(frozen=True)
class Img2ImgResult:
    """One generated image (uint8, grey [H,W] or colour [H,W,3]) and its only source record."""

    image: np.ndarray
    record_id: str
    seed: int


class Img2ImgGenerator:
    """A loaded img2img pipeline plus the config it runs with."""

    def __init__(self, pipeline: StableDiffusionImg2ImgPipeline, config: Img2ImgConfig) -> None:
        self.pipeline = pipeline
        self.config = config

    @classmethod
    def load(cls, config: Img2ImgConfig, *, progress: bool | None = None) -> Img2ImgGenerator:
        """Load from `config.weights_dir` (fp16 on CUDA, fp32 on CPU); never downloads.

        diffusers' and transformers' loading bars show only with `progress` (default: when
        stderr is a terminal), so a build's log is not filled with them.
        """
        folder = config.weights_dir
        if not (folder / "model_index.json").is_file():
            raise GeneratorError(f"{folder}: not a diffusers pipeline folder (no model_index.json)")
        configure_threads()
        device = torch_device()
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        try:
            with _loading_bars(sys.stderr.isatty() if progress is None else progress):
                pipeline = StableDiffusionImg2ImgPipeline.from_pretrained(
                    folder,
                    local_files_only=True,
                    dtype=dtype,
                    safety_checker=None,
                    requires_safety_checker=False,
                )
        except (OSError, ValueError, TypeError) as exc:
            raise GeneratorError(f"{folder}: cannot load the img2img pipeline: {exc}") from exc
        return cls(pipeline.to(device), config)

    @property
    def image_size(self) -> int:
        if self.config.image_size is not None:
            return self.config.image_size
        return int(self.pipeline.unet.config.sample_size) * int(self.pipeline.vae_scale_factor)

    def generate(
        self,
        images: Sequence[np.ndarray],
        record_ids: Sequence[str],
        *,
        seeds: Sequence[int] | None = None,
        progress: bool | None = None,
    ) -> list[Img2ImgResult]:
        """One output per `images[i]` (uint8 [H,W] or [H,W,3], any size), tagged `record_ids[i]`.

        Inputs are resized to `image_size`; outputs are that size, grey when the input was.
        Each output's noise comes from `seeds[i]` when given (then a record may appear more
        than once: several outputs conditioned on it, each with its own seed), else from
        `config.seed` and its record id.
        """
        if seeds is None:
            ids = check_record_ids(record_ids, len(images))
            seeds = [derive_seed(self.config.seed, "img2img", record_id) for record_id in ids]
        else:
            ids, seeds = _ids_with_seeds(record_ids, seeds, len(images))
        sources = [_to_pil(image, self.image_size) for image in images]
        greys = [image.ndim == 2 for image in images]
        self.pipeline.set_progress_bar_config(
            disable=not (sys.stderr.isatty() if progress is None else progress)
        )
        results: list[Img2ImgResult] = []
        step = self.config.batch_size
        for start in range(0, len(sources), step):
            part = slice(start, start + step)
            count = len(sources[part])
            with torch.inference_mode():
                output = self.pipeline(
                    prompt=[self.config.prompt] * count,
                    negative_prompt=(
                        [self.config.negative_prompt] * count
                        if self.config.negative_prompt
                        else None
                    ),
                    image=sources[part],
                    strength=self.config.strength,
                    num_inference_steps=self.config.steps,
                    guidance_scale=self.config.guidance,
                    generator=[torch.Generator(device="cpu").manual_seed(s) for s in seeds[part]],
                    output_type="np",
                )
            for pixels, grey, record_id, seed in zip(
                output.images, greys[part], ids[part], seeds[part], strict=True
            ):
                rgb = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
                image = np.rint(rgb.mean(axis=-1)).astype(np.uint8) if grey else rgb
                results.append(Img2ImgResult(image=image, record_id=record_id, seed=seed))
        return results


@contextmanager
def _loading_bars(show: bool) -> Iterator[None]:
    """diffusers' and transformers' (global) loading bars on or off, restored after."""
    libraries = (diffusers_logging, transformers_logging)
    before = [lib.is_progress_bar_enabled() for lib in libraries]
    for lib in libraries:
        lib.enable_progress_bar() if show else lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in zip(libraries, before, strict=True):
            lib.enable_progress_bar() if enabled else lib.disable_progress_bar()


def _ids_with_seeds(record_ids: Sequence[str], seeds: Sequence[int], count: int
                    ) -> tuple[list[str], list[int]]:
    ids, chosen = list(record_ids), [int(s) for s in seeds]
    if len(ids) != count or len(chosen) != count:
        raise GeneratorInputError(
            f"need one record id and one seed per image: {len(ids)} ids and {len(chosen)} "
            f"seeds for {count} images"
        )
    if not all(isinstance(r, str) and r for r in ids):
        raise GeneratorInputError("record ids must be non-empty strings")
    if not all(0 <= s < 2**63 for s in chosen):
        raise GeneratorInputError("seeds must be in [0, 2**63)")
    if len(set(zip(ids, chosen, strict=True))) != count:
        raise GeneratorInputError("each (record id, seed) pair may appear once: the same pair "
                                  "would draw the same image twice")
    return ids, chosen


def _to_pil(image: np.ndarray, size: int) -> Image.Image:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise GeneratorInputError("img2img inputs must be uint8 numpy arrays")
    if image.ndim == 2:
        pil = Image.fromarray(image).convert("RGB")
    elif image.ndim == 3 and image.shape[-1] == 3:
        pil = Image.fromarray(image)
    else:
        raise GeneratorInputError(
            f"img2img inputs must be [H,W] or [H,W,3], got shape {image.shape}"
        )
    return pil.resize((size, size), Image.Resampling.BICUBIC) if pil.size != (size, size) else pil
