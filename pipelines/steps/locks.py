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
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown holder"
            return HomeLockedError(f"another build is running on {home} ({holder}); "
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
