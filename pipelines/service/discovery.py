"""`<home>/service.json`: how the home's own command line finds its running service.

Written (0600) once the service listens and removed when it stops; it holds the URL, the
process id and a token of the `owner` role made for this run alone. Whoever can read it
could read the ledger file itself, so it grants nothing new; a file left by a killed
service is recognised as stale (its process is gone, or it does not answer).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from consentgen.files import atomic_output

SERVICE_FILE = "service.json"


@dataclass(frozen=True)
class ServiceInfo:
    url: str
    pid: int
    token: str
    ca_file: str | None = None  # the TLS certificate to trust, when the service speaks TLS


def info_path(home: Path) -> Path:
    return Path(home) / SERVICE_FILE


def write_info(home: Path, info: ServiceInfo) -> Path:
    path = info_path(home)
    with atomic_output(path, private=True) as fh:
        json.dump(info.__dict__, fh, sort_keys=True)
    return path


def remove_info(home: Path, pid: int) -> None:
    """Remove the file if it is still this process's (a newer service may have taken over)."""
    found = read_info(home)
    if found is not None and found.pid == pid:
        info_path(home).unlink(missing_ok=True)


def read_info(home: Path) -> ServiceInfo | None:
    """The running service's details, or None (no file, a dead process, an unreadable file)."""
    try:
        raw = json.loads(info_path(home).read_text(encoding="utf-8"))
        info = ServiceInfo(**raw)
    except (OSError, ValueError, TypeError):
        return None
    if not _alive(info.pid):
        return None
    return info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
