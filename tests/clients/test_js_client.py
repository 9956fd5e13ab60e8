"""The JavaScript client package (clients/js): its integration tests in Node against a live talkgate
and simulator, and its README's Node example run unmodified by a fresh project that installs only
the packed tarball (and socket.io-client)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from talkgate.errors import ErrorCode
from talkgate.protocol.page_wire import ERROR_MESSAGES
from talkgate.serving import ServerThread
from tests.support.audio import speechlike
from tests.support.gate import start_gate
from tests.support.servers import IN_CI
from tests.support.timing import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "js"
README = CLIENT / "README.md"


def npm(*args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built and packed as `make client` does (npm ci only when its modules are missing)."""
    if shutil.which("npm") is None:
        if IN_CI:
            pytest.fail("the JavaScript client's tests need Node and npm")
        pytest.skip("no npm on this machine")
    if not (CLIENT / "node_modules" / ".package-lock.json").exists():
        npm("ci", "--no-audit", "--no-fund", cwd=CLIENT)
    npm("run", "build", cwd=CLIENT)
    out = tmp_path_factory.mktemp("pack")
    listed = json.loads(npm("pack", "--json", "--pack-destination", str(out), cwd=CLIENT))
    return out / listed[0]["filename"]


def readme_example() -> str:
    """The README's Node example, exactly as printed there."""
    blocks = re.findall(r"```js\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    (example,) = (b for b in blocks if b.startswith("// example.mjs\n"))
    return example


@pytest.mark.timeout(600)  # Node, a live talkgate and a restart: a minute, more when busy
def test_the_client_passes_its_integration_tests_against_a_live_talkgate(tarball: Path) -> None:
    env = {**os.environ, "TALKGATE_PYTHON": sys.executable, "NO_COLOR": "1"}
    done = subprocess.run(
        ["npx", "vitest", "run", "--config", "vitest.integration.config.ts"],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=540,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)  # vitest colours its summary where it sees CI
    assert re.search(r"Tests\s+\d+ passed", plain), plain[-2000:]


@pytest.fixture
def gate(tmp_path: Path, simulator: ServerThread) -> Iterator[str]:
    running = start_gate(tmp_path, simulator)
    yield running.url
    running.server.stop()


def test_a_fresh_node_project_runs_the_readme_example_unmodified(
    tarball: Path, tmp_path: Path, gate: str
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "example-app", "private": True, "type": "module"}))
    npm(
        "install",
        str(tarball),
        "socket.io-client@4.8.4",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        cwd=app,
    )
    assert not (app / "node_modules" / "talkgate-client" / "src").exists()  # only the built package
    (app / "example.mjs").write_text(readme_example())
    clip = speechlike(1000)
    (app / "speech.pcm").write_bytes(clip)
    done = subprocess.run(
        ["node", "example.mjs", "speech.pcm"],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        env={**os.environ, "TALKGATE_URL": gate},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if not line.startswith("tentative")] == [
        "user_transcript",
        "agent_response",
        "agent audio",
        "ended",
    ], done.stdout
    assert f"agent audio: {len(clip)} bytes" in lines  # the simulator's agent echoes the turn
    call_id = re.search(r"ended: client, call (\S+)", done.stdout)
    assert call_id, done.stdout
    token = httpx.post(f"{gate}/api/dev/token", json={"user": "demo"}).json()["token"]
    call = httpx.get(f"{gate}/api/calls/{call_id[1]}", headers={"Authorization": f"Bearer {token}"}).json()
    assert call["status"] == "ended"
    assert [line["role"] for line in call["transcript"]] == ["user", "agent"]


def test_the_readme_names_every_error_code_and_its_message() -> None:
    """`talkgate wire-js` writes the table; this says so when it was not run."""
    text = README.read_text(encoding="utf-8")
    for code, message in ERROR_MESSAGES.items():
        assert f"| `{code}` | {message} |" in text, code
    assert {c.value for c in ErrorCode} <= set(ERROR_MESSAGES)


def test_the_page_copy_of_the_package_is_current(tarball: Path, tmp_path: Path) -> None:
    """src/talkgate/static/js/client/ is what `npm run page` makes of the current sources (committed,
    so that `make run` needs no Node build)."""
    done = subprocess.run(
        ["node", "scripts/page-build.mjs", str(tmp_path / "client")],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    committed = ROOT / "src" / "talkgate" / "static" / "js" / "client"
    made = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "client").iterdir()}
    have = {p.name: p.read_text(encoding="utf-8") for p in committed.iterdir()}
    assert sorted(made) == sorted(have), "run `npm run page` in clients/js and commit the result"
    stale = [name for name in made if made[name] != have[name]]
    assert stale == [], f"stale: {stale}; run `npm run page` in clients/js and commit the result"


def test_the_readme_installs_the_tarball_make_client_builds() -> None:
    """The package is not on the npm registry, where its name is unclaimed: the README's install
    lines are the tarball `make client` packs (npm pack names it name-version.tgz)."""
    package = json.loads((CLIENT / "package.json").read_text(encoding="utf-8"))
    text = README.read_text(encoding="utf-8")
    (install,) = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)[:1]
    commands = [line.split("#")[0].strip() for line in install.splitlines()]
    assert commands[0] == "make client"
    assert commands[1].startswith("npm install ") and commands[1].endswith(
        f"clients/js/{package['name']}-{package['version']}.tgz"
    )
    assert "not published on the npm registry" in text
    assert not re.search(rf"^\s*npm install {package['name']}\b", text, re.M)
