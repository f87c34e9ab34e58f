"""Writing files so that a reader sees the old content or the new, never half of it,
and removing folders so that a crash half-way leaves only a hidden leftover."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike[str]) -> None:
    """Make everything below `root` durable before a rename publishes it.

    Files first, then folders (deepest first, `root` last), so that once the rename is on
    disk no reader can find an entry whose content or name is still only in the cache.
    """
    folders = []
    for folder, _, names in os.walk(root, topdown=False):
        for name in names:
            with open(os.path.join(folder, name), "rb") as fh:
                os.fsync(fh.fileno())
        folders.append(folder)
    for folder in folders:
        fsync_dir(folder)


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "w", *,
                  private: bool = False) -> Iterator[Any]:
    """Write to a temporary sibling, fsync, then rename over `path` (and fsync the folder).

    On any error the temporary file is removed and `path` is left as it was. The file gets
    the mode `open()` would give a new file (0666 less the umask), not mkstemp's 0600: an
    atomically written file (`releases/LATEST`, a manifest) is as readable as the rest.
    `private` keeps it 0600 (a file holding a secret).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as fh:
            os.fchmod(fh.fileno(), 0o600 if private else 0o666 & ~current_umask())
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def current_umask() -> int:
    """The process's umask, read without changing it (Linux reports it in /proc).

    Elsewhere it is read the only portable way, by setting and restoring it, which is
    not safe against another thread creating a file in between.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def discard_tree(path: str | os.PathLike[str]) -> bool:
    """Remove a folder (or file) so that no crash leaves it half there under its name.

    It is first renamed to a hidden sibling (`.<name>.discard-<hex>`), one atomic step,
    then deleted; a crash during the deletion leaves only that hidden name, which the
    sweep of its folder removes. False when `path` was not there.
    """
    path = Path(path)
    aside = path.with_name(f".{path.name}.discard-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)
    return True
