"""The wheel carries the page's vendored JavaScript (configuration is in pyproject.toml).

A built talkgate (``pip wheel .`` or ``python -m build --wheel``) copies the npm files the page
imports from ``node_modules`` (``npm ci``, pinned by package-lock.json) into
``talkgate/static/vendor/``, with their licences, so that ``pip install talkgate-*.whl`` serves the
whole page with no node_modules beside it. Building a wheel without them fails, rather than ship a
page whose buttons do nothing. An editable install (``pip install -e .``, as ``make`` does) copies
nothing: it serves straight from the checkout's node_modules.
"""

from __future__ import annotations

import os
import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
VENDORING = runpy.run_path(str(ROOT / "src" / "talkgate" / "vendoring.py"))


def node_modules() -> Path:
    return Path(os.environ.get("TALKGATE_NODE_MODULES") or ROOT / "node_modules")


class BuildWithVendoredJs(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = node_modules()
        target = Path(self.build_lib) / "talkgate" / VENDORING["PACKAGED_DIR"]
        missing = [rel for rel in VENDORING["VENDOR_FILES"].values() if not (source / rel).is_file()]
        if missing:
            raise SystemExit(
                f"the wheel needs the page's npm files, missing under {source}: {', '.join(missing)}"
                " (run `npm ci` first, or set TALKGATE_NODE_MODULES)"
            )
        target.mkdir(parents=True, exist_ok=True)
        for name, rel in VENDORING["VENDOR_FILES"].items():
            shutil.copyfile(source / rel, target / name)
        licences = target / "LICENSES"
        licences.mkdir(exist_ok=True)
        for package in VENDORING["VENDOR_PACKAGES"]:
            for notice in ("LICENSE", "NOTICE"):
                if (source / package / notice).is_file():
                    shutil.copyfile(source / package / notice, licences / f"{package}.{notice}")


setup(cmdclass={"build_py": BuildWithVendoredJs})
