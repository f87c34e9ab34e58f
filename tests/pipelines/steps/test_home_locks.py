"""The build lock as the steps of a run take it, held by real other processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from consentgen.errors import HomeLockedError
from pipelines.defs.assets import release
from pipelines.defs.resources import build_resources
from pipelines.defs.runner import report_of
from pipelines.settings import quick_profile
from pipelines.steps import locks
from pipelines.steps.locks import build_lock, build_step_lock

HOLD = """
    import sys, time
    from pathlib import Path
    from pipelines.steps.locks import build_lock, build_step_lock
    home, how = Path(sys.argv[1]), sys.argv[2]
    held = (build_lock(home, run_id="cli-run") if how == "build"
            else build_step_lock(home, run_id="daemon-run", step="shard_models__shard_0"))
    with held:
        print("held", flush=True)
        time.sleep(120)
"""


@contextmanager
def held_by_another_process(home: Path, how: str) -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD), str(home), how],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_step_of_the_runners_own_run_goes_on_and_any_other_is_refused(home: Path) -> None:
    with held_by_another_process(home, "build") as pid:
        started = time.monotonic()
        with build_step_lock(home, run_id="cli-run", step="release"):  # run_build's own step
            pass
        assert time.monotonic() - started < 1
        with pytest.raises(HomeLockedError) as refused:
            with build_step_lock(home, run_id="another-run", step="release", max_wait_s=0.3):
                pytest.fail("a step of another run ran while a build held the home")
    assert f"pid {pid}, run cli-run, since" in str(refused.value)
    assert "step release of run another-run did not run" in str(refused.value)
    with build_step_lock(home, run_id="another-run", step="release", max_wait_s=0.3):
        pass  # the holder was killed: the kernel let go


def test_a_build_is_refused_at_once_while_a_daemon_runs_steps_which_share_the_lock(home: Path) -> None:
    with held_by_another_process(home, "step") as pid:
        started = time.monotonic()
        with pytest.raises(HomeLockedError) as refused:
            with build_lock(home, run_id="cli-run"):
                pytest.fail("a build ran while a daemon run's step held the home")
        assert time.monotonic() - started < 1
        assert f"pid {pid}, run daemon-run, step shard_models__shard_0" in str(refused.value)
        # a second step of the daemon's run (a shard trained in parallel) goes together
        with build_step_lock(home, run_id="daemon-run", step="shard_models__shard_1", max_wait_s=0.3):
            pass


def test_the_release_asset_outside_run_build_is_refused_while_a_build_holds_the_home(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run the daemon (or `consentgen ui`) launches has no runner holding the lock: its
    release step takes it itself, so it never publishes beside a `consentgen build`."""
    monkeypatch.setattr(locks, "STEP_WAIT_S", 0.3)
    resources = build_resources(quick_profile(), home, progress=False)
    with held_by_another_process(home, "build") as pid:
        result = dg.materialize([release], resources=resources, raise_on_error=False,
                                instance=dg.DagsterInstance.ephemeral())
    report = report_of(result)
    assert not report.success and report.failure is not None
    assert report.failure.startswith("step release failed: another build holds")
    assert f"pid {pid}, run cli-run" in report.failure
