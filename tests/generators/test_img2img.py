"""Stable Diffusion img2img from a local folder of tiny random components.

The components are built by `tests.tiny_sd` (as diffusers' own `get_dummy_components()`
does, no hub download), saved with `save_pretrained`, and loaded back through
`Img2ImgGenerator.load`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from consentgen.errors import GeneratorError
from generators.config import Img2ImgConfig
from generators.errors import GeneratorInputError
from generators.img2img import Img2ImgGenerator
from tests.tiny_sd import TINY_SD_SIZE, save_tiny_sd

SIZE = TINY_SD_SIZE  # pixels; the tiny VAE halves it once, so latents are 8x8


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


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


def test_explicit_seeds_condition_one_record_several_times(weights_dir: Path) -> None:
    generator = Img2ImgGenerator.load(_config(weights_dir))
    images, _ = _sources()
    twice = generator.generate([images[0], images[0]], ["rec-a", "rec-a"], seeds=[11, 12])
    assert [r.record_id for r in twice] == ["rec-a", "rec-a"] and [r.seed for r in twice] == [11, 12]
    assert not np.array_equal(twice[0].image, twice[1].image)
    again = generator.generate([images[0]], ["rec-a"], seeds=[11])[0]
    assert np.abs(again.image.astype(int) - twice[0].image.astype(int)).max() <= 1
    with pytest.raises(GeneratorInputError, match="appear once"):
        generator.generate([images[0], images[0]], ["rec-a", "rec-a"], seeds=[11, 11])
    with pytest.raises(GeneratorInputError, match="one seed per image"):
        generator.generate([images[0]], ["rec-a"], seeds=[1, 2])
