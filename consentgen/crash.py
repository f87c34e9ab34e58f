"""Named crash points: where a test kills the running process, to prove it recovers.

Recovery code that only ever runs after an exception is recovery from a polite failure;
a power cut, the OOM killer or `kill -9` give no `finally`. So the steps that write in
several moves (publish, withdrawal, training, sampling) name the gaps between their moves
with `crashpoint("publish.renamed")` and the like, and a test runs the real step in a
subprocess with `CONSENTGEN_CRASH_AT=<name>`: at that point the process SIGKILLs itself,
exactly as an outside kill would, and the test checks that the next build or reconcile
leaves a consistent home. Unset (always, outside such tests), a crash point costs one
environment look-up.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "CONSENTGEN_CRASH_AT"


def crashpoint(name: str) -> None:
    """SIGKILL this process here when `$CONSENTGEN_CRASH_AT` is `name`."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
