"""Exact nearest sources by blocked matrix products, in bounded memory.

Every candidate meets every source: the squared distance of two standardised images is
|c|^2 + |s|^2 - 2 c.s, so the work is one BLAS matrix product per block pair (about 80 %
of this machine's raw matmul rate, see bench/audit.py). The tile-wise metric costs no
extra FLOPs: the product is split by tile, each tile's squared distance is kept, and the
whole-image distance is their sum while the patch metric is their maximum.

Sources are standardised one block at a time from their uint8 pixels, so memory is the
candidates' floats plus a few block_size^2 matrices, never n_sources * pixels floats.
Ties go to the lowest source row.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import torch

from .arrays import standardise


class PixelNearest(NamedTuple):
    """Per candidate: nearest source row and RMS distance, whole-image and tile-wise max."""

    pixel_l2: np.ndarray
    pixel_idx: np.ndarray
    patch_l2: np.ndarray
    patch_idx: np.ndarray


def tile_layout(height: int, width: int, grid: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A pixel order that makes every tile contiguous, and each tile's (start, stop) in it.

    Tiles follow a `grid` x `grid` split; sides that do not divide evenly get tiles that
    differ by one pixel, which is why tiles are normalised by their own pixel count.
    """
    rows = np.linspace(0, height, min(grid, height) + 1).round().astype(int)
    cols = np.linspace(0, width, min(grid, width) + 1).round().astype(int)
    flat = np.arange(height * width).reshape(height, width)
    order: list[np.ndarray] = []
    bounds: list[tuple[int, int]] = []
    start = 0
    for r0, r1 in itertools.pairwise(rows):
        for c0, c1 in itertools.pairwise(cols):
            idx = flat[r0:r1, c0:c1].ravel()
            order.append(idx)
            bounds.append((start, start + len(idx)))
            start += len(idx)
    return np.concatenate(order), bounds


