"""Crash safety, proven by killing real processes (SIGKILL at named crash points).

One audited build with v0001 published is prepared once per module; each test works on a
copy of that home. A publish, a withdrawal or a build is run in a subprocess with
`CONSENTGEN_CRASH_AT=<point>`, which SIGKILLs itself there; the next sweep, reconcile or
build must leave a consistent home by itself, and the next publish must work.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from consent import Ledger
from consentgen.crash import CRASH_ENV
from consentgen.errors import ReleaseError
from pipelines.catalog import (
    Catalog,
    ModelRecord,
    Release,
    ReleaseImage,
    ShardModel,
    Withdrawal,
)
from pipelines.catalog.lineage import kept_candidates, unconsented_lineage
from pipelines.defs.runner import run_build
from pipelines.settings import BuildConfig, quick_profile
from pipelines.steps.locks import BUILD_LOCK
from pipelines.steps.release import (
    LATEST,
    MANIFEST_CSV,
    WITHDRAWN,
    latest_version,
    publish,
    publish_release,
    releases_root,
)
from pipelines.steps.sweep import sweep
from tests.pipelines.conftest import PURPOSE, ingest_subjects, pick_subjects

pytestmark = pytest.mark.slow

UP_TO_AUDIT = dg.AssetSelection.assets("audit").upstream()
CLI = str(Path(sys.executable).with_name("consentgen"))


@dataclass(frozen=True)
class Prepared:
    home: Path
    config: BuildConfig
    snapshot_id: str
    subjects: list[str]
    never_asked: str


@pytest.fixture(scope="module", autouse=True)
def umask_022() -> Iterator[None]:
    """Every file (and every subprocess) of this module is made under umask 022."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """16 subjects (one never asked), an audited build, and v0001 published from it."""
    home = tmp_path_factory.mktemp("prepared") / "home"
    home.mkdir()
    subjects = pick_subjects(8)
    ingest_subjects(home, subjects)
    ledger = Ledger.at_home(home)
    ledger.init()
    for subject in subjects[1:]:
        ledger.grant(subject, PURPOSE)
    config = quick_profile()
    audited = run_build(home, config, instance=dg.DagsterInstance.ephemeral(), selection=UP_TO_AUDIT)
    assert audited.version is None and audited.checks and all(audited.checks.values()), audited.failure
    catalog = Catalog(home)
    snapshot = catalog.snapshot_for_run(audited.run_id)
    assert publish(catalog, ledger, snapshot, config).version == "v0001"
    return Prepared(home, config, snapshot.snapshot_id, subjects, subjects[0])


@pytest.fixture
def fresh(prepared: Prepared, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(prepared.home, home, symlinks=True)
    return home


def run_killed(home: Path, point: str, script: str, *args: str) -> None:
    """Run `script` (python) in a subprocess that must SIGKILL itself at `point`."""
    env = {**os.environ, CRASH_ENV: point, "CONSENTGEN_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(home), *args],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, (point, done.returncode, done.stderr[-2000:])


PUBLISH = """
    import sys
    from pathlib import Path
    from consent import Ledger
    from pipelines.catalog import Catalog
    from pipelines.settings import BuildConfig
    from pipelines.steps.locks import build_lock
    from pipelines.steps.release import publish

    home, config, snapshot_id = Path(sys.argv[1]), BuildConfig.model_validate_json(sys.argv[2]), sys.argv[3]
    catalog = Catalog(home)
    with build_lock(home, run_id="crash-test"):
        publish(catalog, Ledger.at_home(home), catalog.snapshot(snapshot_id), config)
