"""Debian's Chromium driven by Playwright, with a fake microphone playing a speech WAV, against
``talkgate serve`` run as `make run` runs it: no API key, so with the built-in simulator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from talkgate.codecs import decode_file
from talkgate.serving import bind
from tests.support.browser import new_page, require
from tests.support.timing import TIMEOUT, poll_until

CHROMIUM = "/usr/lib/chromium/chromium"
SPEECH = "Push to talk test. The quick brown fox jumps over the lazy dog. One two three four five."


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> tuple[Path, bytes]:
    """espeak-ng speech (22.05 kHz WAV) for the fake microphone, and the same as 16 kHz PCM16."""
    require("espeak-ng", shutil.which("espeak-ng") is not None)
    path = tmp_path_factory.mktemp("mic") / "speech.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), SPEECH], check=True)
    return path, decode_file(path.read_bytes(), 16000)


@pytest.fixture(scope="module")
def chromium(speech_wav):
    # Module scope: sync Playwright keeps an event loop running while it is open, which the async
    # tests of later modules must not meet.
    require("Debian's chromium", os.path.exists(CHROMIUM))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={speech_wav[0]}%noloop",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        yield browser
        browser.close()


class Talkgate:
    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path, database: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log
        self.database = database  # SQLite, in TALKGATE_DATA_DIR


@pytest.fixture
def serve_talkgate(tmp_path) -> Iterator[Callable[..., Talkgate]]:
    """Starts ``talkgate serve`` with the given environment on top of a clean one (no
    ``ELEVENLABS_``/``TALKGATE_`` variables of the machine's); each is stopped afterwards."""
    started: list[Talkgate] = []

    def serve(**extra: str) -> Talkgate:
        sock = bind("127.0.0.1", 0)
        port = sock.getsockname()[1]
        sock.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ELEVENLABS_", "TALKGATE_"))}
        home = tmp_path / f"talkgate-{len(started)}"
        env.update({"TALKGATE_DATA_DIR": str(home / "data"), "TALKGATE_PORT": str(port), **extra})
        home.mkdir()
        log = home / "talkgate.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "talkgate.cli", "serve"], env=env, stdout=out, stderr=out
            )
        url = f"http://127.0.0.1:{port}"
        started.append(Talkgate(url, proc, log, home / "data" / "talkgate.db"))

        def healthy() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        poll_until(healthy, TIMEOUT * 3, what=f"talkgate serve starting (log: {log})")
        return started[-1]

    yield serve
    for server in started:
        server.proc.terminate()
        server.proc.wait(timeout=TIMEOUT)


@pytest.fixture
def talkgate(serve_talkgate) -> Talkgate:
    """As `make run` runs it: no API key, so with the built-in simulator."""
    return serve_talkgate()


@pytest.fixture
def page(chromium, talkgate):
    page = new_page(chromium, {"width": 1000, "height": 900})
    yield page
    page.context.close()
