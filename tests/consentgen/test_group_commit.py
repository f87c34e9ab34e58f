"""Group commit (consentgen.group_commit): who gets which outcome, and what shutdown keeps.

Real event loops and threads, and a commit function that records the batches it was
given: a caller must get its own item's outcome and nobody else's, a commit that raises
must fail every caller of its batch, and close() must commit what is queued and refuse
what comes after.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Sequence

import pytest

from consentgen.errors import ConsentgenError
from consentgen.group_commit import CommitterClosedError, LoopCommitter


class Refused(ConsentgenError):
    """One item refused alone."""


class Broken(ConsentgenError):
    """The whole transaction failed."""


class Recorder:
    """A commit that doubles each item, refuses negative ones alone, and raises for a
    batch holding "boom"; it keeps every batch it committed (on whichever thread)."""

    def __init__(self) -> None:
        self.batches: list[list[object]] = []
        self.threads: set[str] = set()

    def __call__(self, items: Sequence[object]) -> list[object]:
        self.threads.add(threading.current_thread().name)
        if "boom" in items:
            raise Broken("the transaction failed")
        self.batches.append(list(items))
        return [Refused(f"{i} refused") if isinstance(i, int) and i < 0 else i * 2
                for i in items]  # type: ignore[operator]

    @property
    def committed(self) -> list[object]:
        return [i for batch in self.batches for i in batch]


async def _outcomes(futures: Sequence[asyncio.Future]) -> list[object]:
    return list(await asyncio.gather(*futures, return_exceptions=True))


# --- LoopCommitter ----------------------------------------------------------------------


def test_loop_items_of_one_turn_are_one_batch_and_errors_stay_with_their_caller() -> None:
    commit = Recorder()

    async def main() -> list[object]:
        committer = LoopCommitter(commit, asyncio.get_running_loop())
        return await _outcomes([committer.submit(i) for i in (1, -2, 3)])

    got = asyncio.run(main())
    assert commit.batches == [[1, -2, 3]]
    assert got[0] == 2 and got[2] == 6
    assert isinstance(got[1], Refused) and str(got[1]) == "-2 refused"


def test_loop_a_raising_commit_fails_its_whole_batch_and_the_next_batch_commits() -> None:
    commit = Recorder()

    async def main() -> tuple[list[object], object]:
        committer = LoopCommitter(commit, asyncio.get_running_loop())
        failed = await _outcomes([committer.submit(i) for i in (1, "boom", 3)])
        after = await committer.submit(5)
        return failed, after

    failed, after = asyncio.run(main())
    assert all(isinstance(o, Broken) for o in failed)
    assert after == 10 and commit.committed == [5]


def test_loop_max_batch_splits_a_turn_into_several_transactions() -> None:
    commit = Recorder()

    async def main() -> list[object]:
        committer = LoopCommitter(commit, asyncio.get_running_loop(), max_batch=2)
        got = await _outcomes([committer.submit(i) for i in range(5)])
        assert (committer.batches, committer.items) == (3, 5)
        return got

    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    assert commit.batches == [[0, 1], [2, 3], [4]]


def test_loop_close_commits_what_is_queued_and_refuses_later_submits() -> None:
    commit = Recorder()

    async def main() -> list[object]:
        committer = LoopCommitter(commit, asyncio.get_running_loop())
        queued = [committer.submit(i) for i in (1, 2)]
        committer.close()  # before the loop's turn that would have flushed them
        assert commit.batches == [[1, 2]]
        with pytest.raises(CommitterClosedError):
            committer.submit(3)
        late = committer.submit_threadsafe(4)  # from the loop's own coroutine machinery
        got = await _outcomes(queued)
        with pytest.raises(CommitterClosedError):
            await asyncio.wrap_future(late)
        return got

    assert asyncio.run(main()) == [2, 4]
    assert commit.committed == [1, 2]


def test_loop_submit_threadsafe_from_threads_commits_on_the_loop_thread() -> None:
    commit = Recorder()

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        committer = LoopCommitter(commit, loop)
        with concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="caller") as pool:
            waits = [pool.submit(lambda i=i: committer.submit_threadsafe(i).result(10))
                     for i in (1, -1, 7, 8)]
            return await _outcomes([asyncio.wrap_future(w) for w in waits])

    got = asyncio.run(main())
    assert got[0] == 2 and got[2] == 14 and got[3] == 16
    assert isinstance(got[1], Refused)
    assert sorted(commit.committed) == [-1, 1, 7, 8]  # type: ignore[type-var]
    assert commit.threads == {"MainThread"}


def test_loop_a_cancelled_caller_is_left_out_of_the_batch() -> None:
    commit = Recorder()

    async def main() -> list[object]:
        committer = LoopCommitter(commit, asyncio.get_running_loop())
        gone, kept = committer.submit(1), committer.submit(2)
        gone.cancel()
        return [await kept]

    assert asyncio.run(main()) == [4]
    assert commit.batches == [[2]]
