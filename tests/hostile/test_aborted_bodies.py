"""Clients that go away in the middle of a request body, on every kind of route: each costs one
short log line at most (held to the per-peer log limit), never a traceback."""

from __future__ import annotations

import logging
import time

import pytest

from tests.support.gate import start_gate
from tests.support.hostile import count
from tests.support.raw_http import raw_post
from tests.support.timing import wait_until

WEBHOOK_SECRET = "whsec_hostile_0123456789"
# The webhook spools its body itself; the others are JSON routes read through BodyLimit. (The
# chunk upload answers 401 to a request without a token before reading its body.)
ROUTES = ["/api/elevenlabs/webhook", "/api/dev/token", "/conversation/start-session"]


@pytest.fixture
def abort_gate(tmp_path, simulator):
    g = start_gate(tmp_path, simulator, elevenlabs_webhook_secret=WEBHOOK_SECRET, peer_log_lines_per_minute=5)
    yield g
    g.server.stop()


def left_lines(caplog, path: str = "") -> list[logging.LogRecord]:
    return [r for r in caplog.records if "left before" in r.getMessage() and path in r.getMessage()]


async def abort(url: str, path: str, peer: str) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": "500000"}
    if path.endswith("webhook"):
        headers["ElevenLabs-Signature"] = f"t={int(time.time())},v0={'ab' * 32}"
    post = await raw_post(url + path, headers, b'{"a": "' + b"x" * 100_000, peer=peer)
    await post.close()


@pytest.mark.parametrize("path", ROUTES)
async def test_a_body_cut_off_mid_way_is_one_short_line(abort_gate, path, no_unhandled_errors):
    caplog = no_unhandled_errors
    await abort(abort_gate.url, path, "127.0.0.2")
    count("aborted request bodies")
    await wait_until(lambda: left_lines(caplog, path))
    line = left_lines(caplog, path)[0]
    assert line.exc_info is None and "\n" not in line.getMessage() and len(line.getMessage()) < 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_many_aborts_from_one_peer_are_held_to_its_log_limit(abort_gate, no_unhandled_errors):
    caplog = no_unhandled_errors
    for _ in range(12):
        await abort(abort_gate.url, "/api/dev/token", "127.0.0.3")
    count("aborted request bodies", 12)
    await wait_until(lambda: len(left_lines(caplog)) >= 5)
    # Another peer still gets its line, and it comes after any of the first peer's.
    await abort(abort_gate.url, "/api/dev/token", "127.0.0.4")
    await wait_until(lambda: any("127.0.0.4" in r.getMessage() for r in left_lines(caplog)))
    assert len([r for r in left_lines(caplog) if "127.0.0.3" in r.getMessage()]) == 5
