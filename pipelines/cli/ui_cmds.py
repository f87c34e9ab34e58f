"""`consentgen ui`: the Dagster web UI and daemon on these definitions, as a service.

`dagster dev` stops on SIGINT or SIGTERM, but the code server it starts outlives it
(orphaned, until its heartbeat times out), so a service manager's stop left processes
behind. Here `dagster dev` runs in a process group of its own: SIGTERM, SIGINT (Ctrl-C)
or SIGHUP to `consentgen ui` is passed on as the SIGINT `dagster dev` shuts down on,
and once it is gone whatever is left of its group is ended (SIGTERM, then SIGKILL).

The build file is read first, so a bad key or value is one line here, not a stack trace
from inside the code server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Annotated

import typer

from pipelines.cli.common import HomeOption, check_range, console, resolve_home

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
GRACE_S = 20.0  # how long `dagster dev` may take to shut down before it is killed
LEFTOVER_GRACE_S = 5.0  # how long what it left behind may take after SIGTERM


def ui(home: HomeOption = None,
       port: Annotated[int, typer.Option("--port", help="Web UI port (1-65535).")] = 3000) -> None:
    """Start the Dagster web UI (and daemon) on these definitions; stops on SIGTERM or Ctrl-C."""
    from pipelines.buildfile import load_config
    from pipelines.defs.runner import dagster_home

    check_range("--port", port, 1, 65535)
    root = resolve_home(home)
    load_config(None, home=root)  # refuse a bad build file in one line, before any service
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home(root)), "CONSENTGEN_HOME": str(root)}
    cmd = [sys.executable, "-m", "dagster", "dev", "-m", "pipelines.defs.definitions",
           "-h", "127.0.0.1", "-p", str(port)]
    console.print(f"Dagster UI on http://127.0.0.1:{port} (DAGSTER_HOME={env['DAGSTER_HOME']})")
    sys.stdout.flush()
    raise typer.Exit(serve(cmd, env))


def serve(cmd: list[str], env: dict[str, str]) -> int:
    """Run `cmd` in its own process group until it exits or this process is told to stop;
    then end the rest of its group. Returns its exit status (0 when stopped by a signal)."""
    child = subprocess.Popen(cmd, env=env, process_group=0)
    stop_at: list[float] = []

    def stop(signum: int, frame: object) -> None:
        if not stop_at:
            stop_at.append(time.monotonic())
            _signal_group(child.pid, signal.SIGINT)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        while child.poll() is None:
            if stop_at and time.monotonic() - stop_at[0] > GRACE_S:
                _signal_group(child.pid, signal.SIGKILL)
            time.sleep(0.2)
    finally:
        _end_group(child.pid)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stop_at else child.returncode


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal every process of group `pgid`; False when none is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _end_group(pgid: int) -> None:
    """SIGTERM what is left of the group (a code server `dagster dev` left behind), then
    SIGKILL whatever has not gone after `LEFTOVER_GRACE_S`."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while time.monotonic() < deadline:
        if not _signal_group(pgid, 0):
            return
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)
