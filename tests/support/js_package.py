"""The JavaScript client package (clients/js) as its users get it: built and packed by npm as `make
client` does, and the code blocks of its README, exactly as printed there."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.servers import IN_CI

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "js"
README = CLIENT / "README.md"


def npm(*args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def pack(out: Path) -> Path:
    """The package built and packed as `make client` does (npm ci only when its modules are missing):
    the tarball's path in ``out``."""
    if shutil.which("npm") is None:
        if IN_CI:
            pytest.fail("the JavaScript client's tests need Node and npm")
        pytest.skip("no npm on this machine")
    if not (CLIENT / "node_modules" / ".package-lock.json").exists():
        npm("ci", "--no-audit", "--no-fund", cwd=CLIENT)
    npm("run", "build", cwd=CLIENT)
    listed = json.loads(npm("pack", "--json", "--pack-destination", str(out), cwd=CLIENT))
    return out / listed[0]["filename"]


def unpack(tarball: Path, out: Path) -> Path:
    """The tarball's files (``package/…``, as npm installs them): the package's directory."""
    with tarfile.open(tarball) as tar:
        tar.extractall(out, filter="data")
    return out / "package"


def readme_code(section: str, first_line: str | None = None) -> str:
    """The README's ``js``/``jsx`` code block under the heading ``## {section}`` (the first one, or the
    one whose first line is ``first_line``), exactly as printed."""
    text = README.read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.M)
    (body,) = [p for p in parts if p.startswith(section + "\n")]
    blocks = re.findall(r"^```jsx?\n(.*?)^```", body, re.DOTALL | re.M)
    if first_line is not None:
        blocks = [b for b in blocks if b.startswith(first_line + "\n")]
    assert blocks, f"no code block under ## {section} in {README}"
    return str(blocks[0])
