"""Near-duplicate audit throughput: candidates x sources comparisons per second.

Run from the repository root:  .venv/bin/python bench/audit.py  [--threads N] [--quick]

On the shared 2-core machines use --threads 1: with two OpenMP threads, every parallel
region stalls whenever another process holds a core (measured under others' load: the
exact kernel fell from 35 to 10 GFLOP/s). The raw matmul figure is taken with the same
thread count, so the fraction stays like for like.

Two sizes at 64x64 grey: 2,000 x 20,000 and 10,000 x 100,000. Sources are the 3,000
Br35H slices plus augmented variants (random crop/zoom, mirror, gain, gamma, noise);
candidates are other augmented variants, 5 % of them planted light copies of sources
(noise, JPEG, mirror) so the index's recall on real near-duplicates is measured too.

Measured, each as comparisons (candidate-source pairs) per second:
- exact: the audit's blocked matmul over every pair (`exact.nearest_pixel`: whole-image
  and tile-wise RMS in one pass), and the whole exact audit (all four metrics);
- index: the whole audit through faiss IVF shortlists re-ranked exactly, with its
  recall against exact search on the same candidates;
- imagededup: its pHash `find_duplicates` route (PHash encodings, then HashEval's
  brute_force_cython search per query), REPRODUCED here, not imported: imagededup
  0.3.3 needs torch + torchvision (a second torch build) and scikit-learn. The
  reproduction keeps its per-query work: rebuild the filename and int(hash, 16) lists
  from the encoding dict, then XOR/popcount every hash (numpy standing in for its
  Cython loop) and collect matches within max_distance_threshold=10. It runs in one
  process; imagededup itself spreads queries over cpu_count() pool workers.
Plus this machine's raw float32 matmul GFLOP/s, so the exact kernel reads as a fraction.
At 10,000 x 100,000 the exact route and imagededup are timed on a measured share of
the candidates and extrapolated; the JSON says which figures are extrapolated.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import scipy.fftpack
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._results import write_result  # noqa: E402
from tests.audit.br35h import load_br35h  # noqa: E402
from validation.audit import AuditConfig, AuditIndex, transform_images  # noqa: E402
from validation.audit.arrays import standardise  # noqa: E402
from validation.audit.exact import nearest_cosine, nearest_pixel  # noqa: E402
from validation.audit.phash import pack, phash_bits  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- data ------------------------------------------------------------------------------


def augment(images: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n uint8 variants of random base images: zoom 0.8-1.0 at a random offset, mirror,
    gain 0.8-1.25, gamma 0.8-1.25 and Gaussian noise (sigma 0-6)."""
    rng = np.random.default_rng(seed)
    base = images[rng.integers(0, len(images), n)]
    out = np.empty_like(base)
    for s in range(0, n, 4096):
        m = min(4096, n - s)
        x = torch.from_numpy(base[s : s + m]).float()[:, None] / 255.0
        scale = torch.from_numpy(rng.uniform(0.8, 1.0, m)).float()
        theta = torch.zeros(m, 2, 3)
        flip = torch.from_numpy(rng.random(m) < 0.5).float() * -2 + 1
        theta[:, 0, 0] = scale * flip
        theta[:, 1, 1] = scale
        theta[:, :, 2] = torch.from_numpy(rng.uniform(-1, 1, (m, 2))).float() * (1 - scale)[:, None]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        y = F.grid_sample(x, grid, mode="bilinear", align_corners=False)
        gamma = torch.from_numpy(rng.uniform(0.8, 1.25, (m, 1, 1, 1))).float()
        gain = torch.from_numpy(rng.uniform(0.8, 1.25, (m, 1, 1, 1))).float()
        sigma = torch.from_numpy(rng.uniform(0, 6 / 255, (m, 1, 1, 1))).float()
        y = y.clamp(0, 1) ** gamma * gain + torch.randn(y.shape, generator=torch.Generator()
                                                        .manual_seed(seed + s)) * sigma
        out[s : s + m] = (y.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()
    return out


def make_set(br35h: np.ndarray, n_cand: int, n_src: int, seed: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """(candidates, sources): sources = Br35H + variants; 5 % of candidates planted copies."""
    sources = np.concatenate([br35h, augment(br35h, n_src - len(br35h), seed)])
    n_plant = n_cand // 20
    rng = np.random.default_rng(seed + 1)
    rows = rng.choice(n_src, n_plant, replace=False)
    kinds = ("noise", "jpeg", "flip")
    planted = np.concatenate([
        transform_images(sources[part], kind, seed=seed + k)
        for k, (kind, part) in enumerate(zip(kinds, np.array_split(rows, 3), strict=True))
    ])
    cands = np.concatenate([planted, augment(br35h, n_cand - n_plant, seed + 2)])
    return cands, sources


# --- imagededup's pHash route, reproduced ---------------------------------------------


def imagededup_phash(images: np.ndarray) -> list[str]:
    """imagededup PHash.encode_image(image_array=...): PIL resize 32x32 LANCZOS, 'L',
    2-D DCT (scipy.fftpack), 8x8 block, >= median of the 63 AC terms, 16 hex chars."""
    out = []
    for img in images:
        pil = Image.fromarray(img.astype("uint8")).resize((32, 32), Image.LANCZOS).convert("L")
        arr = np.array(pil).astype("uint8")
        coef = scipy.fftpack.dct(scipy.fftpack.dct(arr, axis=0), axis=1)[:8, :8]
        bits = coef >= np.median(np.ndarray.flatten(coef)[1:])
        out.append("".join("%0.2x" % x for x in np.packbits(bits)))  # noqa: UP031 (theirs)
    return out


def imagededup_search(test: dict[str, str], queries: dict[str, str], tol: int = 10
                      ) -> dict[str, list[tuple[str, int]]]:
    """HashEval(test, queries, search_method='brute_force_cython').retrieve_results."""
    results = {}
    for key, query in queries.items():
        # BruteForceCython.search: lists rebuilt from the dict for every query
        filenames = []
        hash_vals = []
        for filename, hash_val in test.items():
            filenames.append(filename.encode("utf-8"))
            hash_vals.append(int(hash_val, 16))
        # brute_force_cython_ext.query: popcount(hash ^ query) <= maxdist, in order
        dist = np.bitwise_count(np.array(hash_vals, dtype=np.uint64) ^ np.uint64(int(query, 16)))
        hits = np.flatnonzero(dist <= tol)
        res = [(filenames[i].decode("utf-8"), int(dist[i])) for i in hits]
        res = [r for r in res if r[0] != key]
        results[key] = sorted(res, key=lambda t: t[1])
    return results


# --- measurements -----------------------------------------------------------------------


def matmul_gflops() -> float:
    a = torch.randn(2048, 4096)
    b = torch.randn(4096, 2048)
    a @ b
    best = min(_time(lambda: a @ b) for _ in range(5))
    return 2 * 2048 * 2048 * 4096 / best / 1e9


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_size(br35h: np.ndarray, n_cand: int, n_src: int, exact_share: float,
             dedup_queries: int, seed: int) -> dict[str, Any]:
    fig: dict[str, Any] = {"candidates": n_cand, "sources": n_src, "pairs": n_cand * n_src}
    t0 = time.perf_counter()
    cands, sources = make_set(br35h, n_cand, n_src, seed)
    fig["make_set_s"] = round(time.perf_counter() - t0, 2)
    log(f"{n_cand} x {n_src}: data ready ({fig['make_set_s']} s)")

    # exact: build once, time the kernels on a measured share of the candidates
    t0 = time.perf_counter()
    exact_index = AuditIndex.build(sources, None, AuditConfig(search="exact"))
    fig["exact_build_s"] = round(time.perf_counter() - t0, 2)
    n_meas = max(1, round(n_cand * exact_share))
    rows = np.random.default_rng(seed + 3).choice(n_cand, n_meas, replace=False)
    rows.sort()
    sub = cands[rows]
    cstd = standardise(sub)
    t_pix = _time(lambda: nearest_pixel(cstd, sources, 4, 1024))
    pairs = n_meas * n_src
    fig["exact_pixel_pairs_per_s"] = pairs / t_pix
    fig["exact_pixel_gflops"] = pairs * 2 * cstd.shape[1] / t_pix / 1e9
    t0 = time.perf_counter()
    exact_result = exact_index.audit(sub)
    t_audit = time.perf_counter() - t0
    fig["exact_audit_pairs_per_s"] = pairs / t_audit
    fig["exact_measured_candidates"] = n_meas
    fig["exact_extrapolated"] = n_meas < n_cand
    fig["exact_audit_s_full"] = round(t_audit * n_cand / n_meas, 1)
    descriptors = exact_index.descriptors  # whole-image + region embeddings
    n_desc = len(descriptors)
    emb_q = np.random.default_rng(0).standard_normal((n_meas, 32)).astype(np.float32)
    t_cos = _time(partial(nearest_cosine, emb_q, emb_q, descriptors, 1024))
    fig["exact_embedding_descriptor_pairs_per_s"] = 2 * n_meas * n_desc / t_cos
    fig["embedding_descriptors"] = n_desc
    log(f"exact: pixel {fig['exact_pixel_pairs_per_s']:.3g} pairs/s, audit "
        f"{fig['exact_audit_pairs_per_s']:.3g} pairs/s on {n_meas} candidates")
    del exact_index, descriptors

    # index: the whole audit of every candidate
    t0 = time.perf_counter()
    ivf_index = AuditIndex.build(sources, None, AuditConfig(search="index"))
    fig["index_build_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    ivf_result = ivf_index.audit(cands)
    fig["index_audit_s"] = round(time.perf_counter() - t0, 2)
    fig["index_audit_pairs_per_s"] = n_cand * n_src / (time.perf_counter() - t0)
    fig["index_description"] = ivf_index.describe_index()
    report = ivf_result.summary.search
    fig["index_recall_builtin"] = {"sample": report.recall_sample, "recall": report.recall,
                                   "near_recall": report.near_recall, "n_near": report.n_near,
                                   "flag_recall": report.flag_recall,
                                   "fell_back": report.fell_back}
    # recall against the exact audit of the measured share (same candidates)
    et, it = exact_result.table, ivf_result.table.take(rows)
    pe, pi = et.column("pixel_l2").to_numpy(), it.column("pixel_l2").to_numpy()
    ce, ci = et.column("embedding_cosine").to_numpy(), it.column("embedding_cosine").to_numpy()
    fe, fi = np.array(et.column("flagged")), np.array(it.column("flagged"))
    fig["index_vs_exact"] = {
        "candidates": n_meas,
        "pixel_nn_recall": float(np.mean(pi <= pe + 2e-3)),
        "embedding_nn_recall": float(np.mean(ci >= ce - 1e-4)),
        "exact_flagged": int(fe.sum()),
        "flag_recall": float(fi[fe].mean()) if fe.any() else None,
        "flags_identical": bool((fe == fi).all()),
    }
    planted = ivf_result.flagged[: n_cand // 20]
    fig["index_planted_copies_flagged"] = float(planted.mean())
    log(f"index: {fig['index_audit_pairs_per_s']:.3g} pairs/s; vs exact "
        f"{fig['index_vs_exact']}; planted flagged {fig['index_planted_copies_flagged']:.3f}")
    del ivf_index

    # pHash: ours (batched DCT + faiss IndexBinaryFlat) and imagededup's route
    t0 = time.perf_counter()
    ours_src = pack(phash_bits(sources))
    ours_cand = pack(phash_bits(cands))
    fig["phash_ours_encode_img_per_s"] = (n_src + n_cand) / (time.perf_counter() - t0)
    import faiss

    bin_index = faiss.IndexBinaryFlat(64)
    bin_index.add(ours_src)
    t_bin = _time(lambda: bin_index.search(ours_cand, 1))
    fig["phash_ours_search_pairs_per_s"] = n_cand * n_src / t_bin

    t0 = time.perf_counter()
    hashes = imagededup_phash(np.concatenate([cands, sources]))
    fig["imagededup_encode_img_per_s"] = (n_src + n_cand) / (time.perf_counter() - t0)
    test = {f"s{i}": h for i, h in enumerate(hashes[n_cand:])}
    n_q = min(dedup_queries, n_cand)
    queries = {f"c{i}": hashes[i] for i in range(n_q)}
    t_dd = _time(lambda: imagededup_search(test, queries))
    fig["imagededup_search_pairs_per_s"] = n_q * n_src / t_dd
    fig["imagededup_measured_queries"] = n_q
    fig["imagededup_extrapolated"] = n_q < n_cand
    fig["imagededup_search_s_full"] = round(t_dd * n_cand / n_q, 1)
    fig["imagededup_total_s_full"] = round(
        fig["imagededup_search_s_full"] + (n_src + n_cand) / fig["imagededup_encode_img_per_s"], 1)
    log(f"imagededup search {fig['imagededup_search_pairs_per_s']:.3g} pairs/s "
        f"({n_q} queries); ours faiss-binary {fig['phash_ours_search_pairs_per_s']:.3g}")

    fig["ratios"] = {
        "index_audit_over_exact_audit": fig["index_audit_pairs_per_s"]
        / fig["exact_audit_pairs_per_s"],
        "exact_audit_over_imagededup_search": fig["exact_audit_pairs_per_s"]
        / fig["imagededup_search_pairs_per_s"],
        "index_audit_over_imagededup_search": fig["index_audit_pairs_per_s"]
        / fig["imagededup_search_pairs_per_s"],
        "our_phash_search_over_imagededup_search": fig["phash_ours_search_pairs_per_s"]
        / fig["imagededup_search_pairs_per_s"],
    }
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch/faiss threads")
    parser.add_argument("--quick", action="store_true", help="small sizes, no result line")
    args = parser.parse_args()
    if args.threads:
        import faiss

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    br35h, _, _ = load_br35h()
    log(f"Br35H loaded: {br35h.shape}")
    gflops = matmul_gflops()
    log(f"raw matmul {gflops:.1f} GFLOP/s")
    sizes = [(200, 4000, 1.0, 200), (1000, 10000, 0.1, 50)] if args.quick else [
        (2_000, 20_000, 1.0, 500), (10_000, 100_000, 0.1, 100)]
    figures: dict[str, Any] = {
        "image_side": 64, "torch_threads": torch.get_num_threads(),
        "raw_matmul_gflops": gflops, "load_avg_before": load_before, "sizes": {},
    }
    for n_cand, n_src, share, queries in sizes:
        fig = run_size(br35h, n_cand, n_src, share, queries, seed=n_src)
        fig["exact_pixel_fraction_of_raw_matmul"] = fig["exact_pixel_gflops"] / gflops
        figures["sizes"][f"{n_cand}x{n_src}"] = fig
    figures["load_avg_after"] = os.getloadavg()
    figures["wall_s"] = round(time.perf_counter() - t_start, 1)
    figures["note"] = (
        "pairs/s = candidate-source comparisons per second. exact_* at the larger size "
        "are timed on exact_measured_candidates and extrapolated linearly (the work is "
        "linear in candidates); imagededup_* are a faithful single-process reproduction "
        "of its PHash find_duplicates route (not imported: it needs torchvision), timed "
        "on imagededup_measured_queries and extrapolated. The machine is shared: see "
        "load averages."
    )
    if args.quick:
        print(figures)
        return
    path = write_result("audit", figures)
    log(f"wrote {path} in {figures['wall_s']} s")


if __name__ == "__main__":
    main()
