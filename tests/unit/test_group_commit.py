"""The group-commit queue with fake transactions: batching, failing alone, abandoned and stopped
starts (no database)."""

import asyncio

import pytest

from talkgate.persistence.group_commit import GroupCommit

pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]


class FakeStore:
    """Commits as a database would, one transaction at a time; ``bad`` items make a transaction fail."""

    def __init__(self, bad: frozenset[str] = frozenset()) -> None:
        self.bad = bad
        self.transactions: list[list[str]] = []
        self.abandoned: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def commit_batch(self, items: list[str]) -> list[str]:
        await self.gate.wait()
        if self.bad & set(items):
            raise RuntimeError("constraint")
        self.transactions.append(items)
        return [f"row:{item}" for item in items]

    async def commit_one(self, item: str) -> str:
        (row,) = await self.commit_batch([item])
        return row

    async def end(self, row: str) -> None:
        self.abandoned.append(row)

    def queue(self, max_batch: int = 250) -> GroupCommit[str, str]:
        return GroupCommit(
            commit_batch=self.commit_batch,
            commit_one=self.commit_one,
            abandoned=self.end,
            max_batch=max_batch,
        )


async def test_items_arriving_during_a_transaction_share_the_next_one():
    store = FakeStore()
    store.gate.clear()
    queue = store.queue()
    first = asyncio.ensure_future(queue.submit("a"))
    await asyncio.sleep(0)  # "a" is in its transaction, held at the gate
    rest = [asyncio.ensure_future(queue.submit(x)) for x in "bcd"]
    store.gate.set()
    assert [await first, *await asyncio.gather(*rest)] == ["row:a", "row:b", "row:c", "row:d"]
    assert store.transactions == [["a"], ["b", "c", "d"]]


async def test_a_batch_is_bounded():
    store = FakeStore()
    queue = store.queue(max_batch=2)
    assert await asyncio.gather(*(queue.submit(x) for x in "abcde")) == [f"row:{x}" for x in "abcde"]
    assert store.transactions == [["a", "b"], ["c", "d"], ["e"]]


async def test_a_failing_item_fails_alone():
    store = FakeStore(bad=frozenset({"b"}))
    queue = store.queue()
    results = await asyncio.gather(*(queue.submit(x) for x in "abc"), return_exceptions=True)
    assert results[0] == "row:a" and results[2] == "row:c"
    assert isinstance(results[1], RuntimeError)
    assert store.transactions == [["a"], ["c"]]


async def test_an_item_committed_after_its_caller_gave_up_is_handed_to_abandoned():
    store = FakeStore()
    store.gate.clear()
    queue = store.queue()
    waiting = asyncio.ensure_future(queue.submit("a"))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    store.gate.set()
    await queue.settled()
    assert (store.transactions, store.abandoned) == ([["a"]], ["row:a"])


async def test_stopping_cancels_every_waiting_item_and_the_next_submit_starts_anew():
    store = FakeStore()
    store.gate.clear()
    queue = store.queue()
    waiting = [asyncio.ensure_future(queue.submit(x)) for x in "abc"]
    await asyncio.sleep(0)  # the items are queued; their committing task has not run yet
    assert queue.committing
    queue.stop()  # before its transaction even began: the waiting items are cancelled all the same
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert [type(r) for r in results] == [asyncio.CancelledError] * 3
    store.gate.set()
    assert await queue.submit("d") == "row:d"
    assert not queue.committing


async def test_stopping_a_transaction_under_way_cancels_its_items():
    store = FakeStore()
    store.gate.clear()
    queue = store.queue()
    waiting = [asyncio.ensure_future(queue.submit(x)) for x in "ab"]
    await asyncio.sleep(0)  # the items are queued and the committing task is created
    await asyncio.sleep(0)  # it has begun its transaction
    queue.stop()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert [type(r) for r in results] == [asyncio.CancelledError] * 2
    assert not queue.committing
