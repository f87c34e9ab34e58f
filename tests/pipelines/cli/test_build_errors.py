"""`consentgen build` (and `reconcile`, `ui`) through the console script: a build that
cannot publish says why in one line on stderr, with no traceback, before any training;
an unchanged rebuild publishes nothing and says so.

These need no training: they stop before it (bad options, a bad build file, a locked
home, no eligible records, too few records) or find nothing changed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from consent import Ledger
from pipelines.buildfile import load_config
from pipelines.catalog import Catalog, Release
from pipelines.cli.common import create_home
from pipelines.settings import MAX_SHARDS
from pipelines.steps.freshness import inputs_digest
from pipelines.steps.locks import build_lock
from pipelines.steps.release import releases_root
from tests.pipelines.conftest import PURPOSE, ingest_subjects, pick_subjects
from tests.pipelines.steps.published import publish_rows

from tests.pipelines.cli.console import run

TINY = """\
profile = "test"
shards = 2
images_per_shard = 4
[labels]
min_subjects_per_class = 1
[generator]
preset = "tiny"
image_size = 16
epochs = 1
sample_steps = 2
"""


def one_line_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    """stderr is exactly one line holding every needle; no traceback, no Dagster frames."""
    assert done.returncode != 0, done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "dagster._core" not in done.stderr + done.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def sourced(home: Path) -> Path:
    """An initialised home with a tiny build file and two subjects' real slices."""
    create_home(home)
    (home / "consentgen.toml").write_text(TINY)
    ingest_subjects(home, pick_subjects(1))
    return home


@pytest.mark.parametrize(("args", "needle"), [
    (["build", "--shards", "0"], f"--shards 0: must be between 1 and {MAX_SHARDS}"),
    (["build", "--shards", "-3"], f"--shards -3: must be between 1 and {MAX_SHARDS}"),
    (["build", "--shards", str(MAX_SHARDS + 1)], f"--shards {MAX_SHARDS + 1}: must be between"),
    (["build", "--shards", "abc"], "Invalid value for '--shards'"),
    (["build", "--no-such-flag"], "No such option: --no-such-flag"),
    (["reconcile", "--max-images", "0"], "--max-images 0: must be between 1 and"),
    (["reconcile", "--shards", "0"], "--shards 0: must be between 1 and"),
    (["ui", "--port", "0"], "--port 0: must be between 1 and 65535"),
])
def test_numeric_options_are_refused_at_the_edge(home: Path, args: list[str], needle: str) -> None:
    create_home(home)
    one_line_error(run(home, *args), needle)


@pytest.mark.parametrize("command", [["build"], ["ui", "--port", "1"]])
def test_a_bad_build_file_key_or_value_is_one_line(home: Path, command: list[str]) -> None:
    create_home(home)
    (home / "consentgen.toml").write_text("[generator]\nimagesize = 24\n")
    one_line_error(run(home, *command), "generator.imagesize: unknown key")
    (home / "consentgen.toml").write_text("shards = 0\n")
    one_line_error(run(home, *command), "shards")


def test_a_bad_build_file_does_not_stop_a_withdrawal(home: Path) -> None:
    """Reconcile (and a revoke's withdrawal at once) read around a typo, saying so: a
    revocation is honoured whatever else the file gets wrong; a build still refuses it."""
    create_home(home)
    (home / "consentgen.toml").write_text("shards = 2\n[generator]\nimagesize = 24\n")
    done = run(home, "reconcile")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("warning:") and "generator.imagesize: unknown key" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout.strip()
    granted = run(home, "consent", "grant", "s1", "--purpose", PURPOSE)
    assert granted.returncode == 0, granted.stderr  # consent is recorded whatever the typo
    one_line_error(run(home, "release", "withdraw", "--subject", "s1"),
                   "generator.imagesize: unknown key")  # the deployment's purpose needs the file


def test_no_eligible_records_is_one_line_with_counts_by_reason(sourced: Path) -> None:
    done = run(sourced, "build")
    line = one_line_error(done, "no eligible records", "NoConsentRecord", "full log: ")
    log = Path(line.rsplit("full log: ", 1)[1].strip())
    assert log.parent == sourced / ".dagster" / "logs" and log.is_file()
    full = log.read_text()
    assert "NoEligibleRecordsError" in full and "Stack Trace" in full  # the details are kept
    assert not list(sourced.glob("models/**/*.safetensors"))  # stopped before any training
    assert "failed   eligible_records" in done.stdout  # the short progress display


def test_too_few_records_for_the_shards_is_one_line(sourced: Path) -> None:
    ledger = Ledger.at_home(sourced)
    for subject in pick_subjects(1):
        ledger.grant(subject, PURPOSE)
    one_line_error(run(sourced, "build", "--shards", str(MAX_SHARDS)), "shard")


def test_a_locked_home_is_one_line_naming_the_holder(sourced: Path) -> None:
    with build_lock(sourced, run_id="someone-else"):
        one_line_error(run(sourced, "build"), "someone-else")


def test_an_unchanged_rebuild_publishes_nothing_and_prints_the_sweep(home: Path) -> None:
    pub = publish_rows(home)
    digest = inputs_digest(pub.catalog, pub.ledger, load_config(None, home=home))  # as `build` reads
    with pub.catalog.write() as con:  # what publish recorded, had it built these inputs
        con.execute("UPDATE releases SET inputs_digest = ? WHERE version = 'v0002'", [digest])
    crashed = releases_root(home) / ".tmp-v0003-deadbeef"  # what a killed publish leaves
    crashed.mkdir()
    done = run(home, "build")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "nothing changed since v0002; --force to publish anyway" in done.stdout
    assert "sweep: removed temp" in done.stdout and not crashed.exists()
    assert sorted(r.version for r in pub.catalog.select(Release)) == ["v0001", "v0002"]

    again = run(home, "build")  # the sweep found nothing this time: no sweep line
    assert again.returncode == 0 and "sweep" not in again.stdout
    pub.ledger.revoke("A", PURPOSE)  # a change: the build runs (and fails on these made-up
    changed = run(home, "build")       # rows, whose recorded head is no real chain's)
    assert "nothing changed" not in changed.stdout and "done     sources" in changed.stdout
    one_line_error(changed, "full log: ")
    assert len(Catalog(home).select(Release)) == 2
