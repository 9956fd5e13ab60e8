"""The Makefile's npm installs leave a linked node_modules alone.

A git worktree that links its node_modules to another checkout's (to share one install) has newer
package.json files than that install's stamp, so make wants to reinstall; `npm ci` would then empty
the linked folder under every checkout using it. Here make runs in a copy of the Makefile with a fake
`npm` (and fake venv tools) on PATH that records its calls and, like `npm ci`, empties
node_modules: a linked node_modules is never reinstalled, a real one still is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE_NPM = """#!/bin/sh
echo "$(pwd) $*" >> "$NPM_LOG"
if [ "$1" = ci ]; then rm -rf node_modules/* node_modules/.package-lock.json; mkdir -p node_modules;
  touch node_modules/.package-lock.json; fi
"""


def _tool(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def _checkout(tmp_path: Path, *, linked: bool) -> tuple[Path, Path, Path]:
    """A checkout with a Makefile, fake tools, and clients/js whose node_modules is linked or real."""
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    work = tmp_path / "checkout"
    client = work / "clients" / "js"
    client.mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", work / "Makefile")
    for folder in (work, client):
        (folder / "package.json").write_text("{}")
        (folder / "package-lock.json").write_text("{}")
    (work / "pyproject.toml").write_text("")
    shared = tmp_path / "shared"
    for folder in (work, client):
        modules = shared / folder.relative_to(tmp_path).as_posix().replace("/", "_")
        modules.mkdir(parents=True)
        (modules / "kept").write_text("another checkout's install")
        (modules / ".package-lock.json").write_text("")
        os.utime(modules / ".package-lock.json", (1, 1))  # older than package.json: make wants npm ci
        if linked:
            (folder / "node_modules").symlink_to(modules)
        else:
            shutil.copytree(modules, folder / "node_modules")
            os.utime(folder / "node_modules" / ".package-lock.json", (1, 1))
    bin_dir = tmp_path / "bin"
    _tool(bin_dir / "npm", FAKE_NPM)
    for name in ("python", "pip", "talkgate"):
        _tool(work / ".venv" / "bin" / name)
    return work, shared, bin_dir


def _make(work: Path, bin_dir: Path, log: Path, *targets: str) -> str:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "NPM_LOG": str(log)}
    done = subprocess.run(
        ["make", "-C", str(work), *targets], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_linked_node_modules_is_not_reinstalled(tmp_path: Path) -> None:
    work, shared, bin_dir = _checkout(tmp_path, linked=True)
    log = tmp_path / "npm.log"
    out = _make(work, bin_dir, log, "clients/js/node_modules/.package-lock.json", "run")
    calls = log.read_text().splitlines() if log.exists() else []
    assert not [c for c in calls if " ci " in f"{c} "], calls
    assert sorted(p.name for p in shared.iterdir()) == ["checkout", "checkout_clients_js"]
    for modules in shared.iterdir():
        assert (modules / "kept").read_text() == "another checkout's install"
    assert "node_modules is a link to another checkout's: not reinstalled here" in out


def test_a_real_node_modules_is_still_installed(tmp_path: Path) -> None:
    work, _, bin_dir = _checkout(tmp_path, linked=False)
    log = tmp_path / "npm.log"
    _make(work, bin_dir, log, "clients/js/node_modules/.package-lock.json", "run")
    calls = log.read_text().splitlines()
    assert f"{work}/clients/js ci --no-audit --no-fund --loglevel=error" in calls
    assert f"{work} ci --omit=dev --no-audit --no-fund --loglevel=error" in calls