"""


def assert_consistent(home: Path) -> str | None:
    """No temp folder, no pending row, rows == folders, LATEST names a complete release."""
    catalog, root = Catalog(home), releases_root(home)
    assert not [p.name for p in root.iterdir() if p.name.startswith(".")]
    rows = catalog.select(Release, "ORDER BY version")
    assert all(r.status == "published" for r in rows)
    assert {r.version for r in rows} == {p.name for p in root.iterdir() if p.is_dir()}
    for r in rows:
        folder = home / r.release_path
        manifest = pd.read_csv(folder / MANIFEST_CSV)
        withdrawn = set((folder / WITHDRAWN).read_text().split())
        images = catalog.select(ReleaseImage, "WHERE version = ?", [r.version])
        assert set(manifest["image_id"]) == {i.image_id for i in images} - withdrawn
        on_disk = sorted(f.relative_to(folder).as_posix() for f in folder.glob("images/*/*.png"))
        assert on_disk == sorted(manifest["file_name"]) and len(on_disk) == len(manifest)
    latest = latest_version(home)
    assert latest == max((r.version for r in rows), default=None)
    if latest is not None:
        assert (root / latest / MANIFEST_CSV).is_file()
        assert stat.S_IMODE((root / LATEST).stat().st_mode) == 0o644  # under umask 022
    again = sweep(catalog)
    assert again.skipped is None and not again.changed, again.line()  # idempotent
    return latest


# What a kill at each point leaves of v0002: "unseen" (not renamed yet: it must vanish),
# "renamed" (in place, still pending: the sweep completes it), "published" (status set;
# LATEST may still name v0001).
PUBLISH_POINTS = [
    ("publish.rows_recorded", "unseen"), ("publish.files_copied", "unseen"),
    ("publish.manifests_written", "unseen"), ("publish.card_rendered", "unseen"),
    ("publish.fsynced", "unseen"), ("publish.locked", "unseen"),
    ("publish.consent_read", "unseen"), ("publish.renamed", "renamed"),
    ("publish.before_status", "renamed"), ("publish.before_latest", "published"),
    ("latest.writing", "published"), ("publish.latest_written", "published"),
]


@pytest.mark.parametrize(("point", "left"), PUBLISH_POINTS, ids=[p for p, _ in PUBLISH_POINTS])
def test_publish_killed_at_any_point_recovers_by_itself(prepared: Prepared, fresh: Path, point: str,
                                                        left: str) -> None:
    home = fresh
    run_killed(home, point, PUBLISH, prepared.config.model_dump_json(), prepared.snapshot_id)
    catalog = Catalog(home)
    status = {r.version: r.status for r in catalog.select(Release)}
    assert status == {"v0001": "published",
                      "v0002": "published" if left == "published" else "pending"}
    assert (releases_root(home) / "v0002").exists() == (left != "unseen")

    report = sweep(catalog)  # the kernel let go of the killed build's lock
    assert report.skipped is None, report.line()
    assert report.completed == (["v0002"] if left == "renamed" else [])
    assert report.forgotten == (["v0002"] if left == "unseen" else [])
    visible = left != "unseen"
    expected = "v0002" if visible else "v0001"
    assert assert_consistent(home) == expected

    ledger = Ledger.at_home(home)
    later = publish_release(catalog, ledger, catalog.snapshot(prepared.snapshot_id), prepared.config)
    assert later.version == ("v0003" if visible else "v0002") and later.status == "published"
    assert assert_consistent(home) == later.version


WITHDRAW = """
    import sys
    from pathlib import Path
    from consent import Ledger
    from pipelines.catalog import Catalog
    from pipelines.settings import BuildConfig
    from pipelines.steps.reconcile import reconcile

    home, config = Path(sys.argv[1]), BuildConfig.model_validate_json(sys.argv[2])
    reconcile(Catalog(home), Ledger.at_home(home), config)
