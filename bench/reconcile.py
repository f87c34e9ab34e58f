"""Reconcile pass time against catalog and ledger size, and revoke -> files withdrawn latency.

    .venv/bin/python bench/reconcile.py [--images 1000 10000 100000] [--events 100000 1000000]

Figures (one JSON line appended to bench/results/reconcile.jsonl), each pass time also as
a ratio to a bare `Ledger.eligible()` on the same ledger, measured in the same run:
- `by_images`: synthetic published-image catalog rows (releases of up to 10^4 images, 100
  images per model, 50 subjects per model, 5,000 subjects, each granted once):
  `steady_s` a pass with nothing to withdraw (the sensor's usual tick), `withdraw_s` the
  pass after one subject revokes (its ~10 models' images, files on disk, are withdrawn,
  banned and recorded), `again_s` the pass after that (idempotent: nothing to do).
- `by_events`: the same with 10^4 images on a ledger of N events (bench/ledger.py's mix of
  grants, revokes and expiries for other subjects, plus the catalog's subjects' grants);
  the withdrawal pass revokes two subjects, so it reads every deciding event
  (`Ledger.states`) once.
- `latency`: a real tiny build (16 Br35H subjects, `test` profile), then a subject
  revokes through `consentgen consent revoke` (which reconciles at once): the command's
  wall time vs a bare `consentgen consent status` (the process start both pay), and the
  withdrawals' recorded latency from the revoke's recorded time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench._results import timed, write_result  # noqa: E402
from bench.ledger import PURPOSE, T0, build_ledger  # noqa: E402
from consent import ConsentEvent, Ledger  # noqa: E402
from pipelines.catalog import (  # noqa: E402
    Candidate,
    Catalog,
    ModelRecord,
    Release,
    ReleaseImage,
    ShardModel,
    Snapshot,
    Withdrawal,
)
from pipelines.settings import quick_profile  # noqa: E402
from pipelines.steps.images import write_png  # noqa: E402
from pipelines.steps.reconcile import reconcile  # noqa: E402
from pipelines.steps.release import releases_root  # noqa: E402

POOL = 5_000
IMAGES_PER_MODEL, SUBJECTS_PER_MODEL, RELEASE_SIZE = 100, 50, 10_000
CONFIG = quick_profile(shards=8)


def pool_subject(i: int) -> str:
    return f"patient-{i:05d}"


def model_subjects(m: int) -> list[str]:
    return [pool_subject((m * SUBJECTS_PER_MODEL + j * 7) % POOL) for j in range(SUBJECTS_PER_MODEL)]


def fill_catalog(home: Path, n_images: int, with_files: set[str]) -> Catalog:
    """`n_images` published image rows; only the images of models in `with_files` get files."""
    catalog = Catalog(home)
    n_models = -(-n_images // IMAGES_PER_MODEL)
    models = [ShardModel(model_version=f"m{m:06d}", shard=m % 8, snapshot_id="snap-1", fingerprint=f"f{m}",
                         n_records=SUBJECTS_PER_MODEL, model_path=f"models/{m % 8}/m{m:06d}", epsilon=None,
                         final_loss=None, trained_at=T0 + timedelta(seconds=m)) for m in range(n_models)]
    records = [ModelRecord(model_version=f"m{m:06d}", record_id=f"r-{s}", subject_id=s)
               for m in range(n_models) for s in model_subjects(m)]
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    candidates, images, releases = [], [], []
    for i in range(n_images):
        m, version = i // IMAGES_PER_MODEL, f"v{i // RELEASE_SIZE + 1:04d}"
        c = Candidate(candidate_id=f"c{i:07d}", snapshot_id="snap-1", shard=m % 8, model_version=f"m{m:06d}",
                      label=str(i % 2), seed=0, image_path=f"candidates/c{i:07d}.png", created_at=T0)
        image = ReleaseImage(version=version, image_id=f"i{i:07d}", candidate_id=c.candidate_id, label=c.label,
                             shard=c.shard, model_version=c.model_version,
                             file_name=f"images/l{c.label}/i{i:07d}.png")
        if c.model_version in with_files:
            pixels[0, 0] = i % 256
            pixels[0, 1] = i // 256 % 256
            write_png(pixels, home / c.image_path)
            write_png(pixels, releases_root(home) / version / image.file_name)
        candidates.append(c)
        images.append(image)
    for v in sorted({i.version for i in images}):
        (releases_root(home) / v).mkdir(parents=True, exist_ok=True)
        (releases_root(home) / v / "WITHDRAWN").write_text("")
        releases.append(Release(version=v, snapshot_id="snap-1", head_seq=0, head_hash="h", n_images=0,
                                release_path=f"releases/{v}", created_at=T0))
    snapshot = Snapshot(snapshot_id="snap-1", purpose=PURPOSE, head_seq=0, head_hash="h", taken_at=T0)
    catalog.add([snapshot], models, records, candidates, releases, images)
    return catalog


def grant_pool(ledger: Ledger) -> None:
    with ledger.writer() as writer:
        writer.append_many([ConsentEvent(subject_id=pool_subject(i), purpose=PURPOSE, action="grant",
                                         effective_at=T0, actor="bench") for i in range(POOL)])


def models_of(subject: str, n_images: int) -> set[str]:
    n_models = -(-n_images // IMAGES_PER_MODEL)
    return {f"m{m:06d}" for m in range(n_models) if subject in model_subjects(m)}


def passes(catalog: Catalog, ledger: Ledger, revoke: list[str]) -> dict:
    eligible_s, _ = timed(ledger.eligible, PURPOSE)
    steady_s, steady = timed(reconcile, catalog, ledger, CONFIG)
    assert steady.count == 0
    for subject in revoke:
        ledger.revoke(subject, PURPOSE, actor="bench")
    t0 = time.perf_counter()
    done = reconcile(catalog, ledger, CONFIG)
    withdraw_s = time.perf_counter() - t0
    again_s, again = timed(reconcile, catalog, ledger, CONFIG)
    assert again.count == 0
    return {
        "eligible_s": round(eligible_s, 4), "steady_s": round(steady_s, 4),
        "withdraw_s": round(withdraw_s, 4), "again_s": round(again_s, 4),
        "withdrawn": done.count, "banned": done.banned, "more": done.more,
        "steady_vs_eligible": round(steady_s / eligible_s, 1),
        "withdraw_vs_eligible": round(withdraw_s / eligible_s, 1),
    }


def bench_images(tmp: Path, sizes: list[int]) -> dict:
    out = {}
    for n in sizes:
        home = tmp / f"images-{n}"
        ledger = Ledger.at_home(home)
        ledger.init()
        grant_pool(ledger)
        victim = pool_subject(0)
        t0 = time.perf_counter()
        catalog = fill_catalog(home, n, models_of(victim, n))
        fill_s = time.perf_counter() - t0
        out[str(n)] = {**passes(catalog, ledger, [victim]), "fill_s": round(fill_s, 1)}
        print(f"{n:>7} images: {out[str(n)]}")
    return out


def bench_events(tmp: Path, sizes: list[int], n_images: int) -> dict:
    out = {}
    for n in sizes:
        home = tmp / f"events-{n}"
        t0 = time.perf_counter()
        ledger = build_ledger(home / "consent.duckdb", n)
        grant_pool(ledger)
        ledger_s = time.perf_counter() - t0
        victims = [pool_subject(0), pool_subject(1)]
        catalog = fill_catalog(home, n_images, models_of(victims[0], n_images) | models_of(victims[1], n_images))
        out[str(n)] = {**passes(catalog, ledger, victims), "ledger_build_s": round(ledger_s, 1),
                       "images": n_images}
        print(f"{n:>7} events: {out[str(n)]}")
    return out


def cli(home: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "CONSENTGEN_HOME": str(home), "CONSENTGEN_PROFILE": "test", "COLUMNS": "200"}
    exe = str(Path(sys.executable).with_name("consentgen"))
    t0 = time.perf_counter()
    done = subprocess.run([exe, *args], capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, done


def bench_latency(tmp: Path) -> dict:
    from bench.build import make_home
    from pipelines.defs.runner import instance_for, run_build

    home = make_home(tmp / "latency")
    report = run_build(home, quick_profile(), instance=instance_for(home))
    if not report.success:
        raise SystemExit(f"latency build failed: {report.failure}")
    catalog = Catalog(home)
    image = catalog.select(ReleaseImage, "ORDER BY image_id")[0]
    victim = catalog.select(ModelRecord, "WHERE model_version = ?", [image.model_version])[0].subject_id
    status_s = min(cli(home, "consent", "status", victim, "-p", PURPOSE)[0] for _ in range(3))
    revoke_s, done = cli(home, "consent", "revoke", victim, "-p", PURPOSE)
    rows = catalog.select(Withdrawal)
    assert rows and all(not (releases_root(home) / r.version / image.file_name).exists() for r in rows
                        if r.image_id == image.image_id), done.stdout
    recorded = max(r.latency_s for r in rows)
    print(f"revoke via CLI: {revoke_s:.2f}s wall ({status_s:.2f}s for a bare `consent status`); "
          f"{len(rows)} images withdrawn, recorded latency at most {recorded:.3f}s")
    return {"cli_revoke_s": round(revoke_s, 3), "cli_status_s": round(status_s, 3),
            "cli_revoke_vs_status": round(revoke_s / status_s, 2),
            "recorded_latency_max_s": round(recorded, 4), "withdrawn": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--event-images", type=int, default=10_000)
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        figures = {"by_images": bench_images(tmp, args.images),
                   "by_events": bench_events(tmp, args.events, args.event_images)}
        if not args.no_latency:
            figures["latency"] = bench_latency(tmp)
    print(f"wrote {write_result('reconcile', figures)}")


if __name__ == "__main__":
    main()
