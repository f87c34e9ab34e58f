"""Erasure that is real (DESIGN.md invariant 6): once a subject's consent has ended,
nothing in the data home keeps their pixels or what was learnt from them.

Who: subjects whose consent has ended for EVERY purpose they have on the ledger (revoked,
by them or an operator; or expired, when the build's `expiry_policy` withdraws) and for
whom no grant stands, now or from a future date. Subjects never asked, or granted from a
future date, keep their sources: a record nobody consented for is never used (opt-in),
but it is not the subject's request to erase it either.

What: their source PNGs, except one whose pixels (sources are content-addressed, so one
file) a record of a subject who stays still holds; every checkpoint that trained on them
(such a model is stale for good: a model that saw a subject no longer eligible is never
used again, so the next build of its shard retrains); those checkpoints' candidates,
flagged near-copies included; every img2img candidate conditioned on one of their
records (and no other: an img2img shard's conditioning set trained nothing and holds no
pixels, so it is not erased); and leftover temp folders of crashed publishes and
trainings. Published images are the reconcile's to withdraw, before this runs.

The catalog keeps ids, hashes and times (`erasures`) as the record of erasure and drops
the erased records' `sources` rows. The pass holds the build lock, so it never deletes
under a running build (it is deferred to the next pass instead), is idempotent, and a
missing file never stops it. Its summary line names no subject or record: it goes to
run logs, which must not keep what was erased.
"""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from collections.abc import Collection, Iterable
from contextlib import ExitStack, suppress
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from consent import ConsentStatus, Ledger
from consent.events import utc_now
from consent.state import consent_ended_at
from consentgen.errors import HomeLockedError
from consentgen.files import fsync_dir
from consentgen.home import MODELS_DIR
from pipelines.catalog import Catalog, Erasure
from pipelines.catalog.erasure_queries import (
    candidates_conditioned_on,
    candidates_of_models,
    content_still_needed,
    erasure_keys,
    first_erased,
    models_trained_on,
    record_erasures,
    record_ids_of,
    recorded_model_versions,
    sources_of,
    standing_subjects,
)
from pipelines.settings import BuildConfig
from pipelines.steps.bans import file_pixel_hash
from pipelines.steps.locks import build_lock, releases_lock
from pipelines.steps.release import TEMP_PREFIX, releases_root

# `generators.checkpoints.META_FILE`, restated so that a reconcile pass does not import
# torch; a test keeps them equal.
_META_FILE = "consentgen_checkpoint.json"


# --- whose consent has ended ---------------------------------------------------------


class ConsentEnd(BaseModel):
    """Whether a subject's consent has ended for good, and the one-line why."""

    model_config = ConfigDict(frozen=True)

    subject_id: str
    ended: bool
    why: str
    statuses: dict[str, str] = Field(default_factory=dict)
    """Purpose -> DPV state now."""
    ended_at: datetime | None = None
    """When the last of their purposes ended (a revoke's effective time, an expiry)."""


def consent_ends(ledger: Ledger, subjects: Collection[str], expiry_policy: str,
                 now: datetime) -> dict[str, ConsentEnd]:
    """The verdict for each of `subjects`: one read of the ledger, one state query per
    purpose they hold, all as of the same head."""
    if not subjects:
        return {}
    table = ledger.to_arrow()
    head = int(pc.max(table["seq"]).as_py() or 0) if table.num_rows else 0
    mine = table.filter(pc.is_in(table["subject_id"], value_set=pa.array(sorted(subjects), pa.string())))
    events: dict[str, list[dict]] = defaultdict(list)
    for row in mine.select(["subject_id", "purpose", "action", "effective_at"]).to_pylist():
        events[row["subject_id"]].append(row)
    states = {}
    for purpose in sorted({e["purpose"] for rows in events.values() for e in rows}):
        states.update({(s.subject_id, purpose): s for s in ledger.states(purpose, now, as_of_seq=head)
                       if s.subject_id in events})
    return {s: _verdict(s, events.get(s, []), states, expiry_policy, now) for s in subjects}


