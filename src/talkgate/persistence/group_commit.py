"""Group commit: writes that arrive while a transaction is under way are committed together in
the next one.

A burst of apps connecting at once makes the conversation start hot: one start took about 2 ms
of the process (SQLAlchemy's unit of work, the driver's round trips), and on SQLite's one
connection they queued one after another: 500 simultaneous starts waited 1.9 s at the median
for their turn (``bench/relay.py``). Batched, they share one transaction's round trips.

The queue knows nothing of SQL: it is given how to commit a batch in one transaction and how to
commit one item alone (when the batch failed, each item is tried alone and fails alone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger("talkgate.persistence")

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(slots=True)
class _Waiting(Generic[Item, Result]):
    item: Item
    done: asyncio.Future[Result] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupCommit(Generic[Item, Result]):
    """Queues items and commits them in batches of at most ``max_batch`` (which bounds one
    transaction's time). ``commit_batch`` commits several items in one transaction and returns
    their results in order; ``commit_one`` commits one item alone; ``abandoned`` is told of a
    result whose caller stopped waiting before it was committed (to undo or end it)."""

    def __init__(
        self,
        *,
        commit_batch: Callable[[list[Item]], Awaitable[list[Result]]],
        commit_one: Callable[[Item], Awaitable[Result]],
        abandoned: Callable[[Result], Awaitable[None]],
        max_batch: int,
    ) -> None:
        self._commit_batch = commit_batch
        self._commit_one = commit_one
        self._abandoned = abandoned
        self._max_batch = max_batch
        self._queue: list[_Waiting[Item, Result]] = []
        self._committer: asyncio.Future[None] | None = None
        self._cleanups: set[asyncio.Future[None]] = set()

    async def submit(self, item: Item) -> Result:
        """Commit ``item`` with whatever else is waiting; its result once committed."""
        waiting: _Waiting[Item, Result] = _Waiting(item)
        self._queue.append(waiting)
        if self._committer is None:
            self._committer = asyncio.ensure_future(self._drain())
            self._committer.add_done_callback(self._cancelled_before_start)
        try:
            # Shielded: a caller that stops waiting does not cancel the others' transaction.
            return await asyncio.shield(waiting.done)
        except asyncio.CancelledError:
            waiting.done.add_done_callback(self._on_abandoned)
            raise

    @property
    def committing(self) -> bool:
        """A transaction of this queue is under way (or about to begin)."""
        return self._committer is not None

    async def settled(self) -> None:
        """Once nothing is queued, committing or being cleaned up (tests; an orderly stop)."""
        while self._committer is not None or self._cleanups:
            await asyncio.gather(*filter(None, [self._committer, *self._cleanups]), return_exceptions=True)

    def stop(self) -> None:
        """Cancel the transaction under way: every item it holds or that waits is cancelled (the
        next ``submit`` starts anew). What a stopping server does to its tasks."""
        if self._committer is not None:
            self._committer.cancel()

    def _on_abandoned(self, done: asyncio.Future[Result]) -> None:
        """An item committed after its caller gave up: nobody will finish it, so hand it to
        ``abandoned`` now (a start left "active" for ever otherwise)."""
        if done.cancelled() or done.exception() is not None:
            return
        task = asyncio.ensure_future(self._abandoned(done.result()))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    def _cancelled_before_start(self, committer: asyncio.Future[None]) -> None:
        """A committer cancelled before it ran never reached its ``finally``: do its part."""
        if self._committer is committer:
            self._committer = None
            left, self._queue = self._queue, []
            for waiting in left:
                waiting.done.cancel()

    async def _drain(self) -> None:
        batch: list[_Waiting[Item, Result]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                await self._commit(batch)
        finally:
            self._committer = None
            # Cancelled (the server stopping): no waiting item may hang on a transaction that is gone.
            left, self._queue = batch + self._queue, []
            for waiting in left:
                waiting.done.cancel()

    async def _commit(self, batch: list[_Waiting[Item, Result]]) -> None:
        if len(batch) > 1:
            try:
                results = await self._commit_batch([waiting.item for waiting in batch])
            except Exception as exc:  # each item is tried alone, and fails alone
                log.debug("%d writes failed together (%s): trying each alone", len(batch), exc)
            else:
                for waiting, result in zip(batch, results, strict=True):
                    waiting.done.set_result(result)
                return
        for waiting in batch:
            try:
                waiting.done.set_result(await self._commit_one(waiting.item))
            except Exception as exc:
                waiting.done.set_exception(exc)
