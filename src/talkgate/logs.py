"""Logging set-up: text for a terminal, JSON lines for a log pipeline, and on every line the
conversation it concerns (a context variable set by the socket handlers and media socket, which
the tasks they start inherit)."""

from __future__ import annotations

import json
import logging
import re
import time
from contextvars import ContextVar
from typing import Any

conversation_id: ContextVar[str | None] = ContextVar("conversation_id", default=None)


# Credentials that travel in URLs and headers (signed media and playback URLs, the provider's
# signed conversation URL, tokens): access logs and library debug lines would print them.
SECRET_IN_TEXT = re.compile(
    r"(?P<name>(?:conversation_)?signature=|token=|api_key=|Bearer\s+)(?P<value>[^&\s\"',]+)",
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
