"""Advisory file locks (flock) that wait their turn, boundedly, through the one retry policy.

A lock is released by the kernel when its holder dies, however it dies (kill -9 too),
so a crashed build or publish never leaves a home locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tenacity import wait_exponential

from consentgen.retry import retry_until

POLL = wait_exponential(multiplier=0.001, exp_base=1.5, max=0.02)
"""1 ms growing to 20 ms: a flock is cheap to try, and its holder lets go at any moment."""


@contextmanager
def flock(fd: int, *, shared: bool, deadline: float,
          give_up: Callable[[int], BaseException]) -> Iterator[None]:
    """Hold `fd`'s flock (shared or exclusive) until the block ends, waiting until
    `deadline` (a `time.monotonic()` instant) for it, then raising `give_up(attempts)`."""
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
    retry_until(lambda: fcntl.flock(fd, mode), retry_on=lambda e: isinstance(e, BlockingIOError),
                wait=POLL, deadline=deadline, give_up=give_up)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def open_lock_file(path: Path) -> Iterator[int]:
    """A lock file's descriptor (created 0644 if missing), closed at the end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield fd
    finally:
        os.close(fd)
