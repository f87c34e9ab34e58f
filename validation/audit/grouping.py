"""Groups of near-identical images inside ONE set, e.g. the sources themselves.

Public image sets are full of their own copies: at 64x64, Br35H's 3,000 slices fall into
about 510 groups of the same slice up to a mirror and a gain/offset change. Anything
that needs "different images" must split by group, not by image: the negatives of
`calibrate`, and the train / holdout split behind the DCR and membership figures (else
a holdout image's mirrored twin sits in train and every privacy figure reads as leak).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .arrays import check_images, luminance, standardise

DEFAULT_GROUP_PIXEL_L2 = 0.40
"""Standardised RMS below which two images are one group. On Br35H the group count is
stable between 0.30 (548 groups) and 0.40 (511); from 0.50 on, chains merge different
slices into one giant group."""


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
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)
