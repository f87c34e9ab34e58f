"""The near-duplicate audit: every candidate against EVERY source, under four metrics.

`AuditIndex.build` does the per-source work once (pHashes, the embedding's fit and
vectors, the faiss indexes when the set is large), so the replacement loop and the
calibration can audit many batches against one source set. `audit_candidates` is the
one-shot form the pipeline calls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

import numpy as np

from consentgen.errors import AuditError

from .arrays import check_ids, check_images, luminance, same_size, standardise
from .config import AuditConfig
from .embedding import Embedder, crop_boxes, embed, make_embedder
from .exact import nearest_cosine, nearest_pixel, rerank_pixel
from .index import IvfIndex, best_cosine, default_nlist, pooled_pixels
from .phash import HammingIndex, pack, phash_bits
from .results import (
    METRICS,
    AuditResult,
    AuditSummary,
    SearchReport,
    build_table,
    flag_matrix,
    histogram,
)

_DIST_TOL = 2e-3
"""RMS agreement that counts as "found the same nearest distance" in recall checks:
exact search expands |c-s|^2 and loses ~1e-3 to cancellation near zero, the re-rank
does not."""
_COS_TOL = 1e-4
_NEAR = 1.5
"""A candidate is "near" a threshold within 1.5x its margin (see SearchReport.near_recall)."""

_Found = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]
"""(metric -> nearest value [N], metric -> nearest source row [N]) for the float metrics."""


class AuditIndex:
    """A source set prepared for audits: build once, audit any number of batches."""

    def __init__(
        self, config: AuditConfig, gray: np.ndarray, ids: list[str], embedder: Embedder,
        hamming: HammingIndex, embeddings: np.ndarray, mode: Literal["exact", "index"],
        pixel_ivf: IvfIndex | None, embedding_ivf: IvfIndex | None,
    ) -> None:
        self.config = config
        self.source_ids = ids
        self._gray = gray
        self._embedder = embedder
        self._hamming = hamming
        self._embeddings = embeddings
        self.mode = mode
        self._pixel_ivf = pixel_ivf
        self._embedding_ivf = embedding_ivf

    @property
    def n_sources(self) -> int:
        return len(self.source_ids)

    @property
    def descriptors(self) -> np.ndarray:
        """float32 [(1 + regions) * n_sources, d]: whole-image then region embeddings;
        row v * n_sources + i belongs to source i."""
        return self._embeddings

    @property
    def embedding_name(self) -> str:
        return self._embedder.name

    @classmethod
    def build(
        cls, sources: np.ndarray, source_ids: Sequence[object] | None,
        config: AuditConfig | None = None,
    ) -> AuditIndex:
        """Hash, embed and (for large sets) index the sources; they are never copied as floats."""
        config = config or AuditConfig()
        check_images(sources, "sources")
        if len(sources) == 0:
            raise AuditError("sources: an audit needs at least one source image")
        ids = check_ids(source_ids, len(sources), "source_ids")
        gray = luminance(sources)
        embedder = make_embedder(config.embedding_model_path, config.embedding_input_size)
        embedder.fit(gray)
        boxes = crop_boxes(config.embedding_crop_scales, config.embedding_crop_grid)
        views = embedder.embed_views(gray, boxes)
        embeddings = views.reshape(-1, views.shape[-1])  # row v * n + i -> source i
        hamming = HammingIndex(pack(phash_bits(gray)))
        use_index = config.search == "index" or (
            config.search == "auto" and len(gray) >= config.auto_index_min_sources
        )
        pixel_ivf = embedding_ivf = None
        if use_index:
            nlist = config.ivf_nlist or default_nlist(len(gray))
            pixel_ivf = IvfIndex(pooled_pixels(gray), "l2", nlist, config.ivf_nprobe, config.seed)
            embedding_ivf = IvfIndex(embeddings, "ip", nlist, config.ivf_nprobe, config.seed)
        return cls(config, gray, ids, embedder, hamming, embeddings,
                   "index" if use_index else "exact", pixel_ivf, embedding_ivf)

    def describe_index(self) -> str | None:
        """The faiss settings in words, for the data card (None for exact search)."""
        if self._pixel_ivf is None or self._embedding_ivf is None:
            return None
        return (
            f"pixels: IVF{self._pixel_ivf.nlist},Flat over 16x16 pooled standardised images, "
            f"nprobe {self._pixel_ivf.nprobe}; embedding: IVF{self._embedding_ivf.nlist},Flat "
            f"(inner product, {len(self._embeddings)} whole and region descriptors), nprobe "
            f"{self._embedding_ivf.nprobe}; shortlist "
            f"{self.config.ivf_shortlist}, re-ranked exactly; pHash: exact IndexBinaryFlat"
        )

    def audit(
        self, candidates: np.ndarray, candidate_ids: Sequence[object] | None = None
    ) -> AuditResult:
        """Nearest source under each metric for every candidate, and the flags."""
        t0 = time.perf_counter()
        config = self.config
        check_images(candidates, "candidates")
        same_size(candidates, self._gray, "candidates", "sources")
        cids = check_ids(candidate_ids, len(candidates), "candidate_ids", prefix="c")
        gray = luminance(candidates)

        phash_d, phash_i = self._hamming.nearest(pack(phash_bits(gray)))
        cand_std = standardise(gray)
        emb = embed(self._embedder, gray)
        mirrored = (
            embed(self._embedder, np.ascontiguousarray(gray[:, :, ::-1]))
            if config.embedding_flip_invariant else None
        )

        report = SearchReport(mode_requested=config.search, mode_used="exact")
        if self.mode == "index":
            values, rows = self._indexed(gray, cand_std, emb, mirrored)
            report = self._check_recall(cand_std, emb, mirrored, values)
            if report.fell_back:
                values, rows = self._exact(cand_std, emb, mirrored)
        else:
            values, rows = self._exact(cand_std, emb, mirrored)
        values["phash_distance"] = phash_d
        rows["phash_distance"] = phash_i

        flags = flag_matrix(values, config)
        table = build_table(cids, self.source_ids, values, rows, flags)
        limits = config.thresholds()
        summary = AuditSummary(
            n_candidates=len(candidates),
            n_sources=self.n_sources,
            n_flagged=int(sum(table.column("flagged").to_pylist())),
            flagged_by={m: int(flags[m].sum()) for m in METRICS},
            thresholds=limits,
            embedding=self._embedder.name,
            search=report,
            histograms={m: histogram(m, values[m].astype(np.float64), limits[m]) for m in METRICS},
            seconds=time.perf_counter() - t0,
        )
        return AuditResult(table=table, summary=summary)

    # --- the two routes -------------------------------------------------------------

    def _exact(self, cand_std: np.ndarray, emb: np.ndarray, mirrored: np.ndarray | None) -> _Found:
        block = self.config.block_size
        pix = nearest_pixel(cand_std, self._gray, self.config.patch_grid, block)
        cos, cos_i = nearest_cosine(emb, mirrored, self._embeddings, block)
        cos_i = cos_i % self.n_sources  # a region descriptor names its source
        return (
            {"pixel_l2": pix.pixel_l2, "patch_l2": pix.patch_l2, "embedding_cosine": cos},
            {"pixel_l2": pix.pixel_idx, "patch_l2": pix.patch_idx, "embedding_cosine": cos_i},
        )

    def _indexed(
        self, gray: np.ndarray, cand_std: np.ndarray, emb: np.ndarray,
        mirrored: np.ndarray | None,
    ) -> _Found:
        assert self._pixel_ivf is not None and self._embedding_ivf is not None
        k = min(self.config.ivf_shortlist, self.n_sources)
        _, shortlist = self._pixel_ivf.search(pooled_pixels(gray), k)
        pix = rerank_pixel(cand_std, self._gray, shortlist, self.config.patch_grid)
        cos, cos_i = best_cosine(self._embedding_ivf, emb, mirrored, 1)
        cos_i = np.where(cos_i >= 0, cos_i % self.n_sources, -1)
        return (
            {"pixel_l2": pix.pixel_l2, "patch_l2": pix.patch_l2, "embedding_cosine": cos},
            {"pixel_l2": pix.pixel_idx, "patch_l2": pix.patch_idx, "embedding_cosine": cos_i},
        )

    def _check_recall(
        self, cand_std: np.ndarray, emb: np.ndarray, mirrored: np.ndarray | None,
        found: dict[str, np.ndarray],
    ) -> SearchReport:
        """Search a seeded sample exactly too; fall back (auto) or raise (index) if short."""
        config = self.config
        n = len(cand_std)
        rng = np.random.default_rng(config.seed)
        sample = np.sort(rng.choice(n, size=min(config.recall_sample, n), replace=False))
        exact, _ = self._exact(
            cand_std[sample], emb[sample], None if mirrored is None else mirrored[sample]
        )
        got = {m: v[sample] for m, v in found.items()}
        limits = config.thresholds()
        found_it: dict[str, np.ndarray] = {}
        near: dict[str, np.ndarray] = {}
        for m in exact:
            if m == "embedding_cosine":
                found_it[m] = got[m] >= exact[m] - _COS_TOL
                near[m] = exact[m] >= 1.0 - _NEAR * (1.0 - limits[m])
            else:
                found_it[m] = got[m] <= exact[m] + _DIST_TOL
                near[m] = exact[m] <= _NEAR * limits[m]
        recall = {m: float(found_it[m].mean()) if len(sample) else 1.0 for m in exact}
        near_recall = {
            m: float(found_it[m][near[m]].mean()) if near[m].any() else None for m in exact
        }
        no_phash = {"phash_distance": np.full(len(sample), 65)}  # pHash is exact anyway
        exact_flags = flag_matrix({**exact, **no_phash}, config)
        index_flags = flag_matrix({**got, **no_phash}, config)
        exact_any = np.any([exact_flags[m] for m in exact], axis=0)
        index_any = np.any([index_flags[m] for m in exact], axis=0)
        flag_recall = float(np.mean(index_any[exact_any])) if exact_any.any() else None
        gated = [r for r in near_recall.values() if r is not None]
        short = min(gated, default=1.0) < config.min_index_recall or (
            flag_recall is not None and flag_recall < 1.0
        )
        if short and config.search == "index":
            raise AuditError(
                f"index recall too low on {len(sample)} sampled candidates: near a threshold "
                f"{ {m: None if r is None else round(r, 3) for m, r in near_recall.items()} }, "
                f"flag recall {flag_recall}; raise ivf_nprobe / ivf_shortlist or use "
                f"search='exact'"
            )
        return SearchReport(
            mode_requested=config.search,
            mode_used="exact" if short else "index",
            index=self.describe_index(),
            recall_sample=len(sample),
            recall=recall,
            near_recall=near_recall,
            n_near={m: int(v.sum()) for m, v in near.items()},
            flag_recall=flag_recall,
            fell_back=short,
        )


def audit_candidates(
    candidates: np.ndarray, sources: np.ndarray, source_ids: Sequence[object] | None,
    config: AuditConfig | None = None, candidate_ids: Sequence[object] | None = None,
) -> AuditResult:
    """Compare every candidate with every source; flag any that crosses a threshold."""
    check_images(candidates, "candidates")  # fail before the sources are prepared
    check_images(sources, "sources")
    same_size(candidates, sources, "candidates", "sources")
    return AuditIndex.build(sources, source_ids, config).audit(candidates, candidate_ids)
