"""Running ASGI apps with uvicorn on sockets we bind ourselves (so port 0 works)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

log = logging.getLogger("talkgate")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, **kwargs: Any) -> uvicorn.Config:
    kwargs.setdefault("log_config", None)
    kwargs.setdefault("ws_max_size", 4 * 1024 * 1024)
    kwargs.setdefault("lifespan", "on")
    kwargs.setdefault("ws", "websockets-sansio")
    return uvicorn.Config(app, **kwargs)


class Server(uvicorn.Server):
    """uvicorn's server, whose shutdown ends the app's calls before it closes connections (when
    the app has a ``runtime`` with ``end_calls``, as talkgate's has): a relay then ends
    ``server_shutdown``, its recording stored and its app told over the still-open socket, rather
    than ``disconnected`` when uvicorn closes the socket under it."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections while the calls end
        runtime = getattr(self.config.app, "runtime", None)
        if runtime is not None and hasattr(runtime, "end_calls"):
            try:
                await runtime.end_calls()
            except Exception:  # the lifespan's shutdown tries again
                log.exception("ending the calls at shutdown failed")
        await super().shutdown(sockets)


class ServerThread:
    """One uvicorn server on its own event loop in a daemon thread, bound to ``host:port``."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        **kwargs: Any,
    ) -> None:
        self.sock = sock or bind(host, port)
        self.host, self.port = self.sock.getsockname()[:2]
        self.server = Server(uvicorn_config(app, **kwargs))
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"uvicorn:{self.port}")

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        finally:
            # Tasks the libraries leave behind (a socket's ping or writer) end here, not at exit.
            leftover = asyncio.all_tasks(self.loop)
            for task in leftover:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def start(self, timeout: float = 20.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)  # readiness poll of uvicorn's own flag
        return self

    def stop(self, timeout: float = 20.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self.sock.close()


@contextlib.contextmanager
def running(app: Any, **kwargs: Any) -> Iterator[ServerThread]:
    server = ServerThread(app, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()
