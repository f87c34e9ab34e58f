"""One retry policy: try again while a failure is worth waiting out, until a deadline.

Everything in consentgen that waits for another process (the DuckDB lock file, DuckDB's
own lock) retries through `retry_until`, so "bounded total wait, then one clear error"
is written once. The backoff itself is tenacity's; callers pick the shape (polling or
jittered exponential) that suits what they wait for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception, stop_after_delay
from tenacity.wait import wait_base

T = TypeVar("T")


class _within(wait_base):
    """`inner`'s pause, cut short so the last attempt lands on the deadline, not past it.

    tenacity's `stop_after_delay` checks the clock only after an attempt, so an uncut
    pause could overshoot the budget by a whole backoff step; `stop_before_delay` would
    give up early instead, before the holder had the full budget to let go.
    """

    def __init__(self, inner: wait_base, budget_s: float) -> None:
        self.inner = inner
        self.budget_s = budget_s

    def __call__(self, retry_state: RetryCallState) -> float:
        left = self.budget_s - (retry_state.seconds_since_start or 0.0)
        return max(0.0, min(self.inner(retry_state), left))


def retry_until(
    attempt: Callable[[], T],
    *,
    retry_on: Callable[[BaseException], bool],
    wait: wait_base,
    deadline: float,
    give_up: Callable[[int], BaseException],
) -> T:
    """Call `attempt` until it returns, pausing per `wait` between tries.

    `deadline` is a `time.monotonic()` instant, so several waits in a row (e.g. a lock
    file, then the database) share one budget. A failure `retry_on` rejects propagates at
    once, unchanged; once the deadline has passed, the error `give_up(attempts)` builds
    is raised instead, chained to the last failure.
    """
    budget_s = deadline - time.monotonic()
    retrying = Retrying(
        retry=retry_if_exception(retry_on),
        wait=_within(wait, budget_s),
        stop=stop_after_delay(budget_s),
    )
    try:
        return retrying(attempt)
    except RetryError as exc:
        last = exc.last_attempt
        raise give_up(last.attempt_number) from last.exception()