"""


@pytest.mark.parametrize("point", ["withdraw.file_deleted", "withdraw.before_listed",
                                   "withdraw.before_rows"])
def test_withdrawal_killed_half_way_is_completed_by_the_next_reconcile(prepared: Prepared, fresh: Path,
                                                                      point: str) -> None:
    from pipelines.steps.reconcile import reconcile

    home, catalog, ledger = fresh, Catalog(fresh), Ledger.at_home(fresh)
    image = catalog.select(ReleaseImage, "WHERE version = 'v0001' ORDER BY image_id")[0]
    victim = catalog.select(ModelRecord, "WHERE model_version = ?", [image.model_version])[0].subject_id
    tainted = catalog.select(ReleaseImage, "WHERE model_version IN (SELECT model_version FROM "
                             "model_records WHERE subject_id = ?)", [victim])
    assert len(tainted) > 1
    ledger.revoke(victim, PURPOSE)
    run_killed(home, point, WITHDRAW, prepared.config.model_dump_json())
    folder = releases_root(home) / "v0001"
    assert catalog.select(Withdrawal) == []  # killed before its rows
    assert any(not (folder / i.file_name).exists() for i in tainted)  # yet a file was gone

    sweep(catalog)
    done = reconcile(catalog, ledger, prepared.config)
    assert done.count == len(tainted)
    assert all(not (folder / i.file_name).exists() for i in tainted)
    listed = (folder / WITHDRAWN).read_text().split()
    assert sorted(listed) == sorted(i.image_id for i in tainted)  # each id once
    assert {w.image_id for w in catalog.select(Withdrawal)} == {i.image_id for i in tainted}
    assert reconcile(catalog, ledger, prepared.config).count == 0
    assert assert_consistent(home) == "v0001"


BUILD = """
    import sys
    from pathlib import Path
    import dagster as dg
    from pipelines.defs.runner import run_build
    from pipelines.settings import BuildConfig

    home, config = Path(sys.argv[1]), BuildConfig.model_validate_json(sys.argv[2])
    report = run_build(home, config, instance=dg.DagsterInstance.ephemeral(),
                       selection=dg.AssetSelection.assets("audit").upstream())
    print(report)
