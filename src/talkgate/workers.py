"""``talkgate serve --workers N``: N server processes accepting on one listening socket.

The parent binds the port, migrates the database and (without an API key) runs the simulator; then
it starts N workers with multiprocessing's *spawn* (no fork of a process that has threads), hands
each the listening socket, restarts one that dies, and on SIGINT/SIGTERM asks them all to stop
gracefully. The kernel gives each new connection to one worker, and a WebSocket stays on the worker
that accepted it, so a relay, its upstream socket and its recording live in one process. What
crosses processes goes through the database, the store and, with ``TALKGATE_REDIS_URL``, Redis.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from talkgate.settings import Settings

log = logging.getLogger("talkgate.workers")

multiprocessing.allow_connection_pickling()  # sockets travel to spawned children as duplicated fds

STOP_GRACE_S = 30.0
CRASH_WINDOW_S = 5.0  # a worker that dies this soon after its start counts as a start failure
MAX_QUICK_CRASHES = 5  # in a row: the configuration is broken; stop instead of spinning


def metrics_dir(settings: Settings) -> str:
    """Where the workers' metrics meet (prometheus_client's multiprocess mode): the operator's
    ``PROMETHEUS_MULTIPROC_DIR``, else a folder in the data dir; emptied, as values of a former run
    would be summed in."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.data_dir / "metrics")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return str(path)


@dataclass
class Supervisor:
    """Starts ``count`` processes of ``target(index, *args)`` and keeps them running until stopped."""

    count: int
    target: Callable[..., None]
    args: tuple[Any, ...]
    procs: dict[int, BaseProcess] = field(default_factory=dict)
    started_at: dict[int, float] = field(default_factory=dict)
    stopping: bool = False

    def _start(self, index: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        proc = ctx.Process(target=self.target, args=(index, *self.args), name=f"talkgate-worker-{index}")
        proc.start()
        self.procs[index], self.started_at[index] = proc, time.monotonic()
        log.info("worker %d started (pid %s)", index, proc.pid)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if not self.stopping:
            log.info("%s: stopping %d worker(s)", signal.Signals(signum).name, len(self.procs))
        self.stopping = True

    def run(self) -> int:
        """Blocks until a signal stops the workers; returns the exit status for the parent."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        quick_crashes = 0
        status = 0
        try:
            for index in range(self.count):
                self._start(index)
            while not self.stopping:
                sentinels = {p.sentinel: i for i, p in self.procs.items()}
                ready = multiprocessing.connection.wait(list(sentinels), timeout=0.5)
                for sentinel in ready:
                    index = sentinels[sentinel]  # type: ignore[index]
                    proc = self.procs[index]
                    proc.join()
                    _forget_metrics(proc.pid)
                    if self.stopping:
                        break
                    lived = time.monotonic() - self.started_at[index]
                    quick_crashes = quick_crashes + 1 if lived < CRASH_WINDOW_S else 0
                    log.error("worker %d (pid %s) exited with %s", index, proc.pid, proc.exitcode)
                    if quick_crashes >= MAX_QUICK_CRASHES:
                        log.error("workers keep failing at start; giving up (see the errors above)")
                        self.stopping, status = True, 1
                        break
                    self._start(index)
        finally:
            self._stop_all()
            for s, handler in previous.items():
                signal.signal(s, handler)
        return status

    def _stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn closes sockets, relays end, recordings are stored
        deadline = time.monotonic() + STOP_GRACE_S
        for index, proc in self.procs.items():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.error("worker %d did not stop within %.0f s; killing it", index, STOP_GRACE_S)
                proc.kill()
                proc.join()


def _forget_metrics(pid: int | None) -> None:
    """A dead worker's live gauges must not count any more."""
    if pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
