"""The built wheel serves the whole page: `pip install` of it needs no node_modules beside it.

The wheel is built from this checkout as a user would build it (`pip wheel .`), unpacked into a
folder of its own (what `pip install` puts in site-packages), and served with `talkgate serve` from
there, far from any node_modules; every vendored file must come back byte for byte.
"""

import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from talkgate.vendoring import PACKAGED_DIR, VENDOR_FILES
from tests.support.timing import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"

pytestmark = pytest.mark.skipif(
    not NODE_MODULES.is_dir() and os.environ.get("CI") != "true",
    reason="node_modules is not installed (make runs npm ci)",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        check=True,
        timeout=TIMEOUT * 30,
    )
    (built,) = out.glob("talkgate-*.whl")
    return built


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_wheel_carries_every_vendored_file_and_its_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in VENDOR_FILES:
        assert f"talkgate/{PACKAGED_DIR}/{name}" in names
    for package in ("socket.io-client", "livekit-client", "swagger-ui-dist"):
        assert f"talkgate/{PACKAGED_DIR}/LICENSES/{package}.LICENSE" in names


def test_an_installed_wheel_serves_the_page_and_its_vendored_javascript(wheel, tmp_path):
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)
    port = free_port()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("TALKGATE_", "ELEVENLABS_"))
    }
    env |= {
        "PYTHONPATH": str(site),
        "TALKGATE_PORT": str(port),
        "TALKGATE_DATA_DIR": str(tmp_path / "data"),
    }
    where = subprocess.run(
        [sys.executable, "-c", "import talkgate; print(talkgate.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip() == str(site / "talkgate" / "__init__.py")

    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "talkgate.cli", "serve"], env=env, cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
            deadline = time.monotonic() + TIMEOUT * 3
            while True:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            for page in ("/", "/calls", "/docs", "/static/js/conversation.js", "/static/js/client/avatar.js"):
                assert client.get(page).status_code == 200, page
            for name, relative in VENDOR_FILES.items():
                served = client.get(f"/vendor/{name}")
                assert served.status_code == 200, (name, served.text[:200])
                assert served.content == (NODE_MODULES / relative).read_bytes(), name
                assert served.headers["content-type"].startswith(("text/javascript", "text/css"))
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT)
