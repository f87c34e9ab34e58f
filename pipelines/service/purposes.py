"""The declared-purpose rule for appends through the service, as for the CLI's.

A grant (or a revoke of consent nobody recorded) for a purpose the build file does not
declare is refused naming the field: a misspelt purpose would be recorded forever while
the subject's real consent stays untouched. A revoke of consent on record always goes
through. The build file is re-read only when it changes (one `stat` per request).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import anyio

from consent import Action, ConsentEvent
from pipelines.service.http_errors import ApiError
from pipelines.service.runtime import ServiceRuntime

_cache: dict[int, tuple[int | None, frozenset[str]]] = {}
_paths: dict[int, Path] = {}
_guard = threading.Lock()


def _known_now(runtime: ServiceRuntime) -> tuple[frozenset[str] | None, int | None]:
    """The cached declared purposes while the build file is unchanged (else None), and the
    file's stamp now (None without a file). One `stat`; the home is resolved once."""
    from pipelines.buildfile import build_file_path

    with _guard:
        path = _paths.get(id(runtime))
        if path is None:  # resolving the home is ~10% of an append: once per runtime
            path = _paths[id(runtime)] = build_file_path(runtime.home)
        hit = _cache.get(id(runtime))
    try:
        stamp: int | None = path.stat().st_mtime_ns
    except FileNotFoundError:
        stamp = None
    fresh = hit is not None and stamp is not None and hit[0] == stamp
    return (hit[1] if fresh else None), stamp


def declared(runtime: ServiceRuntime) -> frozenset[str]:
    from pipelines.buildfile import declared_purposes
    from pipelines.settings import DEFAULT_PURPOSE

    known, stamp = _known_now(runtime)
    if known is not None:
        return known
    if stamp is None:  # an old home: the default and what its ledger holds, as the CLI reads it
        known = frozenset([DEFAULT_PURPOSE, *runtime.ledger.purposes()])
    else:
        known = frozenset(declared_purposes(runtime.home))
    with _guard:
        _cache[id(runtime)] = (stamp, known)
    return known


def check_purposes(runtime: ServiceRuntime, events: Sequence[ConsentEvent]) -> None:
    known = declared(runtime)
    for i, event in enumerate(events):
        if event.purpose in known:
            continue
        if event.action is Action.REVOKE and runtime.ledger.events(
                subject_id=event.subject_id, purpose=event.purpose, limit=1):
            continue
        where = f"[{i}].purpose" if len(events) > 1 else "purpose"
        raise ApiError(422, "undeclared_purpose", f"{where}: purpose {event.purpose!r} is not "
                       f"declared (declared: {', '.join(sorted(known))}); add it to purposes in "
                       "the home's consentgen.toml", where)


async def check_purposes_async(runtime: ServiceRuntime, events: Sequence[ConsentEvent]) -> None:
    """`check_purposes` for a handler on the event loop: on the loop while every purpose is
    a declared one already known (the common case, a `stat`); in the thread pool when the
    build file must be read or the ledger asked (a revoke of an undeclared purpose scans
    it), so one such request never stalls every other caller."""
    known, _ = _known_now(runtime)
    if known is not None and all(e.purpose in known for e in events):
        return
    await anyio.to_thread.run_sync(check_purposes, runtime, events)
