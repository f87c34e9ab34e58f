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
from consentgen.group_commit import CommitterClosedError, LoopCommitter, ThreadCommitter


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


# --- ThreadCommitter --------------------------------------------------------------------


def test_thread_errors_stay_with_their_caller_and_commits_run_on_its_thread() -> None:
    commit = Recorder()

    async def main() -> list[object]:
        committer = ThreadCommitter("test-commit", commit, asyncio.get_running_loop())
        try:
            return await _outcomes([committer.submit(i) for i in (1, -2, 3)])
        finally:
            committer.close()

    got = asyncio.run(main())
    assert got[0] == 2 and got[2] == 6 and isinstance(got[1], Refused)
    assert sorted(commit.committed) == [-2, 1, 3]  # type: ignore[type-var]
    assert commit.threads == {"test-commit"}


def test_thread_a_raising_commit_fails_every_item_of_its_batch() -> None:
    commit = Recorder()
    entered, gate = threading.Event(), threading.Event()

    def held(items: Sequence[object]) -> list[object]:
        entered.set()
        gate.wait(10)  # the first item's commit waits: the next three queue as one batch
        return commit(items)

    async def main() -> tuple[object, list[object], object]:
        committer = ThreadCommitter("test-commit", held, asyncio.get_running_loop())
        try:
            first = committer.submit(1)
            assert await asyncio.to_thread(entered.wait, 10)  # taken alone, held at the gate
            batch = [committer.submit(i) for i in (2, "boom", 4)]
            gate.set()
            return await first, await _outcomes(batch), await committer.submit(6)
        finally:
            committer.close()

    first, batch, after = asyncio.run(main())
    assert first == 2 and after == 12
    assert len(batch) == 3 and all(isinstance(o, Broken) for o in batch)
    assert commit.committed == [1, 6]


def test_thread_close_commits_what_is_queued_and_refuses_later_submits() -> None:
    commit = Recorder()
    gate = threading.Event()

    def held(items: Sequence[object]) -> list[object]:
        gate.wait(10)
        return commit(items)

    async def main() -> list[object]:
        committer = ThreadCommitter("test-commit", held, asyncio.get_running_loop())
        queued = [committer.submit(i) for i in (1, 2, 3)]
        threading.Timer(0.05, gate.set).start()
        committer.close()  # joins: everything queued before it is committed
        assert sorted(commit.committed) == [1, 2, 3]  # type: ignore[type-var]
        with pytest.raises(CommitterClosedError):
            committer.submit(4)
        with pytest.raises(CommitterClosedError):
            committer.submit_threadsafe(5)
        return await _outcomes(queued)

    assert asyncio.run(main()) == [2, 4, 6]


def test_thread_submit_threadsafe_from_a_thread_gets_a_plain_future() -> None:
    commit = Recorder()

    async def main() -> list[object]:
        committer = ThreadCommitter("test-commit", commit, asyncio.get_running_loop())
        try:
            def caller(i: int) -> object:
                future = committer.submit_threadsafe(i)
                assert isinstance(future, concurrent.futures.Future)
                try:
                    return future.result(10)
                except Refused as exc:
                    return exc

            return await asyncio.gather(*(asyncio.to_thread(caller, i) for i in (3, -3)))
        finally:
            committer.close()

    good, refused = asyncio.run(main())
    assert good == 6 and isinstance(refused, Refused)


def test_thread_min_interval_gathers_concurrent_items_into_fewer_commits() -> None:
    commit = Recorder()
    entered, gate = threading.Event(), threading.Event()

    def held(items: Sequence[object]) -> list[object]:
        entered.set()
        gate.wait(10)
        return commit(items)

    async def main() -> None:
        committer = ThreadCommitter("test-commit", held, asyncio.get_running_loop(),
                                    min_interval_s=1.0)
        try:
            first = committer.submit(0)
            assert await asyncio.to_thread(entered.wait, 10)
            pair = [committer.submit(1), committer.submit(2)]  # queued while 0 commits
            gate.set()
            assert [await first, *await _outcomes(pair)] == [0, 2, 4]
            waits = []
            for i in range(3, 8):  # concurrent callers now: the interval gathers these
                waits.append(committer.submit(i))
                await asyncio.sleep(0.01)  # spread over ~50 ms, far inside the interval
            assert await _outcomes(waits) == [6, 8, 10, 12, 14]
        finally:
            committer.close()

    asyncio.run(main())
    assert commit.batches == [[0], [1, 2], [3, 4, 5, 6, 7]]


def test_thread_a_lone_callers_items_never_wait_out_the_interval() -> None:
    commit = Recorder()

    async def main() -> list[object]:
        committer = ThreadCommitter("test-commit", commit, asyncio.get_running_loop(),
                                    min_interval_s=30.0)
        try:  # one after another, as one client's requests: each its own batch at once
            return [await asyncio.wait_for(committer.submit(i), 10) for i in range(3)]
        finally:
            committer.close()

    assert asyncio.run(main()) == [0, 2, 4]
    assert commit.batches == [[0], [1], [2]]
