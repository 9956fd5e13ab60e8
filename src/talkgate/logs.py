"""Logging set-up: text for a terminal, JSON lines for a log pipeline, and on every line the
conversation it concerns (a context variable set by the socket handlers and media socket, which
the tasks they start inherit)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

conversation_id: ContextVar[str | None] = ContextVar("conversation_id", default=None)


# Credentials that travel in URLs and headers (signed media and playback URLs, the provider's
# signed conversation URL, tokens, a database URL's ``?password=``): access logs, library debug
# lines and talkgate doctor's report would print them.
SECRET_IN_TEXT = re.compile(
    r"(?P<name>(?:conversation_)?signature=|token=|api_key=|(?:ssl)?password=|passwd=|Bearer\s+)"
    r"(?P<value>[^&\s\"',]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return SECRET_IN_TEXT.sub(lambda m: m["name"] + "[redacted]", text)


class ContextFilter(logging.Filter):
    """Stamps each record with the current conversation and this process's worker index, and
    takes credentials out of its text."""

    def __init__(self, worker: int | None) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        cid = record.conversation_id = conversation_id.get()
        record.worker = self.worker
        record.where = ("" if self.worker is None else f"[worker {self.worker}] ") + (
            f"[{cid}] " if cid else ""
        )
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(where)s%(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "conversation_id": getattr(record, "conversation_id", None),
        }
        worker = getattr(record, "worker", None)
        if worker is not None:
            entry["worker"] = worker
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(level: str, fmt: str = "text", worker: int | None = None) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter(worker))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)


class PeerNoise:
    """A token bucket per peer for log lines that a peer's bad input causes: a peer may write
    ``per_minute`` such lines a minute (in bursts of as many); the rest are counted, and the count
    is for the caller to log later (``drain``). At most ``max_peers`` buckets are kept: the oldest
    goes first, so a flood of addresses costs bounded memory."""

    def __init__(
        self, per_minute: int, *, max_peers: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = float(per_minute)
        self.rate_per_s = per_minute / 60.0
        self.max_peers = max_peers
        self.clock = clock
        # peer → [tokens, last refill, lines suppressed since the last drain]
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def allow(self, peer: str) -> bool:
        now = self.clock()
        bucket = self._buckets.get(peer)
        if bucket is None:
            if len(self._buckets) >= self.max_peers:
                self._buckets.popitem(last=False)
            bucket = self._buckets[peer] = [self.capacity, now, 0]
        else:
            self._buckets.move_to_end(peer)
            bucket[0] = min(self.capacity, bucket[0] + (now - bucket[1]) * self.rate_per_s)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        bucket[2] += 1
        return False

    def drain(self, peer: str) -> int:
        """Lines suppressed for ``peer`` since the last drain (the bucket itself stays)."""
        bucket = self._buckets.get(peer)
        if bucket is None:
            return 0
        suppressed, bucket[2] = int(bucket[2]), 0
        return suppressed

    def line(self, logger: logging.Logger, peer: str, msg: str, *args: object) -> None:
        """One WARNING line about ``peer``'s input, unless its bucket is empty."""
        if self.allow(peer):
            logger.warning(msg, *args)

    def report(self, logger: logging.Logger, peer: str) -> None:
        """Log how many lines were suppressed for ``peer`` (when its socket closes)."""
        suppressed = self.drain(peer)
        if suppressed:
            logger.warning("peer %s: %d more log lines about its bad input were suppressed", peer, suppressed)


def short_exception(exc: BaseException, limit: int = 120) -> str:
    """An exception as a few words for one log line: its type and the start of its message."""
    text = str(exc).replace("\n", " ")
    return type(exc).__name__ + (f": {text[:limit]}" if text else "")


class LibraryNoiseFilter(logging.Filter):
    """For python-socketio's and python-engineio's loggers, whose ERROR lines are mostly a peer's
    bad input with a traceback (e.g. "post request handler error"): one short line each, no
    traceback, and all of them together held to one ``PeerNoise`` bucket (the library's records say
    nothing of the peer). Suppressed lines are counted in the next line that passes."""

    def __init__(self, noise: PeerNoise, key: str) -> None:
        super().__init__()
        self.noise = noise
        self.key = key

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.noise.allow(self.key):
            return False
        message = record.getMessage()[:200]
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message} ({short_exception(record.exc_info[1])})"
        suppressed = self.noise.drain(self.key)
        if suppressed:
            message += f" [{suppressed} similar lines suppressed]"
        record.msg, record.args, record.exc_info, record.exc_text = message, None, None, None
        return True


def library_logger(name: str, noise: PeerNoise) -> logging.Logger:
    """A logger to hand to python-socketio/engineio (``logger=``, ``engineio_logger=``): WARNING and
    up (their INFO lines are one per packet), through ``LibraryNoiseFilter``, to talkgate's handlers."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.WARNING)
    for old in [f for f in logger.filters if isinstance(f, LibraryNoiseFilter)]:
        logger.removeFilter(old)
    logger.addFilter(LibraryNoiseFilter(noise, name))
    return logger
