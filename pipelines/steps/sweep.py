"""Finishing or removing what a crashed run left in a data home.

Every step that writes in several moves writes its files before its rows (a candidate's
PNG, a checkpoint) or its rows before its files (a release, pending until its rename), so
a kill between two moves leaves one of a few shapes, each with one right answer:

- `releases/.tmp-*` (a publish's staging folder) and other hidden leftovers of atomic
  writes and discards: removed;
- a pending release whose folder is in place (killed after the rename): its last consent
  read passed at the rename, so it is completed (status published, `LATEST` if newest);
- a pending release whose folder never appeared: its rows are forgotten, with any
  withdrawal a reconcile recorded against it meanwhile;
- a release folder no row names: removed (nothing could withdraw from it on a revoke);
- `LATEST` names the newest complete published release, or nothing when there is none;
- a checkpoint folder no row names: adopted (recorded) when its metadata is complete and
  is exactly what a snapshot of that consent head expected for that shard (record list,
  fingerprint, weights hash), else removed, so the next build trains the shard;
- a candidate PNG no row names: removed.

The build runs the sweep at its start (holding the build lock); the reconcile runs it on
every pass. It takes the build lock itself unless told the caller holds it, and skips
the pass, saying so, while a build holds it: a live build's files look like orphans. It
takes `releases_lock` for the release part, so call it outside that lock. Idempotent, and
a file that cannot be removed is reported, never a reason to stop.
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from pathlib import Path

from pydantic import BaseModel

from consentgen.errors import ConsentgenError, HomeLockedError
from consentgen.files import discard_tree
from consentgen.home import CANDIDATES_DIR, MODELS_DIR
from pipelines.catalog import Catalog, ShardModel
from pipelines.catalog.lineage import (
    recorded_paths,
    releases,
    shard_training_records,
    snapshots_at_head,
)
from pipelines.steps.locks import build_lock, releases_lock
from pipelines.steps.release import (
    PENDING,
    PUBLISHED,
    is_complete,
    is_version_name,
    latest_version,
    mark_published,
    forget_release,
    releases_root,
    write_latest,
)

_IMAGES_DIR = "images"


class SweepReport(BaseModel):
    """What one sweep did, home-relative paths and versions; `line()` for people."""

    skipped: str | None = None
    """Why nothing was swept: a build holds the home (its files would look like orphans)."""
    removed_temp: list[str] = []
    completed: list[str] = []
    forgotten: list[str] = []
    removed_unrecorded: list[str] = []
    latest: str | None = None
    latest_changed: bool = False
    adopted: list[str] = []
    removed_checkpoints: list[str] = []
    removed_candidates: int = 0
    problems: list[str] = []

    @property
    def changed(self) -> bool:
        return bool(self.removed_temp or self.completed or self.forgotten or self.latest_changed
                    or self.removed_unrecorded or self.adopted or self.removed_checkpoints
                    or self.removed_candidates)

    def line(self) -> str:
        if self.skipped:
            return f"sweep skipped: {self.skipped}"
        parts = [f"{label} {', '.join(items)}" for label, items in (
            ("removed temp", self.removed_temp), ("completed pending", self.completed),
            ("forgot pending", self.forgotten), ("removed unrecorded release", self.removed_unrecorded),
            ("adopted checkpoint", self.adopted), ("removed checkpoint", self.removed_checkpoints),
        ) if items]
        if self.removed_candidates:
            parts.append(f"removed {self.removed_candidates} unrecorded candidate(s)")
        if self.latest_changed:
            parts.append(f"LATEST -> {self.latest or '(none)'}")
        parts += self.problems
        return "sweep: " + ("; ".join(parts) if parts else "nothing left by a crash")


def sweep(catalog: Catalog, *, build_locked: bool = False) -> SweepReport:
    """One sweep of the home (see the module's docstring); `build_locked=True` says the
    caller holds the build lock (a build sweeping at its start)."""
    report = SweepReport()
    home = catalog.home
    with ExitStack() as stack:
        if not build_locked:
            try:
                stack.enter_context(build_lock(home, run_id="sweep"))
            except HomeLockedError as exc:
                report.skipped = str(exc)
                return report
        try:
            with releases_lock(home):
                _sweep_releases(catalog, report)
        except HomeLockedError as exc:
            report.problems.append(f"releases left for the next sweep: {exc}")
        _sweep_checkpoints(catalog, report)
        _sweep_candidates(catalog, report)
    return report


# --- releases ------------------------------------------------------------------------


def _sweep_releases(catalog: Catalog, report: SweepReport) -> None:
    home, root = catalog.home, releases_root(catalog.home)
    folders = sorted(root.iterdir()) if root.is_dir() else []
    for entry in folders:
        if entry.name.startswith("."):
            _remove(home, entry, report.removed_temp, report)
        elif entry.is_dir() and is_version_name(entry.name):
            for leftover in _atomic_leftovers(entry):
                _remove(home, leftover, report.removed_temp, report)
    rows = releases(catalog)
    for r in (r for r in rows if r.status == PENDING):
        folder = home / r.release_path
        try:
            if is_complete(folder):
                mark_published(catalog, r.version)
                report.completed.append(r.version)
            elif not folder.exists() or _discard(home, folder, report):
                forget_release(catalog, r.version)
                report.forgotten.append(r.version)
        except ConsentgenError as exc:  # the catalog stayed locked: the next sweep goes on
            report.problems.append(f"pending release {r.version} left for the next sweep: {exc}")
    recorded = {r.version for r in rows} - set(report.forgotten)
    for entry in folders:
        if is_version_name(entry.name) and entry.name not in recorded and entry.exists():
            if _discard(home, entry, report):
                report.removed_unrecorded.append(entry.name)
    published = [r.version for r in rows
                 if (r.status == PUBLISHED or r.version in report.completed)
                 and is_complete(home / r.release_path)]
    newest = max(published, key=lambda v: int(v[1:]), default=None)
    report.latest = newest
    try:
        current = latest_version(home)
    except OSError:
        current = None
    if current != newest or (newest is None and (root / "LATEST").exists()):
        write_latest(home, newest)
        report.latest_changed = True


def _atomic_leftovers(folder: Path) -> list[Path]:
    """Temp files of atomic writes (`.<name>.<hex>.tmp`) and discards inside a release
    folder; the images folder is not walked (nothing is written there after the rename)."""
    found = []
    for where, dirs, files in os.walk(folder):
        if Path(where) == folder:
            dirs[:] = [d for d in dirs if d != _IMAGES_DIR]
        for name in [*dirs, *files]:
            if name.startswith(".") and (name.endswith(".tmp") or ".discard-" in name):
                found.append(Path(where) / name)
    return found


# --- checkpoints and candidates ------------------------------------------------------


def _sweep_checkpoints(catalog: Catalog, report: SweepReport) -> None:
    home, root = catalog.home, catalog.home / MODELS_DIR
    if not root.is_dir():
        return
    recorded_models, _ = recorded_paths(catalog)
    for shard_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for entry in sorted(shard_dir.iterdir()):
            rel = entry.relative_to(home).as_posix()
            if entry.name.startswith("."):  # a save's staging folder, a discard
                _remove(home, entry, report.removed_temp, report)
            elif rel not in recorded_models:
                if _adopt(catalog, entry) is not None:
                    report.adopted.append(rel)
                elif _discard(home, entry, report):
                    report.removed_checkpoints.append(rel)


def _adopt(catalog: Catalog, folder: Path) -> ShardModel | None:
    """Record `folder` as the model a snapshot of its consent head expected, if it is one."""
    from consentgen.errors import CheckpointError
    from generators.checkpoints import read_checkpoint_meta  # torch: only for an orphan
    from pipelines.steps.classes import snapshot_classes
    from pipelines.steps.shard_training import adopt_checkpoint, fingerprint_of

    try:
        meta = read_checkpoint_meta(folder)
    except CheckpointError:
        return None
    if meta.consent_head is None or meta.shard is None or folder.parent.name != str(meta.shard):
        return None
    wanted = sorted(meta.training.record_ids)
    for snap in snapshots_at_head(catalog, meta.consent_head.sequence, meta.consent_head.hash):
        records = shard_training_records(catalog, snap.snapshot_id, meta.shard)
        if sorted(r.record_id for r in records) == wanted:
            fp = fingerprint_of(wanted, meta.training.config,
                                snapshot_classes(catalog, snap.snapshot_id).labels)
            return adopt_checkpoint(catalog, folder, snapshot_id=snap.snapshot_id,
                                    records=records, fp=fp)
    return None


def _sweep_candidates(catalog: Catalog, report: SweepReport) -> None:
    folder = catalog.home / CANDIDATES_DIR
    if not folder.is_dir():
        return
    _, recorded = recorded_paths(catalog)
    for entry in sorted(folder.iterdir()):
        rel = f"{CANDIDATES_DIR}/{entry.name}"
        if entry.name.startswith(".") or (entry.suffix == ".png" and rel not in recorded):
            gone: list[str] = []
            _remove(catalog.home, entry, gone, report)
            report.removed_candidates += len(gone)


# --- removing, never stopped by one file ---------------------------------------------


def _remove(home: Path, path: Path, into: list[str], report: SweepReport) -> None:
    """Delete a leftover (already out of view: hidden or unrecorded) and note it."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        report.problems.append(f"could not remove {path.relative_to(home).as_posix()}: {exc}")
        return
    into.append(path.relative_to(home).as_posix())


def _discard(home: Path, path: Path, report: SweepReport) -> bool:
    """Take a visible folder out of view first (`discard_tree`), then delete it."""
    try:
        return discard_tree(path)
    except (OSError, ConsentgenError) as exc:
        report.problems.append(f"could not remove {path.relative_to(home).as_posix()}: {exc}")
        return False