def _tiles(x: np.ndarray, bounds: list[tuple[int, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Contiguous per-tile float32 tensors of permuted rows, and their squared norms [T, N]."""
    parts = [torch.from_numpy(np.ascontiguousarray(x[:, a:b])) for a, b in bounds]
    norms = torch.stack([(p * p).sum(dim=1) for p in parts])
    return parts, norms


def nearest_pixel(
    cand_std: np.ndarray, source_gray: np.ndarray, grid: int, block: int
) -> PixelNearest:
    """Exact nearest source of each standardised candidate, over every source.

    cand_std: float32 [Nc, H*W] from `standardise`; source_gray: uint8 [Ns, H, W].
    """
    n_cand = len(cand_std)
    h, w = source_gray.shape[1:3]
    perm, bounds = tile_layout(h, w, grid)
    sizes = torch.tensor([b - a for a, b in bounds], dtype=torch.float32).view(-1, 1, 1)
    total = float(h * w)
    best_full = torch.full((n_cand,), float("inf"))
    best_full_i = torch.zeros(n_cand, dtype=torch.int64)
    best_tile = torch.full((n_cand,), float("inf"))
    best_tile_i = torch.zeros(n_cand, dtype=torch.int64)
    cand_parts, cand_norms = _tiles(cand_std[:, perm], bounds)

    for s0 in range(0, len(source_gray), block):
        src = standardise(source_gray[s0 : s0 + block])[:, perm]
        src_parts, src_norms = _tiles(src, bounds)
        for c0 in range(0, n_cand, block):
            c1 = min(c0 + block, n_cand)
            full = None
            worst = None
            for t in range(len(bounds)):
                # |c|^2 + |s|^2 - 2 c.s for this tile, in one BLAS call
                d = torch.addmm(src_norms[t].unsqueeze(0), cand_parts[t][c0:c1], src_parts[t].T,
                                alpha=-2.0)
                d += cand_norms[t, c0:c1].unsqueeze(1)
                if full is None:
                    full = d.clone()
                    worst = d.div_(sizes[t])
                else:
                    full += d
                    torch.maximum(worst, d.div_(sizes[t]), out=worst)
            assert full is not None and worst is not None
            _keep_best(full.div_(total), s0, best_full, best_full_i, c0, c1)
            _keep_best(worst, s0, best_tile, best_tile_i, c0, c1)

    return PixelNearest(
        pixel_l2=best_full.clamp_(min=0).sqrt_().numpy(),
        pixel_idx=best_full_i.numpy(),
        patch_l2=best_tile.clamp_(min=0).sqrt_().numpy(),
        patch_idx=best_tile_i.numpy(),
    )


def _keep_best(d: torch.Tensor, s0: int, best: torch.Tensor, best_i: torch.Tensor,
               c0: int, c1: int) -> None:
    """Fold a [block_c, block_s] distance block into the running minimum (first wins ties)."""
    val, idx = d.min(dim=1)
    better = val < best[c0:c1]
    best[c0:c1] = torch.where(better, val, best[c0:c1])
    best_i[c0:c1] = torch.where(better, idx + s0, best_i[c0:c1])


def rerank_pixel(
    cand_std: np.ndarray, source_gray: np.ndarray, shortlist: np.ndarray, grid: int,
    block: int = 64,
) -> PixelNearest:
    """Exact distances to a shortlist of source rows per candidate (-1 = no entry)."""
    n_cand, k = shortlist.shape
    h, w = source_gray.shape[1:3]
    perm, bounds = tile_layout(h, w, grid)
    sizes = np.array([b - a for a, b in bounds], dtype=np.float32)
    full_d = np.full((n_cand, k), np.inf, np.float32)
    tile_d = np.full((n_cand, k), np.inf, np.float32)
    for c0 in range(0, n_cand, block):
        rows = shortlist[c0 : c0 + block]
        valid = rows >= 0
        src = standardise(source_gray[np.where(valid, rows, 0).ravel()])
        diff = torch.from_numpy(src.reshape(len(rows), k, -1)[:, :, perm])
        diff -= torch.from_numpy(cand_std[c0 : c0 + block][:, perm]).unsqueeze(1)
        diff.square_()
        per_tile = torch.stack([diff[:, :, a:b].sum(dim=2) for a, b in bounds], dim=2).numpy()
        full = per_tile.sum(axis=2) / (h * w)
        worst = (per_tile / sizes).max(axis=2)
        full_d[c0 : c0 + block] = np.where(valid, full, np.inf)
        tile_d[c0 : c0 + block] = np.where(valid, worst, np.inf)
    fi = full_d.argmin(axis=1)
    ti = tile_d.argmin(axis=1)
    ar = np.arange(n_cand)
    return PixelNearest(
        pixel_l2=np.sqrt(np.maximum(full_d[ar, fi], 0)),
        pixel_idx=shortlist[ar, fi].astype(np.int64),
        patch_l2=np.sqrt(np.maximum(tile_d[ar, ti], 0)),
        patch_idx=shortlist[ar, ti].astype(np.int64),
    )


def nearest_cosine(
    queries: np.ndarray, mirrored: np.ndarray | None, base: np.ndarray, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Highest cosine over every base row (unit rows), the mirrored query counting too."""
    n = len(queries)
    best = torch.full((n,), -float("inf"))
    best_i = torch.zeros(n, dtype=torch.int64)
    q = torch.from_numpy(queries)
    qm = torch.from_numpy(mirrored) if mirrored is not None else None
    for s0 in range(0, len(base), block):
        b = torch.from_numpy(base[s0 : s0 + block])
        for c0 in range(0, n, block):
            val, idx = (q[c0 : c0 + block] @ b.T).max(dim=1)
            if qm is not None:  # reduce each side first: no elementwise pass over the block
                mval, midx = (qm[c0 : c0 + block] @ b.T).max(dim=1)
                idx = torch.where(mval > val, midx, idx)
                val = torch.maximum(val, mval)
            better = val > best[c0 : c0 + block]
            best[c0 : c0 + block] = torch.where(better, val, best[c0 : c0 + block])
            best_i[c0 : c0 + block] = torch.where(better, idx + s0, best_i[c0 : c0 + block])
    return best.numpy(), best_i.numpy()