"""


def test_a_checkpoint_saved_but_not_recorded_is_adopted_and_orphan_candidates_are_swept(
        prepared: Prepared, fresh: Path) -> None:
    """Killed between a checkpoint's save and its row, then between candidates' PNGs and
    their rows: each next build goes on by itself, and the shard is trained or adopted."""
    home, catalog, ledger = fresh, Catalog(fresh), Ledger.at_home(fresh)
    ledger.grant(prepared.never_asked, PURPOSE)  # their shard's records change: it retrains
    models_before = {m.model_path for m in catalog.select(ShardModel)}
    run_killed(home, "train.checkpoint_saved", BUILD, prepared.config.model_dump_json())
    orphans = [p for p in (home / "models").glob("*/*")
               if p.relative_to(home).as_posix() not in models_before]
    assert len(orphans) == 1 and not orphans[0].name.startswith(".")
    orphan = orphans[0].relative_to(home).as_posix()
    candidates_before = set((home / "candidates").iterdir())

    # the next build adopts the checkpoint at its start, then is killed after sampling
    run_killed(home, "candidates.written", BUILD, prepared.config.model_dump_json())
    adopted = catalog.select(ShardModel, "WHERE model_path = ?", [orphan])
    assert len(adopted) == 1 and catalog.select(ModelRecord, "WHERE model_version = ?",
                                                [adopted[0].model_version])
    unrecorded = set((home / "candidates").iterdir()) - candidates_before
    assert len(unrecorded) == prepared.config.images_per_shard

    build = run_build(home, prepared.config, instance=dg.DagsterInstance.ephemeral())
    assert build.success and build.version == "v0002", build.failure
    assert build.sweep is not None and build.sweep.removed_candidates == len(unrecorded)
    assert build.retrained == 0  # the adopted model is the shard's model
    assert not any(p.exists() for p in unrecorded)
    assert adopted[0].model_version in {i.model_version for i in catalog.select(
        ReleaseImage, "WHERE version = 'v0002'")}
    assert assert_consistent(home) == "v0002"


def test_an_incomplete_unrecorded_checkpoint_is_replaced_by_training(prepared: Prepared,
                                                                    fresh: Path) -> None:
    home, catalog, ledger = fresh, Catalog(fresh), Ledger.at_home(fresh)
    ledger.grant(prepared.never_asked, PURPOSE)
    run_killed(home, "checkpoint.staged", BUILD, prepared.config.model_dump_json())
    staging = [p for p in (home / "models").glob("*/.*") if p.is_dir()]
    assert len(staging) == 1  # a save killed before its rename leaves only a hidden folder
    run_killed(home, "train.checkpoint_saved", BUILD, prepared.config.model_dump_json())
    assert not staging[0].exists()  # that run's opening sweep removed it
    recorded = {m.model_path for m in catalog.select(ShardModel)}
    orphan = next(p for p in (home / "models").glob("*/*")
                  if p.relative_to(home).as_posix() not in recorded)
    weights = orphan / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # not the weights its metadata names

    build = run_build(home, prepared.config, instance=dg.DagsterInstance.ephemeral(),
                      selection=UP_TO_AUDIT)
    assert build.sweep is not None and build.sweep.removed_checkpoints == [
        orphan.relative_to(home).as_posix()]
    assert build.retrained == 1 and all(build.checks.values()), build.failure
    model = catalog.select(ShardModel, "WHERE model_path = ?", [orphan.relative_to(home).as_posix()])
    assert len(model) == 1 and (orphan / "consentgen_checkpoint.json").is_file()


def test_two_builds_at_once_the_second_is_refused_in_one_line(fresh: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CONSENTGEN_HOME": str(fresh), "COLUMNS": "200"}
    log = tmp_path / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen([CLI, "build", "--profile", "test"], env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "pid" not in ((fresh / BUILD_LOCK).read_text() if (fresh / BUILD_LOCK).exists() else ""):
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        started = time.monotonic()
        second = subprocess.run([CLI, "build", "--profile", "test"], env=env, capture_output=True,
                                text=True, timeout=120)
        assert time.monotonic() - started < 30  # refused at once, not after training
        assert second.returncode == 1 and second.stdout == "" and "Traceback" not in second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"pid {first.pid}, run " in lines[0], second.stderr
        assert "another build is running" in lines[0]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert sweep(Catalog(fresh)).skipped is None  # a killed build holds nothing


def test_a_revoke_during_publish_is_honoured_at_the_rename(prepared: Prepared, fresh: Path) -> None:
    """The card renders for minutes; a revoke arriving then is read before the rename, and
    the pending rows were visible all along."""
    home, catalog, ledger = fresh, Catalog(fresh), Ledger.at_home(fresh)
    snapshot = catalog.snapshot(prepared.snapshot_id)
    victim = catalog.select(ModelRecord, "ORDER BY record_id")[0].subject_id
    seen: list[str] = []

    def revoke_while_rendering(staging: Path, version: str, *_: object) -> None:
        pending = catalog.select(Release, "WHERE version = ?", [version])
        seen.extend(r.status for r in pending)
        assert catalog.select(ReleaseImage, "WHERE version = ?", [version])
        ledger.revoke(victim, PURPOSE)

    with pytest.raises(ReleaseError, match="consent no longer holds.*at the rename"):
        publish_release(catalog, ledger, snapshot, prepared.config, render_card=revoke_while_rendering)
    assert seen == ["pending"]
    assert not (releases_root(home) / "v0002").exists()
    assert [r.version for r in catalog.select(Release)] == ["v0001"]
    assert catalog.select(ReleaseImage, "WHERE version = 'v0002'") == []
    assert assert_consistent(home) == "v0001"


def test_a_model_without_lineage_rows_fails_closed(prepared: Prepared, fresh: Path) -> None:
    catalog, ledger = Catalog(fresh), Ledger.at_home(fresh)
    kept = kept_candidates(catalog, prepared.snapshot_id)
    assert unconsented_lineage(catalog, ledger, PURPOSE, kept) == {}
    orphaned = kept[0].model_version
    with catalog.write() as con:  # the lineage of one model is lost
        con.execute("DELETE FROM model_records WHERE model_version = ?", [orphaned])
    tainted = unconsented_lineage(catalog, ledger, PURPOSE, kept)
    assert set(tainted) == {c.candidate_id for c in kept if c.model_version == orphaned}
    with pytest.raises(ReleaseError, match="without lineage rows"):
        publish_release(catalog, ledger, catalog.snapshot(prepared.snapshot_id), prepared.config)
    assert [r.version for r in catalog.select(Release)] == ["v0001"]


def test_latest_is_world_readable(prepared: Prepared) -> None:
    """LATEST was written under umask 022 by the fixture's publish (mkstemp made it 0600)."""
    assert stat.S_IMODE((releases_root(prepared.home) / LATEST).stat().st_mode) == 0o644
