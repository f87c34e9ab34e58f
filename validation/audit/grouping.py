"""Groups of near-identical images inside ONE set, e.g. the sources themselves.

Public image sets are full of their own copies: at 64x64, Br35H's 3,000 slices fall into
about 510 groups of the same slice up to a mirror and a gain/offset change. Anything
that needs "different images" must split by group, not by image: the negatives of
`calibrate`, and the train / holdout split behind the DCR and membership figures (else
a holdout image's mirrored twin sits in train and every privacy figure reads as leak).

Two groupings:

* `duplicate_groups`: standardised RMS (mirror included) below one loose limit, joined
  transitively. Cheap and threshold-free for the caller.
* `audit_groups`: every pair that the audit ITSELF would flag (any of its four metrics
  crossing its threshold in `AuditConfig`, either image as the candidate), joined with
  `duplicate_groups` and transitively. A split by these groups leaves no pair across
  it that the audit calls a copy, which is what the calibration's negatives and a
  holdout need. `near_duplicate_pairs` lists those pairs by metric.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .arrays import check_images, luminance, same_size, standardise
from .config import AuditConfig
from .embedding import crop_boxes, embed, make_embedder
from .exact import tile_layout
from .phash import pack, phash_bits
from .results import METRICS

DEFAULT_GROUP_PIXEL_L2 = 0.40
"""Standardised RMS below which two images are one group. On Br35H the group count is
stable between 0.30 (548 groups) and 0.40 (511); from 0.50 on, chains merge different
slices into one giant group."""

Pairs = tuple[np.ndarray, np.ndarray]
"""(rows, cols) int64: image `rows[k]` and image `cols[k]` are a pair (rows != cols)."""


def _components(n: int, pairs: list[Pairs]) -> np.ndarray:
    rows = np.concatenate([np.arange(n), *(p[0] for p in pairs)])
    cols = np.concatenate([np.arange(n), *(p[1] for p in pairs)])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def duplicate_groups(
    images: np.ndarray, max_pixel_l2: float = DEFAULT_GROUP_PIXEL_L2, mirrored: bool = True,
    block_size: int = 1024,
) -> np.ndarray:
    """int64 [N]: group label per image; linked when the standardised RMS (also against
    the mirror, when `mirrored`) is below `max_pixel_l2`, then joined transitively."""
    check_images(images, "images")
    x = standardise(luminance(images))
    d = x.shape[1]
    variants = [x]
    if mirrored:
        h, w = images.shape[1:3]
        variants.append(np.ascontiguousarray(x.reshape(-1, h, w)[:, :, ::-1]).reshape(-1, d))
    limit = max_pixel_l2**2 * d
    n = len(x)
    base = torch.from_numpy(x)
    norms = (base * base).sum(dim=1)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for v in variants:
        q = torch.from_numpy(v)
        for c0 in range(0, n, block_size):
            qb = q[c0 : c0 + block_size]
            sq = torch.addmm(norms.unsqueeze(0), qb, base.T, alpha=-2.0)
            sq += (qb * qb).sum(dim=1, keepdim=True)
            i, j = torch.nonzero(sq < limit, as_tuple=True)
            rows.append(i.numpy() + c0)
            cols.append(j.numpy())
    return _components(n, [(np.concatenate(rows), np.concatenate(cols))])


def _pairs(found: list[tuple[torch.Tensor, torch.Tensor, int]], same_set: bool) -> Pairs:
    rows = np.concatenate([i.numpy() + c0 for i, _, c0 in found]).astype(np.int64)
    cols = np.concatenate([j.numpy() for _, j, _ in found]).astype(np.int64)
    keep = rows != cols if same_set else np.ones(len(rows), dtype=bool)
    return rows[keep], cols[keep]


def near_duplicate_pairs(
    candidates: np.ndarray, sources: np.ndarray | None = None,
    config: AuditConfig | None = None, block_size: int = 512,
) -> dict[str, Pairs]:
    """Metric -> every (candidate row, source row) pair the audit would flag.

    The same metrics, thresholds and views as `AuditIndex.build(sources).audit(
    candidates)` (the embedding fitted on `sources`), but every pair over a threshold
    instead of each candidate's nearest source. Without `sources` the set is compared
    with itself (fitted on itself), never an image with itself. Exact, over all pairs in
    blocks: ~2 s for 3,000 images against themselves at 32x32 on one core.
    """
    config = config or AuditConfig()
    check_images(candidates, "candidates")
    same_set = sources is None
    cand = luminance(candidates)
    src = cand if sources is None else luminance(check_images(sources, "sources"))
    same_size(cand, src, "candidates", "sources")
    n, h, w = cand.shape
    if n == 0 or len(src) == 0:
        return {m: (np.zeros(0, np.int64), np.zeros(0, np.int64)) for m in METRICS}
    limits = config.thresholds()
    found: dict[str, list[tuple[torch.Tensor, torch.Tensor, int]]] = {m: [] for m in METRICS}

    def hashes(gray: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(pack(phash_bits(gray))).view(np.uint64)[:, 0]

    src_hash = hashes(src)
    cand_hash = src_hash if same_set else hashes(cand)
    for c0 in range(0, n, block_size):
        bits = np.bitwise_count(cand_hash[c0 : c0 + block_size, None] ^ src_hash[None, :])
        found["phash_distance"].append((*torch.nonzero(
            torch.from_numpy(bits <= limits["phash_distance"]), as_tuple=True), c0))

    perm, bounds = tile_layout(h, w, config.patch_grid)

    def tiles(gray: np.ndarray) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        x = torch.from_numpy(np.ascontiguousarray(standardise(gray)[:, perm]))
        parts = [x[:, a:b].contiguous() for a, b in bounds]
        return parts, [(p * p).sum(dim=1) for p in parts]

    src_parts, src_norms = tiles(src)
    cand_parts, cand_norms = (src_parts, src_norms) if same_set else tiles(cand)
    for c0 in range(0, n, block_size):
        full = torch.zeros(min(block_size, n - c0), len(src))
        worst = torch.full_like(full, -float("inf"))
        for t, (a, b) in enumerate(bounds):
            d = torch.addmm(src_norms[t].unsqueeze(0), cand_parts[t][c0 : c0 + block_size],
                            src_parts[t].T, alpha=-2.0)
            d += cand_norms[t][c0 : c0 + block_size].unsqueeze(1)
            full += d
            torch.maximum(worst, d / (b - a), out=worst)
        full /= h * w
        found["pixel_l2"].append((*torch.nonzero(
            full <= limits["pixel_l2"] ** 2, as_tuple=True), c0))
        found["patch_l2"].append((*torch.nonzero(
            worst <= limits["patch_l2"] ** 2, as_tuple=True), c0))

    embedder = make_embedder(config.embedding_model_path, config.embedding_input_size)
    embedder.fit(src)
    views = torch.from_numpy(embedder.embed_views(
        src, crop_boxes(config.embedding_crop_scales, config.embedding_crop_grid)))
    queries = [torch.from_numpy(embed(embedder, cand))]
    if config.embedding_flip_invariant:
        queries.append(torch.from_numpy(embed(embedder, np.ascontiguousarray(cand[:, :, ::-1]))))
    for c0 in range(0, n, block_size):
        best = torch.full((min(block_size, n - c0), len(src)), -float("inf"))
        for view in views:  # [n_sources, d]: the whole image, then each region descriptor
            for q in queries:
                torch.maximum(best, q[c0 : c0 + block_size] @ view.T, out=best)
        found["embedding_cosine"].append((*torch.nonzero(
            best >= limits["embedding_cosine"], as_tuple=True), c0))
    return {m: _pairs(found[m], same_set) for m in METRICS}


def audit_groups(
    images: np.ndarray, config: AuditConfig | None = None,
    max_pixel_l2: float = DEFAULT_GROUP_PIXEL_L2,
) -> np.ndarray:
    """int64 [N]: groups closed under the audit's own flag rule and `duplicate_groups`.

    Two images share a group when the audit (with `config`) would flag either as a
    near-duplicate of the other, or `duplicate_groups` links them, or a chain of such
    links joins them. No pair across two groups is flagged by the audit on this set.
    """
    pairs = list(near_duplicate_pairs(images, None, config).values())
    dup = duplicate_groups(images, max_pixel_l2)
    first = np.unique(dup, return_index=True)[1][dup]
    return _components(len(images), [*pairs, (np.arange(len(images)), first)])
