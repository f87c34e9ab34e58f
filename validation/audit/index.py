"""Approximate shortlists for large source sets: faiss IVF, re-ranked exactly.

Past ~50k sources the exact product costs minutes per thousand candidates, so an index
proposes `ivf_shortlist` sources per candidate and the audit measures the exact metrics
on those alone. The pixel index holds 16x16 average-pooled standardised images:
pooling can only shrink an RMS difference (Jensen), so a source within a threshold at
full resolution is within it pooled too, and the shortlist errs towards inclusion. The
recall of the whole route is checked against exact search on a sample every audit.
"""

from __future__ import annotations

import math
from typing import Literal

import faiss
import numpy as np
import torch
import torch.nn.functional as F

from .arrays import standardise

POOLED_SIDE = 16
"""Side of the pooled pixel vectors the pixel index holds (256 numbers per image)."""

_CHUNK = 4096


def pooled_pixels(gray: np.ndarray) -> np.ndarray:
    """float32 [N, <=256]: each standardised image average-pooled to at most 16x16."""
    h, w = gray.shape[1:3]
    out = []
    for start in range(0, len(gray), _CHUNK):
        block = gray[start : start + _CHUNK]
        x = torch.from_numpy(standardise(block)).view(len(block), 1, h, w)
        p = F.adaptive_avg_pool2d(x, (min(h, POOLED_SIDE), min(w, POOLED_SIDE)))
        out.append(p.reshape(len(block), -1).numpy())
    side = min(h, POOLED_SIDE) * min(w, POOLED_SIDE)
    return np.concatenate(out) if out else np.zeros((0, side), np.float32)


def default_nlist(n: int) -> int:
    """round(sqrt(n)) cells, but at least 39 training points per cell (faiss's floor)."""
    return max(1, min(round(math.sqrt(n)), n // 39))


class IvfIndex:
    """A trained faiss IndexIVFFlat over float vectors (L2 or inner product)."""

    def __init__(
        self, vectors: np.ndarray, metric: Literal["l2", "ip"], nlist: int, nprobe: int,
        seed: int,
    ) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        d = vectors.shape[1]
        nlist = max(1, min(nlist, len(vectors)))
        if metric == "l2":
            self._quantizer = faiss.IndexFlatL2(d)
            faiss_metric = faiss.METRIC_L2
        else:
            self._quantizer = faiss.IndexFlatIP(d)
            faiss_metric = faiss.METRIC_INNER_PRODUCT
        self._index = faiss.IndexIVFFlat(self._quantizer, d, nlist, faiss_metric)
        self._index.cp.seed = seed
        self._index.train(vectors)
        self._index.add(vectors)
        self._index.nprobe = min(nprobe, nlist)
        self.nlist = nlist
        self.nprobe = self._index.nprobe
        self.metric = metric

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) [N, k]; rows are -1 where the probed cells held fewer than k."""
        if len(queries) == 0:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        return self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def best_cosine(
    index: IvfIndex, queries: np.ndarray, mirrored: np.ndarray | None, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Highest inner product the index finds per query, mirrored queries counting too."""
    sims, rows = index.search(queries, k)
    best, best_i = sims[:, 0].copy(), rows[:, 0].copy()
    if mirrored is not None:
        msims, mrows = index.search(mirrored, k)
        better = msims[:, 0] > best
        best = np.where(better, msims[:, 0], best)
        best_i = np.where(better, mrows[:, 0], best_i)
    best = np.where(best_i >= 0, best, -np.inf).astype(np.float32)
    return best, best_i.astype(np.int64)
