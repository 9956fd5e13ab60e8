"""``talkgate serve`` and ``db upgrade`` refusing a configuration that cannot serve, as a deployer
sees it: exit 2, one line per problem, each starting with its setting's name, no traceback and no
secret. Real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.support.timing import TIMEOUT, scaled

TALKGATE = [sys.executable, "-m", "talkgate.cli"]
JWT = "Jwt-Secret-Long-Enough-0123456789abcdef"
SIGNING = "Signing-Secret-Long-Enough-0123456789abcdef"
PASSWORD = "Pg-Pass-7f3e9a"
PRODUCTION = {"TALKGATE_ENV": "production", "TALKGATE_JWT_SECRET": JWT, "TALKGATE_SIGNING_SECRET": SIGNING}


def env_with(tmp_path: Path, **extra: str) -> dict[str, str]:
    prefixes = ("ELEVENLABS_", "TALKGATE_", "LIVEAVATAR_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update({"TALKGATE_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def run(tmp_path: Path, command: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TALKGATE, *command],
        capture_output=True,
        text=True,
        env=env_with(tmp_path, **extra),
        cwd=tmp_path,
        timeout=scaled(60),
    )


def problems(out: subprocess.CompletedProcess[str]) -> list[str]:
    """The problem lines under the heading, each ``NAME: reason``."""
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    heading = "talkgate: the configuration is not valid:\n"
    assert heading in out.stderr, out.stderr  # after any log lines of what had started
    lines = out.stderr.split(heading, 1)[1].strip("\n").splitlines()
    for line in lines:
        assert re.match(r"^  [A-Z][A-Z0-9_]+: ", line), line
    return [line.strip() for line in lines]


def test_production_without_a_provider_key_refuses_to_start(tmp_path):
    out = run(tmp_path, ["serve", "--port", "0"], **PRODUCTION)
    [line] = problems(out)
    assert line.startswith("ELEVENLABS_API_KEY: ") and "TALKGATE_ALLOW_SIMULATOR" in line
    assert not (tmp_path / "data").exists()  # nothing started


def test_production_may_run_the_simulator_when_asked_to(tmp_path):
    env = env_with(tmp_path, **PRODUCTION, TALKGATE_ALLOW_SIMULATOR="true")
    proc = subprocess.Popen(
        [*TALKGATE, "serve", "--port", "0"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    seen = []
    try:
        deadline = time.monotonic() + TIMEOUT * 2
        while time.monotonic() < deadline and (line := proc.stderr.readline()):
            seen.append(line)
            if "listening on" in line:
                break
        assert "listening on" in "".join(seen), "".join(seen)
        assert "simulator" in seen[0]
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
        proc.stderr.close()


def test_a_malformed_database_url_is_named_without_its_password(tmp_path):
    url = f"postgresql+asyncpg://talkgate:{PASSWORD}@db.internal:notaport/talkgate"
    for command in (["serve", "--port", "0"], ["db", "upgrade"]):
        out = run(tmp_path, command, TALKGATE_DATABASE_URL=url)
        [line] = problems(out)
        assert line.startswith("TALKGATE_DATABASE_URL: ") and "not a database URL" in line
        assert PASSWORD not in out.stderr + out.stdout


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path):
    url = f"postgresql+asyncpg://talkgate:{PASSWORD}@127.0.0.1:1/talkgate"  # nothing listens on port 1
    for command in (["serve", "--port", "0"], ["db", "upgrade"]):
        out = run(tmp_path, command, TALKGATE_DATABASE_URL=url)
        [line] = problems(out)
        assert line.startswith("TALKGATE_DATABASE_URL: ") and "cannot be used" in line, line
        assert "127.0.0.1:1" in line and PASSWORD not in out.stderr + out.stdout


def test_every_production_problem_is_reported_at_once(tmp_path):
    out = run(
        tmp_path,
        ["serve", "--port", "0"],
        TALKGATE_ENV="production",
        TALKGATE_JWT_SECRET="talkgate-development-only-secret-change-me",
        ELEVENLABS_API_KEY="changethis",
        ELEVENLABS_WEBHOOK_SECRET="secret",
    )
    named = [line.split(":", 1)[0] for line in problems(out)]
    assert named == [
        "TALKGATE_JWT_SECRET",
        "TALKGATE_SIGNING_SECRET",
        "ELEVENLABS_API_KEY",
        "ELEVENLABS_WEBHOOK_SECRET",
    ]


def test_a_signing_secret_equal_to_the_jwt_secret_is_refused_in_production(tmp_path):
    out = run(
        tmp_path,
        ["serve", "--port", "0"],
        **{**PRODUCTION, "TALKGATE_SIGNING_SECRET": JWT, "ELEVENLABS_API_KEY": "sk_live_real-key-0123"},
    )
    [line] = problems(out)
    assert line.startswith("TALKGATE_SIGNING_SECRET: ") and "TALKGATE_JWT_SECRET" in line
    assert JWT not in out.stderr
