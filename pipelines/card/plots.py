"""The card's pictures as PNG bytes: one histogram per audit metric, and a sample grid.

Both are written under ``card/`` for the Markdown and embedded as data URIs in the HTML,
so they must pass the release's metadata gate like every other published file: no PNG
text chunks. matplotlib tags its PNGs with "Software" unless told not to
(``metadata={"Software": None}``); Pillow adds no text chunk unless given one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from consentgen.errors import ConfigError
from pipelines.card.formatting import number
from pipelines.card.model import AuditThreshold, DistanceDistribution

_BAR = "#4c72b0"
_THRESHOLD = "#c44e52"
_MAX_INTEGER_BINS = 128
"""Integral metrics (pHash bits) get one bar per value up to this range."""
_TILE_MIN = 96
"""Sample tiles are upscaled by a whole factor to at least this many pixels."""
_GRID_COLUMNS = 8


def histogram_png(metric: str, dist: DistanceDistribution, threshold: AuditThreshold) -> bytes:
    """The distribution with the threshold drawn and the flagged side shaded.

    A `Figure` without pyplot: no global state, safe in a worker thread, no GUI backend.
    matplotlib is imported here so that reading or building a card model does not load it.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    lo_hi: list[float] = [threshold.value]
    if dist.values is not None:
        arr = np.asarray(dist.values, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        if arr.size:
            integral = metric.startswith("phash") or bool(np.all(arr == np.round(arr)))
            if integral and arr.max() - arr.min() <= _MAX_INTEGER_BINS:
                bins: int | np.ndarray = np.arange(arr.min() - 0.5, arr.max() + 1.5, 1.0)
            else:
                bins = min(50, max(10, int(np.sqrt(arr.size))))
            ax.hist(arr, bins=bins, color=_BAR, edgecolor="white", linewidth=0.5)
            lo_hi += [float(arr.min()), float(arr.max())]
        label_n = f"n = {arr.size:,}"
    else:
        edges = np.asarray(dist.bin_edges, dtype=np.float64)
        counts = np.asarray(dist.counts, dtype=np.float64)
        ax.stairs(counts, edges, fill=True, color=_BAR)
        nz = np.flatnonzero(counts)
        if nz.size:
            lo_hi += [float(edges[nz[0]]), float(edges[nz[-1] + 1])]
        label_n = f"n = {int(counts.sum()):,}"
    lo, hi = min(lo_hi), max(lo_hi)
    pad = (hi - lo) * 0.08 or 1.0
    ax.set_xlim(lo - pad, hi + pad)
    ax.axvline(threshold.value, color=_THRESHOLD, linestyle="--", linewidth=1.5,
               label=f"threshold {number(threshold.value)} (flagged {threshold.flag_rule()})")
    if threshold.direction == "min":
        ax.axvspan(lo - pad, threshold.value, color=_THRESHOLD, alpha=0.08)
    else:
        ax.axvspan(threshold.value, hi + pad, color=_THRESHOLD, alpha=0.08)
    ax.set_title(f"{metric}: nearest source per published image ({label_n})", fontsize=10)
    ax.set_xlabel(metric)
    ax.set_ylabel("published images")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _as_rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ConfigError(f"sample images must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        return arr[..., :3]
    raise ConfigError(f"sample images must be HxW or HxWxC (C in 1, 3, 4), got {arr.shape}")


def sample_grid_png(images: Sequence[np.ndarray], labels: Sequence[object]) -> bytes:
    """A grid of the published samples, each captioned with its label."""
    rgb = [_as_rgb(im) for im in images]
    side = max(max(im.shape[0], im.shape[1]) for im in rgb)
    tile = side * max(1, math.ceil(_TILE_MIN / side))  # nearest upscale: small images stay crisp
    caption, gap = 16, 4
    cols = min(_GRID_COLUMNS, len(rgb))
    rows = math.ceil(len(rgb) / cols)
    grid = Image.new("RGB", (cols * (tile + gap) + gap, rows * (tile + caption + gap) + gap),
                     "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for i, (im, label) in enumerate(zip(rgb, labels, strict=True)):
        r, c = divmod(i, cols)
        x, y = gap + c * (tile + gap), gap + r * (tile + caption + gap)
        pil = Image.fromarray(np.ascontiguousarray(im))
        pil = pil.resize((tile, tile), Image.Resampling.NEAREST)
        grid.paste(pil, (x, y))
        draw.text((x + 2, y + tile + 2), f"label {label}"[:24], fill="black", font=font)
    buf = io.BytesIO()
    grid.save(buf, format="PNG")
    return buf.getvalue()
