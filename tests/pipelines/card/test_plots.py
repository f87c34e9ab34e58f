"""The card's pictures: the histograms draw the threshold, the grid shows every sample."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from consentgen.errors import ConfigError
from pipelines.card import DistanceDistribution, render_data_card
from tests.pipelines.card.conftest import THRESHOLD_RED, base_card
from validation.release.metadata import find_identifying_metadata_in


def test_histogram_draws_the_threshold(tmp_path: Path) -> None:
    card = base_card(distances={"pixel_l2": DistanceDistribution(values=[0.6, 0.8, 1.0])})
    render_data_card(card, tmp_path, sample_images=[], sample_labels=[])
    pixels = np.asarray(Image.open(tmp_path / "card" / "hist_pixel_l2.png").convert("RGB"))
    line = np.all(np.abs(pixels.astype(int) - THRESHOLD_RED) <= 8, axis=-1)
    columns = np.flatnonzero(line.sum(axis=0) > 20)  # a vertical line, not legend specks
    assert columns.size >= 1


def test_sample_grid_layout_and_image_kinds(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    kinds = [
        rng.integers(0, 256, (32, 32), dtype=np.uint8),
        rng.integers(0, 256, (32, 32, 1), dtype=np.uint8),
        rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        rng.integers(0, 256, (32, 32, 4), dtype=np.uint8),
    ]
    images = kinds * 3  # 12 images: 8 per row, 2 rows
    render_data_card(base_card(), tmp_path, sample_images=images, sample_labels=list(range(12)))
    with Image.open(tmp_path / "card" / "samples.png") as grid:
        # 32 px tiles upscaled 3x to 96, 4 px gaps, 16 px captions
        assert grid.size == (8 * (96 + 4) + 4, 2 * (96 + 16 + 4) + 4)
        assert grid.mode == "RGB"
        tile = np.asarray(grid)[4:100, 4:100]
    assert np.array_equal(tile[::3, ::3, 0], kinds[0])  # first tile is the first image

    with pytest.raises(ConfigError):
        render_data_card(base_card(), tmp_path, sample_images=kinds, sample_labels=[0])
    with pytest.raises(ConfigError):
        render_data_card(base_card(), tmp_path,
                         sample_images=[np.zeros((8, 8), dtype=np.float32)], sample_labels=[0])


def _png_chunks(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, in file order, read straight from the bytes."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.append(kind)
        pos += 12 + length
    return chunks


def test_card_pngs_carry_no_text_chunks(tmp_path: Path) -> None:
    card = base_card(distances={
        "pixel_l2": DistanceDistribution(values=[0.6, 0.8, 1.0]),
        "embedding_cosine": DistanceDistribution(bin_edges=[0.0, 0.5, 1.0], counts=[3, 1]),
    })
    grid = [np.full((16, 16), 128, dtype=np.uint8)] * 3
    render_data_card(card, tmp_path, sample_images=grid, sample_labels=[0, 1, 0])
    pngs = sorted((tmp_path / "card").glob("*.png"))
    assert [p.name for p in pngs] == ["hist_embedding_cosine.png", "hist_pixel_l2.png",
                                      "samples.png"]
    for png in pngs:
        data = png.read_bytes()
        chunks = _png_chunks(data)
        assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
        assert not {b"tEXt", b"iTXt", b"zTXt"} & set(chunks), (png.name, chunks)
        assert find_identifying_metadata_in(data) == [], png.name  # the release gate's view
