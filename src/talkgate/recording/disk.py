"""The one thread of a process that performs recording file I/O, in submission order.

Every live recording appends to its file every half second. Handing each append to the event
loop's default executor costs the loop a future, a wake-up through its self-pipe and a task switch
per append, and, measured with 300 relayed calls (``bench/relay.py``), raised the relay's median
per-chunk latency from 4 ms to 100 ms. Appends go to this thread instead without any reply: the
loop only puts a job on a queue (a C call) and reads counters the thread advances. Opening a file,
which the loop must wait for, uses ``call``; finishing one does not come here (``SYNC_POOL``). One
thread keeps every recording's writes in order; the writes are small page-cache appends, far below
what one thread can do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("talkgate.recording")

# Where recordings are finished (``Recorder.close``): the rest of their audio written, the header
# patched, fdatasync. On the disk thread, 100 calls ending together waited for 100 syncs in a row
# (0.6-0.9 s for the last), and each also for every other live call's appends queued there before
# it; side by side, the filesystem commits the syncs together. Threads are made as needed, and a
# thread waiting for a disk costs no CPU.
SYNC_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="talkgate-sync")

T = TypeVar("T")
Job = tuple[Callable[..., Any], tuple[Any, ...], "concurrent.futures.Future[Any] | None"]


class DiskThread:
    def __init__(self, name: str = "talkgate-disk") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            # One job per call: nothing of a done job (its audio, its recorder) stays referenced
            # from this frame while the thread waits for the next one.
            self._do(self._jobs.get())

    @staticmethod
    def _do(job: Job) -> None:
        fn, args, future = job
        if future is not None and not future.set_running_or_notify_cancel():
            return
        try:
            result = fn(*args)
        except BaseException as exc:
            if future is None:
                log.exception("recording I/O job %s failed", getattr(fn, "__qualname__", fn))
            else:
                future.set_exception(exc)
        else:
            if future is not None:
                future.set_result(result)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the thread, after every job submitted before; nobody waits for it
        (``fn`` reports its own outcome)."""
        self._ensure_started()
        self._jobs.put((fn, args, None))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the thread, after every job submitted before, and wait for it."""
        self._ensure_started()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, args, future))
        return await asyncio.wrap_future(future)


DISK = DiskThread()
