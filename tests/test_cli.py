"""The console script, run as a user would: real processes, real sockets."""

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import TIMEOUT

TALKGATE = [sys.executable, "-m", "talkgate.cli"]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ELEVENLABS_", "TALKGATE_", "LIVEAVATAR_"))
    }
    env.update({"TALKGATE_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def test_token_prints_a_verifiable_jwt_as_its_last_line(tmp_path):
    out = subprocess.run(
        [*TALKGATE, "token", "--user", "alice"],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(tmp_path, TALKGATE_JWT_SECRET="s3cret-for-test-0123456789abcdefghij"),
        cwd=tmp_path,
    )
    token = out.stdout.strip().splitlines()[-1]
    claims = jwt.decode(token, "s3cret-for-test-0123456789abcdefghij", algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["exp"] > time.time()


def test_db_upgrade_creates_the_schema(tmp_path):
    subprocess.run(
        [*TALKGATE, "db", "upgrade"], check=True, env=clean_env(tmp_path), cwd=tmp_path, capture_output=True
    )
    db = sqlite3.connect(tmp_path / "data" / "talkgate.db")
    tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
    assert {"users", "conversation_sessions", "call_logs", "alembic_version"} <= tables
    cols = {r[1] for r in db.execute("pragma table_info(conversation_sessions)")}
    assert cols == {
        "id",
        "user_id",
        "session_id",
        "status",
        "metadata",
        "started_at",
        "ended_at",
        "created_at",
        "updated_at",
    }


def read_until(proc: subprocess.Popen, pattern: str, lines: list[str]) -> re.Match:
    deadline = time.monotonic() + TIMEOUT * 2
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if m := re.search(pattern, line):
            return m
    raise AssertionError(f"{pattern!r} not seen in:\n{''.join(lines)}")


def test_serve_without_a_key_starts_the_simulator_and_says_so_first(tmp_path):
    proc = subprocess.Popen(
        [*TALKGATE, "serve", "--port", "0"],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        read_until(proc, r"listening on (http://\S+)", lines)
        url = re.search(r"listening on (http://\S+)", lines[-1]).group(1)
        assert "simulator" in lines[0] and "ELEVENLABS_API_KEY" in lines[0]
        sim_url = re.search(r"simulator at (http://\S+)", lines[0]).group(1)
        health = httpx.get(f"{url}/healthz", timeout=TIMEOUT)
        assert health.status_code == 200 and health.json()["simulator"] is True
        assert httpx.get(f"{sim_url}/healthz", timeout=TIMEOUT).json()["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
        proc.stderr.close()


def test_simulator_command_serves_alone(tmp_path):
    proc = subprocess.Popen(
        [*TALKGATE, "simulator", "--port", "0", "--strict", "--api-key", "k"],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        m = read_until(proc, r"listening on (http://\S+)", [])
        url = m.group(1)
        assert httpx.get(f"{url}/healthz", timeout=TIMEOUT).json() == {"status": "ok", "strict": True}
        r = httpx.get(
            f"{url}/v1/convai/conversation/get-signed-url",
            params={"agent_id": "a"},
            headers={"xi-api-key": "k"},
            timeout=TIMEOUT,
        )
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
        proc.stderr.close()


@pytest.mark.parametrize("bad", [["serve", "--port", "x"], ["nonsense"], ["token"]])
def test_bad_arguments_exit_2(tmp_path, bad):
    assert subprocess.run([*TALKGATE, *bad], env=clean_env(tmp_path), capture_output=True).returncode == 2