def _verdict(subject: str, events: list[dict], states: dict, expiry_policy: str,
             now: datetime) -> ConsentEnd:
    if not events:
        return ConsentEnd(subject_id=subject, ended=False,
                          why="never asked: no consent on record, so their records are never used "
                              "(opt-in) and are kept")
    keeps, ends, statuses = [], [], {}
    for e in events:
        if e["action"] == "grant" and e["effective_at"] > now:
            keeps.append(f"a grant for purpose {e['purpose']} takes effect {_when(e['effective_at'])}")
    for purpose in sorted({e["purpose"] for e in events}):
        state = states.get((subject, purpose))
        status = state.status if state else ConsentStatus.UNKNOWN
        statuses[purpose] = status.dpv
        deciding = state.deciding_event if state else None
        if status is ConsentStatus.GIVEN:
            until = f" (until {_when(deciding.expires_at)})" if deciding and deciding.expires_at else ""
            keeps.append(f"consent still holds for purpose {purpose}{until}")
        elif status is ConsentStatus.UNKNOWN or deciding is None:
            keeps.append(f"no consent decision in effect yet for purpose {purpose}")
        elif status is ConsentStatus.EXPIRED:
            if expiry_policy != "withdraw":
                keeps.append(f"consent for purpose {purpose} expired {_when(consent_ended_at(deciding))}, and "
                             "the expiry policy keeps what was made while it held")
            else:
                ends.append(consent_ended_at(deciding))
        else:  # revoked, by the subject or by an operator on their behalf
            ends.append(deciding.effective_at)
    if keeps:
        return ConsentEnd(subject_id=subject, ended=False, why="; ".join(dict.fromkeys(keeps)),
                          statuses=statuses)
    ended_at = max(ends)
    return ConsentEnd(subject_id=subject, ended=True, statuses=statuses, ended_at=ended_at,
                      why=f"consent ended for every purpose on the ledger "
                          f"({', '.join(f'{p}: {s}' for p, s in statuses.items())}), "
                          f"the last {_when(ended_at)}")


def _when(t: datetime | None) -> str:
    return "at an unknown time" if t is None else f"at {t.isoformat(timespec='seconds')}"


# --- the pass ----------------------------------------------------------------------------


class Kind(StrEnum):
    SOURCE = "source"
    CHECKPOINT = "checkpoint"
    CANDIDATE = "candidate"
    TEMP = "temp"


class ErasureReport(BaseModel):
    """What one erasure pass did. `subjects` is for the caller; `line()` names none."""

    at: datetime
    ended: int = 0
    """Subjects with something left on disk whose consent has ended."""
    subjects: list[str] = Field(default_factory=list)
    """Subjects this pass erased something of, or recorded something for."""
    erased: dict[str, int] = Field(default_factory=lambda: {k.value: 0 for k in Kind})
    """Files or folders deleted by this pass, per kind."""
    recorded: int = 0
    kept_shared: int = 0
    """Source PNGs kept because a record of a subject who stays holds the same pixels."""
    deferred: str | None = None
    failures: list[str] = Field(default_factory=list)
    """Paths that could not be deleted (retried next pass)."""

    def line(self) -> str:
        if self.deferred:
            return f"erasure deferred to the next pass: {self.deferred}"
        e = self.erased
        text = "erasure: nothing to erase" if not self.subjects else (
            f"erasure: {len(self.subjects)} subject(s) whose consent ended; erased "
            f"{e['source']} source PNG(s), {e['checkpoint']} checkpoint(s), "
            f"{e['candidate']} candidate(s), {e['temp']} temp folder(s)")
        if self.kept_shared:
            text += f"; kept {self.kept_shared} source PNG(s) another record still needs"
        if self.failures:
            text += f"; {len(self.failures)} could not be deleted (retried next pass)"
        return text


