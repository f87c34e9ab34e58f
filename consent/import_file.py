"""Reading a consent import file: regular files only, and never more than a bound.

An import names a path a person typed or a feed dropped; what is there may be a FIFO (the
read would hang), a link to /dev/zero (it would read without end into a MemoryError), a
directory or a device. Each is refused in one line before anything is parsed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from consentgen.errors import ConfigError

MAX_IMPORT_BYTES = 256 * 1024 * 1024
"""The largest consent import file read (256 MiB, about two million CSV lines): the file
is read whole before its one transaction, so its size is bounded, never the memory left."""


def read_import_text(path: Path) -> str:
    """The file's text, read only from a regular file and only up to `MAX_IMPORT_BYTES`.

    The file is opened without blocking and checked on the open descriptor (so what was
    checked is what is read, symlinks resolved): a FIFO would otherwise hang the import
    and a link to /dev/zero read without end into a MemoryError.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            target = path.resolve()
            shown = f"{path} (-> {target})" if target != path.absolute() else str(path)
            raise ConfigError(f"{shown}: is {_kind(info.st_mode)}, not a regular file; "
                              "consent imports read regular files only")
        if info.st_size > MAX_IMPORT_BYTES:
            raise ConfigError(f"{path}: {info.st_size:,} bytes is over the import limit of "
                              f"{MAX_IMPORT_BYTES:,}; split the file")
        data = _read_bounded(fd, path)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _read_bounded(fd: int, path: Path) -> bytes:
    """At most `MAX_IMPORT_BYTES` from `fd` (a file still growing past it is refused)."""
    chunks, total = [], 0
    try:
        while chunk := os.read(fd, min(1 << 20, MAX_IMPORT_BYTES + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_IMPORT_BYTES:
                raise ConfigError(f"{path}: more than {MAX_IMPORT_BYTES:,} bytes, the import "
                                  "limit; split the file")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return b"".join(chunks)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"
