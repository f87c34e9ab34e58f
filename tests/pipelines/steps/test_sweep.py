"""The sweep on hand-made leftovers of crashed runs (fast: no build, real files and rows)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consentgen.files import atomic_output
from pipelines.catalog import Candidate, Catalog, Release, ReleaseImage, Withdrawal
from pipelines.steps.locks import BUILD_LOCK
from pipelines.steps.release import LATEST, MANIFEST_CSV, WITHDRAWN, latest_version, releases_root
from pipelines.steps.sweep import sweep

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _release(catalog: Catalog, version: str, status: str, *, folder: bool) -> None:
    catalog.add([Release(version=version, snapshot_id="snap", head_seq=1, head_hash="h", n_images=1,
                         release_path=f"releases/{version}", created_at=T0, status=status)],
                [ReleaseImage(version=version, image_id=f"img-{version}", candidate_id="c1", label="0",
                              shard=0, model_version="m", file_name="images/a/x.png")])
    if folder:
        _folder(catalog.home, version)


def _folder(home: Path, version: str) -> Path:
    path = releases_root(home) / version
    (path / "images" / "a").mkdir(parents=True)
    (path / "images" / "a" / "x.png").write_bytes(b"png")
    (path / MANIFEST_CSV).write_text("image_id\n")
    (path / WITHDRAWN).write_text("")
    return path


def test_every_leftover_of_a_crash_is_finished_or_removed(home: Path, umask_022: None) -> None:
    catalog, root = Catalog(home), releases_root(home)
    _release(catalog, "v0001", "published", folder=True)
    _release(catalog, "v0002", "pending", folder=False)    # killed before its rename
    catalog.add([Withdrawal(version="v0002", image_id="img-v0002", subject_id="s", event_seq=1,
                            revoked_recorded_at=T0, withdrawn_at=T0, latency_s=0.0)])
    _release(catalog, "v0003", "pending", folder=True)     # killed after its rename
    _release(catalog, "v0006", "published", folder=False)  # its folder deleted by hand
    _folder(home, "v0004")                                 # a folder no row names
    (root / ".tmp-v0005-0123abcd" / "images").mkdir(parents=True)
    (root / ".LATEST.k2j3.tmp").write_text("v0005\n")
    (root / LATEST).write_text("v0009\n")                  # names a missing release
    (root / "v0001" / ".manifest.csv.x1y2.tmp").write_text("half")
    (root / "v0001" / "expectations").mkdir()
    (root / "v0001" / "expectations" / ".ge_store_backend_id").write_text("keep me")
    (root / "v0002").mkdir()                               # only what a stray write made
    (root / "v0002" / WITHDRAWN).write_text("img-v0002\n")
    models = home / "models" / "0"
    (models / "shard0-0123456789abcdef").mkdir(parents=True)  # a checkpoint without metadata
    (models / ".shard0-fedcba9876543210.abc123").mkdir()    # a save's staging folder
    candidates = home / "candidates"
    candidates.mkdir()
    (candidates / "recorded.png").write_bytes(b"png")
    (candidates / "orphan.png").write_bytes(b"png")
    catalog.add([Candidate(candidate_id="c1", snapshot_id="snap", shard=0, model_version="m", label="0",
                           seed=1, image_path="candidates/recorded.png", created_at=T0)])

    report = sweep(catalog)
    assert report.skipped is None and report.problems == []
    assert report.completed == ["v0003"] and report.forgotten == ["v0002"]
    assert report.removed_unrecorded == ["v0004"]
    assert sorted(report.removed_temp) == sorted([
        "releases/.tmp-v0005-0123abcd", "releases/.LATEST.k2j3.tmp",
        "releases/v0001/.manifest.csv.x1y2.tmp", "models/0/.shard0-fedcba9876543210.abc123"])
    assert report.removed_checkpoints == ["models/0/shard0-0123456789abcdef"]
    assert report.removed_candidates == 1 and report.latest_changed and report.latest == "v0003"
    assert "completed pending v0003" in report.line() and "LATEST -> v0003" in report.line()

    assert sorted(p.name for p in root.iterdir()) == [LATEST, "v0001", "v0003"]
    assert latest_version(home) == "v0003"
    assert stat.S_IMODE((root / LATEST).stat().st_mode) == 0o644
    assert (root / "v0001" / "expectations" / ".ge_store_backend_id").read_text() == "keep me"
    status = {r.version: r.status for r in catalog.select(Release)}
    assert status == {"v0001": "published", "v0003": "published", "v0006": "published"}
    assert catalog.select(ReleaseImage, "WHERE version = 'v0002'") == []
    assert catalog.select(Withdrawal) == []  # recorded against a version that never appeared
    assert sorted(p.name for p in candidates.iterdir()) == ["recorded.png"]
    assert list(models.iterdir()) == []

    again = sweep(catalog)
    assert not again.changed and again.line() == "sweep: nothing left by a crash"


def test_latest_goes_when_no_release_is_complete(home: Path) -> None:
    catalog, root = Catalog(home), releases_root(home)
    _release(catalog, "v0001", "published", folder=False)
    root.mkdir(parents=True, exist_ok=True)
    (root / LATEST).write_text("v0001\n")
    report = sweep(catalog)
    assert report.latest is None and report.latest_changed
    assert not (root / LATEST).exists()
    assert [r.version for r in catalog.select(Release)] == ["v0001"]  # history stays


HOLD = """
    import sys, time
    from pathlib import Path
    from pipelines.steps.locks import build_lock
    with build_lock(Path(sys.argv[1]), run_id="holder-run"):
        print("held", flush=True)
        time.sleep(120)
"""


def test_the_sweep_waits_for_no_build_and_leaves_a_running_one_alone(home: Path) -> None:
    """While a build holds the home its half-written files look like orphans: skipped."""
    (home / "candidates").mkdir()
    (home / "candidates" / "being-written.png").write_bytes(b"png")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD), str(home)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        report = sweep(Catalog(home))
        assert report.skipped and f"pid {holder.pid}, run holder-run" in report.skipped
        assert report.line().startswith("sweep skipped: another build is running")
        assert (home / "candidates" / "being-written.png").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    report = sweep(Catalog(home))  # the kernel let go of the killed holder's lock
    assert report.skipped is None and report.removed_candidates == 1
    assert (home / BUILD_LOCK).read_text() == ""  # the sweep's own hold left no holder line


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_an_atomically_written_file_gets_the_mode_open_would_give(tmp_path: Path, mask: int,
                                                                  mode: int) -> None:
    old = os.umask(mask)
    try:
        with atomic_output(tmp_path / "LATEST") as fh:
            fh.write("v0001\n")
        with open(tmp_path / "plain", "w") as fh:
            fh.write("v0001\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "LATEST").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []




def test_sweep_imports_no_torch() -> None:
    """The reconcile runs the sweep on every sensor tick: it must stay light."""
    done = subprocess.run([sys.executable, "-c", "import sys, pipelines.steps.sweep; "
                           "print('torch' in sys.modules)"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