def erase_ended(catalog: Catalog, ledger: Ledger, config: BuildConfig, *,
                now: datetime | None = None, subject_id: str | None = None,
                build_locked: bool = False) -> ErasureReport:
    """Erase what holds the pixels of, or was learnt from, every subject whose consent has
    ended as of `now` (default: now); only `subject_id`'s when given.

    The pass takes the home's build lock (a running build is reading these files: the
    pass is then deferred, and says so); `build_locked=True` says the caller holds it.
    It takes `releases_lock` to remove publish's staging folders, so call it outside
    that lock (after the reconcile's withdrawals, not inside them).
    """
    when = now or utc_now()
    report = ErasureReport(at=when)
    standing = standing_subjects(catalog, subject_id) - set(ledger.eligible(config.purpose, when))
    ended = sorted(s for s, v in consent_ends(ledger, standing, config.expiry_policy, when).items()
                   if v.ended)
    report.ended = len(ended)
    if not ended:
        return report
    with ExitStack() as stack:
        try:
            if not build_locked:
                stack.enter_context(build_lock(catalog.home, run_id="erasure"))
        except HomeLockedError as exc:
            report.deferred = str(exc)
            return report
        _Pass(catalog, ended, report).run()
    return report


class _Pass:
    """One erasure pass over `subjects`, under the build lock."""

    def __init__(self, catalog: Catalog, subjects: list[str], report: ErasureReport) -> None:
        self.catalog, self.home, self.subjects, self.report = catalog, catalog.home, subjects, report
        self.keys = erasure_keys(catalog, subjects)
        self.rows: list[Erasure] = []
        self.forget: list[str] = []
        self.touched_dirs: set[Path] = set()
        self.now = utc_now()

    def run(self) -> None:
        versions = self.checkpoints()
        self.candidates(versions)
        self.sources()
        if self.rows:
            self.temp_folders({r.subject_id for r in self.rows})
        record_erasures(self.catalog, self.rows, forget_sources=self.forget)
        for folder in self.touched_dirs:
            if folder.is_dir():
                fsync_dir(folder)
        self.report.subjects = sorted({r.subject_id for r in self.rows})
        self.report.recorded = len(self.rows)

    # -- each kind ----------------------------------------------------------------------

    def checkpoints(self) -> dict[str, set[str]]:
        """Delete every checkpoint that saw one of the subjects; version -> its subjects."""
        trained = models_trained_on(self.catalog, self.subjects)
        seen: dict[str, set[str]] = defaultdict(set)
        paths = {}
        for t in trained:
            seen[t.model.model_version].add(t.subject_id)
            paths[t.model.model_version] = t.model.model_path
        self._erase_each(Kind.CHECKPOINT, seen, paths, {})
        self._unrecorded_checkpoints()
        return seen

    def _unrecorded_checkpoints(self) -> None:
        """A checkpoint saved but never recorded (a crash) names its records in its metadata."""
        root = self.home / MODELS_DIR
        recorded = recorded_model_versions(self.catalog)
        folders = [d for d in sorted(root.glob("*/*")) if d.is_dir() and not d.name.startswith(".")
                   and d.name not in recorded] if root.is_dir() else []
        if not folders:
            return
        owner = record_ids_of(self.catalog, self.subjects)
        seen: dict[str, set[str]] = {}
        paths = {}
        for folder in folders:
            subjects = {owner[r] for r in _checkpoint_records(folder) if r in owner}
            if subjects:
                seen[folder.name] = subjects
                paths[folder.name] = folder.relative_to(self.home).as_posix()
        self._erase_each(Kind.CHECKPOINT, seen, paths, {})

    def candidates(self, versions: dict[str, set[str]]) -> None:
        """Delete the erased checkpoints' candidates, and every img2img candidate conditioned
        on one of the subjects' records (exactly those: a conditioning set's other images
        stand on other people only)."""
        found = candidates_of_models(self.catalog, versions)
        seen = {c.candidate_id: set(versions[c.model_version]) for c in found}
        for subject, c in candidates_conditioned_on(self.catalog, self.subjects):
            seen.setdefault(c.candidate_id, set()).add(subject)
            found.append(c)
        paths = {c.candidate_id: c.image_path for c in found}
        hashes = {c.candidate_id: _pixel_hash(self.home / c.image_path) for c in found}
        self._erase_each(Kind.CANDIDATE, seen, paths, hashes)

    def sources(self) -> None:
        records = sources_of(self.catalog, self.subjects)
        needed = content_still_needed(self.catalog, {r.content_hash for r in records}, self.subjects)
        for record in records:
            if needed.get(record.content_hash):
                self.report.kept_shared += 1
                continue
            if self._remove(record.image_path, Kind.SOURCE) is None:
                continue
            self.rows.append(Erasure(subject_id=record.subject_id, kind=Kind.SOURCE.value,
                                     ref=record.record_id, path=record.image_path,
                                     content_hash=record.content_hash, erased_at=self.now))
            self.forget.append(record.record_id)

    def temp_folders(self, subjects: Iterable[str]) -> None:
        """Staging folders of crashed publishes and checkpoint saves: under the build lock
        nothing is writing them, and whatever they hold may be the subjects'."""
        releases = releases_root(self.home)
        staged = sorted(releases.glob(f"{TEMP_PREFIX}*")) if releases.is_dir() else []
        models = self.home / MODELS_DIR
        staged += sorted(models.glob("*/.*")) if models.is_dir() else []
        if not staged:
            return
        with ExitStack() as stack:
            try:
                stack.enter_context(releases_lock(self.home))
            except HomeLockedError as exc:
                self.report.failures.append(f"temp folders left for the next pass: {exc}")
                return
            for folder in staged:
                rel = folder.relative_to(self.home).as_posix()
                if self._remove(rel, Kind.TEMP) is not None:
                    self.rows += [Erasure(subject_id=s, kind=Kind.TEMP.value, ref=rel, path=rel,
                                          content_hash=None, erased_at=self.now) for s in sorted(subjects)]

    # -- deleting and recording ---------------------------------------------------------

    def _erase_each(self, kind: Kind, seen: dict[str, set[str]], paths: dict[str, str],
                    hashes: dict[str, str | None]) -> None:
        """Delete each ref's file; record it for each of its subjects not recorded yet (or
        for all of them again when the file had come back)."""
        before = first_erased(self.catalog, kind.value, seen)
        for ref, subjects in sorted(seen.items()):
            outcome = self._remove(paths[ref], kind)
            if outcome is None:
                continue
            for subject in sorted(subjects):
                if outcome or (subject, kind.value, ref) not in self.keys:
                    self.rows.append(Erasure(
                        subject_id=subject, kind=kind.value, ref=ref, path=paths[ref],
                        content_hash=hashes.get(ref),
                        erased_at=self.now if outcome else before.get(ref, self.now)))

    def _remove(self, rel: str, kind: Kind) -> bool | None:
        """Delete a home-relative file or folder and its temp siblings: True if it was
        there, False if it was already gone, None if it could not be deleted."""
        path = self.home / rel
        if not path.resolve().is_relative_to(self.home.resolve()) or path.resolve() == self.home.resolve():
            self.report.failures.append(f"{rel}: outside the data home, not touched")
            return None
        existed = path.exists() or path.is_symlink()
        try:
            for sibling in path.parent.glob(f".{path.stem}.*") if kind is not Kind.TEMP else ():
                _delete(sibling)
            if existed:
                _delete(path)
        except OSError as exc:
            self.report.failures.append(f"{rel}: {exc.strerror or exc}")
            return None
        if existed:
            self.report.erased[kind.value] += 1
            self.touched_dirs.add(path.parent)
        return existed


def _delete(path: Path) -> None:
    """A file, or a folder with all it holds (one gone meanwhile: nothing to do)."""
    with suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _checkpoint_records(folder: Path) -> list[str]:
    """The record ids a checkpoint folder's metadata names ([] when it has none)."""
    try:
        meta = json.loads((folder / _META_FILE).read_text(encoding="utf-8"))
        ids = meta["training"]["record_ids"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [str(r) for r in ids] if isinstance(ids, list) else []


def _pixel_hash(path: Path) -> str | None:
    """The pixel hash a ban matches (`bans.file_pixel_hash`); None for a damaged file too,
    so one unreadable candidate never stops an erasure."""
    try:
        return file_pixel_hash(path)
    except (OSError, ValueError):
        return None
