"""SISA's promise, measured: rebuilding one shard after a revocation vs a full build, K = 8.

    .venv/bin/python bench/rebuild.py [--shards 8] [--profile demo]

On the demo data (3,000 Br35H slices, the demo's simulated subjects and consent): a full
build of K shards, then one subject of shard s revokes, a reconcile withdraws their
images and names the stale shard, and `run_build(shards=[s])` rebuilds only that shard
into a new version. Figures (one JSON line appended to bench/results/rebuild.jsonl):
- `full_build_s`, `rebuild_s` and `ratio_full_vs_rebuild` (SISA reports 4.63x on Purchase;
  the goal here is >= 6x);
- `full_steps_s` / `rebuild_steps_s`: seconds per step (shard training summed), which is
  where the fixed costs of a rebuild show: sampling, the audit against every source, the
  checks, the card's figures and publishing do not shrink with the shard.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import write_result  # noqa: E402
from consent import Ledger  # noqa: E402
from pipelines.catalog import Catalog, ModelRecord, ShardModel  # noqa: E402
from pipelines.defs.runner import instance_for, run_build, step_timeline  # noqa: E402
from pipelines.demo.consent import DEMO_PURPOSE, simulate_consent  # noqa: E402
from pipelines.demo.sources import br35h_root, demo_subject_ids, write_demo_manifest  # noqa: E402
from pipelines.settings import PROFILES  # noqa: E402
from pipelines.steps.ingest import ingest  # noqa: E402
from pipelines.steps.reconcile import reconcile  # noqa: E402


def per_step(instance, run_id: str) -> dict[str, float]:
    """Seconds per step, every shard's training summed under `shard_models`."""
    out: dict[str, float] = defaultdict(float)
    for key, marks in step_timeline(instance, run_id).items():
        if "start" in marks and "end" in marks:
            name = "shard_models" if key.startswith("shard_models__") else key
            out[name] += marks["end"] - marks["start"]
    return {k: round(v, 1) for k, v in sorted(out.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    args = parser.parse_args()
    config = PROFILES[args.profile]().model_copy(update={"shards": args.shards})
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp:
        home = Path(tmp) / "home"
        ledger = Ledger.at_home(home)
        ledger.init()
        simulate_consent(ledger, demo_subject_ids())
        ingest(br35h_root(), manifest=write_demo_manifest(Path(tmp) / "demo.csv"), home=home)
        catalog, instance = Catalog(home), instance_for(home)

        t0 = time.perf_counter()
        full = run_build(home, config, instance=instance)
        full_s = time.perf_counter() - t0
        if not full.success:
            raise SystemExit(f"full build failed: {full.failure}")
        print(f"full build of {args.shards} shards: {full_s:.1f}s", flush=True)

        model = catalog.select(ShardModel, "ORDER BY shard LIMIT 1")[0]
        subject = catalog.select(ModelRecord, "WHERE model_version = ? ORDER BY subject_id LIMIT 1",
                                 [model.model_version])[0].subject_id
        ledger.revoke(subject, DEMO_PURPOSE, actor="bench", source="bench")
        t1 = time.perf_counter()
        report = reconcile(catalog, ledger, config)
        reconcile_s = time.perf_counter() - t1
        print(report.line(), flush=True)
        t2 = time.perf_counter()
        again = run_build(home, config, shards=report.stale_shards, instance=instance)
        rebuild_s = time.perf_counter() - t2
        if not again.success:
            raise SystemExit(f"rebuild failed: {again.failure}")
        figures = {
            "profile": args.profile, "shards": args.shards, "stale_shards": report.stale_shards,
            "withdrawn": report.count, "retrained": again.retrained,
            "full_build_s": round(full_s, 1), "reconcile_s": round(reconcile_s, 2),
            "rebuild_s": round(rebuild_s, 1),
            "ratio_full_vs_rebuild": round(full_s / rebuild_s, 2),
            "ratio_full_vs_reconcile_plus_rebuild": round(full_s / (reconcile_s + rebuild_s), 2),
            "full_steps_s": per_step(instance, full.run_id),
            "rebuild_steps_s": per_step(instance, again.run_id),
        }
    for key, value in figures.items():
        print(f"{key:40s} {value}")
    print(f"wrote {write_result('rebuild', figures)}")


if __name__ == "__main__":
    main()
