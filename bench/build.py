"""A 2-shard build under the multiprocess executor (2 processes) vs the in-process one.

    .venv/bin/python bench/build.py [--profile test] [--epochs N] [--repeats 2]

Each build starts from an identical copy of one small data home (real Br35H slices,
simulated subjects, every subject granted), so every build trains both shards. Figures
(one JSON line appended to bench/results/build.jsonl):
- `in_process_s`, `multiprocess_s`: best wall time of a whole `run_build` (snapshot …
  release) over the repeats; `ratio_multiprocess_vs_in_process` = in_process_s / multiprocess_s
  (> 1: the multiprocess build is faster).
- `*_shard_phase_s`: from the first shard step's start to the last one's end, and
  `*_shard_steps_s`: the sum of the shard steps' own durations. Under the multiprocess
  executor the phase is shorter than the sum when the shards really ran side by side;
  `shard_overlap` = steps_s / phase_s (1.0: one after the other, 2.0: fully parallel).
- `multiprocess_step_start_s`: the mean time from a step's process being launched to its
  body starting (importing torch, Dagster and the project in a fresh process), the fixed
  cost that the multiprocess executor pays per step.
Each multiprocess step gets cpu_count // 2 torch threads; the in-process run gets all.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import write_result  # noqa: E402
from consent import Ledger  # noqa: E402
from pipelines.defs.runner import instance_for, run_build, step_timeline  # noqa: E402
from pipelines.demo.sources import demo_slices  # noqa: E402
from pipelines.settings import PROFILES  # noqa: E402
from pipelines.steps.ingest import ingest  # noqa: E402

PURPOSE = "synthetic-training"
SUBJECTS = 16


def make_home(root: Path) -> Path:
    """A data home with SUBJECTS simulated subjects' slices ingested, all granted."""
    by_subject: dict[str, list] = {}
    for s in demo_slices():
        by_subject.setdefault(s.subject_id, []).append(s)
    chosen: list[str] = []
    for label in (0, 1):
        ranked = sorted((sid for sid, ss in by_subject.items() if ss[0].label == label),
                        key=lambda sid: (-len(by_subject[sid]), sid))
        chosen += ranked[: SUBJECTS // 2]
    incoming, manifest, home = root / "incoming", root / "manifest.csv", root / "home"
    root.mkdir(parents=True)
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "subject_id", "label", "record_id"])
        for sid in chosen:
            for s in by_subject[sid]:
                (incoming / s.relpath).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(s.path, incoming / s.relpath)
                writer.writerow([s.relpath, s.subject_id, s.label, s.record_id])
    ingest(incoming, manifest=manifest, home=home)
    ledger = Ledger.at_home(home)
    ledger.init()
    for sid in chosen:
        ledger.grant(sid, PURPOSE)
    return home


def one_build(base: Path, work: Path, config, parallel: int) -> dict[str, float]:
    home = work / f"home-{parallel}-{time.monotonic_ns()}"
    shutil.copytree(base, home)
    instance = instance_for(home)
    t0 = time.perf_counter()
    report = run_build(home, config, instance=instance, parallel=parallel)
    wall = time.perf_counter() - t0
    if not report.success:
        raise SystemExit(f"build failed ({'multiprocess' if parallel > 1 else 'in process'}): "
                         f"{report.failure}")
    steps = step_timeline(instance, report.run_id)
    shard = {k: v for k, v in steps.items() if k.startswith("shard_models__")}
    phase = max(v["end"] for v in shard.values()) - min(v["start"] for v in shard.values())
    summed = sum(v["end"] - v["start"] for v in shard.values())
    starts = [v["start"] - v["launched"] for v in steps.values() if "launched" in v and "start" in v]
    shutil.rmtree(home, ignore_errors=True)
    return {"wall_s": wall, "shard_phase_s": phase, "shard_steps_s": summed,
            "step_start_s": sum(starts) / len(starts) if starts else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="test", choices=sorted(PROFILES))
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    config = PROFILES[args.profile]().model_copy(update={"shards": 2})
    if args.epochs:
        config = config.model_copy(update={"generator": config.generator.model_copy(
            update={"epochs": args.epochs})})
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        work = Path(tmp)
        base = make_home(work / "base")
        runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
        for _ in range(args.repeats):  # alternate, so drift in machine load hits both
            for parallel in (1, 2):
                runs[parallel].append(one_build(base, work, config, parallel))
                print(f"parallel={parallel}: {runs[parallel][-1]}", flush=True)
    best = {p: min(rs, key=lambda r: r["wall_s"]) for p, rs in runs.items()}
    figures = {
        "profile": args.profile, "shards": 2, "epochs": config.generator.epochs,
        "subjects": SUBJECTS, "repeats": args.repeats,
        "in_process_s": round(best[1]["wall_s"], 2),
        "multiprocess_s": round(best[2]["wall_s"], 2),
        "ratio_multiprocess_vs_in_process": round(best[1]["wall_s"] / best[2]["wall_s"], 3),
        "in_process_shard_phase_s": round(best[1]["shard_phase_s"], 2),
        "in_process_shard_steps_s": round(best[1]["shard_steps_s"], 2),
        "multiprocess_shard_phase_s": round(best[2]["shard_phase_s"], 2),
        "multiprocess_shard_steps_s": round(best[2]["shard_steps_s"], 2),
        "shard_overlap": round(best[2]["shard_steps_s"] / best[2]["shard_phase_s"], 2),
        "multiprocess_step_start_s": round(best[2]["step_start_s"], 2),
    }
    for key, value in figures.items():
        print(f"{key:36s} {value}")
    print(f"wrote {write_result('build', figures)}")


if __name__ == "__main__":
    main()
