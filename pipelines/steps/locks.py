"""The data home's two locks: one build at a time, and publish vs withdrawal.

- `build_lock`: a second `consentgen build` (or scheduled run) on the same home is
  refused at once, with one line naming the build that holds it (pid, run id, since);
  two builds would both train and then race for the next version.
- `releases_lock`: taken by publish around its last consent read and the rename that
  makes a version visible, and by every withdrawal while it deletes files. So a
  reconcile either runs before the rename (it sees the pending rows, the last consent
  read sees the revoke) or after it (the folder is there, the file is deleted): a
  version never appears with an image whose subject was ineligible at the rename.

Both are flocks: the kernel lets go of them when their holder dies, kill -9 included.

A run that `run_build` did not start (the daemon's: a sensor's rebuild, a run launched
from `consentgen ui`) has no runner to hold the build lock, so each of its writing steps
holds it *shared* for the step (`build_step_lock`): its own steps, shards trained in
parallel among them, go together; a `consentgen build` and such a step never overlap.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from consent.events import utc_now
from consentgen.errors import HomeLockedError
from consentgen.locks import flock, open_lock_file

BUILD_LOCK = ".build.lock"
RELEASES_LOCK = ".releases.lock"


@contextmanager
def build_lock(home: Path, *, run_id: str | None = None) -> Iterator[None]:
    """Hold the home's build lock, or refuse at once naming the build that holds it."""
    path = home / BUILD_LOCK
    with open_lock_file(path) as fd:
        def held(_: int) -> HomeLockedError:
            return HomeLockedError(f"another build is running on {home} ({_holder(fd)}); "
                                   "wait for it to finish")

        with flock(fd, shared=False, deadline=time.monotonic(), give_up=held):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, run {run_id or 'unnamed'}, since "
                          f"{utc_now():%Y-%m-%dT%H:%M:%SZ}".encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)


@contextmanager
def releases_lock(home: Path, *, max_wait_s: float = 120.0) -> Iterator[None]:
    """Hold the lock that publish and withdrawal share (waiting up to `max_wait_s`)."""
    with open_lock_file(home / RELEASES_LOCK) as fd, flock(
            fd, shared=False, deadline=time.monotonic() + max_wait_s,
            give_up=lambda _: HomeLockedError(
                f"the releases of {home} stayed locked for {max_wait_s:.0f}s by a publish "
                "or a withdrawal; try again")):
        yield


STEP_WAIT_S = 30.0
"""How long a step waits for the build lock (a sweep holds it for a moment); a build never waits."""


@contextmanager
def build_step_lock(home: Path, *, run_id: str, step: str,
                    max_wait_s: float | None = None) -> Iterator[None]:
    """Hold the build lock for one writing step of run `run_id`, shared with its other steps.

    Nothing is taken when this run's runner holds the lock already (`run_build` writes the
    run id into it). Otherwise the lock is taken shared, waiting up to `max_wait_s`
    (default `STEP_WAIT_S`), and a build that holds it exclusively refuses the step in one
    line naming that build.
    """
    wait = STEP_WAIT_S if max_wait_s is None else max_wait_s
    with open_lock_file(home / BUILD_LOCK) as fd:
        held_by = _exclusive_holder(fd)
        if held_by is not None and f"run {run_id}," in held_by:
            yield
            return

        def held(_: int) -> HomeLockedError:
            return HomeLockedError(f"another build holds {home} ({_holder(fd)}); step {step} "
                                   f"of run {run_id} did not run")

        with flock(fd, shared=True, deadline=time.monotonic() + wait, give_up=held):
            # several steps may hold it at once: a fixed-width line, so none leaves a tail
            line = f"pid {os.getpid()}, run {run_id}, step {step}, since {utc_now():%Y-%m-%dT%H:%M:%SZ}"
            os.pwrite(fd, line.encode()[:_LINE].ljust(_LINE), 0)
            yield


_LINE = 256


class _Busy(Exception):
    pass


def _holder(fd: int) -> str:
    return os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown holder"


def _exclusive_holder(fd: int) -> str | None:
    """The line of whoever holds the lock exclusively now (a build), None when nobody does."""
    try:
        with flock(fd, shared=True, deadline=time.monotonic(), give_up=lambda _: _Busy()):
            return None
    except _Busy:
        return _holder(fd)
